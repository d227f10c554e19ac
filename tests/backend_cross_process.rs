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
use memo::stores::{self, MemcachedStore, PersistentStore, RedisStore, StoreCache, StoreOptions};
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

// Cross-process single-flight: four processes miss the same keys at the same moment.

const FLIGHT_ROLE: &str = "MEMO_SINGLE_FLIGHT_WORKER";
const FLIGHT_TEST: &str = "four_processes_missing_together_run_the_body_once_per_key";
const FLIGHT_KEYS: u64 = 4;
const WORKERS: usize = 4;

static FLIGHT_REDIS_RUNS: AtomicU64 = AtomicU64::new(0);
static FLIGHT_MEMCACHED_RUNS: AtomicU64 = AtomicU64::new(0);

/// A slow body (300 ms), so that every process misses while the first computes.
fn slow_cube(n: u64, runs: &AtomicU64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(300));
    n * n * n
}

#[memoize(store = "flight-redis")]
fn cube_in_redis(n: u64) -> u64 {
    slow_cube(n, &FLIGHT_REDIS_RUNS)
}

#[memoize(store = "flight-mc")]
fn cube_in_memcached(n: u64) -> u64 {
    slow_cube(n, &FLIGHT_MEMCACHED_RUNS)
}

/// The worker: waits for the common start time, calls each function for every key, and prints
/// `worker: flight <store> runs <r> hits <h>`.
fn flight_worker() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let options =
        || StoreOptions::default().cross_process_single_flight(std::time::Duration::from_secs(5));
    stores::register_with(
        "flight-redis",
        RedisStore::connect(&var("MEMO_REDIS_URL")).unwrap(),
        options(),
    );
    stores::register_with(
        "flight-mc",
        MemcachedStore::connect(&var("MEMO_MEMCACHED")).unwrap(),
        options(),
    );
    let start: u128 = var("MEMO_START_MS").parse().unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    while now() < start {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for n in 0..FLIGHT_KEYS {
        assert_eq!(cube_in_redis(n), n * n * n);
    }
    for n in 0..FLIGHT_KEYS {
        assert_eq!(cube_in_memcached(n), n * n * n);
    }
    for (store, runs, hits) in [
        (
            "redis",
            &FLIGHT_REDIS_RUNS,
            cube_in_redis::cache_info().hits,
        ),
        (
            "memcached",
            &FLIGHT_MEMCACHED_RUNS,
            cube_in_memcached::cache_info().hits,
        ),
    ] {
        println!(
            "\nworker: flight {store} runs {} hits {hits}",
            runs.load(Ordering::SeqCst)
        );
    }
}

#[test]
fn four_processes_missing_together_run_the_body_once_per_key() {
    if std::env::var_os(FLIGHT_ROLE).is_some() {
        return flight_worker();
    }
    let redis = Server::redis();
    let memcached = Server::memcached();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500; // time for the four processes to start
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", FLIGHT_TEST, "--nocapture", "--test-threads=1"])
                .env(FLIGHT_ROLE, "1")
                .env("MEMO_REDIS_URL", redis.redis_url())
                .env("MEMO_MEMCACHED", memcached.address())
                .env("MEMO_START_MS", start.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("start a worker process")
        })
        .collect();
    let mut runs = std::collections::HashMap::<String, (u64, u64)>::new();
    for worker in workers {
        let output = worker.wait_with_output().unwrap();
        assert!(output.status.success(), "worker failed: {output:?}");
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["worker:", "flight", store, "runs", r, "hits", h] = words.as_slice() {
                let entry = runs.entry(store.to_string()).or_default();
                entry.0 += r.parse::<u64>().unwrap();
                entry.1 += h.parse::<u64>().unwrap();
            }
        }
    }
    println!("cross-process single-flight, {WORKERS} processes x {FLIGHT_KEYS} keys: {runs:?}");
    for store in ["redis", "memcached"] {
        let (body_runs, hits) = runs[store];
        assert_eq!(body_runs, FLIGHT_KEYS, "{store}: the body ran once per key");
        assert_eq!(
            hits,
            (WORKERS as u64 - 1) * FLIGHT_KEYS,
            "{store}: the others hit"
        );
    }
}

