//! Refresh-ahead and stale windows with `store = ...` (Redis, memcached, SQLite; with and without
//! a near cache), sync and async, and with `single_flight = false`, against real servers.
//!
//! Nothing is timed: each upstream has a gate that holds the body until the test opens it, so a
//! call that returns while the gate is shut provably did not wait for the body. Ages are reached
//! by sleeping past `refresh` or `ttl` (short), while the other bounds are an hour away.
#![cfg(all(
    feature = "redis",
    feature = "memcached",
    feature = "persistent",
    feature = "tokio"
))]

#[path = "support/servers.rs"]
mod servers;

#[path = "support/upstream.rs"]
mod upstream;
use upstream::Upstream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memo::stores::{self, MemcachedStore, PersistentStore, RedisStore};
use servers::Server;

/// Longer than the short bounds below (50 ms).
const PAST: Duration = Duration::from_millis(80);

/// Spins until `done`, for at most 20 s (a refresh that never ends fails the test).
fn until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A SQLite file under the temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(test: &str) -> TempFile {
        let dir = std::env::temp_dir().join(format!("memo-refresh-stores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempFile(dir.join(format!("{test}.sqlite")))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// What keeps a test's store alive: its server or its file.
#[allow(dead_code)]
enum Backend {
    Server(Server),
    File(TempFile),
}

fn redis(name: &str) -> Backend {
    let server = Server::redis();
    stores::register(name, RedisStore::connect(&server.redis_url()).unwrap());
    Backend::Server(server)
}

fn memcached(name: &str) -> Backend {
    let server = Server::memcached();
    stores::register(name, MemcachedStore::connect(&server.address()).unwrap());
    Backend::Server(server)
}

fn sqlite(name: &str) -> Backend {
    let file = TempFile::new(name);
    stores::register(name, PersistentStore::open(&file.0).unwrap());
    Backend::File(file)
}

/// The scenarios, for one store and one flavour: a module with a function with `refresh`
/// (`ahead`) and one with both stale windows (`stale`), sync or async, and the checks.
macro_rules! scenarios {
    (
        $module:ident, $store:tt, $backend:ident, sync,
        [$($extra:tt)*]
    ) => {
        mod $module {
            use super::*;
            use memo::memoize;

            static AHEAD: Upstream = Upstream::new();
            static STALE: Upstream = Upstream::new();

            #[memoize(store = $store, ttl = "1h", refresh = "50ms" $($extra)*)]
            pub fn ahead(key: u32) -> Result<u64, String> {
                let _ = key;
                AHEAD.read()
            }

            #[memoize(
                store = $store, ttl = "50ms", stale_while_revalidate = "500ms",
                stale_if_error = "1h" $($extra)*
            )]
            pub fn stale(key: u32) -> Result<u64, String> {
                let _ = key;
                STALE.read()
            }

            #[test]
            fn refresh_and_stale_values_through_the_store() {
                let _backend = $backend($store);
                let calls = Calls {
                    ahead: &|k| ahead(k),
                    prime: &|k, v| ahead::cache_prime(k, v),
                    invalidate: &|k| ahead::cache_invalidate(k),
                    refreshes: &|| ahead::cache_info().refreshes,
                    stale: &|k| stale(k),
                    stale_info: &|| stale::cache_info(),
                };
                calls.check(&AHEAD, &STALE);
            }
        }
    };
    (
        $module:ident, $store:tt, $backend:ident, async,
        [$($extra:tt)*]
    ) => {
        mod $module {
            use super::*;
            use memo::memoize;

            static AHEAD: Upstream = Upstream::new();
            static STALE: Upstream = Upstream::new();

            #[memoize(store = $store, ttl = "1h", refresh = "50ms" $($extra)*)]
            pub async fn ahead(key: u32) -> Result<u64, String> {
                let _ = key;
                AHEAD.read()
            }

            #[memoize(
                store = $store, ttl = "50ms", stale_while_revalidate = "500ms",
                stale_if_error = "1h" $($extra)*
            )]
            pub async fn stale(key: u32) -> Result<u64, String> {
                let _ = key;
                STALE.read()
            }

            #[test]
            fn async_refresh_and_stale_values_through_the_store() {
                let _backend = $backend($store);
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(4)
                    .enable_all()
                    .build()
                    .unwrap();
                let handle = runtime.handle().clone();
                let calls = Calls {
                    ahead: &|k| handle.block_on(ahead(k)),
                    prime: &|k, v| ahead::cache_prime(k, v),
                    invalidate: &|k| ahead::cache_invalidate(k),
                    refreshes: &|| ahead::cache_info().refreshes,
                    stale: &|k| handle.block_on(stale(k)),
                    stale_info: &|| stale::cache_info(),
                };
                calls.check(&AHEAD, &STALE);
                drop(runtime);
            }
        }
    };
}

