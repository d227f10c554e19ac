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
                    if w > max_weight {
                        prop_assert_ne!(now, Some((serial, w)), "heavier than the bound: not cached");
                    } else if w <= share && !(present && matches!(op, Op::InsertIfAbsent(..))) {
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