#[test]
fn a_lock_left_by_a_dead_process_delays_a_miss_by_the_wait_only() {
    if std::env::var_os(ROLE).is_some() || std::env::var_os(FLIGHT_ROLE).is_some() {
        return;
    }
    let redis = Server::redis();
    let wait = std::time::Duration::from_millis(300);
    stores::register_with(
        "flight-dead-holder",
        RedisStore::connect(&redis.redis_url()).unwrap(),
        StoreOptions::default().cross_process_single_flight(wait),
    );
    let cache: StoreCache<u64, u64> = StoreCache::new("flight-dead-holder", "app::f");
    // A lock taken by a process that died: it would hold for a minute.
    let lock = format!(
        "lock:{}:{}",
        cache.namespace().unwrap(),
        cache.key_of(&1).unwrap()
    );
    assert_eq!(redis.redis_cli(&["SET", &lock, "1", "PX", "60000"]), "OK");
    let started = std::time::Instant::now();
    assert_eq!(cache.get_or_insert_with(1, || 10), 10);
    let waited = started.elapsed();
    assert!(waited >= wait, "it waited for the holder: {waited:?}");
    assert!(
        waited < std::time::Duration::from_secs(10),
        "not for the lock: {waited:?}"
    );
    // Once a value is there, nobody waits.
    assert_eq!(cache.get_or_insert_with(1, || unreachable!()), 10);
}

/// An `async` lookup (the path of an `async fn`, on the store's I/O threads) takes part in the
/// cross-process single-flight too: while another process holds the key's lock, it waits for
/// that process's value and hits, and the executor thread is not blocked meanwhile; when it
/// takes the lock itself, its write releases it.
#[test]
fn an_async_lookup_waits_for_the_holders_value_and_releases_its_own_lock() {
    if std::env::var_os(ROLE).is_some() || std::env::var_os(FLIGHT_ROLE).is_some() {
        return;
    }
    let redis = Server::redis();
    stores::register_with(
        "flight-async",
        RedisStore::connect(&redis.redis_url()).unwrap(),
        StoreOptions::default().cross_process_single_flight(std::time::Duration::from_secs(5)),
    );
    // Two caches of one function: two processes as far as the locks go.
    let holder: StoreCache<u64, u64> = StoreCache::new("flight-async", "app::g");
    let waiter: StoreCache<u64, u64> = StoreCache::new("flight-async", "app::g");
    let lock = format!(
        "lock:{}:{}",
        holder.namespace().unwrap(),
        holder.key_of(&1).unwrap()
    );
    assert_eq!(holder.get(&1), None, "a miss: the holder takes the lock");
    assert_eq!(redis.redis_cli(&["EXISTS", &lock]), "1");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // One thread: if the lookup blocked it, the holder's write could not run, and the lookup
    // would miss after the whole wait (5 s).
    let started = std::time::Instant::now();
    let found = runtime.block_on(async {
        let lookup = waiter.get_async(&1);
        let insert = async {
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            holder.insert(1, 11); // the holder's value
        };
        tokio::join!(lookup, insert).0
    });
    assert_eq!(found, Some(11), "the waiter got the holder's value");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        redis.redis_cli(&["EXISTS", &lock]),
        "0",
        "the holder's write released its lock"
    );
    // The async path takes a lock on its own miss, and its write releases it.
    runtime.block_on(async {
        assert_eq!(waiter.get_async(&2).await, None);
        let lock = format!(
            "lock:{}:{}",
            waiter.namespace().unwrap(),
            waiter.key_of(&2).unwrap()
        );
        assert_eq!(redis.redis_cli(&["EXISTS", &lock]), "1");
        waiter.insert_async(2, 22).await;
        assert_eq!(redis.redis_cli(&["EXISTS", &lock]), "0");
        assert_eq!(waiter.get_async(&2).await, Some(22));
    });
}
