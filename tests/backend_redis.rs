//! The Redis store against a real `redis-server` on a free loopback port (one per test).
#![cfg(feature = "redis")]

#[path = "support/servers.rs"]
mod servers;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use memo::stores::{self, RedisStore, Store, StoreCache, StoreOptions};
use servers::Server;

/// The Redis key of `item` in `namespace`: `namespace:generation:item`.
fn raw_key(server: &Server, namespace: &str, item: &str) -> String {
    let generation = server.redis_cli(&["GET", &format!("{namespace}:gen")]);
    assert!(generation.parse::<u64>().is_ok(), "{generation:?}");
    format!("{namespace}:{generation}:{item}")
}

/// The Redis key under which `cache` stores `args`.
fn key_in<K, V, Q>(server: &Server, cache: &StoreCache<K, V>, args: &Q) -> String
where
    K: serde::Serialize + std::hash::Hash + Eq,
    V: serde::Serialize + serde::de::DeserializeOwned + Clone,
    Q: serde::Serialize + ?Sized,
{
    raw_key(
        server,
        cache.namespace().unwrap(),
        &cache.key_of(args).unwrap(),
    )
}

/// Waits (10 s at most) until the server holds `n` keys: the old generations of a cleared
/// namespace are unlinked in the background.
fn wait_for_dbsize(server: &Server, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let size: usize = server.redis_cli(&["DBSIZE"]).parse().unwrap();
        if size == n {
            return;
        }
        assert!(Instant::now() < deadline, "{size} keys, not {n}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Registers a store on `server` under `name` (unique per test: the registry is global).
fn register(name: &str, server: &Server, options: StoreOptions) {
    let store = RedisStore::connect(&server.redis_url()).expect("a valid url");
    stores::register_with(name, store, options);
}

#[test]
fn second_lookup_hits_what_the_first_call_stored() {
    let server = Server::redis();
    register("redis-hits", &server, StoreOptions::default());
    let squares: StoreCache<(u64,), u64> = StoreCache::new("redis-hits", "app::square");
    assert_eq!(squares.get_by(&(&7u64,), |_| unreachable!()), None);
    squares.insert_if_absent((7,), 49);
    assert_eq!(squares.get_by(&(&7u64,), |_| unreachable!()), Some(49));
    let info = squares.info();
    assert_eq!((info.hits, info.misses), (1, 1));
    assert!(
        !info.currsize_known,
        "redis cannot count a namespace without a scan"
    );
}

#[test]
fn values_are_readable_json_under_namespaced_keys() {
    let server = Server::redis();
    register("redis-json", &server, StoreOptions::default());
    let temps: StoreCache<(String, u32), Vec<f64>> =
        StoreCache::new("redis-json", "app::weather::temperature").with_signature(0xfeed);
    temps.insert(("Paris".into(), 3), vec![21.5, 19.0]);
    let key = raw_key(
        &server,
        "memo:app::weather::temperature:v1.000000000000feed",
        "[\"Paris\",3]",
    );
    assert_eq!(server.redis_cli(&["GET", &key]), "[21.5,19.0]");
}

#[test]
fn ttl_is_set_on_the_server() {
    let server = Server::redis();
    register("redis-ttl", &server, StoreOptions::default());
    let minutes: StoreCache<u8, u8> =
        StoreCache::new("redis-ttl", "app::f").with_ttl(Duration::from_secs(300));
    let millis: StoreCache<u8, u8> =
        StoreCache::new("redis-ttl", "app::g").with_ttl(Duration::from_millis(90_500));
    minutes.insert(1, 1);
    millis.insert(1, 1);
    let ttl = |cache: &StoreCache<u8, u8>| -> i64 {
        let key = key_in(&server, cache, &1u8);
        server.redis_cli(&["PTTL", &key]).parse().unwrap()
    };
    let (minutes_ttl, millis_ttl) = (ttl(&minutes), ttl(&millis));
    assert!(
        299_000 < minutes_ttl && minutes_ttl <= 300_000,
        "{minutes_ttl}"
    );
    assert!(89_500 < millis_ttl && millis_ttl <= 90_500, "{millis_ttl}");
}

#[test]
fn clear_removes_only_this_functions_keys() {
    let server = Server::redis();
    register("redis-clear", &server, StoreOptions::default());
    let users: StoreCache<u32, String> = StoreCache::new("redis-clear", "app::users::get");
    let orders: StoreCache<u32, String> = StoreCache::new("redis-clear", "app::orders::get");
    let users_v2: StoreCache<u32, String> =
        StoreCache::new("redis-clear", "app::users::get").with_version(2);
    for i in 0..50 {
        users.insert(i, format!("user {i}"));
        orders.insert(i, format!("order {i}"));
        users_v2.insert(i, format!("user v2 {i}"));
    }
    // 150 values and 3 generations.
    assert_eq!(server.redis_cli(&["DBSIZE"]), "153");
    assert_eq!(orders.get(&1).as_deref(), Some("order 1"), "no collision");
    users.reset();
    assert_eq!(users.get(&1), None, "cleared at once");
    assert_eq!(orders.get(&1).as_deref(), Some("order 1"));
    assert_eq!(users_v2.get(&1).as_deref(), Some("user v2 1"));
    assert_eq!(users.info().hits, 0);
    // The old generation's 50 keys are unlinked in the background, and only those.
    wait_for_dbsize(&server, 103);
    assert_eq!(orders.get(&2).as_deref(), Some("order 2"));
    assert_eq!(users_v2.get(&2).as_deref(), Some("user v2 2"));
}

#[test]
fn undecodable_value_is_a_miss_and_is_overwritten() {
    let server = Server::redis();
    register("redis-garbage", &server, StoreOptions::default());
    let cache: StoreCache<u8, Vec<u8>> = StoreCache::new("redis-garbage", "app::f");
    assert_eq!(cache.get(&1), None); // creates the generation
    let key = key_in(&server, &cache, &1u8);
    server.redis_cli(&["SET", &key, "{not json"]);
    assert_eq!(cache.get(&1), None);
    cache.insert_if_absent(1, vec![1, 2]);
    assert_eq!(cache.get(&1), Some(vec![1, 2]));
    assert_eq!(server.redis_cli(&["GET", &key]), "[1,2]");
    assert_eq!(stores::health("redis-garbage").unwrap().outages, 0);
}

#[test]
fn long_and_spaced_keys_are_hashed() {
    let server = Server::redis();
    register("redis-long", &server, StoreOptions::default());
    let cache: StoreCache<String, usize> = StoreCache::new("redis-long", "app::len");
    for text in ["x".repeat(1000), "New York".to_string()] {
        cache.insert(text.clone(), text.len());
        assert_eq!(cache.get(text.as_str()), Some(text.len()));
        let key = cache.key_of(&text).unwrap();
        assert!(key.starts_with('#') && key.len() == 65, "{key}");
        let full = raw_key(&server, cache.namespace().unwrap(), &key);
        assert_eq!(server.redis_cli(&["EXISTS", &full]), "1");
    }
}

#[test]
fn the_store_trait_passes_bytes_through() {
    let server = Server::redis();
    let store = RedisStore::connect(&server.redis_url()).unwrap();
    store
        .set("ns", "k", &[0, 159, 146, 150, 255], None)
        .unwrap();
    assert_eq!(
        store.get("ns", "k").unwrap(),
        Some(vec![0, 159, 146, 150, 255])
    );
    assert!(store.delete("ns", "k").unwrap());
    assert!(!store.delete("ns", "k").unwrap());
    assert_eq!(store.get("ns", "k").unwrap(), None);
    assert_eq!(store.len("ns").unwrap(), None, "unknown: no scan");
    store.set("n*s", "a", b"1", None).unwrap();
    store.set("n-s", "a", b"1", None).unwrap();
    store.clear("n*s").unwrap();
    assert_eq!(store.get("n*s", "a").unwrap(), None);
    // ns:gen, n*s:gen, n-s:gen and n-s's value: a glob in a namespace is literal.
    wait_for_dbsize(&server, 4);
    assert_eq!(store.get("n-s", "a").unwrap(), Some(b"1".to_vec()));
}

#[cfg(feature = "zstd")]
#[test]
fn large_values_are_stored_compressed() {
    use memo::stores::Compression;
    let server = Server::redis();
    let compression = Compression::Zstd {
        level: 3,
        min_size: 1024,
    };
    register(
        "redis-zstd",
        &server,
        StoreOptions::default().compression(compression),
    );
    let cache: StoreCache<u8, String> = StoreCache::new("redis-zstd", "app::report");
    let report = "line of a long report\n".repeat(1000);
    cache.insert(1, report.clone());
    assert_eq!(cache.get(&1), Some(report.clone()));
    let key = key_in(&server, &cache, &1u8);
    let stored: usize = server.redis_cli(&["STRLEN", &key]).parse().unwrap();
    assert!(
        stored < report.len() / 20,
        "{stored} bytes for {}",
        report.len()
    );
}

#[cfg(feature = "msgpack")]
#[test]
fn msgpack_values_round_trip() {
    use memo::stores::Codec;
    let server = Server::redis();
    register(
        "redis-msgpack",
        &server,
        StoreOptions::default().codec(Codec::MessagePack),
    );
    let cache: StoreCache<u8, (String, Vec<u16>)> = StoreCache::new("redis-msgpack", "app::f");
    cache.insert(1, ("a".into(), vec![1, 300]));
    assert_eq!(cache.get(&1), Some(("a".into(), vec![1, 300])));
}

/// Polls `future` to completion on this thread (the store calls inside never return `Pending`).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

#[test]
fn an_async_function_uses_the_store_like_a_sync_one() {
    let server = Server::redis();
    register("redis-async", &server, StoreOptions::default());
    let cache: StoreCache<(u64,), u64> = StoreCache::new("redis-async", "app::double");
    async fn double(cache: &StoreCache<(u64,), u64>, n: u64) -> u64 {
        if let Some(hit) = cache.get_by(&(&n,), |k| k.0 == n) {
            return hit;
        }
        let value = async { 2 * n }.await;
        cache.insert_if_absent((n,), value);
        value
    }
    assert_eq!(block_on(double(&cache, 21)), 42);
    assert_eq!(block_on(double(&cache, 21)), 42);
    assert_eq!((cache.info().hits, cache.info().misses), (1, 1));
}

/// `cache_info` and `cache_clear` cost a constant number of round trips whatever else the
/// server holds: with 1,000,000 unrelated keys, `info` sends nothing and `reset` one INCR (the
/// old keys are unlinked by a background SCAN, off the caller's path).
#[test]
fn admin_calls_cost_constant_round_trips_beside_a_million_unrelated_keys() {
    let server = Server::redis();
    register("redis-admin", &server, StoreOptions::default());
    let cache: StoreCache<u32, u32> = StoreCache::new("redis-admin", "app::admin");
    for i in 0..100 {
        cache.insert(i, i);
    }
    server.redis_cli(&[
        "EVAL",
        "for i = 1, 1000000 do redis.call('SET', 'unrelated:' .. i, 'v') end",
        "0",
    ]);
    assert_eq!(server.redis_cli(&["DBSIZE"]), "1000101");
    let commands = || -> Vec<(String, u64)> {
        let stats = server.redis_cli(&["INFO", "commandstats"]);
        stats
            .lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
                let calls = rest.split(',').next()?.parse().ok()?;
                Some((name.to_string(), calls))
            })
            .filter(|(name, _)| !matches!(name.as_str(), "info" | "config|resetstat"))
            .collect()
    };
    server.redis_cli(&["CONFIG", "RESETSTAT"]);
    let info = cache.info();
    assert!(!info.currsize_known);
    assert_eq!(commands(), [], "info sends nothing");
    cache.reset();
    let sent = commands();
    let by_caller: Vec<_> = sent
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "scan" | "unlink"))
        .collect();
    assert_eq!(by_caller, [&("incr".to_string(), 1)], "{sent:?}");
    assert_eq!(cache.get(&1), None);
    wait_for_dbsize(&server, 1_000_001);
}
