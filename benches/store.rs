//! The store without the macro: the hit path, the hit path with a ttl, the evicting miss path,
//! and `String` keys looked up by `&str`.
//!
//! Each group also measures an unsynchronized, thread-local `hashbrown::HashMap` doing the same
//! lookups (same hasher as the cache), so the cost of the cache over a bare map is read as a
//! ratio within one run.
//!
//! With `--features redis`, also the near cache's hit against a plain Redis hit (a real
//! `redis-server` on loopback).
//!
//! `cargo bench -p memo-benches --bench store -- --warm-up-time 1 --measurement-time 2` for a quick look.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]
use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use hashbrown::HashMap;
use memo::Cache;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SEED: u64 = 0x5eed_cafe;
const HOT_KEYS: usize = 100;
const CAPACITY: usize = 128;
const UNIVERSE: u64 = 1_000_000;
/// How many pre-drawn keys the miss benchmark cycles through (a power of two).
const MISS_KEYS: usize = 1 << 16;

const BASELINE: &str = "hashbrown_thread_local";

thread_local! {
    static MAP_U64: RefCell<HashMap<u64, u64>> = RefCell::new(HashMap::new());
    static MAP_STRING: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}

/// `HOT_KEYS` distinct random keys.
fn hot_keys(rng: &mut StdRng) -> Vec<u64> {
    let mut keys = Vec::with_capacity(HOT_KEYS);
    while keys.len() < HOT_KEYS {
        let k = rng.gen::<u64>();
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// Rotates through `keys` forever: the next key of each call.
struct Rotation<'a, T> {
    keys: &'a [T],
    next: usize,
}

impl<'a, T> Rotation<'a, T> {
    fn new(keys: &'a [T]) -> Self {
        Rotation { keys, next: 0 }
    }

    #[inline]
    fn next_key(&mut self) -> &'a T {
        let key = &self.keys[self.next];
        self.next += 1;
        if self.next == self.keys.len() {
            self.next = 0;
        }
        key
    }
}

/// A cache of `CAPACITY` holding every hot key, and the thread-local baseline map holding them too.
fn hot_u64(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    cache: Cache<u64, u64>,
) {
    let keys = hot_keys(&mut StdRng::seed_from_u64(SEED));
    for &k in &keys {
        cache.insert(k, k ^ 1);
    }
    MAP_U64.with(|m| {
        let mut m = m.borrow_mut();
        m.clear();
        m.extend(keys.iter().map(|&k| (k, k ^ 1)));
    });

    let mut rotation = Rotation::new(&keys);
    group.bench_function("memo_cache_get", |b| {
        b.iter(|| black_box(cache.get(black_box(rotation.next_key()))))
    });
    let mut rotation = Rotation::new(&keys);
    group.bench_function(BASELINE, |b| {
        MAP_U64
            .with(|m| b.iter(|| black_box(m.borrow().get(black_box(rotation.next_key())).copied())))
    });
    assert_eq!(cache.info().misses, 0, "every lookup of a hot key must hit");
}

fn hit_maxsize_128(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit_maxsize_128");
    hot_u64(&mut group, Cache::new(CAPACITY));
    group.finish();
}

fn hit_with_ttl(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit_with_ttl");
    let cache = Cache::builder()
        .maxsize(CAPACITY)
        .ttl(Duration::from_secs(3600))
        .build()
        .expect("a valid configuration");
    assert_eq!(cache.ttl(), Some(Duration::from_secs(3600)));
    hot_u64(&mut group, cache);
    group.finish();
}

fn miss_evicting_capacity_128(c: &mut Criterion) {
    let mut group = c.benchmark_group("miss_evicting_capacity_128");
    let mut rng = StdRng::seed_from_u64(SEED);
    let keys: Vec<u64> = (0..MISS_KEYS).map(|_| rng.gen_range(0..UNIVERSE)).collect();

    let cache: Cache<u64, u64> = Cache::new(CAPACITY);
    let mut rotation = Rotation::new(&keys);
    group.bench_function("memo_cache_get_then_insert", |b| {
        b.iter(|| {
            let key = *rotation.next_key();
            match cache.get(black_box(&key)) {
                Some(v) => black_box(v),
                None => {
                    cache.insert(key, key ^ 1);
                    key ^ 1
                }
            }
        })
    });
    let info = cache.info();
    assert!(info.evictions > 0 && info.currsize == CAPACITY, "{info}");

    // The floor for a bounded map's miss: look up, and on a miss drop the oldest of 128 keys
    // (a FIFO ring) and insert the new one. No recency bookkeeping, no lock.
    let mut ring = [u64::MAX; CAPACITY];
    let mut oldest = 0;
    let mut rotation = Rotation::new(&keys);
    MAP_U64.with(|m| m.borrow_mut().clear());
    group.bench_function(BASELINE, |b| {
        MAP_U64.with(|m| {
            b.iter(|| {
                let key = *rotation.next_key();
                let mut m = m.borrow_mut();
                match m.get(black_box(&key)) {
                    Some(&v) => black_box(v),
                    None => {
                        m.remove(&ring[oldest]);
                        ring[oldest] = key;
                        oldest = (oldest + 1) % CAPACITY;
                        m.insert(key, key ^ 1);
                        key ^ 1
                    }
                }
            })
        })
    });
    group.finish();
}

