//! Behaviour of the LFU and adaptive policies through the public cache.

use crate::{Cache, Policy};

fn cache(policy: Policy, maxsize: usize) -> Cache<u64, u64> {
    Cache::builder()
        .maxsize(maxsize)
        .policy(policy)
        .build()
        .unwrap()
}

/// Replays `keys` (get, then insert on a miss) and returns the hits.
fn replay<S: std::hash::BuildHasher>(
    cache: &Cache<u64, u64, S>,
    keys: impl IntoIterator<Item = u64>,
) -> usize {
    keys.into_iter()
        .filter(|&k| {
            let hit = cache.get(&k).is_some();
            if !hit {
                cache.insert(k, k);
            }
            hit
        })
        .count()
}

#[test]
fn lfu_evicts_least_frequently_used_then_least_recently_used() {
    let cache = cache(Policy::Lfu, 3);
    cache.insert(1, 1);
    cache.insert(2, 2);
    cache.insert(3, 3);
    cache.get(&1);
    cache.get(&1);
    cache.get(&3);
    // Uses: 1 three times, 3 twice, 2 once.
    cache.insert(4, 4);
    assert_eq!(cache.peek(&2), None, "the least frequently used goes");
    // 4 has the fewest uses now.
    cache.insert(5, 5);
    assert_eq!(cache.peek(&4), None);
    assert!(cache.peek(&1).is_some() && cache.peek(&3).is_some());
    cache.get(&3);
    cache.get(&3); // 3 now has four uses, 1 three
    cache.insert(6, 6); // evicts 5, the only one with a single use
    cache.get(&6);
    cache.get(&6); // 6: three uses, tied with 1, and used more recently
    cache.insert(7, 7);
    assert_eq!(cache.peek(&5), None);
    assert_eq!(
        cache.peek(&1),
        None,
        "1 and 6 tie; 1 was used less recently"
    );
    assert!(cache.peek(&6).is_some() && cache.peek(&7).is_some());
    cache.validate();
}

#[test]
fn lfu_forgets_the_count_of_a_removed_key() {
    let cache = cache(Policy::Lfu, 2);
    cache.insert(1, 1);
    for _ in 0..5 {
        cache.get(&1);
    }
    cache.insert(2, 2);
    cache.insert(3, 3); // evicts 2: one use against six
    assert_eq!(cache.peek(&2), None);
    cache.remove(&1);
    cache.insert(1, 1); // back with one use, tied with 3 and more recent
    cache.insert(4, 4); // evicts 3, the least recent of the two
    assert_eq!(cache.peek(&3), None);
    cache.insert(5, 5); // 1 and 4 tie at one use: 1 is older
    assert_eq!(cache.peek(&1), None, "six earlier uses were forgotten");
    cache.validate();
}

