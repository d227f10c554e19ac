//! Weighted caches: after every operation the total weight is within the bound, with every
//! policy and with several shards, and every value stored is present or was reported once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;

use crate::{BuildError, Cache, ManualClock, Policy, RemovalCause};

#[derive(Clone, Debug)]
enum Op {
    Get(u8),
    Insert(u8, u64),
    InsertIfAbsent(u8, u64),
    Remove(u8),
    Advance(u64),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..24;
    let weight = prop_oneof![4 => 0u64..20, 1 => 0u64..120];
    prop_oneof![
        5 => key.clone().prop_map(Op::Get),
        6 => (key.clone(), weight.clone()).prop_map(|(k, w)| Op::Insert(k, w)),
        2 => (key.clone(), weight).prop_map(|(k, w)| Op::InsertIfAbsent(k, w)),
        1 => key.prop_map(Op::Remove),
        1 => (0u64..30).prop_map(Op::Advance),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn total_weight_never_exceeds_the_bound(
        policy in prop::sample::select(Policy::ALL),
        max_weight in 0u64..100,
        maxsize in prop::option::of(1usize..10),
        shards in prop::sample::select(&[1usize, 2][..]),
        ttl in any::<bool>(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let clock = ManualClock::new();
        let reports: Arc<Mutex<Vec<(u32, RemovalCause)>>> = Arc::default();
        let log = Arc::clone(&reports);
        let mut builder = Cache::builder()
            .policy(policy)
            .weigher(|_: &u8, v: &(u32, u64)| v.1)
            .max_weight(max_weight)
            .shards(shards)
            .clock(clock.clone())
            .on_evict(move |_, v: &(u32, u64), cause| log.lock().unwrap().push((v.0, cause)));
        if let Some(n) = maxsize {
            builder = builder.maxsize(n);
        }
        if ttl {
            builder = builder.ttl(Duration::from_nanos(50));
        }
        let cache = builder.build().unwrap();
        let share = max_weight / shards as u64; // the smallest shard's share
        let mut stored: HashMap<u32, u8> = HashMap::new();
        for (step, op) in ops.into_iter().enumerate() {
            let serial = step as u32;
            match op {
                Op::Get(k) => drop(cache.get(&k)),
                Op::Insert(k, w) | Op::InsertIfAbsent(k, w) => {
                    let present = cache.peek(&k).is_some();
                    if matches!(op, Op::Insert(..)) {
                        cache.insert(k, (serial, w));
                    } else {
                        cache.insert_if_absent(k, (serial, w));
                    }
                    let now = cache.peek(&k);
                    let w_kept = w.max(1); // an entry weighs at least 1
                    if w_kept > max_weight {
                        prop_assert_ne!(now, Some((serial, w)), "heavier than the bound: not cached");
                    } else if w_kept <= share && !(present && matches!(op, Op::InsertIfAbsent(..))) {
                        prop_assert_eq!(now, Some((serial, w)), "step {}: just stored", step);
                    }
                    let reported = reports.lock().unwrap().iter().any(|r| r.0 == serial);
                    if now == Some((serial, w)) || reported {
                        stored.insert(serial, k);
                    }
                }
                Op::Remove(k) => drop(cache.remove(&k)),
                Op::Advance(n) => clock.advance(Duration::from_nanos(n)),
                Op::Clear => cache.clear(),
            }
            cache.validate(); // each shard's total within its share, and the weights add up
            prop_assert!(cache.weight() <= max_weight);
        }
        let _ = cache.info();
        let reported: HashMap<u32, RemovalCause> =
            reports.lock().unwrap().iter().copied().collect();
        prop_assert_eq!(reported.len(), reports.lock().unwrap().len(), "reported once");
        for (serial, k) in stored {
            let present = cache.peek(&k).is_some_and(|v| v.0 == serial);
            prop_assert!(present != reported.contains_key(&serial));
        }
    }
}

#[test]
fn a_weighted_cache_evicts_until_the_new_entry_fits() {
    let cache: Cache<u8, u64> = Cache::builder()
        .weigher(|_, v| *v)
        .max_weight(10)
        .build()
        .unwrap();
    assert_eq!((cache.maxsize(), cache.shard_count()), (None, 1));
    for k in 0..5 {
        cache.insert(k, 2); // 10 in all
    }
    cache.insert(9, 7); // evicts 0, 1, 2, 3 (the least recently used) to make room
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.weight(), 9);
    assert_eq!(cache.info().evictions, 4);
    cache.insert(4, 3); // replaces 4 (2 -> 3): fits in place
    assert_eq!(cache.weight(), 10);
    cache.insert(9, 11); // heavier than the bound: not cached, and the old 9 is gone
    assert_eq!((cache.get(&9), cache.weight()), (None, 3));
    cache.validate();
}

#[test]
fn maxsize_and_max_weight_bound_together() {
    let cache: Cache<u8, u64> = Cache::builder()
        .maxsize(3)
        .weigher(|_, v| *v)
        .max_weight(100)
        .build()
        .unwrap();
    for k in 0..10 {
        cache.insert(k, 1);
    }
    assert_eq!((cache.len(), cache.weight()), (3, 3));
}

#[test]
fn a_shard_holds_its_share_of_the_weight() {
    let cache: Cache<u32, u64> = Cache::builder()
        .weigher(|_, v| *v)
        .max_weight(100)
        .shards(4)
        .build()
        .unwrap();
    // 25 per shard: a value of 30 fits the whole bound but no shard.
    cache.insert(1, 30);
    assert_eq!(cache.get(&1), None);
    cache.insert(1, 25);
    assert_eq!(cache.get(&1), Some(25));
}

#[test]
fn a_weigher_and_a_max_weight_go_together() {
    let e = Cache::<u8, u8>::builder()
        .max_weight(5)
        .build()
        .unwrap_err();
    assert_eq!(e, BuildError::MaxWeightWithoutWeigher);
    let e = Cache::<u8, u8>::builder()
        .weigher(|_, _| 1)
        .build()
        .unwrap_err();
    assert_eq!(e, BuildError::WeigherWithoutMaxWeight);
}

/// The memos `#[memoize(maxweight = ...)]` makes (`weigh::weighed`): plain values, stamped
/// values (`refresh`, a stale window: the value weighed, not its stamp) and, with the `stores`
/// feature, a store's near cache and in-memory fallback, over values of random sizes.
mod memos {
    use proptest::prelude::*;