fn hit_string_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit_string_key");
    let keys: Vec<String> = hot_keys(&mut StdRng::seed_from_u64(SEED))
        .into_iter()
        .map(|k| format!("user:{k:x}"))
        .collect();
    let cache: Cache<String, u64> = Cache::new(CAPACITY);
    for (i, k) in keys.iter().enumerate() {
        cache.insert(k.clone(), i as u64);
    }
    MAP_STRING.with(|m| {
        let mut m = m.borrow_mut();
        m.clear();
        m.extend(keys.iter().enumerate().map(|(i, k)| (k.clone(), i as u64)));
    });
    let probes: Vec<&str> = keys.iter().map(String::as_str).collect();

    let mut rotation = Rotation::new(&probes);
    group.bench_function("memo_cache_get_str", |b| {
        b.iter(|| black_box(cache.get(black_box(*rotation.next_key()))))
    });
    let mut rotation = Rotation::new(&probes);
    group.bench_function(BASELINE, |b| {
        MAP_STRING.with(|m| {
            b.iter(|| black_box(m.borrow().get(black_box(*rotation.next_key())).copied()))
        })
    });
    assert_eq!(cache.info().misses, 0, "every lookup of a hot key must hit");
    group.finish();
}

/// The near cache (`--features redis`): a hit of a `StoreCache` on a real Redis with a local
/// layer (`with_local`) against the same hit without one (a round trip on loopback), 100 keys
/// `(u64,)` with 64-byte values.
#[cfg(feature = "redis")]
fn near_hit_redis(c: &mut Criterion) {
    use memo::stores::{self, RedisStore, StoreCache};
    let redis = servers::Server::redis();
    stores::register(
        "bench-near",
        RedisStore::connect(&redis.redis_url()).unwrap(),
    );
    let value = |n: u64| format!("{n:064}");
    let plain: StoreCache<(u64,), String> =
        StoreCache::new("bench-near", "bench::near").with_maxsize(None);
    let near: StoreCache<(u64,), String> = StoreCache::new("bench-near", "bench::near")
        .with_maxsize(None)
        .with_local(1000, Duration::from_secs(60));
    for n in 0..HOT_KEYS as u64 {
        plain.insert((n,), value(n));
    }
    // The first lookup subscribes; until the subscription is up the layer is bypassed.
    let start = std::time::Instant::now();
    while stores::near_subscribed("bench-near") != Some(true) {
        near.get_by_keeping(&(&0u64,), |k| k.0 == 0, || (0,));
        assert!(start.elapsed() < Duration::from_secs(10), "not subscribed");
        std::thread::sleep(Duration::from_millis(1));
    }
    for n in 0..HOT_KEYS as u64 {
        near.get_by_keeping(&(&n,), |k| k.0 == n, || (n,));
    }
    assert_eq!(near.local_len(), HOT_KEYS, "every key kept locally");
    let keys: Vec<u64> = (0..HOT_KEYS as u64).collect();
    let mut group = c.benchmark_group("near_hit_redis");
    let mut rotation = Rotation::new(&keys);
    group.bench_function("redis_hit", |b| {
        b.iter(|| {
            let n = *rotation.next_key();
            black_box(plain.get_by(&(&n,), |k| k.0 == n))
        })
    });
    // The same values in memory (the near cache's floor: the clone of a 64-byte String).
    let memory: Cache<(u64,), String> = Cache::new(CAPACITY);
    for n in 0..HOT_KEYS as u64 {
        memory.insert((n,), value(n));
    }
    let mut rotation = Rotation::new(&keys);
    group.bench_function("memory_cache_hit", |b| {
        b.iter(|| {
            let n = *rotation.next_key();
            black_box(memory.get_by(&(&n,), |k| k.0 == n))
        })
    });
    let mut rotation = Rotation::new(&keys);
    let before = near.info().hits;
    group.bench_function("near_hit", |b| {
        b.iter(|| {
            let n = *rotation.next_key();
            black_box(near.get_by_keeping(&(&n,), |k| k.0 == n, || (n,)))
        })
    });
    assert!(near.info().hits > before && near.info().misses == 0);
    group.finish();
}

#[cfg(feature = "redis")]
#[path = "../tests/support/servers.rs"]
mod servers;

#[cfg(not(feature = "redis"))]
fn near_hit_redis(_: &mut Criterion) {}

criterion_group!(
    benches,
    hit_maxsize_128,
    hit_with_ttl,
    miss_evicting_capacity_128,
    hit_string_key,
    near_hit_redis
);
criterion_main!(benches);
