//! Scratch measurement for the issue-11 note (not committed).
#[path = "../tests/support/servers.rs"]
mod servers;
use memo::stores::{self, MemcachedStore, PersistentStore, RedisStore, StoreCache};
use servers::Server;
use std::time::{Duration, Instant};

#[memo::memoize(store = "m-async")]
async fn square(n: u64) -> u64 {
    n * n
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

fn main() {
    let redis = Server::redis();
    let memcached = Server::memcached();
    // admin with 1M unrelated keys
    stores::register("m-admin", RedisStore::connect(&redis.redis_url()).unwrap());
    let cache: StoreCache<(u64,), u64> = StoreCache::new("m-admin", "m::f");
    for n in 0..100 {
        cache.insert((n,), n);
    }
    redis.redis_cli(&[
        "EVAL",
        "for i=1,1000000 do redis.call('SET','unrelated:'..i,'v') end",
        "0",
    ]);
    redis.redis_cli(&["CONFIG", "RESETSTAT"]);
    let t = Instant::now();
    let info = cache.info();
    let ti = t.elapsed();
    let t = Instant::now();
    cache.reset();
    let tc = t.elapsed();
    println!(
        "admin 1M: info {ti:.2?} (known {}), clear {tc:.2?}",
        info.currsize_known
    );
    redis.redis_cli(&["FLUSHALL"]);

    // hit latency per store, sync and async
    let dir = std::env::temp_dir().join(format!("memo-measure-{}.sqlite", std::process::id()));
    stores::register("h-redis", RedisStore::connect(&redis.redis_url()).unwrap());
    stores::register(
        "h-memcached",
        MemcachedStore::connect(&memcached.address()).unwrap(),
    );
    stores::register("h-file", PersistentStore::open(&dir).unwrap());
    for store in ["h-redis", "h-memcached", "h-file"] {
        let cache: StoreCache<(u64,), String> = StoreCache::new(store, "m::hit");
        for n in 0..100 {
            cache.insert((n,), format!("{n:064}"));
        }
        let t = Instant::now();
        for i in 0..5000u64 {
            let n = i % 100;
            assert!(cache.get_by(&(&n,), |k| k.0 == n).is_some());
        }
        let sync = t.elapsed() / 5000;
        let t = Instant::now();
        block_on(async {
            for i in 0..5000u64 {
                let n = i % 100;
                assert!(cache.get_by_async(&(&n,), |k| k.0 == n).await.is_some());
            }
        });
        let asyn = t.elapsed() / 5000;
        println!("hit {store}: sync {sync:.1?}, async {asyn:.1?}");
    }
    let _ = std::fs::remove_file(&dir);

    stores::register("m-async", RedisStore::connect(&redis.redis_url()).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for n in 0..100 {
            square(n).await;
        }
        let gap = |phase: &'static str, frozen: bool| {
            let redis = &redis;
            async move {
                let max = std::rc::Rc::new(std::cell::Cell::new(Duration::ZERO));
                let stop = std::rc::Rc::new(std::cell::Cell::new(false));
                let (m, s) = (max.clone(), stop.clone());
                let local = tokio::task::LocalSet::new();
                local.run_until(async move {
                    let ticker = tokio::task::spawn_local(async move {
                        let mut last = Instant::now();
                        while !s.get() {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            let now = Instant::now();
                            m.set(m.get().max(now - last));
                            last = now;
                        }
                    });
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if frozen { redis.pause(); }
                    let t = Instant::now();
                    let mut slowest = Duration::ZERO;
                    for i in 0..2000u64 {
                        let c = Instant::now();
                        square(i % 100).await;
                        slowest = slowest.max(c.elapsed());
                        if i % 20 == 0 { tokio::task::yield_now().await; }
                    }
                    let el = t.elapsed();
                    if frozen { redis.resume(); }
                    stop.set(true);
                    ticker.await.unwrap();
                    println!("{phase}: 2000 calls in {el:.2?}, slowest call {slowest:.2?}, largest ticker gap {:.2?}", max.get());
                }).await;
            }
        };
        gap("up", false).await;
        gap("frozen", true).await;
    });
}
