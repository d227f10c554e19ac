//! Invalidation wins over a computation in flight (Caffeine's and moka's rule): once
//! `f::cache_invalidate(k)` or `f::cache_clear()` returns, no call receives or stores a value
//! whose computation started before it. Each scenario: the first run of the body reads version
//! 1 and blocks; version 2 is written and the key invalidated; a later call computes version 2
//! at once (it does not join the stale run); the stale run's value goes to its own caller only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use memo::memoize;

/// Far longer than any call here takes: a call that joined the stale run would block until the
/// run is released, which the test does only after this.
const HANG: Duration = Duration::from_secs(20);

/// The upstream: a version, and a gate that holds the first run of the body.
struct Upstream {
    version: AtomicU64,
    runs: AtomicU64,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Upstream {
    const fn new() -> Self {
        Upstream {
            version: AtomicU64::new(1),
            runs: AtomicU64::new(0),
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }

    /// Reads the version; the first run then waits until [`Upstream::release`].
    fn read(&self) -> u64 {
        let version = self.version.load(Ordering::SeqCst);
        if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
        }
        version
    }

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn until_first_run(&self) {
        while self.runs.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
    }
}

/// The scenario for a sync function `call` and an invalidation `invalidate` of its key.
fn invalidation_wins(upstream: &'static Upstream, call: fn() -> u64, invalidate: fn()) {
    std::thread::scope(|s| {
        let stale = s.spawn(call);
        upstream.until_first_run();
        upstream.version.store(2, Ordering::SeqCst);
        invalidate();
        // Called after the invalidation: computes version 2 without waiting for the stale run.
        let (sent, after) = mpsc::channel();
        s.spawn(move || sent.send(call()).unwrap());
        let after = after.recv_timeout(HANG);
        upstream.release();
        assert_eq!(
            after,
            Ok(2),
            "a call after the invalidation joined the stale run"
        );
        // The stale run's caller gets its value; it is not stored.
        assert_eq!(stale.join().unwrap(), 1);
    });
    assert_eq!(call(), 2);
    assert_eq!(upstream.runs.load(Ordering::SeqCst), 2);
}

static CONFIG: Upstream = Upstream::new();

#[memoize]
fn config(key: u32) -> u64 {
    let _ = key;
    CONFIG.read()
}

#[test]
fn invalidate_wins_over_a_sync_computation_in_flight() {
    invalidation_wins(
        &CONFIG,
        || config(1),
        || {
            config::cache_invalidate(1);
        },
    );
}

static CLEARED: Upstream = Upstream::new();

#[memoize]
fn cleared(key: u32) -> u64 {
    let _ = key;
    CLEARED.read()
}

#[test]
fn clear_wins_over_a_sync_computation_in_flight() {
    invalidation_wins(&CLEARED, || cleared(1), cleared::cache_clear);
}

static KEYED: Upstream = Upstream::new();

#[memoize(key = name.to_lowercase())]
fn keyed(name: &str) -> u64 {
    let _ = name;
    KEYED.read()
}

#[test]
fn invalidate_wins_with_a_key_expression() {
    invalidation_wins(
        &KEYED,
        || keyed("Lyon"),
        || {
            keyed::cache_invalidate("LYON");
        },
    );
}

static UNSHARED: Upstream = Upstream::new();

#[memoize(single_flight = false)]
fn unshared(key: u32) -> u64 {
    let _ = key;
    UNSHARED.read()
}

/// Without single-flight every caller runs the body; the stale run's value is still not stored.
#[test]
fn invalidate_wins_without_single_flight() {
    std::thread::scope(|s| {
        let stale = s.spawn(|| unshared(1));
        UNSHARED.until_first_run();
        UNSHARED.version.store(2, Ordering::SeqCst);
        assert!(!unshared::cache_invalidate(1));
        UNSHARED.release();
        assert_eq!(stale.join().unwrap(), 1);
    });
    assert_eq!(unshared(1), 2);
    assert_eq!(unshared(1), 2);
    assert_eq!(UNSHARED.runs.load(Ordering::SeqCst), 2);
}

static ASYNC_VERSION: AtomicU64 = AtomicU64::new(1);
static ASYNC_RUNS: AtomicU64 = AtomicU64::new(0);
static ASYNC_OPEN: AtomicU64 = AtomicU64::new(0);

#[memoize]
async fn remote_config(key: u32) -> u64 {
    let _ = key;
    let version = ASYNC_VERSION.load(Ordering::SeqCst);
    if ASYNC_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        while ASYNC_OPEN.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    }
    version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_wins_over_an_async_computation_in_flight() {
    let stale = tokio::spawn(remote_config(1));
    while ASYNC_RUNS.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    ASYNC_VERSION.store(2, Ordering::SeqCst);
    remote_config::cache_invalidate(1);
    let after = tokio::spawn(remote_config(1));
    // A task that joined the stale run would not finish before the release.
    let mut waited = Duration::ZERO;
    while !after.is_finished() && waited < HANG {
        std::thread::sleep(Duration::from_millis(1));
        waited += Duration::from_millis(1);
    }
    ASYNC_OPEN.store(1, Ordering::SeqCst);
    assert_eq!(after.await.unwrap(), 2);
    assert_eq!(stale.await.unwrap(), 1);
    assert_eq!(remote_config(1).await, 2);
    assert_eq!(ASYNC_RUNS.load(Ordering::SeqCst), 2);
}

#[cfg(feature = "persistent")]
mod with_a_store {
    use super::*;
    use memo::stores::{self, PersistentStore};