    use crate::memo::{Memo, Params};
    use crate::refresh::{Freshness, Stamped};
    use crate::weigh::{weighed, Weigher};
    use crate::{Policy, Weigh};

    fn params(policy: Policy) -> Params {
        Params {
            maxsize: None,
            ttl: Some(std::time::Duration::from_secs(3600)),
            ttl_jitter: 0.0,
            policy,
            negative_ttl: None,
        }
    }

    fn string_weight(value: &String) -> u64 {
        value.weight()
    }

    /// Sizes 0..300 (a `String` weighs 24 more); some values heavier than `max`.
    fn sizes() -> impl Strategy<Value = Vec<(u8, usize)>> {
        prop::collection::vec(
            (0u8..64, prop_oneof![9 => 0usize..300, 1 => 300usize..2000]),
            1..300,
        )
    }

    proptest! {
        #[test]
        fn a_weighed_memo_never_holds_more_than_its_weight(
            policy in prop::sample::select(Policy::ALL),
            max in 0u64..1500,
            ops in sizes(),
        ) {
            let weigher = Weigher::new(max, string_weight);
            let plain: Memo<u8, String> =
                weighed(Memo::new("plain", params(policy)), params(policy), weigher);
            let freshness = Freshness {
                ttl: std::time::Duration::from_secs(3600),
                refresh: Some(std::time::Duration::from_secs(60)),
                stale_while_revalidate: None,
                stale_if_error: None,
            };
            let fresh: Memo<u8, Stamped<String>> = weighed(
                Memo::fresh("fresh", params(policy), freshness),
                params(policy),
                weigher,
            );
            for (key, size) in ops {
                let value = "x".repeat(size);
                let heavy = value.weight() > max;
                plain.cache.insert(key, value.clone());
                fresh.cache.insert(key, fresh.stamp(value));
                prop_assert!(plain.cache.weight() <= max);
                prop_assert!(fresh.cache.weight() <= max);
                prop_assert_eq!(plain.cache.peek(&key).is_none(), heavy);
                prop_assert_eq!(fresh.cache.peek(&key).is_none(), heavy);
                // The stamp is not weighed: both hold the same values.
                prop_assert_eq!(plain.cache.weight(), fresh.cache.weight());
            }
            prop_assert_eq!(fresh.cache.ttl(), Some(freshness.retention()));
        }
    }

