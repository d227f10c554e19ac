//! The hit path of each store, on loopback: the in-memory `Cache`, a `StoreCache` whose store
//! was never registered (in memory, through the adapter), the SQLite file, Redis and Memcached.
//! Redis and Memcached are real servers started by the bench on free loopback ports.
//!
//! Every lookup hits one of 100 stored keys `(u64,)` whose values are 64-byte strings.
//!
//! Then the same hits from an `async fn` (awaited; with `--features tokio`, Redis's through its
//! async multiplexed connection).
//!
//! `cargo bench -p memo-benches --bench backends --features redis,memcached,persistent -- --warm-up-time 1
//! --measurement-time 2` for a quick look.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

#[path = "../tests/support/servers.rs"]
mod servers;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use memo::stores::{self, MemcachedStore, PersistentStore, RedisStore, StoreCache};
use memo::Cache;
use servers::Server;

const KEYS: u64 = 100;

fn value(n: u64) -> String {
    format!("{n:064}")
}

/// A filled `StoreCache` on the store registered as `store`.
fn filled(store: &str) -> StoreCache<(u64,), String> {
    let cache = StoreCache::new(store, "bench::lookup").with_maxsize(None);
    for n in 0..KEYS {
        cache.insert((n,), value(n));
    }
    for n in 0..KEYS {
        assert_eq!(
            cache.get_by(&(&n,), |k| k.0 == n),
            Some(value(n)),
            "{store}"
        );
    }
    cache
}

/// Runs `future` to completion on this thread, parking between polls.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

fn hits(c: &mut Criterion) {
    let redis = Server::redis();
    let memcached = Server::memcached();
    let dir = std::env::temp_dir().join(format!("memo-bench-{}", std::process::id()));
    stores::register(
        "bench-redis",
        RedisStore::connect(&redis.redis_url()).unwrap(),
    );
    stores::register(
        "bench-memcached",
        MemcachedStore::connect(&memcached.address()).unwrap(),
    );
    stores::register(
        "bench-file",
        PersistentStore::open(dir.join("bench.sqlite")).unwrap(),
    );

    let memory: Cache<(u64,), String> = Cache::unbounded();
    for n in 0..KEYS {
        memory.insert((n,), value(n));
    }
    let caches = [
        ("adapter_in_memory", filled("bench-never-registered")),
        ("persistent_sqlite", filled("bench-file")),
        ("redis_loopback", filled("bench-redis")),
        ("memcached_loopback", filled("bench-memcached")),
    ];

    let mut group = c.benchmark_group("hit_u64_key_64B_value");
    group.sample_size(50);
    let mut n = 0u64;
    group.bench_function("memory_cache", |b| {
        b.iter(|| {
            n = (n + 1) % KEYS;
            black_box(memory.get_by(&(&n,), |k| k.0 == n))
        })
    });
    for (name, cache) in &caches {
        group.bench_function(*name, |b| {
            b.iter(|| {
                n = (n + 1) % KEYS;
                black_box(cache.get_by(&(&n,), |k| k.0 == n))
            })
        });
    }
    group.finish();

    // The same hits from an `async fn`: awaited on the store's I/O threads, or (feature
    // `tokio`, Redis) through the async multiplexed connection.
    let mut group = c.benchmark_group("hit_async_u64_key_64B_value");
    group.sample_size(50);
    for (name, cache) in &caches[1..] {
        group.bench_function(*name, |b| {
            b.iter(|| {
                n = (n + 1) % KEYS;
                black_box(block_on(cache.get_by_async(&(&n,), |k| k.0 == n)))
            })
        });
    }
    group.finish();
    for (name, cache) in &caches {
        let health = stores::health(cache.store_name());
        assert!(
            health.as_ref().is_none_or(|h| h.errors == 0),
            "{name}: {health:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = hits
}
criterion_main!(benches);
