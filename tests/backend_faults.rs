//! Faults of real servers never fail the caller: a server killed mid-run, hung (SIGSTOP), down at
//! start-up. The function runs instead, one outage is counted (one warning), and hits resume once
//! the server is back. Latencies seen during the outage are printed (`--nocapture`), not asserted.
#![cfg(all(feature = "redis", feature = "memcached"))]

#[path = "support/servers.rs"]
mod servers;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memo::stores::{self, MemcachedStore, RedisStore, Store, StoreCache, StoreOptions};
use servers::Server;

const TIMEOUT: Duration = Duration::from_millis(100);

fn options() -> StoreOptions {
    StoreOptions::default()
        .retry_after(Duration::from_millis(100))
        .max_retry_after(Duration::from_millis(400))
}

fn redis_store(server: &Server) -> RedisStore {
    RedisStore::connect(&server.redis_url())
        .unwrap()
        .with_timeouts(TIMEOUT, TIMEOUT)
}

fn memcached_store(server: &Server) -> MemcachedStore {
    MemcachedStore::connect(&server.address())
        .unwrap()
        .with_timeouts(TIMEOUT, TIMEOUT)
}

/// A memoized `n * n` that counts how often its body runs.
struct Square {
    cache: StoreCache<(u64,), u64>,
    runs: AtomicU64,
}

impl Square {
    fn new(store: &str) -> Square {
        Square {
            cache: StoreCache::new(store, "faults::square"),
            runs: AtomicU64::new(0),
        }
    }

