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