/// A memoized pair of functions as the scenarios call them.
struct Calls<'a> {
    ahead: &'a (dyn Fn(u32) -> Result<u64, String> + Sync),
    prime: &'a (dyn Fn(u32, u64) + Sync),
    invalidate: &'a (dyn Fn(u32) -> bool + Sync),
    refreshes: &'a (dyn Fn() -> u64 + Sync),
    stale: &'a (dyn Fn(u32) -> Result<u64, String> + Sync),
    stale_info: &'a (dyn Fn() -> memo::CacheInfo + Sync),
}

impl Calls<'_> {
    fn check(&self, ahead: &Upstream, stale: &Upstream) {
        self.due_entry_is_returned_at_once_and_refreshed_once(ahead, 1);
        self.failing_or_panicking_refresh_keeps_the_old_value(ahead, 2);
        self.invalidation_during_a_refresh_wins(ahead, 3);
        self.refresh_overtaken_by_a_newer_write_is_discarded(ahead, 4);
        self.stale_values_are_kept_by_the_store_past_ttl(stale, 5);
    }

    /// Waits for the refresh that ends as the `n`-th.
    fn refreshed(&self, n: u64) {
        until("the refresh ended", || (self.refreshes)() >= n);
    }

    fn due_entry_is_returned_at_once_and_refreshed_once(&self, up: &Upstream, key: u32) {
        up.set_version(10);
        assert_eq!((self.ahead)(key), Ok(10));
        let (runs, refreshes) = (up.runs(), (self.refreshes)());
        std::thread::sleep(PAST);
        up.set_version(11);
        up.shut();
        // Eight callers of the due entry: each gets the old value while the refresh is held,
        // and one refresh runs.
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| assert_eq!((self.ahead)(key), Ok(10)));
            }
        });
        until("the refresh started", || up.runs() > runs);
        assert_eq!((self.ahead)(key), Ok(10), "held: the old value");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(up.runs(), runs + 1, "one refresh per key at a time");
        up.open();
        self.refreshed(refreshes + 1);
        assert_eq!((self.ahead)(key), Ok(11), "the refreshed value");
    }

    fn failing_or_panicking_refresh_keeps_the_old_value(&self, up: &Upstream, key: u32) {
        up.set_version(20);
        assert_eq!((self.ahead)(key), Ok(20));
        for flag in [&up.failing, &up.panicking] {
            let refreshes = (self.refreshes)();
            let runs = up.runs();
            std::thread::sleep(PAST);
            flag.store(true, Ordering::SeqCst);
            assert_eq!((self.ahead)(key), Ok(20));
            until("the refresh ran", || up.runs() > runs);
            if std::ptr::eq(flag, &up.failing) {
                self.refreshed(refreshes + 1);
            } else {
                // A panicking refresh abandons its flight: wait until one can be led again.
                std::thread::sleep(Duration::from_millis(200));
            }
            flag.store(false, Ordering::SeqCst);
            assert_eq!((self.ahead)(key), Ok(20), "the old value stays");
        }
        up.set_version(21);
        let refreshes = (self.refreshes)();
        until("a later refresh stored its value", || {
            let _ = (self.ahead)(key);
            (self.refreshes)() > refreshes && (self.ahead)(key) == Ok(21)
        });
    }

    fn invalidation_during_a_refresh_wins(&self, up: &Upstream, key: u32) {
        up.set_version(30);
        assert_eq!((self.ahead)(key), Ok(30));
        let (runs, refreshes) = (up.runs(), (self.refreshes)());
        std::thread::sleep(PAST);
        up.set_version(31);
        up.shut();
        assert_eq!((self.ahead)(key), Ok(30));
        until("the refresh started", || up.runs() > runs);
        assert!((self.invalidate)(key), "the entry was stored");
        up.set_version(32);
        up.open();
        self.refreshed(refreshes + 1);
        assert_eq!(
            (self.ahead)(key),
            Ok(32),
            "the refresh that read 31 before the invalidation stored nothing"
        );
    }

    fn refresh_overtaken_by_a_newer_write_is_discarded(&self, up: &Upstream, key: u32) {
        up.set_version(40);
        assert_eq!((self.ahead)(key), Ok(40));
        let (runs, refreshes) = (up.runs(), (self.refreshes)());
        std::thread::sleep(PAST);
        up.set_version(41);
        up.shut();
        assert_eq!((self.ahead)(key), Ok(40));
        until("the refresh started", || up.runs() > runs);
        (self.prime)(key, 49);
        up.open();
        self.refreshed(refreshes + 1);
        assert_eq!((self.ahead)(key), Ok(49), "the newer write stays");
    }

    fn stale_values_are_kept_by_the_store_past_ttl(&self, up: &Upstream, key: u32) {
        up.set_version(50);
        assert_eq!((self.stale)(key), Ok(50));
        let (runs, before) = (up.runs(), (self.stale_info)());
        // Past ttl, within `stale_while_revalidate`: the stale value at once, one recomputation.
        std::thread::sleep(PAST);
        up.set_version(51);
        up.shut();
        assert_eq!((self.stale)(key), Ok(50), "the stale value, at once");
        until("the revalidation started", || up.runs() > runs);
        up.open();
        until("the revalidation ended", || {
            (self.stale_info)().refreshes > before.refreshes
        });
        assert_eq!((self.stale)(key), Ok(51));
        assert!((self.stale_info)().stale_hits > before.stale_hits);
        // Past both serving windows (and memcached's one-second granularity): the store still
        // holds the value, its ttl being ttl + 1h, so a failure is answered with it.
        std::thread::sleep(Duration::from_millis(1200));
        up.failing.store(true, Ordering::SeqCst);
        let stale_errors = (self.stale_info)().stale_errors;
        let answered = (self.stale)(key);
        up.failing.store(false, Ordering::SeqCst);
        assert_eq!(answered, Ok(51), "the stale value, not the error");
        assert_eq!((self.stale_info)().stale_errors, stale_errors + 1);
    }
}

