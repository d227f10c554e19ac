//! The adaptive policy never falls more than 2 points below LRU, whatever the hasher's seed, on
//! a small subset of the generated traces of the hit-ratio tool (the full sweep:
//! `cargo run --release --example hit_ratio -- --seeds 32`). The cells are those where LRU is
//! optimal and the adaptive policy once fell 2 to 17 points below it, or came within half a
//! point of the line: back-and-forth sweeps and a sliding working set. The policy of session 7
//! (which started from frequency and followed leads of a tenth of a capacity) fails this at
//! zigzag-1000 at 500, 8.5 points below LRU on the first 6000 requests.

#[path = "../examples/hit_ratio/traces.rs"]
#[allow(dead_code)]
mod traces;

use std::hash::{BuildHasher, Hasher};

use memo::{Cache, Policy};

/// A hasher seeded by hand, so that one run can try many seeds.
#[derive(Clone)]
struct Seeded(u64);

impl BuildHasher for Seeded {
    type Hasher = std::hash::DefaultHasher;
    fn build_hasher(&self) -> Self::Hasher {
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write_u64(self.0);
        hasher
    }
}

/// Hits of `policy` at `size` on `keys`, replayed from a cold cache (get, insert on a miss).
fn hits(policy: Policy, size: usize, seed: u64, keys: &[u32]) -> usize {
    let cache: Cache<u32, (), Seeded> = Cache::builder()
        .maxsize(size)
        .policy(policy)
        .shards(1)
        .hasher(Seeded(seed))
        .build()
        .unwrap();
    keys.iter()
        .filter(|&&k| {
            let hit = cache.get(&k).is_some();
            if !hit {
                cache.insert(k, ());
            }
            hit
        })
        .count()
}

#[test]
fn adaptive_stays_within_two_points_of_lru_for_every_seed() {
    // (family, working set, cache size, requests replayed): debug builds are slow, so the
    // traces are cut short, which makes the cold start weigh more than in the full sweep.
    // zigzag-100 at 33 fell to 2.3 points below LRU when the window shrank back toward the
    // frequency copies as fast as it grew; zigzag-1000 at 800 is within 1.6 of the line.
    let cells = [
        ("zigzag", 100, 50, 8_000),
        ("zigzag", 100, 33, 8_000),
        ("zigzag", 100, 25, 8_000),
        ("sliding", 500, 250, 6_000),
        ("zigzag", 1000, 800, 20_000),
        // Where the cache, started as frequency, turned into LRU at the first turn of the sweep
        // and lost what main held (2.8 and 4.5 points below LRU over the whole traces).
        ("zigzag", 1000, 500, 6_000),
        ("zigzag", 5000, 2500, 15_000),
        ("zigzag", 5000, 1667, 15_000),
        // Sweeps whose centre and width drift: LRU and the frequency copies take turns at
        // leading; a constant score margin followed those turns to 2.1 points below LRU.
        ("drift", 500, 125, 40_000),
        // Where each switch between them cost the real cache up to a capacity of hits (2.2
        // points below LRU for seed 0 and 2.4 for the worst of 32 in the full sweep) until the
        // policy went back to LRU once its choices had cost more than its allowance.
        ("drift", 3000, 150, 60_000),
    ];
    for (family, w, size, len) in cells {
        let trace = traces::generate(family, w).expect("a known family");
        let keys = &trace.keys[..len];
        let lru = hits(Policy::Lru, size, 0, keys);
        for seed in 0..32 {
            let adaptive = hits(Policy::Adaptive, size, seed, keys);
            let gap = 100.0 * (lru as f64 - adaptive as f64) / len as f64;
            assert!(
                gap <= 2.0,
                "{family}-{w} at {size}, seed {seed}: adaptive {adaptive} hits, LRU {lru} \
                 ({gap:.2} points below)"
            );
        }
    }
}
