//! The near cache (`#[memoize(store = ..., local = N, local_ttl = ...)]`) against real servers:
//! two processes on one real `redis-server` (an invalidation or a clear in one is a miss in the
//! other once it arrives, pushed), a lost subscription (the local layer is never served stale
//! meanwhile), a local copy that never outlives its store entry, and the ttl-only rule of
//! memcached and SQLite, which cannot push.
//!
//! The two-process test plays both parts: run normally, it starts Redis and runs itself as a
//! worker (selected by an environment variable) that takes commands on stdin.
#![cfg(all(feature = "redis", feature = "memcached", feature = "persistent"))]

#[path = "support/servers.rs"]
mod servers;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memo::memoize;
use memo::stores::{self, MemcachedStore, PersistentStore, RedisStore, StoreCache};
use servers::Server;
use std::sync::Mutex;

const ROLE: &str = "MEMO_NEAR_WORKER";
const TEST_NAME: &str = "an_invalidation_or_a_clear_in_one_process_is_a_miss_in_the_other";

/// What the body of `lookup` returns in this process (the "database").
static DATA: Mutex<String> = Mutex::new(String::new());
static RUNS: AtomicU64 = AtomicU64::new(0);

#[memoize(store = "near-redis", ttl = "5m", local = 100, local_ttl = "1m")]
fn lookup(n: u64) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{n}:{}", DATA.lock().unwrap())
}

/// Polls `lookup(n)` every millisecond until it returns `expected` (at most 10 s): the time
/// it took, or `None`.
fn poll_until(n: u64, expected: &str) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if lookup(n) == expected {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// The worker: registers the store and answers commands, one line each, with
/// `worker: <answer>`: `data X` (the body returns `n:X` from now on), `call N` (the value and
/// the body's runs so far), `poll N VALUE` (microseconds until `lookup(N)` returned VALUE),
/// `quit`.
fn worker() {
    let url = std::env::var("MEMO_REDIS_URL").expect("MEMO_REDIS_URL is set");
    stores::register("near-redis", RedisStore::connect(&url).unwrap());
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["data", value] => {
                *DATA.lock().unwrap() = value.to_string();
                "ok".to_string()
            }
            ["call", n] => {
                let value = lookup(n.parse().unwrap());
                format!("{value} {}", RUNS.load(Ordering::SeqCst))
            }
            ["subscribed"] => {
                let start = Instant::now();
                while stores::near_subscribed("near-redis") != Some(true)
                    && start.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                format!("{:?}", stores::near_subscribed("near-redis"))
            }
            ["poll", n, expected] => match poll_until(n.parse().unwrap(), expected) {
                Some(took) => format!("{}", took.as_micros()),
                None => "never".to_string(),
            },
            ["quit"] => return,
            _ => format!("unknown command {line:?}"),
        };
        // The harness may have begun the line ("test ... "): a new line and a marker.
        println!("\nworker: {answer}");
    }
}

/// A worker process and its command line.
struct Worker {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: BufReader<std::process::ChildStdout>,
}

