//! The Redis store against a real `redis-server` on a free loopback port (one per test).
#![cfg(feature = "redis")]

#[path = "support/servers.rs"]
mod servers;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use memo::stores::{self, RedisStore, Store, StoreCache, StoreOptions};
use servers::Server;

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
    assert_eq!((info.hits, info.misses, info.currsize), (1, 1, 1));
}

#[test]
fn values_are_readable_json_under_namespaced_keys() {
    let server = Server::redis();
    register("redis-json", &server, StoreOptions::default());
    let temps: StoreCache<(String, u32), Vec<f64>> =
        StoreCache::new("redis-json", "app::weather::temperature").with_signature(0xfeed);
    temps.insert(("Paris".into(), 3), vec![21.5, 19.0]);
    let key = "memo:app::weather::temperature:v1.000000000000feed:[\"Paris\",3]";
    assert_eq!(server.redis_cli(&["GET", key]), "[21.5,19.0]");
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
        let key = format!(
            "{}:{}",
            cache.namespace().unwrap(),
            cache.key_of(&1u8).unwrap()
        );
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
    assert_eq!(server.redis_cli(&["DBSIZE"]), "150");
    assert_eq!(orders.get(&1).as_deref(), Some("order 1"), "no collision");
    users.reset();
    assert_eq!(server.redis_cli(&["DBSIZE"]), "100");
    assert_eq!(users.get(&1), None);
    assert_eq!(orders.get(&1).as_deref(), Some("order 1"));
    assert_eq!(users_v2.get(&1).as_deref(), Some("user v2 1"));
    assert_eq!((users.info().hits, users.info().currsize), (0, 0));
}

#[test]
fn undecodable_value_is_a_miss_and_is_overwritten() {
    let server = Server::redis();
    register("redis-garbage", &server, StoreOptions::default());
    let cache: StoreCache<u8, Vec<u8>> = StoreCache::new("redis-garbage", "app::f");
    let key = format!(
        "{}:{}",
        cache.namespace().unwrap(),
        cache.key_of(&1u8).unwrap()
    );
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
        let full = format!("{}:{key}", cache.namespace().unwrap());
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
    store.set("n*s", "a", b"1", None).unwrap();
    store.set("n-s", "a", b"1", None).unwrap();
    assert_eq!(
        store.len("n*s").unwrap(),
        Some(1),
        "a glob in a namespace is literal"
    );
    store.clear("n*s").unwrap();
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
    let key = format!(
        "{}:{}",
        cache.namespace().unwrap(),
        cache.key_of(&1u8).unwrap()
    );
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
