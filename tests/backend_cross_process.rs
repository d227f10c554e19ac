//! Sharing across processes: two separate processes, one after the other, against one real
//! `redis-server`, one real `memcached` and one SQLite file; the second gets hits for everything
//! the first computed, through a `StoreCache` and through `#[memoize(store = "...")]`.
//!
//! The test binary plays both parts: run normally, it starts the servers and runs itself twice as
//! a worker (selected by an environment variable), then reads what each worker reports.
#![cfg(all(feature = "redis", feature = "memcached", feature = "persistent"))]

#[path = "support/servers.rs"]
mod servers;

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use memo::memoize;
use memo::stores::{self, MemcachedStore, PersistentStore, RedisStore, StoreCache};
use servers::Server;

const ROLE: &str = "MEMO_CROSS_PROCESS_WORKER";
const TEST_NAME: &str = "second_process_hits_what_the_first_computed";
const CALLS: u64 = 25;

static REDIS_RUNS: AtomicU64 = AtomicU64::new(0);
static MEMCACHED_RUNS: AtomicU64 = AtomicU64::new(0);

#[memoize(store = "shared-redis", ttl = "5m")]
fn describe_in_redis(n: u64) -> String {
    REDIS_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{n} squared is {}", n * n)
}

#[memoize(store = "shared-mc", ttl = "5m")]
fn describe_in_memcached(n: u64) -> String {
    MEMCACHED_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{n} squared is {}", n * n)
}

/// The worker: registers the three stores, calls a memoized function `CALLS` times on each, and
/// prints one line per store: `worker: store <name> hits <h> misses <m> runs <r>`; then the same
/// for the two functions memoized by the attribute (`attr-redis`, `attr-memcached`).
fn worker() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    stores::register(
        "shared-redis",
        RedisStore::connect(&var("MEMO_REDIS_URL")).unwrap(),
    );
    stores::register(
        "shared-mc",
        MemcachedStore::connect(&var("MEMO_MEMCACHED")).unwrap(),
    );
    stores::register(
        "shared-file",
        PersistentStore::open(var("MEMO_SQLITE")).unwrap(),
    );
    for store in ["shared-redis", "shared-mc", "shared-file"] {
        let cache: StoreCache<(u64,), String> = StoreCache::new(store, "cross::describe");
        let mut runs = 0;
        for n in 0..CALLS {
            let value = match cache.get_by(&(&n,), |k| k.0 == n) {
                Some(hit) => hit,
                None => {
                    runs += 1;
                    let value = format!("{n} squared is {}", n * n);
                    cache.insert_if_absent((n,), value.clone());
                    value
                }
            };
            assert_eq!(value, format!("{n} squared is {}", n * n));
        }
        let info = cache.info();
        // The harness may have begun the line ("test ... "): a new line and a marker.
        println!(
            "\nworker: store {store} hits {} misses {} runs {runs}",
            info.hits, info.misses
        );
    }
    for n in 0..CALLS {
        assert_eq!(describe_in_redis(n), format!("{n} squared is {}", n * n));
        assert_eq!(
            describe_in_memcached(n),
            format!("{n} squared is {}", n * n)
        );
    }
    for (store, info, runs) in [
        ("attr-redis", describe_in_redis::cache_info(), &REDIS_RUNS),
        (
            "attr-memcached",
            describe_in_memcached::cache_info(),
            &MEMCACHED_RUNS,
        ),
    ] {
        println!(
            "\nworker: store {store} hits {} misses {} runs {}",
            info.hits,
            info.misses,
            runs.load(Ordering::SeqCst)
        );
    }
}

/// `(hits, misses, runs)` per store, from a worker's output.
fn parse(output: &str) -> Vec<(String, u64, u64, u64)> {
    output
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.strip_prefix("worker: ")?.split_whitespace().collect();
            match words.as_slice() {
                ["store", name, "hits", h, "misses", m, "runs", r] => Some((
                    name.to_string(),
                    h.parse().ok()?,
                    m.parse().ok()?,
                    r.parse().ok()?,
                )),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn second_process_hits_what_the_first_computed() {
    if std::env::var_os(ROLE).is_some() {
        return worker();
    }
    let redis = Server::redis();
    let memcached = Server::memcached();
    let dir = std::env::temp_dir().join(format!("memo-cross-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = dir.join("shared.sqlite");
    let run_worker = || {
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(ROLE, "1")
            .env("MEMO_REDIS_URL", redis.redis_url())
            .env("MEMO_MEMCACHED", memcached.address())
            .env("MEMO_SQLITE", &sqlite)
            .output()
            .expect("run a worker process");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "worker failed: {output:?}");
        parse(&stdout)
    };
    let first = run_worker();
    let second = run_worker();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(first.len(), 5, "{first:?}");
    assert_eq!(second.len(), 5, "{second:?}");
    for (store, hits, misses, runs) in &first {
        assert_eq!(
            (*hits, *misses, *runs),
            (0, CALLS, CALLS),
            "first process, {store}"
        );
    }
    for (store, hits, misses, runs) in &second {
        assert_eq!(
            (*hits, *misses, *runs),
            (CALLS, 0, 0),
            "second process, {store}"
        );
    }
}