scenarios!(redis_sync, "rs-redis", redis, sync, []);
scenarios!(redis_async, "rs-redis-async", redis, async, []);
scenarios!(redis_near_sync, "rs-redis-near", redis, sync, [, local = 100]);
scenarios!(redis_near_async, "rs-redis-near-async", redis, async, [, local = 100]);
scenarios!(memcached_sync, "rs-memcached", memcached, sync, []);
scenarios!(memcached_async, "rs-memcached-async", memcached, async, []);
scenarios!(sqlite_sync, "rs-sqlite", sqlite, sync, []);
scenarios!(sqlite_async, "rs-sqlite-async", sqlite, async, [, local = 10]);
scenarios!(no_flight_sync, "rs-redis-alone", redis, sync, [, single_flight = false]);
scenarios!(no_flight_async, "rs-sqlite-alone", sqlite, async, [, single_flight = false, local = 10]);

/// What a refresh stores, read back raw from Redis, and values another writer put there.
mod raw {
    use super::*;
    use memo::memoize;

    static ADOPT: Upstream = Upstream::new();
    static PLAIN: AtomicU64 = AtomicU64::new(0);

    #[memoize(store = "rs-raw", ttl = "1h", refresh = "50ms", local = 100)]
    fn adopt(key: u32) -> Result<u64, String> {
        let _ = key;
        ADOPT.read()
    }

