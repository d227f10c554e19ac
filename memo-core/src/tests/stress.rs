//! Many threads mixing hits, misses, inserts, removals, clears and expiry on one cache; the
//! invariants are checked while they run and after.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::{Cache, ManualClock, Policy};

fn hammer(policy: Policy, maxsize: usize, shards: usize, ttl: bool) {
    let clock = ManualClock::new();
    let mut builder = Cache::<u32, u64>::builder()
        .maxsize(maxsize)
        .policy(policy)
        .shards(shards)
        .clock(clock.clone());
    if ttl {
        builder = builder.ttl(Duration::from_micros(50));
    }
    let cache = Arc::new(builder.build().unwrap());
    let lookups = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let (cache, lookups, clock) = (cache.clone(), lookups.clone(), clock.clone());
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(t);
                for _ in 0..20_000 {
                    let key = rng.gen_range(0..maxsize as u32 * 3);
                    match rng.gen_range(0..100) {
                        0..=59 => {
                            lookups.fetch_add(1, Ordering::Relaxed);
                            if let Some(v) = cache.get(&key) {
                                assert_eq!(v, u64::from(key) * 7, "a value belongs to its key");
                            }
                        }
                        60..=89 => cache.insert(key, u64::from(key) * 7),
                        90..=96 => {
                            cache.remove(&key);
                        }
                        97 => clock.advance(Duration::from_micros(10)),
                        _ => {
                            if rng.gen_ratio(1, 20) {
                                cache.clear();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let checker = {
        let (cache, stop) = (cache.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                cache.validate();
                let info = cache.info();
                assert!(info.currsize <= maxsize, "over maxsize: {}", info.currsize);
                std::thread::yield_now();
            }
        })
    };
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    checker.join().unwrap();
    cache.validate();
    let info = cache.info();
    assert_eq!(info.hits + info.misses, lookups.load(Ordering::Relaxed));
    assert!(info.currsize <= maxsize);
    assert!(info.hits > 0 && info.misses > 0 && info.evictions > 0);
    if ttl {
        assert!(info.expirations > 0);
    }
}

#[test]
fn threads_mixing_every_operation_keep_the_invariants() {
    for &policy in Policy::ALL {
        hammer(policy, 64, 1, false);
        hammer(policy, 64, 4, true);
    }
}

/// Heap-owning keys and values under lock-free readers: a slot reused while a reader still looks
/// at it would show up as a value of another key, a torn string, or a crash.
#[test]
fn lock_free_readers_see_only_whole_values_of_their_key() {
    for &policy in &[Policy::Lru, Policy::Fifo, Policy::Adaptive] {
        let cache: Arc<Cache<String, Arc<String>>> =
            Arc::new(Cache::builder().maxsize(32).policy(policy).build().unwrap());
        let value_of = |k: u32| Arc::new(format!("value of {k} ").repeat(k as usize % 7 + 1));
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    let mut rng = StdRng::seed_from_u64(t + 100);
                    for _ in 0..30_000 {
                        let k = rng.gen_range(0..100u32);
                        let key = format!("key {k}");
                        match rng.gen_range(0..10) {
                            0..=6 => match cache.get(key.as_str()) {
                                Some(v) => assert_eq!(*v, *value_of(k), "value of {key}"),
                                None => cache.insert(key, value_of(k)),
                            },
                            7 | 8 => cache.insert(key, value_of(k)),
                            _ => {
                                if let Some(v) = cache.remove(key.as_str()) {
                                    assert_eq!(*v, *value_of(k));
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        cache.validate();
        assert!(cache.len() <= 32);
    }
}

/// A reader stuck in a value's `Clone` (a slow clone, a preempted thread) holds back the one
/// entry it reads: while a writer stores distinct keys, the values alive (counted by their
/// `Clone` and `Drop`) stay within maxsize plus the reserve and one per stripe, and the slots
/// handed out do not grow with the number of inserts.
#[test]
fn a_reader_stalled_in_clone_holds_back_only_its_entry() {
    static LIVE: AtomicU64 = AtomicU64::new(0);
    static STALL: AtomicBool = AtomicBool::new(false);
    static INSIDE: AtomicBool = AtomicBool::new(false);

    struct Val;
    impl Val {
        fn new() -> Self {
            LIVE.fetch_add(1, Ordering::SeqCst);
            Val
        }
    }
    impl Clone for Val {
        fn clone(&self) -> Self {
            if STALL.load(Ordering::SeqCst) {
                INSIDE.store(true, Ordering::SeqCst);
                while STALL.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
            }
            Val::new()
        }
    }
    impl Drop for Val {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }

    let maxsize = 1000;
    let cache: Arc<Cache<u64, Val>> = Arc::new(Cache::new(maxsize));
    cache.insert(0, Val::new());
    STALL.store(true, Ordering::SeqCst);
    let reader = {
        let cache = cache.clone();
        std::thread::spawn(move || cache.get(&0).is_some())
    };
    while !INSIDE.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let stripes = crate::concurrent::stripe::Stripes::new().len();
    let bound = (maxsize + crate::concurrent::shard::RESERVE + stripes + 1) as u64;
    let mut peak = 0;
    for key in 1..200_000u64 {
        cache.insert(key, Val::new());
        peak = peak.max(LIVE.load(Ordering::SeqCst));
    }
    assert!(peak <= bound, "{peak} values alive, bound {bound}");
    assert!(cache.slots_handed_out() as u64 <= bound);
    STALL.store(false, Ordering::SeqCst);
    assert!(reader.join().unwrap(), "the stalled reader got its value");
    cache.validate();
    drop(cache);
    assert_eq!(LIVE.load(Ordering::SeqCst), 0, "every value dropped");
}

/// The coarse clock's thread starves when CPU-bound threads outnumber the cores, and its time
/// falls behind; entries must still never be returned past their ttl. Two threads insert a key,
/// then look it up (by `get` and `peek`) until it is gone, while four CPU-bound threads per core
/// spin; the age of every value returned, from after its insert returned to before the lookup
/// began, stays under the ttl (entries near their deadline are confirmed by a real clock read).
#[test]
fn a_starved_coarse_clock_never_returns_an_entry_past_its_ttl() {
    use std::time::Instant;

    const TTL: Duration = Duration::from_millis(50);
    let cache: Arc<Cache<u64, u64>> =
        Arc::new(Cache::builder().maxsize(1000).ttl(TTL).build().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinners: Vec<_> = (0..cores * 4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                }
            })
        })
        .collect();
    let until = Instant::now() + Duration::from_millis(1500);
    let measurers: Vec<_> = (0..2u64)
        .map(|t| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let (mut worst, mut returned) = (Duration::ZERO, 0u64);
                let mut key = t << 32;
                while Instant::now() < until {
                    key += 1;
                    cache.insert(key, key);
                    let inserted = Instant::now();
                    for i in 0u64.. {
                        let before = Instant::now();
                        let found = if i % 2 == 0 {
                            cache.get(&key)
                        } else {
                            cache.peek(&key)
                        };
                        match found {
                            Some(v) => {
                                assert_eq!(v, key);
                                worst = worst.max(before - inserted);
                                returned += 1;
                            }
                            None => break,
                        }
                        std::thread::yield_now();
                    }
                }
                (worst, returned)
            })
        })
        .collect();
    let results: Vec<_> = measurers.into_iter().map(|m| m.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    spinners.into_iter().for_each(|s| s.join().unwrap());
    for (worst, returned) in results {
        assert!(returned > 0, "the values were returned while fresh");
        assert!(
            worst < TTL,
            "a value returned {worst:?} after its insert, ttl {TTL:?}"
        );
    }
}