    #[cfg(feature = "stores")]
    proptest! {
        #[test]
        fn a_stores_in_memory_layers_never_hold_more_than_its_weight(
            max in 0u64..1500,
            ops in sizes(),
        ) {
            use crate::stored::store_memo_local;
            let memo = store_memo_local::<u8, String>(
                "a store never registered", "weighed", 0, 1, params(Policy::Lru), 1000,
                std::time::Duration::from_secs(60),
            );
            let memo = weighed(memo, params(Policy::Lru), Weigher::new(max, string_weight));
            let mut held = std::collections::HashMap::new();
            for (key, size) in ops {
                let value = "x".repeat(size);
                let heavy = value.weight() > max;
                memo.cache.insert(key, value.clone());
                held.insert(key, value);
                // In memory (the store is not registered): the fallback is weighed.
                let total: u64 = held
                    .iter()
                    .filter(|(k, v)| memo.cache.get(k).as_ref() == Some(v))
                    .map(|(_, v)| v.weight())
                    .sum();
                prop_assert!(total <= max, "{} > {}", total, max);
                prop_assert_eq!(memo.cache.get(&key).is_none(), heavy);
            }
        }
    }
}

/// Weights near `u64::MAX` with a bound of `u64::MAX` (an "unbounded" weighted cache whose
/// weigher reports huge sizes): the bound's arithmetic does not wrap, so two entries that
/// weigh more than half of it are never held at once. (The sums `total + weight` wrapped, and
/// three such entries were held with a total reported as 2^63.)
#[test]
fn weights_near_the_largest_bound_do_not_wrap() {
    let heavy = u64::MAX / 2 + 1;
    let cache: Cache<u64, u64> = Cache::builder()
        .weigher(move |_, &w| w)
        .max_weight(u64::MAX)
        .shards(1)
        .build()
        .unwrap();
    for key in 0..4 {
        cache.insert(key, heavy);
        assert_eq!(cache.len(), 1, "after key {key}");
        assert_eq!(cache.weight(), heavy);
        cache.validate();
    }
    // Replacing in place checks the bound the same way.
    cache.insert(3, u64::MAX);
    assert_eq!((cache.len(), cache.weight()), (1, u64::MAX));
    cache.insert(9, 1);
    assert_eq!((cache.len(), cache.weight()), (1, 1));
    cache.validate();
}

/// Values that weigh nothing still count: an entry weighs at least 1, so the weight bound also
/// bounds how many entries are kept (200,000 `()` values grew the cache without end before).
#[test]
fn values_that_weigh_nothing_are_bounded_too() {
    let cache: Cache<u64, ()> = Cache::builder()
        .weigher(|_, _| 0)
        .max_weight(10)
        .build()
        .unwrap();
    for key in 0..200_000 {
        cache.insert(key, ());
    }
    assert_eq!((cache.len(), cache.weight()), (10, 10));
}