    static STORED: Upstream = Upstream::new();

    #[memoize(store = "invalidation-sqlite")]
    fn stored_config(key: u32) -> u64 {
        let _ = key;
        STORED.read()
    }

    #[test]
    fn invalidate_wins_over_a_computation_in_flight_with_a_store() {
        let dir = std::env::temp_dir().join(format!("memo-invalidation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("store.sqlite");
        stores::register("invalidation-sqlite", PersistentStore::open(&file).unwrap());
        invalidation_wins(
            &STORED,
            || stored_config(1),
            || {
                stored_config::cache_invalidate(1);
            },
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    static ASYNC_STORED_VERSION: AtomicU64 = AtomicU64::new(1);
    static ASYNC_STORED_RUNS: AtomicU64 = AtomicU64::new(0);
    static ASYNC_STORED_OPEN: AtomicU64 = AtomicU64::new(0);

    #[memoize(store = "invalidation-sqlite-async", single_flight = false)]
    async fn stored_unshared(key: u32) -> u64 {
        let _ = key;
        let version = ASYNC_STORED_VERSION.load(Ordering::SeqCst);
        if ASYNC_STORED_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
            while ASYNC_STORED_OPEN.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        }
        version
    }

    /// An `async fn` with a store and without single-flight writes through the store's I/O
    /// threads: a run that started before the invalidation still stores nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalidate_wins_over_an_async_computation_with_a_store_without_single_flight() {
        let dir =
            std::env::temp_dir().join(format!("memo-invalidation-async-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("store.sqlite");
        stores::register(
            "invalidation-sqlite-async",
            PersistentStore::open(&file).unwrap(),
        );
        let stale = tokio::spawn(stored_unshared(1));
        while ASYNC_STORED_RUNS.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        ASYNC_STORED_VERSION.store(2, Ordering::SeqCst);
        stored_unshared::cache_invalidate(1);
        ASYNC_STORED_OPEN.store(1, Ordering::SeqCst);
        // The stale run's caller gets its value; it is not stored.
        assert_eq!(stale.await.unwrap(), 1);
        assert_eq!(
            stored_unshared(1).await,
            2,
            "the value computed before the invalidation was stored"
        );
        assert_eq!(stored_unshared(1).await, 2);
        assert_eq!(ASYNC_STORED_RUNS.load(Ordering::SeqCst), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The write of a value to a store that is under way when its key is invalidated: the
/// invalidation waits until the write has ended (then removes the key), so the value computed
/// before it is not stored after it. Each store kind, sync and async, with and without
/// single-flight. The store is the real one (SQLite file, redis-server, memcached) behind a
/// gate that holds one write, as a slow server or a busy I/O thread would.
#[cfg(any(feature = "persistent", feature = "redis", feature = "memcached"))]
mod write_under_way {
    use super::*;
    use memo::stores;
    use std::time::Instant;

    use super::{held, servers};

    /// The longest a held write waits for its release: a test that forgets it fails, not hangs.
    const HOLD: Duration = Duration::from_secs(10);

    /// Holds the next write (`set`) once armed, until released.
    pub struct Gate {
        state: Mutex<GateState>,
        changed: Condvar,
    }

    #[derive(Clone, Copy)]
    struct GateState {
        armed: bool,
        entered: bool,
        open: bool,
    }

    impl Gate {
        pub const fn new() -> Self {
            Gate {
                state: Mutex::new(GateState {
                    armed: false,
                    entered: false,
                    open: false,
                }),
                changed: Condvar::new(),
            }
        }

        fn arm(&self) {
            *self.state.lock().unwrap() = GateState {
                armed: true,
                entered: false,
                open: false,
            };
        }

        /// In a `set`: if armed, disarms, says so, and waits for the release.
        fn pass(&self) {
            let mut state = self.state.lock().unwrap();
            if !state.armed {
                return;
            }
            state.armed = false;
            state.entered = true;
            self.changed.notify_all();
            let deadline = Instant::now() + HOLD;
            while !state.open && Instant::now() < deadline {
                state = self.changed.wait_timeout(state, HOLD).unwrap().0;
            }
        }

        fn entered(&self) -> bool {
            self.state.lock().unwrap().entered
        }

        fn wait_entered(&self) {
            let deadline = Instant::now() + HOLD;
            while !self.entered() {
                assert!(
                    Instant::now() < deadline,
                    "the write never reached the store"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        fn open(&self) {
            self.state.lock().unwrap().open = true;
            self.changed.notify_all();
        }

        fn is_open(&self) -> bool {
            self.state.lock().unwrap().open
        }
    }

    /// A real store's writes pass the gate first.
    impl held::Hold for Gate {
        fn before_set(&self) {
            self.pass();
        }
    }

    /// What a test keeps alive: the server, or the SQLite file's folder.
    pub enum Backing {
        Server(#[allow(dead_code)] servers::Server),
        Dir(std::path::PathBuf),
    }

    impl Drop for Backing {
        fn drop(&mut self) {
            if let Backing::Dir(dir) = self {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    #[derive(Clone, Copy)]
    pub enum Kind {
        #[cfg(feature = "persistent")]
        Sqlite,
        #[cfg(feature = "redis")]
        Redis,
        #[cfg(feature = "memcached")]
        Memcached,
    }

    /// Registers a real store of `kind` as `name`, its writes held by `gate` when armed.
    pub fn register(kind: Kind, name: &str, gate: &'static Gate) -> Backing {
        match kind {
            #[cfg(feature = "persistent")]
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("memo-{name}-{}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                let inner = stores::PersistentStore::open(dir.join("store.sqlite")).unwrap();
                stores::register(name, held::Held { inner, hold: gate });
                Backing::Dir(dir)
            }
            #[cfg(feature = "redis")]
            Kind::Redis => {
                let server = servers::Server::redis();
                let inner = stores::RedisStore::connect(&server.redis_url()).unwrap();
                stores::register(name, held::Held { inner, hold: gate });
                Backing::Server(server)
            }
            #[cfg(feature = "memcached")]
            Kind::Memcached => {
                let server = servers::Server::memcached();
                let inner = stores::MemcachedStore::connect(&server.address()).unwrap();
                stores::register(name, held::Held { inner, hold: gate });
                Backing::Server(server)
            }
        }
    }

    /// How long after the write reached the store it is let through, while the invalidation
    /// waits (far less than the bound of that wait, `REMOTE_WRITE_WAIT`, 1 s).
    const SLOW_WRITE: Duration = Duration::from_millis(150);

    /// Lets the held write through `SLOW_WRITE` from now, on a thread of its own.
    fn open_later(gate: &'static Gate) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            std::thread::sleep(SLOW_WRITE);
            gate.open();
        })
    }

    /// A sync function: its first call stores version 1, held at the store; meanwhile version 2
    /// is written and the key invalidated (by `invalidate`), which must wait for that write.
    pub fn sync_scenario(
        gate: &'static Gate,
        version: &'static AtomicU64,
        call: fn() -> u64,
        invalidate: fn(),
    ) {
        gate.arm();
        let stale = std::thread::spawn(call);
        gate.wait_entered();
        version.store(2, Ordering::SeqCst);
        let opener = open_later(gate);
        invalidate();
        assert!(
            gate.is_open(),
            "the invalidation returned while a write of a value computed before it was under way"
        );
        opener.join().unwrap();
        assert_eq!(stale.join().unwrap(), 1);
        assert_eq!(
            call(),
            2,
            "the value computed before the invalidation was stored after it"
        );
    }

    /// The same for an `async fn`, all on one current_thread runtime: the invalidation is called
    /// (blocking) from a task of the runtime that polls the writing caller, which cannot be
    /// polled meanwhile; the write must end without it.
    pub fn async_scenario<F: std::future::Future<Output = u64> + Send + 'static>(
        gate: &'static Gate,
        version: &'static AtomicU64,
        call: fn() -> F,
        invalidate: fn(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            gate.arm();
            let stale = tokio::spawn(call());
            while !gate.entered() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            version.store(2, Ordering::SeqCst);
            let opener = open_later(gate);
            invalidate();
            assert!(
                gate.is_open(),
                "the invalidation returned while a write of a value computed before it was \
                 under way"
            );
            opener.join().unwrap();
            assert_eq!(stale.await.unwrap(), 1);
            assert_eq!(
                call().await,
                2,
                "the value computed before the invalidation was stored after it"
            );
        });
    }

    /// A store that stops answering while a write is under way (held until after the
    /// invalidation returned): the invalidation waits for it at most its bound (1 s), then
    /// cancels it, and the value, stored once the store answers again, is removed at once.
    pub fn dead_store_scenario<F: std::future::Future<Output = u64> + Send + 'static>(
        gate: &'static Gate,
        version: &'static AtomicU64,
        call: fn() -> F,
        invalidate: fn(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            gate.arm();
            let stale = tokio::spawn(call());
            while !gate.entered() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            version.store(2, Ordering::SeqCst);
            let started = Instant::now();
            invalidate();
            let waited = started.elapsed();
            assert!(
                waited < HOLD / 2,
                "the invalidation waited {waited:?} for a store that stopped answering"
            );
            assert!(!gate.is_open(), "the test let the write through");
            gate.open();
            assert_eq!(stale.await.unwrap(), 1);
            assert_eq!(
                call().await,
                2,
                "a write cancelled by an invalidation that stopped waiting for it stayed stored"
            );
        });
    }

    #[cfg(feature = "persistent")]
    mod sqlite_stops_answering {
        use super::*;
        static VERSION: AtomicU64 = AtomicU64::new(1);
        static GATE: Gate = Gate::new();

        #[memoize(store = "gap-sqlite-stops")]
        async fn value(key: u32) -> u64 {
            let _ = key;
            VERSION.load(Ordering::SeqCst)
        }

        #[test]
        fn an_invalidation_waits_a_bounded_time_and_the_late_write_is_undone() {
            let _backing = register(Kind::Sqlite, "gap-sqlite-stops", &GATE);
            dead_store_scenario(
                &GATE,
                &VERSION,
                || value(1),
                || {
                    value::cache_invalidate(1);
                },
            );
        }
    }

    #[cfg(feature = "redis")]
    mod redis_stops_answering {
        use super::*;
        static VERSION: AtomicU64 = AtomicU64::new(1);
        static GATE: Gate = Gate::new();

        #[memoize(store = "gap-redis-stops", single_flight = false)]
        async fn value(key: u32) -> u64 {
            let _ = key;
            VERSION.load(Ordering::SeqCst)
        }

        #[test]
        fn an_invalidation_waits_a_bounded_time_and_the_late_write_is_undone() {
            let _backing = register(Kind::Redis, "gap-redis-stops", &GATE);
            dead_store_scenario(&GATE, &VERSION, || value(1), value::cache_clear);
        }
    }

    /// A Redis store with feature `tokio`: the write runs on memo's runtime through the async
    /// connection (no gate can sit there). A large value makes the write take a while (its
    /// encoding, then the transfer); the invalidation comes as soon as the body has returned.
    #[cfg(all(feature = "redis", feature = "tokio"))]
    mod redis_on_tokio {
        use super::*;
        use std::sync::atomic::AtomicBool;

        static VERSION: AtomicU64 = AtomicU64::new(1);
        static RETURNED: AtomicBool = AtomicBool::new(false);

        #[memoize(store = "gap-redis-tokio")]
        async fn document(key: u32) -> String {
            let _ = key;
            let version = VERSION.load(Ordering::SeqCst);
            let document = format!("{version}:{}", "x".repeat(600_000));
            RETURNED.store(true, Ordering::SeqCst);
            document
        }

        #[test]
        fn a_write_on_memos_runtime_is_waited_for() {
            let server = servers::Server::redis();
            stores::register(
                "gap-redis-tokio",
                stores::RedisStore::connect(&server.redis_url()).unwrap(),
            );
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            // A first call connects (and is invalidated), so that the tested write's time is
            // the write's own.
            runtime.block_on(document(0));
            RETURNED.store(false, Ordering::SeqCst);
            let stale = runtime.spawn(document(1));
            while !RETURNED.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            VERSION.store(2, Ordering::SeqCst);
            document::cache_invalidate(1);
            assert!(runtime.block_on(stale).unwrap().starts_with("1:"));
            assert!(
                runtime.block_on(document(1)).starts_with("2:"),
                "the value computed before the invalidation was stored after it"
            );
        }
    }

    /// One function per case: `$kind` store, sync or async, single-flight on or off, and the
    /// invalidation `cache_invalidate(1)` or `cache_clear()`.
    macro_rules! case {
        ($test:ident, $store:literal, $feature:literal, $kind:ident, sync, $single_flight:literal, $how:ident) => {
            #[cfg(feature = $feature)]
            mod $test {
                use super::*;
                static VERSION: AtomicU64 = AtomicU64::new(1);
                static GATE: Gate = Gate::new();

                #[memoize(store = $store, single_flight = $single_flight)]
                fn value(key: u32) -> u64 {
                    let _ = key;
                    VERSION.load(Ordering::SeqCst)
                }

                #[test]
                fn a_write_under_way_is_waited_for() {
                    let _backing = register(Kind::$kind, $store, &GATE);
                    sync_scenario(&GATE, &VERSION, || value(1), || case!(@$how value));
                }
            }
        };
        ($test:ident, $store:literal, $feature:literal, $kind:ident, async, $single_flight:literal, $how:ident) => {
            #[cfg(feature = $feature)]
            mod $test {
                use super::*;
                static VERSION: AtomicU64 = AtomicU64::new(1);
                static GATE: Gate = Gate::new();

                #[memoize(store = $store, single_flight = $single_flight)]
                async fn value(key: u32) -> u64 {
                    let _ = key;
                    VERSION.load(Ordering::SeqCst)
                }

                #[test]
                fn a_write_under_way_is_waited_for() {
                    let _backing = register(Kind::$kind, $store, &GATE);
                    async_scenario(&GATE, &VERSION, || value(1), || case!(@$how value));
                }
            }
        };
        (@invalidate $f:ident) => {{
            $f::cache_invalidate(1);
        }};
        (@clear $f:ident) => {
            $f::cache_clear()
        };
    }

    case!(
        sqlite_sync,
        "gap-sqlite-sync",
        "persistent",
        Sqlite,
        sync,
        true,
        invalidate
    );
    case!(
        sqlite_sync_unshared,
        "gap-sqlite-sync-unshared",
        "persistent",
        Sqlite,
        sync,
        false,
        invalidate
    );
    case!(
        sqlite_async,
        "gap-sqlite-async",
        "persistent",
        Sqlite,
        async,
        true,
        invalidate
    );
    case!(
        sqlite_async_unshared,
        "gap-sqlite-async-unshared",
        "persistent",
        Sqlite,
        async,
        false,
        invalidate
    );
    case!(
        sqlite_async_clear,
        "gap-sqlite-async-clear",
        "persistent",
        Sqlite,
        async,
        true,
        clear
    );
    case!(
        redis_sync,
        "gap-redis-sync",
        "redis",
        Redis,
        sync,
        true,
        invalidate
    );
    case!(
        redis_sync_unshared,
        "gap-redis-sync-unshared",
        "redis",
        Redis,
        sync,
        false,
        invalidate
    );
    case!(
        redis_async,
        "gap-redis-async",
        "redis",
        Redis,
        async,
        true,
        invalidate
    );
    case!(
        redis_async_unshared,
        "gap-redis-async-unshared",
        "redis",
        Redis,
        async,
        false,
        invalidate
    );
    case!(
        memcached_sync,
        "gap-memcached-sync",
        "memcached",
        Memcached,
        sync,
        true,
        invalidate
    );
    case!(
        memcached_sync_unshared,
        "gap-memcached-sync-unshared",
        "memcached",
        Memcached,
        sync,
        false,
        invalidate
    );
    case!(
        memcached_async,
        "gap-memcached-async",
        "memcached",
        Memcached,
        async,
        true,
        invalidate
    );
    case!(
        memcached_async_unshared,
        "gap-memcached-async-unshared",
        "memcached",
        Memcached,
        async,
        false,
        invalidate
    );
    case!(
        memcached_async_clear,
        "gap-memcached-async-clear",
        "memcached",
        Memcached,
        async,
        true,
        clear
    );
}

#[cfg(any(feature = "persistent", feature = "redis", feature = "memcached"))]
#[path = "support/servers.rs"]
mod servers;

#[cfg(any(feature = "persistent", feature = "redis", feature = "memcached"))]
#[path = "support/held.rs"]
mod held;