    /// What `#[memoize(store = ...)] fn square(n: u64) -> u64` expands to.
    fn call(&self, n: u64) -> u64 {
        if let Some(hit) = self.cache.get_by(&(&n,), |k| k.0 == n) {
            return hit;
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        let value = n * n;
        self.cache.insert_if_absent((n,), value);
        value
    }

    fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Calls 0..20 and returns the latency of each call.
    fn sweep(&self) -> Vec<Duration> {
        (0..20)
            .map(|n| {
                let start = Instant::now();
                assert_eq!(self.call(n), n * n, "a wrong value for {n}");
                start.elapsed()
            })
            .collect()
    }
}

fn summary(latencies: &[Duration]) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    format!(
        "first {:.1?}, median {:.1?}, max {:.1?}",
        latencies[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    )
}

/// Calls `square(0)` until the store is in use again; panics after 10 s.
fn wait_for_recovery(square: &Square, store: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stores::health(store).unwrap().up {
        assert!(Instant::now() < deadline, "store `{store}` did not recover");
        assert_eq!(square.call(0), 0);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server is killed mid-run, then restarted on its port (empty, as after a crash).
fn killed_and_restarted(name: &str, server: &mut Server) {
    let square = Square::new(name);
    let before = square.sweep();
    assert_eq!(square.runs(), 20);
    let hits = square.sweep();
    assert_eq!(square.runs(), 20, "every call of the second sweep hits");

    server.stop();
    let outage = square.sweep();
    assert_eq!(square.runs(), 40, "while the server is down, the body runs");
    let health = stores::health(name).unwrap();
    assert!(!health.up);
    assert_eq!(health.outages, 1, "one outage, one warning");

    server.start();
    wait_for_recovery(&square, name);
    square.sweep();
    let runs = square.runs();
    let resumed = square.sweep();
    assert_eq!(square.runs(), runs, "hits resume after the restart");
    assert_eq!(stores::health(name).unwrap().outages, 1);
    eprintln!(
        "{name}: misses {}; hits {}; server killed: {}; back: {}",
        summary(&before),
        summary(&hits),
        summary(&outage),
        summary(&resumed)
    );
}

#[test]
fn redis_killed_mid_run_never_fails_the_caller_and_hits_resume_after_restart() {
    let mut server = Server::redis();
    stores::register_with("faults-redis-kill", redis_store(&server), options());
    killed_and_restarted("faults-redis-kill", &mut server);
}

#[test]
fn memcached_killed_mid_run_never_fails_the_caller_and_hits_resume_after_restart() {
    let mut server = Server::memcached();
    stores::register_with("faults-mc-kill", memcached_store(&server), options());
    killed_and_restarted("faults-mc-kill", &mut server);
}

/// The server hangs (SIGSTOP): calls time out once, then skip it until it answers again.
fn hung_then_thawed(name: &str, server: &Server) {
    let square = Square::new(name);
    square.sweep();
    server.pause();
    let hung = square.sweep();
    assert_eq!(square.runs(), 40, "while the server hangs, the body runs");
    assert_eq!(stores::health(name).unwrap().outages, 1);
    // Bounded by the timeout: no call waits for the hung server much longer than that.
    server.resume();
    wait_for_recovery(&square, name);
    let runs = square.runs();
    let back = square.sweep();
    assert_eq!(
        square.runs(),
        runs,
        "what was stored before the hang is hit again"
    );
    eprintln!(
        "{name}: server hung: {}; thawed: {}",
        summary(&hung),
        summary(&back)
    );
}

#[test]
fn hung_redis_times_out_then_is_used_again() {
    let server = Server::redis();
    stores::register_with("faults-redis-hang", redis_store(&server), options());
    hung_then_thawed("faults-redis-hang", &server);
}

#[test]
fn hung_memcached_times_out_then_is_used_again() {
    let server = Server::memcached();
    stores::register_with("faults-mc-hang", memcached_store(&server), options());
    hung_then_thawed("faults-mc-hang", &server);
}

#[test]
fn a_server_down_at_start_up_is_an_outage_like_any_other() {
    let mut server = Server::redis();
    server.stop();
    stores::register_with("faults-late", redis_store(&server), options());
    let square = Square::new("faults-late");
    let down = square.sweep();
    assert_eq!(square.runs(), 20);
    server.start();
    wait_for_recovery(&square, "faults-late");
    square.sweep();
    let runs = square.runs();
    square.sweep();
    assert_eq!(square.runs(), runs);
    eprintln!("faults-late: server not started: {}", summary(&down));
}

#[test]
fn a_pooled_connection_to_a_restarted_server_is_replaced_without_an_outage() {
    let mut server = Server::redis();
    let store = redis_store(&server);
    store.set("ns", "k", b"1", None).unwrap(); // leaves a connection in the pool
    server.stop();
    server.start();
    store.set("ns", "k", b"2", None).unwrap();
    assert_eq!(store.get("ns", "k").unwrap(), Some(b"2".to_vec()));

    let mut server = Server::memcached();
    let store = memcached_store(&server);
    store.set("ns", "k", b"1", None).unwrap();
    server.stop();
    server.start();
    store.set("ns", "k", b"2", None).unwrap();
    assert_eq!(store.get("ns", "k").unwrap(), Some(b"2".to_vec()));
}

/// Redis at `maxmemory` with `noeviction` refuses writes (OOM): those calls run uncached, and
/// reads keep hitting; no outage (the breaker used to open on each refusal and skip the reads).
#[test]
fn redis_refusing_writes_under_maxmemory_fails_the_writes_only() {
    let server = Server::redis();
    let name = "faults-redis-oom";
    stores::register_with(name, redis_store(&server), options());
    let square = Square::new(name);
    square.sweep();
    assert_eq!(square.runs(), 20);
    server.redis_cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.redis_cli(&["CONFIG", "SET", "maxmemory", "1"]);
    for round in 0..3 {
        let runs = square.runs();
        square.sweep();
        assert_eq!(
            square.runs(),
            runs,
            "round {round}: the stored keys keep hitting"
        );
        for n in 100..110 {
            assert_eq!(square.call(n), n * n);
        }
    }
    assert_eq!(
        square.runs(),
        50,
        "each new key ran every time: its write was refused"
    );
    let health = stores::health(name).unwrap();
    assert!(health.up, "{health:?}");
    assert_eq!((health.outages, health.skipped), (0, 0), "{health:?}");
    assert_eq!(health.refused, 30, "{health:?}");
    assert!(
        health
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("request rejected: OOM command not allowed"),
        "{health:?}"
    );
    server.redis_cli(&["CONFIG", "SET", "maxmemory", "0"]);
    square.call(100);
    let runs = square.runs();
    square.call(100);
    assert_eq!(square.runs(), runs, "writes are accepted again");
}

/// A read-only replica refuses writes (READONLY): the same, a refusal per write, no outage.
#[test]
fn a_read_only_redis_refuses_writes_without_an_outage() {
    let master = Server::redis();
    let replica = Server::redis();
    let name = "faults-redis-readonly";
    stores::register_with(name, redis_store(&replica), options());
    let square = Square::new(name);
    replica.redis_cli(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]);
    square.sweep();
    square.sweep();
    assert_eq!(square.runs(), 40, "every write was refused");
    let health = stores::health(name).unwrap();
    assert!(health.up, "{health:?}");
    // Each call is refused twice: its lookup cannot create the namespace's generation, and its
    // write is refused.
    assert_eq!((health.outages, health.refused), (0, 80), "{health:?}");
    assert!(
        health.last_error.as_deref().unwrap().contains("READONLY"),
        "{health:?}"
    );
}

/// A key of another type where a value should be (WRONGTYPE on GET): a miss, and the next write
/// replaces it; the other keys keep hitting.
#[test]
fn a_redis_key_of_another_type_is_a_miss_then_overwritten() {
    let server = Server::redis();
    let name = "faults-redis-wrongtype";
    stores::register_with(name, redis_store(&server), options());
    let square = Square::new(name);
    square.sweep();
    let item = square.cache.key_of(&(7u64,)).unwrap();
    let pattern = item.replace('[', "\\[").replace(']', "\\]");
    let keys = server.redis_cli(&["--raw", "KEYS", &format!("*:{pattern}")]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    server.redis_cli(&["DEL", keys[0]]);
    server.redis_cli(&["RPUSH", keys[0], "not a value"]);
    assert_eq!(square.call(7), 49);
    assert_eq!(square.runs(), 21, "the list is a miss");
    assert_eq!(
        server.redis_cli(&["TYPE", keys[0]]),
        "string",
        "and was overwritten"
    );
    square.sweep();
    assert_eq!(square.runs(), 21, "every key hits again");
    let health = stores::health(name).unwrap();
    assert_eq!((health.outages, health.refused), (0, 1), "{health:?}");
    assert!(health.last_error.unwrap().contains("WRONGTYPE"));
}

/// An `async fn` with a store never blocks its executor: on a current_thread runtime a 1 ms
/// ticker keeps ticking during 2000 store hits, and while the server is frozen (SIGSTOP) its
/// lookups wait on the store's I/O threads, not on the executor thread. (Before: gaps of 7 ms
/// up and 275 ms frozen, the whole 250 ms timeout.) The bounds (100 ms) are generous for a
/// loaded CI machine, and well below the 250 ms timeout a blocking lookup waits.
mod async_io {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    pub static RUNS: AtomicU64 = AtomicU64::new(0);

    #[memo::memoize(store = "faults-async")]
    pub async fn square(n: u64) -> u64 {
        RUNS.fetch_add(1, Ordering::Relaxed);
        n * n
    }

    /// The largest gap of a 1 ms ticker while `work` runs on the same thread.
    async fn largest_gap(work: impl std::future::Future<Output = ()>) -> Duration {
        let largest = Rc::new(Cell::new(Duration::ZERO));
        let done = Rc::new(Cell::new(false));
        let (gap, stop) = (Rc::clone(&largest), Rc::clone(&done));
        let ticker = tokio::task::spawn_local(async move {
            let mut last = Instant::now();
            while !stop.get() {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let now = Instant::now();
                gap.set(gap.get().max(now - last));
                last = now;
            }
        });
        tokio::time::sleep(Duration::from_millis(5)).await; // the ticker is running
        work.await;
        done.set(true);
        ticker.await.unwrap();
        largest.get()
    }

    /// The I/O threads started in this process (`memo-io-<store>-<n>`): none when every async
    /// call went through tokio.
    fn io_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("memo-io-"))
            .count()
    }

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .enable_io()
            .build()
            .unwrap()
    }