    #[memoize(store = "rs-raw", ttl = "1h", refresh = "30m")]
    fn plain(key: u32) -> u64 {
        PLAIN.fetch_add(1, Ordering::SeqCst) + u64::from(key) * 100
    }

    fn now_nanos() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    /// The one Redis key whose name contains `part`, and its value.
    fn stored(server: &Server, part: &str) -> (String, String) {
        let keys = server.redis_cli(&["KEYS", &format!("*{part}*")]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.ends_with(":gen")).collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let value = server.redis_cli(&["GET", keys[0]]);
        (keys[0].to_owned(), value.trim().to_owned())
    }

    #[test]
    fn stamps_are_versioned_wall_clock_times_and_other_values_are_misses() {
        let server = Server::redis();
        stores::register("rs-raw", RedisStore::connect(&server.redis_url()).unwrap());

        // The value is stored as `["memo-stamped-1", <ns since the Unix epoch>, value]`, the
        // store's ttl being ttl + the longest window (here ttl: 1 h).
        assert_eq!(plain(1), 100);
        let (key, value) = stored(&server, "raw::plain");
        let parsed: (String, u128, u64) = serde_json::from_str(&value).unwrap();
        assert_eq!((parsed.0.as_str(), parsed.2), ("memo-stamped-1", 100));
        let skew = now_nanos().abs_diff(parsed.1);
        assert!(skew < 60_000_000_000, "a wall-clock stamp: {value}");
        let ttl: u64 = server.redis_cli(&["PTTL", &key]).trim().parse().unwrap();
        assert!(ttl > 3_500_000 && ttl <= 3_600_000, "PTTL {ttl}");

        // Garbage, or a value without a stamp (the function's values before it had the
        // options), is a miss: the function runs and overwrites it, never a panic.
        for other in ["not json at all", "100", "[\"memo-stamped-9\",1,100]"] {
            server.redis_cli(&["SET", &key, other]);
            let runs = PLAIN.load(Ordering::SeqCst);
            assert_eq!(plain(1), 100 + runs, "for {other}");
            assert_eq!(PLAIN.load(Ordering::SeqCst), runs + 1, "for {other}");
            assert!(stored(&server, "raw::plain")
                .1
                .starts_with("[\"memo-stamped-1\","));
        }

        // Another process stored a newer value while this one's near cache kept the old: the
        // local copy is due, its refresh finds a newer stamp in the store and is discarded,
        // and the near cache takes the store's value. (A subscription that restarts drops the
        // local copies: that attempt is made again with another key.)
        assert_eq!(adopt(6), Ok(1));
        until("subscribed", || {
            stores::near_subscribed("rs-raw") == Some(true)
        });
        let adopted = (7..12).any(|key| adopts_the_stores_newer_value(&server, key));
        assert!(adopted, "the local copies were dropped at every attempt");
    }

    /// The near cache scenario above for `key`; `false` if the local copy was dropped.
    fn adopts_the_stores_newer_value(server: &Server, key: u32) -> bool {
        ADOPT.set_version(1);
        assert_eq!(adopt(key), Ok(1));
        let pattern = format!("raw::adopt:*:\\[{key}\\]");
        let (item, _) = stored(server, &pattern);
        // Written "later" (10 s ahead), so that it is not due itself when this process takes it.
        let newer = format!("[\"memo-stamped-1\",{},70]", now_nanos() + 10_000_000_000);
        server.redis_cli(&["SET", &item, &newer, "PX", "3600000"]);
        if adopt(key) != Ok(1) {
            return false;
        }
        std::thread::sleep(PAST);
        ADOPT.set_version(2);
        let (runs, refreshes) = (ADOPT.runs(), adopt::cache_info().refreshes);
        if adopt(key) != Ok(1) {
            return false;
        }
        until("the refresh ended", || {
            adopt::cache_info().refreshes > refreshes
        });
        assert_eq!(ADOPT.runs(), runs + 1);
        assert_eq!(adopt(key), Ok(70), "the store's newer value, kept locally");
        let (_, last) = stored(server, &pattern);
        assert!(last.ends_with(",70]"), "{last}");
        assert_eq!(ADOPT.runs(), runs + 1, "no other refresh");
        true
    }
}