#[test]
fn adaptive_keeps_hot_keys_through_scans_once_it_has_seen_them_come_back() {
    let hot = 0..50u64;
    // The hot keys survivors of each of `scans` scans of 5000 new keys, each after 20 rounds of
    // the hot keys.
    let survivors = |policy, scans: u64| {
        let cache = cache(policy, 100);
        (0..scans)
            .map(|i| {
                for _ in 0..20 {
                    replay(&cache, hot.clone());
                }
                let scan = 1_000 + i * 10_000;
                replay(&cache, scan..scan + 5_000);
                cache.validate();
                hot.clone().filter(|k| cache.peek(k).is_some()).count()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(survivors(Policy::Lru, 5), [0; 5], "every scan flushes LRU");
    // The adaptive policy starts as LRU (which keeps it within 2 points of LRU on every trace),
    // so the first scans flush it too; each return of the hot keys after a scan is a lead of
    // the frequency copies over LRU, and by the third scan it has switched to frequency.
    let kept = survivors(Policy::Adaptive, 5);
    assert!(
        kept[2..].iter().all(|&k| k >= 40),
        "hot keys kept through each scan: {kept:?}"
    );
}

#[test]
fn adaptive_keeps_the_entry_just_stored() {
    let cache = cache(Policy::Adaptive, 10);
    for k in 0..1_000 {
        cache.insert(k, k);
        assert_eq!(cache.peek(&k), Some(k));
        assert!(cache.len() <= 10);
    }
    cache.validate();
}

#[test]
fn adaptive_hits_like_lru_on_short_lived_keys() {
    // Each key is used twice, 300 new keys apart: recency is everything, frequency nothing.
    let keys = (0..30_000u64)
        .flat_map(|i| [Some(i), i.checked_sub(300)])
        .flatten();
    let lru = replay(&cache(Policy::Lru, 1_000), keys.clone());
    let adaptive = replay(&cache(Policy::Adaptive, 1_000), keys.clone());
    assert!(lru > 29_000, "LRU hits every second use: {lru}");
    assert!(adaptive * 10 > lru * 9, "adaptive {adaptive} vs LRU {lru}");
}

/// A hasher seeded by hand, so that a test can try many seeds in one run.
#[derive(Clone)]
struct Seeded(u64);

impl std::hash::BuildHasher for Seeded {
    type Hasher = std::hash::DefaultHasher;
    fn build_hasher(&self) -> Self::Hasher {
        use std::hash::Hasher;
        let mut hasher = std::hash::DefaultHasher::new();
        hasher.write_u64(self.0);
        hasher
    }
}

/// A loop of 500 keys through 100 entries: LRU never hits; OPT would hit 3960 times in 20000,
/// adaptive about 3400. Whatever the hash seed: the sketch's and the ghosts' false positives
/// depend on it, and they once steered the window to LRU for 7 seeds in 1000.
#[test]
fn adaptive_beats_lru_on_a_loop_larger_than_the_cache_for_every_seed() {
    let keys = (0..20_000u64).map(|i| i % 500);
    let lru = replay(&cache(Policy::Lru, 100), keys.clone());
    assert_eq!(lru, 0, "a loop larger than the cache defeats LRU");
    for seed in 0..128 {
        let cache = Cache::builder()
            .maxsize(100)
            .policy(Policy::Adaptive)
            .hasher(Seeded(seed))
            .build()
            .unwrap();
        let hits = keys
            .clone()
            .filter(|&k| {
                let hit = cache.get(&k).is_some();
                if !hit {
                    cache.insert(k, k);
                }
                hit
            })
            .count();
        assert!(hits > 3_000, "seed {seed}: adaptive hit {hits} of 20000");
    }
}

#[test]
fn every_policy_round_trips_through_its_name() {
    for &policy in Policy::ALL {
        assert_eq!(policy.name().parse::<Policy>(), Ok(policy));
    }
    assert!("lfu2".parse::<Policy>().unwrap_err().contains("adaptive"));
}

/// The shard of a key depends on all 32 high bits of its hash, not only the lowest of them:
/// with a hash whose bits 32..40 are constant (as the default hasher's bits 32..34 are for small
/// integer keys under about one process seed in a hundred: a listener test that expected no
/// eviction from 20 keys in 4 shards of 16 failed 9 times in 800 runs), 20 keys still fill
/// every shard and evict nothing.
#[test]
fn the_shard_index_mixes_the_high_bits_of_the_hash() {
    #[derive(Clone, Default)]
    struct HighBits;
    struct Hashed(u64);
    impl std::hash::Hasher for Hashed {
        fn finish(&self) -> u64 {
            // Low 32 bits (the shard's own index) vary; bits 32..40 never do.
            (self.0 << 40) | (self.0.wrapping_mul(0x9e37_79b9) & 0xffff_ffff)
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0 * 31 + u64::from(b);
            }
        }
    }
    impl std::hash::BuildHasher for HighBits {
        type Hasher = Hashed;
        fn build_hasher(&self) -> Hashed {
            Hashed(0)
        }
    }
    let cache: Cache<u8, u8, HighBits> = Cache::builder()
        .maxsize(64)
        .shards(4)
        .hasher(HighBits)
        .build()
        .unwrap();
    for k in 0..20u8 {
        cache.insert(k, k);
    }
    let info = cache.info();
    assert_eq!(
        (info.evictions, info.currsize),
        (0, 20),
        "20 keys over 4 shards of 16"
    );
}

/// A large shard's last index is sized for its capacity (a load just under 3/4), not the next
/// power of two (which left 1M entries at a load of 0.48: 8 more bytes each); a small one keeps
/// its sparser power of two.
#[test]
fn a_full_large_shard_has_an_index_sized_for_its_capacity() {
    let large: Cache<u32, u32> = Cache::new(100_000);
    for k in 0..100_000 {
        large.insert(k, k);
    }
    assert_eq!(large.index_buckets(), 100_000 * 4 / 3 + 2);
    large.validate();
    for k in 100_000..150_000 {
        large.insert(k, k);
    }
    assert_eq!((large.len(), large.get(&149_999)), (100_000, Some(149_999)));
    large.validate();
    let small: Cache<u32, u32> = Cache::new(10_000);
    for k in 0..10_000 {
        small.insert(k, k);
    }
    assert_eq!(small.index_buckets(), 32_768, "where its doubling got to");
}

/// Zipf 0.99 over 200k keys at maxsize 2000 (a hundredth of them), 200k requests of warm-up
/// then 1M measured: keeping the 2000 most popular keys forever would hit 62.50% of them. The
/// adaptive policy's admission compares frequency estimates of keys that Zipf's tail brings
/// about once per sketch period: with eight counters per entry and a history of ten capacities
/// it hit 61.15% (seed 0), 1.35 points below; with sixteen counters and sixty capacities 61.57%
/// to 61.80% for seeds 0 to 3. The trace and the seeds are fixed, so the result is too.
#[test]
fn adaptive_keeps_zipfs_popular_keys_near_the_static_optimum() {
    use rand::{Rng, SeedableRng};
    const KEYS: usize = 200_000;
    const CAPACITY: usize = 2_000;
    const WARM_UP: usize = 200_000;
    const MEASURED: usize = 1_000_000;
    let weights: Vec<f64> = (1..=KEYS).map(|rank| (rank as f64).powf(-0.99)).collect();
    let mut cdf = Vec::with_capacity(KEYS);
    let mut total = 0.0;
    for w in &weights {
        total += w;
        cdf.push(total);
    }
    let optimum = weights[..CAPACITY].iter().sum::<f64>() / total;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let keys: Vec<u64> = (0..WARM_UP + MEASURED)
        .map(|_| {
            let u = rng.r#gen::<f64>() * total;
            cdf.partition_point(|&c| c < u).min(KEYS - 1) as u64
        })
        .collect();
    for seed in 0..4 {
        let cache = Cache::builder()
            .maxsize(CAPACITY)
            .policy(Policy::Adaptive)
            .shards(1)
            .hasher(Seeded(seed))
            .build()
            .unwrap();
        replay(&cache, keys[..WARM_UP].iter().copied());
        let hits = replay(&cache, keys[WARM_UP..].iter().copied());
        let ratio = hits as f64 / MEASURED as f64;
        assert!(
            ratio > optimum - 0.012,
            "seed {seed}: adaptive hit {:.2}% on Zipf, keeping the most popular keys {:.2}%",
            100.0 * ratio,
            100.0 * optimum
        );
    }
}
