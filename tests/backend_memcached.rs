//! The Memcached store against a real `memcached` on a free loopback port (one per test).
#![cfg(feature = "memcached")]

#[path = "support/servers.rs"]
mod servers;

use std::time::Duration;

use memo::stores::{self, MemcachedStore, Store, StoreCache, StoreOptions};
use servers::Server;

fn register(name: &str, server: &Server) {
    let store = MemcachedStore::connect(&server.address()).expect("a valid address");
    stores::register_with(name, store, StoreOptions::default());
}

/// The key memcached holds `args` of `cache` under: `namespace:generation:key`.
fn data_key(server: &Server, cache: &StoreCache<u8, String>, args: u8) -> String {
    let namespace = cache.namespace().unwrap();
    let reply = server.memcached_command(&format!("get {namespace}:gen"), None);
    let generation = reply.lines().nth(1).expect("a generation");
    format!("{namespace}:{generation}:{}", cache.key_of(&args).unwrap())
}

#[test]
fn second_lookup_hits_what_the_first_call_stored() {
    let server = Server::memcached();
    register("mc-hits", &server);
    let squares: StoreCache<(u64,), u64> = StoreCache::new("mc-hits", "app::square");
    assert_eq!(squares.get_by(&(&7u64,), |_| unreachable!()), None);
    squares.insert_if_absent((7,), 49);
    assert_eq!(squares.get_by(&(&7u64,), |_| unreachable!()), Some(49));
    let info = squares.info();
    assert_eq!((info.hits, info.misses), (1, 1));
    assert!(!info.currsize_known, "memcached cannot count a namespace");
}

#[test]
fn values_are_readable_json_and_carry_the_ttl() {
    let server = Server::memcached();
    register("mc-json", &server);
    let cache: StoreCache<u8, String> =
        StoreCache::new("mc-json", "app::f").with_ttl(Duration::from_secs(300));
    cache.insert(1, "one".into());
    let key = data_key(&server, &cache, 1);
    let reply = server.memcached_command(&format!("get {key}"), None);
    assert_eq!(reply.lines().nth(1), Some("\"one\""), "{reply}");
    // The meta command `mg <key> t` answers the remaining ttl in seconds.
    let meta = server.memcached_command(&format!("mg {key} t"), None);
    let ttl: u64 = meta.strip_prefix("HD t").expect(&meta).parse().unwrap();
    assert!((299..=300).contains(&ttl), "{meta}");
}

#[test]
fn clear_removes_only_this_functions_keys() {
    let server = Server::memcached();
    register("mc-clear", &server);
    let users: StoreCache<u32, String> = StoreCache::new("mc-clear", "app::users::get");
    let orders: StoreCache<u32, String> = StoreCache::new("mc-clear", "app::orders::get");
    for i in 0..20 {
        users.insert(i, format!("user {i}"));
        orders.insert(i, format!("order {i}"));
    }
    assert_eq!(orders.get(&1).as_deref(), Some("order 1"), "no collision");
    assert_eq!(users.get(&1).as_deref(), Some("user 1"));
    users.reset();
    assert_eq!(users.get(&1), None);
    assert_eq!(orders.get(&1).as_deref(), Some("order 1"));
    users.insert(1, "user 1 again".into());
    assert_eq!(users.get(&1).as_deref(), Some("user 1 again"));
    assert_eq!((users.info().hits, users.info().misses), (1, 1));
}

#[test]
fn a_clear_by_another_process_is_seen_after_the_generation_refresh() {
    let server = Server::memcached();
    // Two stores on one server stand for two processes; this one never trusts its memory.
    let fresh = MemcachedStore::connect(&server.address())
        .unwrap()
        .with_generation_refresh(Duration::ZERO);
    stores::register("mc-gen-a", fresh);
    register("mc-gen-b", &server);
    let a: StoreCache<u8, u8> = StoreCache::new("mc-gen-a", "app::f");
    let b: StoreCache<u8, u8> = StoreCache::new("mc-gen-b", "app::f");
    b.insert(1, 1);
    assert_eq!(a.get(&1), Some(1), "one namespace, two clients");
    b.reset();
    assert_eq!(a.get(&1), None);
}

#[test]
fn undecodable_value_is_a_miss_and_is_overwritten() {
    let server = Server::memcached();
    register("mc-garbage", &server);
    let cache: StoreCache<u8, String> = StoreCache::new("mc-garbage", "app::f");
    cache.insert(1, "ok".into());
    let key = data_key(&server, &cache, 1);
    let stored = server.memcached_command(&format!("set {key} 0 0 9"), Some(b"{not json"));
    assert_eq!(stored, "STORED");
    assert_eq!(cache.get(&1), None);
    cache.insert_if_absent(1, "fixed".into());
    assert_eq!(cache.get(&1).as_deref(), Some("fixed"));
    assert_eq!(stores::health("mc-garbage").unwrap().outages, 0);
}

