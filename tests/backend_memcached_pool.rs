//! The Memcached store on three real `memcached` processes: keys spread by ketama; killing one
//! makes only its share of the keys miss while the others keep hitting.
#![cfg(feature = "memcached")]

#[path = "support/servers.rs"]
mod servers;

use std::time::{Duration, Instant};

use memo::stores::{self, MemcachedStore, StoreCache, StoreOptions};
use servers::Server;

const KEYS: u32 = 300;

fn register_pool(name: &str, servers: &[Server]) {
    let store = MemcachedStore::pool(servers.iter().map(Server::address)).unwrap();
    stores::register_with(name, store, StoreOptions::default());
}

/// Items held by `server` (data and generation keys).
fn items(server: &Server) -> u64 {
    let stats = server.memcached_command("stats", None);
    stats
        .lines()
        .find_map(|line| line.strip_prefix("STAT curr_items "))
        .and_then(|n| n.trim().parse().ok())
        .expect("curr_items")
}

fn holds(server: &Server, key: &str) -> bool {
    server
        .memcached_command(&format!("get {key}"), None)
        .starts_with("VALUE")
}

#[test]
fn keys_spread_over_every_server_of_the_pool() {
    let pool = Server::memcached_pool(3);
    register_pool("mc-pool-spread", &pool);
    let cache: StoreCache<u32, u32> = StoreCache::new("mc-pool-spread", "app::double");
    for n in 0..KEYS {
        cache.insert(n, 2 * n);
    }
    for n in 0..KEYS {
        assert_eq!(cache.get(&n), Some(2 * n));
    }
    let counts: Vec<u64> = pool.iter().map(items).collect();
    assert_eq!(
        counts.iter().sum::<u64>(),
        u64::from(KEYS) + 1,
        "{counts:?}"
    );
    for count in &counts {
        assert!((50..150).contains(count), "uneven: {counts:?}");
    }
    // cache_clear reaches every server's keys: one generation for the namespace.
    cache.reset();
    for n in 0..KEYS {
        assert_eq!(cache.get(&n), None);
    }
}

#[test]
fn a_killed_server_misses_only_its_share_and_the_others_keep_hitting() {
    let mut pool = Server::memcached_pool(3);
    register_pool("mc-pool-kill", &pool);
    let cache: StoreCache<u32, String> = StoreCache::new("mc-pool-kill", "app::describe");
    let value = |n: u32| format!("value {n}");
    for n in 0..KEYS {
        cache.insert(n, value(n));
    }
    let namespace = cache.namespace().unwrap().to_string();
    let gen_key = format!("{namespace}:gen");
    // Kill a server that holds data but not the generation, then one that holds it.
    let victim = (0..3).find(|&i| !holds(&pool[i], &gen_key)).unwrap();
    let share = items(&pool[victim]);
    pool[victim].stop();
    let started = Instant::now();
    let (mut hits, mut misses) = (0u64, 0u64);
    for round in 0..3 {
        for n in 0..KEYS {
            match cache.get(&n) {
                Some(found) => {
                    assert_eq!(found, value(n));
                    hits += 1;
                }
                None => {
                    misses += 1;
                    cache.insert(n, value(n)); // what the memoized call does after a miss
                }
            }
        }
        let _ = round;
    }
    let elapsed = started.elapsed();
    println!(
        "memcached pool, 1 of 3 killed: {hits} hits, {misses} misses over {} lookups in \
         {elapsed:.1?} (its share: {share} keys)",
        3 * KEYS
    );
    assert_eq!(misses, 3 * share, "exactly its share misses, every round");
    assert_eq!(hits, 3 * (u64::from(KEYS) - share));
    let health = stores::health("mc-pool-kill").unwrap();
    assert!(health.up, "no outage of the whole store: {health:?}");
    assert_eq!(health.outages, 0);

    // The server comes back (empty): after its retry delay its keys are stored and hit again.
    // Polled rather than slept for: on a loaded machine the first probe after the retry delay
    // can come before the restarted server listens, which restarts the delay.
    pool[victim].start();
    std::thread::sleep(Duration::from_millis(1100));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        for n in 0..KEYS {
            if cache.get(&n).is_none() {
                cache.insert(n, value(n));
            }
        }
        let lost: Vec<u32> = (0..KEYS)
            .filter(|n| cache.get(n) != Some(value(*n)))
            .collect();
        if lost.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "keys {lost:?} still miss 10 s after the recovery"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(items(&pool[victim]) >= share);
}

#[test]
fn the_generation_server_down_keeps_the_last_generation_seen() {
    let mut pool = Server::memcached_pool(3);
    let store = MemcachedStore::pool(pool.iter().map(Server::address))
        .unwrap()
        .with_generation_refresh(Duration::ZERO);
    stores::register("mc-pool-gen", store);
    let cache: StoreCache<u32, u32> = StoreCache::new("mc-pool-gen", "app::f");
    for n in 0..KEYS {
        cache.insert(n, n);
    }
    let gen_key = format!("{}:gen", cache.namespace().unwrap());
    let holder = (0..3).find(|&i| holds(&pool[i], &gen_key)).unwrap();
    let share = items(&pool[holder]) - 1;
    pool[holder].stop();
    let hits = (0..KEYS).filter(|n| cache.get(n) == Some(*n)).count() as u64;
    assert_eq!(hits, u64::from(KEYS) - share);
    // A clear cannot reach the generation: it fails (reported), values stay correct.
    cache.reset();
    let health = stores::health("mc-pool-gen").unwrap();
    assert!(health.up && health.outages == 0, "{health:?}");
    assert!(health.last_error.unwrap().contains("cannot clear"));
}

#[test]
fn every_server_down_is_an_outage_of_the_store() {
    let mut pool = Server::memcached_pool(3);
    register_pool("mc-pool-all-down", &pool);
    let cache: StoreCache<u32, u32> = StoreCache::new("mc-pool-all-down", "app::f");
    cache.insert(1, 1);
    for server in &mut pool {
        server.stop();
    }
    for n in 0..30 {
        assert_eq!(cache.get(&n), None);
    }
    let health = stores::health("mc-pool-all-down").unwrap();
    assert!(!health.up, "{health:?}");
    assert_eq!(health.outages, 1);
}