impl Worker {
    fn start(redis: &Server) -> Worker {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(ROLE, "1")
            .env("MEMO_REDIS_URL", redis.redis_url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run a worker process");
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Worker {
            child,
            input,
            output,
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.input, "{command}").unwrap();
        self.input.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.output.read_line(&mut line).unwrap();
            assert!(read > 0, "the worker ended before answering {command:?}");
            if let Some(answer) = line.trim_end().strip_prefix("worker: ") {
                return answer.to_string();
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = writeln!(self.input, "quit");
        let _ = self.child.wait();
    }
}

#[test]
fn an_invalidation_or_a_clear_in_one_process_is_a_miss_in_the_other() {
    if std::env::var_os(ROLE).is_some() {
        return worker();
    }
    let redis = Server::redis();
    stores::register(
        "near-redis",
        RedisStore::connect(&redis.redis_url()).unwrap(),
    );
    *DATA.lock().unwrap() = "v1".into();
    let mut other = Worker::start(&redis);
    assert_eq!(other.ask("data v1"), "ok");
    // Computed there (run 1); once subscribed, kept in its local layer (a store hit, and a
    // miss that runs the body).
    assert_eq!(other.ask("call 1"), "1:v1 1");
    assert_eq!(other.ask("subscribed"), "Some(true)");
    assert_eq!(other.ask("call 1"), "1:v1 1");
    assert_eq!(other.ask("call 2"), "2:v1 2");
    // Seen here through Redis, and kept here too.
    assert_eq!(lookup(1), "1:v1");
    assert!(wait_for_subscribed("near-redis", true));
    assert_eq!(lookup(1), "1:v1");
    assert_eq!(RUNS.load(Ordering::SeqCst), 0, "hits from Redis here");
    // Deleted behind memo's back, the other process still has it: its local layer answers.
    redis.redis_cli(&["FLUSHALL"]);
    assert_eq!(other.ask("call 1"), "1:v1 2", "a local hit, no run");

    // An invalidation here: once it arrives there, a miss there (the body runs, new data).
    assert_eq!(other.ask("data v2"), "ok");
    *DATA.lock().unwrap() = "v2".into();
    assert!(
        lookup::cache_invalidate(1),
        "it was in this process's local layer"
    );
    let took = other.ask("poll 1 1:v2");
    assert_ne!(
        took, "never",
        "the invalidation never reached the other process"
    );
    println!("invalidation seen by the other process after {took} us of polling");
    assert_eq!(other.ask("call 1"), "1:v2 3", "one run, the poll's miss");
    // Key 2 was not invalidated: still its local value.
    assert_eq!(other.ask("call 2"), "2:v1 3");

    // A clear here: every key of the function misses there.
    assert_eq!(other.ask("data v3"), "ok");
    lookup::cache_clear();
    assert_ne!(other.ask("poll 2 2:v3"), "never", "the clear never arrived");
    assert_eq!(other.ask("call 1"), "1:v3 5", "key 1 missed too");
    // This process's own invalidation is seen here at once (no message needed).
    *DATA.lock().unwrap() = "v4".into();
    assert_eq!(lookup(7), "7:v4");
    *DATA.lock().unwrap() = "v5".into();
    lookup::cache_invalidate(7);
    assert_eq!(lookup(7), "7:v5");
}

static LOST_RUNS: AtomicU64 = AtomicU64::new(0);
static LOST_DATA: Mutex<String> = Mutex::new(String::new());

#[memoize(store = "near-lost", local = 100, local_ttl = "1m")]
fn lost(n: u64) -> String {
    LOST_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{n}:{}", LOST_DATA.lock().unwrap())
}

fn wait_for_subscribed(store: &str, up: bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if stores::near_subscribed(store) == Some(up) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn a_lost_subscription_is_never_served_stale_from_the_local_layer() {
    let mut redis = Server::redis();
    let store = RedisStore::connect(&redis.redis_url())
        .unwrap()
        .with_timeouts(Duration::from_millis(100), Duration::from_millis(100));
    stores::register_with(
        "near-lost",
        store,
        stores::StoreOptions::default().retry_after(Duration::from_millis(50)),
    );
    *LOST_DATA.lock().unwrap() = "v1".into();
    assert_eq!(lost(1), "1:v1");
    assert!(wait_for_subscribed("near-lost", true));
    assert_eq!(lost(1), "1:v1", "a store hit, kept");
    redis.redis_cli(&["FLUSHALL"]);
    assert_eq!(lost(1), "1:v1", "a local hit");
    assert_eq!(LOST_RUNS.load(Ordering::SeqCst), 1);

    // Killed: the subscription is lost, and the local layer is not served (the messages of
    // the outage cannot be known): the body runs (the store is down too).
    redis.stop();
    assert!(wait_for_subscribed("near-lost", false), "the loss was seen");
    *LOST_DATA.lock().unwrap() = "v2".into();
    assert_eq!(lost(1), "1:v2", "not the local value of before the loss");
    assert_eq!(lost(1), "1:v2");
    assert_eq!(
        LOST_RUNS.load(Ordering::SeqCst),
        3,
        "no local hit while lost"
    );

    // Back: subscribed again, the layer is used again (nothing of before the loss in it).
    redis.start();
    assert!(wait_for_subscribed("near-lost", true), "subscribed again");
    *LOST_DATA.lock().unwrap() = "v3".into();
    assert_eq!(lost(1), "1:v3", "nothing of before the loss was kept");
    let runs = LOST_RUNS.load(Ordering::SeqCst);
    redis.redis_cli(&["FLUSHALL"]);
    assert_eq!(lost(1), "1:v3", "a local hit again");
    assert_eq!(LOST_RUNS.load(Ordering::SeqCst), runs);

    // Frozen (no EOF): the silence is found by a PING within about a second.
    redis.pause();
    assert!(
        wait_for_subscribed("near-lost", false),
        "the silence was seen"
    );
    *LOST_DATA.lock().unwrap() = "v4".into();
    assert_eq!(
        lost(1),
        "1:v4",
        "not served from the local layer while frozen"
    );
    redis.resume();
    assert!(wait_for_subscribed("near-lost", true));
}

#[test]
fn a_local_copy_never_outlives_its_store_entry() {
    let redis = Server::redis();
    stores::register("near-ttl", RedisStore::connect(&redis.redis_url()).unwrap());
    let path = std::env::temp_dir().join(format!("memo-near-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    stores::register("near-ttl-file", PersistentStore::open(&path).unwrap());
    for store in ["near-ttl", "near-ttl-file"] {
        let ttl = Duration::from_millis(600);
        let writer: StoreCache<u64, String> = StoreCache::new(store, "near::ttl").with_ttl(ttl);
        let reader: StoreCache<u64, String> = StoreCache::new(store, "near::ttl")
            .with_ttl(ttl)
            .with_local(10, Duration::from_secs(60));
        assert_eq!(reader.get(&0), None);
        if store == "near-ttl" {
            assert!(wait_for_subscribed(store, true));
        }
        writer.insert(1, "one".into());
        std::thread::sleep(Duration::from_millis(300));
        // Read with half its ttl left: kept for that half only, not for the local 60 s.
        assert_eq!(
            reader.get_by_keeping(&1, |k| *k == 1, || 1).as_deref(),
            Some("one")
        );
        assert_eq!(reader.local_len(), 1, "{store}");
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!(
            reader.get(&1),
            None,
            "{store}: expired with its store entry"
        );
    }
    let _ = std::fs::remove_file(&path);
    // Memcached tells the ttl left in whole seconds (`mg key v t`, rounded down), and expires
    // on a clock of whole seconds: a 4 s entry read after 2.5 s is gone locally by 5.6 s (kept
    // for the function's ttl from the read, as when the ttl left is unknown, it would not be).
    let memcached = Server::memcached();
    stores::register(
        "near-ttl-mc",
        MemcachedStore::connect(&memcached.address()).unwrap(),
    );
    let ttl = Duration::from_secs(4);
    let writer: StoreCache<u64, String> = StoreCache::new("near-ttl-mc", "near::ttl").with_ttl(ttl);
    let reader: StoreCache<u64, String> = StoreCache::new("near-ttl-mc", "near::ttl")
        .with_ttl(ttl)
        .with_local(10, Duration::from_secs(60));
    writer.insert(1, "one".into());
    std::thread::sleep(Duration::from_millis(2500));
    let found = reader.get_by_keeping(&1, |k| *k == 1, || 1);
    assert_eq!(found.as_deref(), Some("one"));
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(
        reader.get(&1),
        None,
        "memcached: expired with its store entry"
    );
}

#[test]
fn memcached_and_sqlite_near_caches_are_bounded_by_their_local_ttl() {
    let memcached = Server::memcached();
    stores::register(
        "near-mc",
        MemcachedStore::connect(&memcached.address()).unwrap(),
    );
    let path = std::env::temp_dir().join(format!("memo-near-ttl-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    stores::register("near-file", PersistentStore::open(&path).unwrap());
    for store in ["near-mc", "near-file"] {
        // Two caches of one function: as two processes, each with its own local layer.
        let local = Duration::from_millis(400);
        let here: StoreCache<u64, String> = StoreCache::new(store, "near::f").with_local(10, local);
        let there: StoreCache<u64, String> =
            StoreCache::new(store, "near::f").with_local(10, local);
        here.insert(1, "old".into());
        assert_eq!(
            there.get_by_keeping(&1, |k| *k == 1, || 1).as_deref(),
            Some("old")
        );
        // Invalidated here: gone here at once, and from the store.
        assert!(here.remove(&1), "{store}");
        assert_eq!(here.get(&1), None, "{store}");
        here.insert(1, "new".into());
        // There: no push, so the local copy stands until its local ttl...
        assert_eq!(there.get(&1).as_deref(), Some("old"), "{store}");
        std::thread::sleep(local + Duration::from_millis(100));
        // ...and not a moment after.
        assert_eq!(there.get(&1).as_deref(), Some("new"), "{store}");
        // A clear here empties this process's layer at once.
        here.reset();
        assert_eq!(here.get(&1), None, "{store}");
        assert_eq!(stores::near_subscribed(store), None, "{store}: no pushes");
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn on_a_cluster_an_invalidation_published_on_one_node_reaches_a_subscriber_on_another() {
    let cluster = servers::Cluster::start(3);
    let urls = cluster.urls();
    // Two stores on one cluster stand for two processes (each has its own subscription and
    // sender): `a` subscribes and publishes on the first node, `b` on the second.
    stores::register("near-cluster-a", RedisStore::cluster(urls.clone()).unwrap());
    let mut rotated = urls.clone();
    rotated.rotate_left(1);
    stores::register("near-cluster-b", RedisStore::cluster(rotated).unwrap());
    let local = Duration::from_secs(60);
    let a: StoreCache<u32, String> =
        StoreCache::new("near-cluster-a", "near::cluster").with_local(100, local);
    let b: StoreCache<u32, String> =
        StoreCache::new("near-cluster-b", "near::cluster").with_local(100, local);
    assert_eq!((a.get(&1000), b.get(&1000)), (None, None));
    assert!(wait_for_subscribed("near-cluster-a", true));
    assert!(wait_for_subscribed("near-cluster-b", true));
    const KEYS: u32 = 30; // spread over the three masters
    for n in 0..KEYS {
        a.insert(n, format!("{n}:v1"));
    }
    for n in 0..KEYS {
        let found = b.get_by_keeping(&n, |k| *k == n, || n);
        assert_eq!(found, Some(format!("{n}:v1")));
    }
    assert_eq!(b.local_len(), KEYS as usize, "every key kept in b");
    for node in &cluster.nodes {
        node.redis_cli(&["FLUSHALL"]);
    }
    assert_eq!(b.get(&0).as_deref(), Some("0:v1"), "b answers locally");
    // Invalidated through `a` (published on the first node): `b` misses every key.
    for n in 0..KEYS {
        a.remove(&n);
        a.insert(n, format!("{n}:v2"));
    }
    let start = Instant::now();
    for n in 0..KEYS {
        while b.get(&n) != Some(format!("{n}:v2")) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "key {n} never missed in b"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Cleared through `b` (published on the second node): `a`'s local copies go.
    assert_eq!(a.get(&3).as_deref(), Some("3:v2"));
    b.reset();
    let start = Instant::now();
    while a.get(&3).is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the clear never reached a"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(stores::near_received("near-cluster-a") >= 1);
    assert!(stores::near_received("near-cluster-b") >= KEYS as u64);
    // The async side (tokio: the async cluster client) reads the ttl left and keeps too.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for n in 100..110 {
            a.insert(n, format!("{n}:async"));
        }
        for n in 100..110 {
            let found = b.get_by_keeping_async(&n, |k| *k == n, || n).await;
            assert_eq!(found, Some(format!("{n}:async")));
        }
        for node in &cluster.nodes {
            node.redis_cli(&["FLUSHALL"]);
        }
        for n in 100..110 {
            let found = b.get_by_keeping_async(&n, |k| *k == n, || n).await;
            assert_eq!(
                found,
                Some(format!("{n}:async")),
                "kept by the async lookup"
            );
        }
    });
}

static ASYNC_RUNS: AtomicU64 = AtomicU64::new(0);

#[memoize(store = "near-async", local = 10, local_ttl = "1m")]
async fn doubled(n: u64) -> u64 {
    ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    2 * n
}

#[test]
fn an_async_fn_keeps_its_local_layer_too() {
    let redis = Server::redis();
    stores::register(
        "near-async",
        RedisStore::connect(&redis.redis_url()).unwrap(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(doubled(1).await, 2);
        assert!(wait_for_subscribed("near-async", true));
        assert_eq!(doubled(2).await, 4, "a miss, kept");
        redis.redis_cli(&["FLUSHALL"]);
        assert_eq!(doubled(2).await, 4, "a local hit");
        assert_eq!(ASYNC_RUNS.load(Ordering::SeqCst), 2);
        assert!(doubled::cache_invalidate(2));
        assert_eq!(doubled(2).await, 4);
        assert_eq!(
            ASYNC_RUNS.load(Ordering::SeqCst),
            3,
            "invalidated: run again"
        );
        // A value read from Redis is kept as well (GET and PTTL through the async side).
        assert_eq!(doubled(1).await, 2);
        let runs = ASYNC_RUNS.load(Ordering::SeqCst);
        redis.redis_cli(&["FLUSHALL"]);
        assert_eq!(doubled(1).await, 2);
        assert_eq!(ASYNC_RUNS.load(Ordering::SeqCst), runs);
    });
}

#[test]
fn two_layers_of_one_function_in_one_process_see_each_others_invalidations() {
    let redis = Server::redis();
    stores::register(
        "near-twice",
        RedisStore::connect(&redis.redis_url()).unwrap(),
    );
    let local = Duration::from_secs(60);
    let a: StoreCache<u64, String> =
        StoreCache::new("near-twice", "near::twice").with_local(10, local);
    let b: StoreCache<u64, String> =
        StoreCache::new("near-twice", "near::twice").with_local(10, local);
    assert_eq!((a.get(&0), b.get(&0)), (None, None));
    assert!(wait_for_subscribed("near-twice", true));
    a.insert(1, "old".into());
    assert_eq!(
        b.get_by_keeping(&1, |k| *k == 1, || 1).as_deref(),
        Some("old")
    );
    assert_eq!(b.local_len(), 1);
    // This process's own messages are not heard back: the other layer is told directly.
    assert!(a.remove(&1));
    assert_eq!(b.get(&1), None, "b's copy went with a's invalidation");
    b.insert(2, "two".into());
    assert_eq!(
        a.get_by_keeping(&2, |k| *k == 2, || 2).as_deref(),
        Some("two")
    );
    b.reset();
    assert_eq!(a.get(&2), None, "a's copy went with b's clear");
}
