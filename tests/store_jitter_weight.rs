//! `ttl_jitter` and `maxweight` with a store, on a real `redis-server`: the ttl sent with each
//! write is spread uniformly over `(ttl * (1 - jitter), ttl]` (read back with `PTTL` over 500
//! keys written at one instant), and without jitter every key gets the ttl; the near cache
//! (`local = N`) holds at most `maxweight` of values and never a value heavier than it. With
//! `refresh`, 100 keys written at one instant are refreshed at times spread over the jitter's
//! window.
#![cfg(feature = "redis")]

#[path = "support/servers.rs"]
mod servers;

use std::sync::atomic::{AtomicU64, Ordering};

#[path = "support/refresh_times.rs"]
mod refresh_times;
use refresh_times::{assert_spread_over_the_last_half_second, ran, refresh_times};

use memo::memoize;
use memo::stores::{self, RedisStore};
use servers::Server;

const KEYS: u32 = 500;

#[memoize(store = "jitter-redis", ttl = "1000s", ttl_jitter = "20%")]
fn spread(id: u32) -> u32 {
    id
}

#[memoize(store = "jitter-redis", ttl = "1000s")]
fn exact(id: u32) -> u32 {
    id
}

#[memoize(
    store = "jitter-redis",
    ttl = "1000s",
    ttl_jitter = "20%",
    local = 1000
)]
fn spread_near(id: u32) -> u32 {
    id
}

/// The `PTTL` of every key whose name contains `part` (the generation key, without a ttl,
/// left out), in milliseconds, read in one `EVAL`.
fn pttls(server: &Server, part: &str) -> Vec<i64> {
    let script = "local r = {} \
        for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
          local t = redis.call('PTTL', k) \
          if t >= 0 then table.insert(r, t) end \
        end \
        return r";
    let pattern = format!("*{part}*");
    let out = server.redis_cli(&["EVAL", script, "0", &pattern]);
    out.lines()
        .map(|line| line.trim().parse().unwrap())
        .collect()
}

/// 10 buckets over `(800 s, 1000 s]`: each PTTL within it, and the counts' chi-square against
/// the uniform distribution below its 0.999 quantile for 9 degrees of freedom (27.9).
fn assert_uniform(ttls: &[i64]) {
    assert_eq!(ttls.len(), KEYS as usize);
    let mut buckets = [0u32; 10];
    for &ttl in ttls {
        // Written less than a few seconds ago: a bucket is 20 s.
        assert!(ttl <= 1_000_000 && ttl > 790_000, "PTTL {ttl}");
        let at = ((1_000_000 - ttl.min(999_999)) / 20_000).min(9) as usize;
        buckets[at] += 1;
    }
    let expected = f64::from(KEYS) / 10.0;
    let chi2: f64 = buckets
        .iter()
        .map(|&n| (f64::from(n) - expected).powi(2) / expected)
        .sum();
    assert!(chi2 < 27.9, "chi-square {chi2:.1} over {buckets:?}");
}

#[test]
fn the_ttl_of_each_write_to_the_store_is_spread() {
    let server = Server::redis();
    stores::register(
        "jitter-redis",
        RedisStore::connect(&server.redis_url()).unwrap(),
    );
    for id in 0..KEYS {
        assert_eq!(spread(id), id);
        assert_eq!(exact(id), id);
        assert_eq!(spread_near(id), id);
    }
    assert_uniform(&pttls(&server, "::spread:"));
    assert_uniform(&pttls(&server, "::spread_near:"));
    let exact = pttls(&server, "::exact:");
    assert_eq!(exact.len(), KEYS as usize);
    // Without jitter every key has the ttl, less the seconds the writes took.
    assert!(
        exact.iter().all(|&t| t > 990_000 && t <= 1_000_000),
        "{exact:?}"
    );
    // The function's ttl is still what it reports: the bound.
    assert_eq!(
        spread::cache_info().ttl,
        Some(std::time::Duration::from_secs(1000))
    );
}