    #[test]
    fn an_async_fn_with_a_store_never_blocks_the_executor() {
        let server = Server::redis();
        stores::register_with(
            "faults-async",
            RedisStore::connect(&server.redis_url()).unwrap(),
            options(),
        );
        let runtime = current_thread();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            for n in 0..100 {
                assert_eq!(square(n).await, n * n);
            }
            // The writes are queued: wait until all are stored.
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.redis_cli(&["DBSIZE"]) != "101" {
                assert!(Instant::now() < deadline, "the writes were not made");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let hits_started = Instant::now();
            let up = largest_gap(async {
                for i in 0..2000 {
                    assert_eq!(square(i % 100).await, (i % 100) * (i % 100));
                }
            })
            .await;
            let hit = (hits_started.elapsed() - Duration::from_millis(5)) / 2000;
            assert_eq!(RUNS.load(Ordering::Relaxed), 100, "2000 hits");
            server.pause();
            let slowest = Rc::new(Cell::new(Duration::ZERO));
            let frozen = largest_gap(async {
                for i in 0..200 {
                    let started = Instant::now();
                    assert_eq!(square(i % 100).await, (i % 100) * (i % 100));
                    slowest.set(slowest.get().max(started.elapsed()));
                }
            })
            .await;
            server.resume();
            eprintln!(
                "largest ticker gap: up {up:.1?}, frozen {frozen:.1?}; slowest call while \
                 frozen {:.1?} (timeout 250 ms); mean async hit {hit:.1?}",
                slowest.get()
            );
            assert!(up <= Duration::from_millis(100), "up: {up:?}");
            assert!(frozen <= Duration::from_millis(100), "frozen: {frozen:?}");
            // Bounded by the store's timeout (250 ms), plus scheduling slack on a loaded
            // machine; a call waiting for its I/O thread behind the hung call took longer.
            #[cfg(feature = "tokio")]
            assert!(
                slowest.get() < Duration::from_millis(330),
                "{:?}",
                slowest.get()
            );
            let health = stores::health("faults-async").unwrap();
            assert_eq!(health.outages, 1, "{health:?}");
            assert!(
                health.skipped > 0,
                "the breaker skipped the frozen server: {health:?}"
            );
        });
        #[cfg(feature = "tokio")]
        assert_eq!(io_threads(), 0, "every call went through tokio");
    }

    pub static FRESH_RUNS: AtomicU64 = AtomicU64::new(0);

    #[memo::memoize(store = "faults-async-fresh")]
    pub async fn cube(n: u64) -> u64 {
        FRESH_RUNS.fetch_add(1, Ordering::Relaxed);
        n * n * n
    }

    /// A lookup never takes longer than the timeout, connecting included: the first call on a
    /// server frozen before any connection waits for the connection's handshake, then for the
    /// GET; with 150 ms for each, a sync client may take 300 ms, an async call at most 150.
    #[cfg(feature = "tokio")]
    #[test]
    fn a_lookup_on_a_frozen_server_takes_at_most_the_timeout_connecting_included() {
        let server = Server::redis();
        let timeout = Duration::from_millis(150);
        stores::register_with(
            "faults-async-fresh",
            RedisStore::connect(&server.redis_url())
                .unwrap()
                .with_timeouts(timeout, timeout),
            options(),
        );
        server.pause();
        let runtime = current_thread();
        let (took, value) = runtime.block_on(async {
            let started = Instant::now();
            let value = cube(3).await;
            (started.elapsed(), value)
        });
        server.resume();
        eprintln!("first call on a frozen server: {took:.1?} (timeout {timeout:?})");
        assert_eq!(value, 27);
        assert!(took >= timeout, "it waited for the server: {took:?}");
        assert!(took < Duration::from_millis(250), "{took:?}");
        let health = stores::health("faults-async-fresh").unwrap();
        assert_eq!((health.outages, health.up), (1, false), "{health:?}");
        // Back: after the retry, hits again, from another runtime too.
        std::thread::sleep(Duration::from_millis(150));
        let again = current_thread();
        again.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                assert_eq!(cube(4).await, 64);
                tokio::time::sleep(Duration::from_millis(20)).await;
                let before = FRESH_RUNS.load(Ordering::Relaxed);
                assert_eq!(cube(4).await, 64);
                if FRESH_RUNS.load(Ordering::Relaxed) == before {
                    break; // a hit
                }
                assert!(Instant::now() < deadline, "never hit again");
            }
        });
        drop(again);
        // And from a runtime without drivers (the connections run on memo's own).
        let bare = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let before = FRESH_RUNS.load(Ordering::Relaxed);
        assert_eq!(bare.block_on(cube(4)), 64);
        assert_eq!(FRESH_RUNS.load(Ordering::Relaxed), before, "a hit");
        assert!(stores::health("faults-async-fresh").unwrap().up);
    }
}
