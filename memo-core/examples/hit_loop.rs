//! The hit path alone, for A/B runs of the core: `cargo run --release -p memo-core --example
//! hit_loop [ttl]`. A `Cache<u64, u64>` of maxsize 128 holding 100 hot keys; one thread, then two
//! threads sharing the cache, each looking the hot keys up in a fixed pseudo-random order.
//! Prints the minimum and the median ns per lookup over 15 rounds of 2M lookups per thread
//! (the minimum is the figure least disturbed by other processes on a shared machine).
//! `hit_loop ttl` (one hour) or `hit_loop ttl=MS`: with a ttl. `hit_loop miss=128 [ttl]`: the
//! miss that evicts instead (get, then insert), one thread; with `threads=2`, two threads missing
//! on one cache (what contention on its lock costs). `rounds=N`: N rounds instead of 15.
//! `policy=NAME` (`lru`, the default, `fifo`, `lfu`, `mru`, `adaptive`): that eviction policy.
//! For callgrind's exact counts: `rounds=1`, and the difference of two runs' counts over the
//! calls they differ by (the hit loop makes `rounds * 6M` lookups, the miss loop `rounds * 500k`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use memo_core::{Cache, Policy};

const CALLS: usize = 2_000_000;

/// Rounds per figure: 15, or `rounds=N` (fewer for callgrind: `rounds=1`).
fn rounds() -> usize {
    std::env::args()
        .find_map(|a| a.strip_prefix("rounds=")?.parse().ok())
        .unwrap_or(15)
}

/// The eviction policy: `policy=NAME`, else LRU.
fn policy() -> Policy {
    std::env::args()
        .find_map(|a| a.strip_prefix("policy=")?.parse().ok())
        .unwrap_or_default()
}

fn keys() -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 100).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        })
        .collect()
}

fn run(cache: &Cache<u64, u64>, keys: &[u64], offset: usize) -> f64 {
    let start = Instant::now();
    let mut acc = 0;
    for i in 0..CALLS {
        acc += cache
            .get(black_box(&keys[(i + offset) & 4095]))
            .unwrap_or(0);
    }
    black_box(acc);
    start.elapsed().as_nanos() as f64 / CALLS as f64
}

fn report(label: &str, mut xs: Vec<f64>) {
    xs.sort_by(f64::total_cmp);
    println!(
        "{label}: min {:.1} ns, median {:.1} ns",
        xs[0],
        xs[xs.len() / 2]
    );
}

/// One round of misses from the xorshift `state`, as a memoized function makes them: look up,
/// then insert (keys uniform over 1M, so nearly every call misses once the cache is full); ns per
/// call. Always inlined, and the state copied to a local: out of line, the loop ran 32 more
/// instructions a call, and its counts are the callgrind baseline of a miss (462 at 128).
#[inline(always)]
fn miss_round(cache: &Cache<u64, u64>, state: &mut u64) -> f64 {
    let mut x = *state;
    let start = Instant::now();
    for _ in 0..CALLS / 4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = (x % 1_000_000).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        if cache.get(black_box(&key)).is_none() {
            cache.insert(key, key);
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (CALLS / 4) as f64;
    *state = x;
    ns
}

/// The miss that evicts ([`miss_round`]), one thread, or with `threads=2` two threads on one
/// cache (the lock's contention).
fn misses(maxsize: usize, ttl: bool) {
    let mut builder = Cache::builder().maxsize(maxsize).policy(policy());
    if ttl {
        builder = builder.ttl(Duration::from_secs(3600));
    }
    let cache: Cache<u64, u64> = builder.build().expect("valid");
    if std::env::args().any(|a| a == "threads=2") {
        let (mut a, mut b) = (0x2545_f491_4f6c_dd1d_u64, 0x9e37_79b9_7f4a_7c15_u64);
        let xs: Vec<f64> = (0..rounds())
            .flat_map(|_| {
                std::thread::scope(|s| {
                    let one = s.spawn(|| miss_round(&cache, &mut a));
                    let two = s.spawn(|| miss_round(&cache, &mut b));
                    [one.join().expect("ran"), two.join().expect("ran")]
                })
            })
            .collect();
        return report(
            &format!("miss, maxsize {maxsize}, 2 threads, {}", policy().name()),
            xs,
        );
    }
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let xs: Vec<f64> = (0..rounds()).map(|_| miss_round(&cache, &mut x)).collect();
    report(
        &format!("miss, maxsize {maxsize}, ttl {ttl}, {}", policy().name()),
        xs,
    );
}

fn main() {
    // `ttl`: one hour; `ttl=MS`: that many milliseconds (under a second, every hit reads the clock).
    let ttl_ms: Option<u64> = std::env::args().find_map(|a| match a.as_str() {
        "ttl" => Some(3_600_000),
        a => a.strip_prefix("ttl=")?.parse().ok(),
    });
    let ttl = ttl_ms.is_some();
    if let Some(maxsize) = std::env::args().find_map(|a| a.strip_prefix("miss=")?.parse().ok()) {
        return misses(maxsize, ttl);
    }
    let mut builder = Cache::builder().maxsize(128).policy(policy());
    if let Some(ms) = ttl_ms {
        builder = builder.ttl(Duration::from_millis(ms));
    }
    let cache: Cache<u64, u64> = builder.build().expect("valid");
    let keys = keys();
    for &k in &keys {
        cache.insert(k, k);
    }
    assert_eq!(cache.len(), 100);
    // Each round starts with fresh entries (a short ttl would expire them mid-run).
    let refresh = || keys.iter().for_each(|&k| cache.insert(k, k));
    let one: Vec<f64> = (0..rounds())
        .map(|_| {
            refresh();
            run(&cache, &keys, 0)
        })
        .collect();
    let two: Vec<f64> = (0..rounds())
        .flat_map(|_| {
            refresh();
            std::thread::scope(|s| {
                let a = s.spawn(|| run(&cache, &keys, 0));
                let b = s.spawn(|| run(&cache, &keys, 7));
                [a.join().expect("ran"), b.join().expect("ran")]
            })
        })
        .collect();
    let mut label = ttl_ms.map_or(String::new(), |ms| format!(", ttl {ms} ms"));
    label += &format!(", {}", policy().name());
    report(&format!("1 thread{label}"), one);
    report(&format!("2 threads{label}"), two);
}