#[test]
fn long_and_spaced_keys_are_hashed_to_legal_memcached_keys() {
    let server = Server::memcached();
    register("mc-long", &server);
    let cache: StoreCache<String, usize> = StoreCache::new("mc-long", "app::len");
    for text in [
        "x".repeat(1000),
        "New York".to_string(),
        "tab\tand\nnewline".to_string(),
    ] {
        cache.insert(text.clone(), text.len());
        assert_eq!(cache.get(text.as_str()), Some(text.len()));
    }
    assert_eq!(stores::health("mc-long").unwrap().errors, 0);
}

#[test]
fn a_value_too_large_is_refused_without_an_outage() {
    let server = Server::memcached();
    register("mc-large", &server);
    let cache: StoreCache<u8, String> = StoreCache::new("mc-large", "app::f");
    cache.insert(1, "x".repeat(2 << 20)); // memcached's item limit is 1 MB
    cache.insert(2, "small".into());
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.get(&2).as_deref(), Some("small"));
    let health = stores::health("mc-large").unwrap();
    assert_eq!((health.up, health.outages, health.errors), (true, 0, 1));
    assert!(health.last_error.unwrap().contains("item size limit"));
    // Not sent: memcached saw no set of it (only the small one).
    let stats = server.memcached_command("stats", None);
    assert!(stats.contains("STAT cmd_set 2\r"), "{stats}"); // the generation and `small`
}

#[test]
fn a_value_just_under_the_item_limit_is_stored() {
    let server = Server::memcached();
    register("mc-near-limit", &server);
    let cache: StoreCache<u8, String> = StoreCache::new("mc-near-limit", "app::f");
    cache.insert(1, "x".repeat((1 << 20) - 400));
    assert_eq!(cache.get(&1).map(|v| v.len()), Some((1 << 20) - 400));
    assert_eq!(stores::health("mc-near-limit").unwrap().errors, 0);
}

#[test]
fn garbage_in_the_generation_is_a_miss_then_repaired() {
    let server = Server::memcached();
    let store = MemcachedStore::connect(&server.address())
        .unwrap()
        .with_generation_refresh(Duration::ZERO);
    stores::register("mc-gen-garbage", store);
    let cache: StoreCache<u8, String> = StoreCache::new("mc-gen-garbage", "app::f");
    cache.insert(1, "one".into());
    let namespace = cache.namespace().unwrap().to_string();
    let stored = server.memcached_command(&format!("set {namespace}:gen 0 0 4"), Some(b"\x01zz!"));
    assert_eq!(stored, "STORED");
    assert_eq!(cache.get(&1), None, "a miss, not an outage");
    let repaired = server.memcached_command(&format!("get {namespace}:gen"), None);
    let generation = repaired.lines().nth(1).unwrap();
    assert!(generation.parse::<u64>().is_ok(), "{repaired}");
    cache.insert(1, "again".into());
    assert_eq!(cache.get(&1).as_deref(), Some("again"));
    // cache_clear works on garbage too (incr refuses it: replaced).
    server.memcached_command(&format!("set {namespace}:gen 0 0 3"), Some(b"abc"));
    cache.reset();
    assert_eq!(cache.get(&1), None);
    cache.insert(1, "after clear".into());
    assert_eq!(cache.get(&1).as_deref(), Some("after clear"));
    let health = stores::health("mc-gen-garbage").unwrap();
    assert_eq!((health.up, health.outages, health.errors), (true, 0, 0));
}

#[test]
fn huge_ttls_are_clamped_not_wrapped_or_overflowed() {
    let server = Server::memcached();
    register("mc-huge-ttl", &server);
    for (i, ttl) in [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_secs(40 * 24 * 3600),
    ]
    .into_iter()
    .enumerate()
    {
        let cache: StoreCache<u8, u8> =
            StoreCache::new("mc-huge-ttl", format!("app::f{i}")).with_ttl(ttl);
        cache.insert(1, 1);
        assert_eq!(cache.get(&1), Some(1), "{ttl:?} is cached");
        let key = format!("{}:", cache.namespace().unwrap());
        let generation = server.memcached_command(&format!("get {key}gen"), None);
        let generation = generation.lines().nth(1).unwrap().to_string();
        let meta = server.memcached_command(
            &format!("mg {key}{generation}:{} t", cache.key_of(&1).unwrap()),
            None,
        );
        let left: i64 = meta.strip_prefix("HD t").expect(&meta).parse().unwrap();
        assert!(left > 39 * 24 * 3600, "{ttl:?}: {meta}");
    }
    assert_eq!(stores::health("mc-huge-ttl").unwrap().errors, 0);
}

#[test]
fn the_store_trait_passes_bytes_through() {
    let server = Server::memcached();
    let store = MemcachedStore::connect(&server.address()).unwrap();
    store.set("ns", "k", &[0, 13, 10, 255], None).unwrap();
    assert_eq!(store.get("ns", "k").unwrap(), Some(vec![0, 13, 10, 255]));
    assert!(store.delete("ns", "k").unwrap());
    assert!(!store.delete("ns", "k").unwrap());
    assert_eq!(store.get("ns", "k").unwrap(), None);
    store.set("ns", "a", b"1", None).unwrap();
    store.set("other", "a", b"2", None).unwrap();
    store.clear("ns").unwrap();
    assert_eq!(store.get("ns", "a").unwrap(), None);
    assert_eq!(store.get("other", "a").unwrap(), Some(b"2".to_vec()));
}