const MAX: u64 = 4096;
/// Each value weighs 24 + 100 bytes: 33 fit in `MAX`.
const SIZE: usize = 100;
static PAGES: AtomicU64 = AtomicU64::new(0);

#[memoize(store = "weight-redis", ttl = "1h", local = 1000, maxweight = 4096)]
fn page(id: u32) -> String {
    PAGES.fetch_add(1, Ordering::SeqCst);
    "x".repeat(if id == u32::MAX { 5000 } else { SIZE })
}

#[test]
fn maxweight_bounds_the_near_cache_of_a_store() {
    let server = Server::redis();
    stores::register(
        "weight-redis",
        RedisStore::connect(&server.redis_url()).unwrap(),
    );
    let fits = (MAX / (24 + SIZE as u64)) as usize;
    for id in 0..200 {
        assert_eq!(page(id).len(), SIZE);
        assert!(__memo_cache_page.cache.local_len() <= fits);
    }
    assert_eq!(__memo_cache_page.cache.local_len(), fits);
    // The last `fits` values are answered here; the store holds them all.
    let runs = PAGES.load(Ordering::SeqCst);
    for id in 0..200 {
        assert_eq!(page(id).len(), SIZE);
    }
    assert_eq!(
        PAGES.load(Ordering::SeqCst),
        runs,
        "the store answers the others"
    );
    // A value heavier than the bound is stored, never kept here.
    let kept = __memo_cache_page.cache.local_len();
    assert_eq!(page(u32::MAX).len(), 5000);
    assert_eq!(page(u32::MAX).len(), 5000);
    assert_eq!(__memo_cache_page.cache.local_len(), kept);
    assert_eq!(PAGES.load(Ordering::SeqCst), runs + 1, "the store keeps it");
}

static FRESH_PAGES: AtomicU64 = AtomicU64::new(0);

#[memoize(
    store = "weight-fresh-redis",
    ttl = "1h",
    refresh = "30m",
    local = 1000,
    maxweight = 4096
)]
fn fresh_page(id: u32) -> String {
    let _ = id;
    FRESH_PAGES.fetch_add(1, Ordering::SeqCst);
    "x".repeat(SIZE)
}

/// With `refresh` the near cache keeps stamped values: each weighs its value, not its stamp.
#[test]
fn maxweight_bounds_the_near_cache_of_a_store_with_refresh() {
    let server = Server::redis();
    stores::register(
        "weight-fresh-redis",
        RedisStore::connect(&server.redis_url()).unwrap(),
    );
    let fits = (MAX / (24 + SIZE as u64)) as usize;
    for id in 0..200 {
        assert_eq!(fresh_page(id).len(), SIZE);
        assert!(__memo_cache_fresh_page.cache.local_len() <= fits);
    }
    assert_eq!(__memo_cache_fresh_page.cache.local_len(), fits);
    assert_eq!(FRESH_PAGES.load(Ordering::SeqCst), 200);
}

#[memoize(
    store = "jitter-fresh-redis",
    ttl = "10s",
    refresh = "1s",
    ttl_jitter = "50%"
)]
fn jittered_refresh(id: u32) -> u64 {
    ran("jittered_refresh", id)
}

/// With `refresh` the jitter is in each stored stamp (one offset per write, uniform in
/// `[0, refresh * jitter)`), so keys written together are due for refresh at spread times:
/// here over (0.5 s, 1 s], each key asked every 10 ms. The stamps are on the wall clock; the
/// early ones fall before this process's clock began, which once made every key read as due
/// at 1 s exactly.
#[test]
fn with_refresh_keys_written_together_are_refreshed_at_spread_times() {
    const REFRESHED: u32 = 100;
    let server = Server::redis();
    stores::register(
        "jitter-fresh-redis",
        RedisStore::connect(&server.redis_url()).unwrap(),
    );
    let times = refresh_times("jittered_refresh", REFRESHED, jittered_refresh);
    assert_spread_over_the_last_half_second(&times);
}
