//! Eviction listeners beyond the reference model (`model.rs` checks every cause against it for
//! the exact policies): the adaptive policy, a listener that panics, and dropping the cache.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;

use crate::{Cache, ManualClock, Policy, RemovalCause};

type Reports = Arc<Mutex<Vec<(u8, u32, RemovalCause)>>>;

#[derive(Clone, Debug)]
enum Op {
    Get(u8),
    Insert(u8),
    InsertIfAbsent(u8),
    Remove(u8),
    Advance(u64),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..16;
    prop_oneof![
        6 => key.clone().prop_map(Op::Get),
        5 => key.clone().prop_map(Op::Insert),
        2 => key.clone().prop_map(Op::InsertIfAbsent),
        1 => key.prop_map(Op::Remove),
        2 => (0u64..30).prop_map(Op::Advance),
        1 => Just(Op::Clear),
    ]
}

/// Runs `ops` (each stored value unique) against a cache whose listener records its reports
/// and panics on every value that `panics` picks; checks after every step that the cache is
/// valid, that no value was reported twice or while present, and at the end that every value
/// stored is either still present or was reported exactly once.
fn run(policy: Policy, maxsize: usize, jitter: f64, ops: &[Op], panics: fn(u32) -> bool) {
    let clock = ManualClock::new();
    let reports = Reports::default();
    let log = Arc::clone(&reports);
    let cache: Cache<u8, u32> = Cache::builder()
        .maxsize(maxsize)
        .policy(policy)
        .ttl(Duration::from_nanos(50))
        .ttl_jitter(jitter)
        .clock(clock.clone())
        .on_evict(move |k: &u8, v: &u32, cause| {
            log.lock().unwrap().push((*k, *v, cause));
            assert!(!panics(*v), "the listener panics on {v}");
        })
        .build()
        .unwrap();
    // The values that entered the cache (an insert_if_absent of a present key stores nothing).
    let mut stored: HashMap<u32, u8> = HashMap::new();
    for (step, op) in ops.iter().enumerate() {
        let v = step as u32;
        let call = catch_unwind(AssertUnwindSafe(|| match *op {
            Op::Get(k) => drop(cache.get(&k)),
            Op::Insert(k) => cache.insert(k, v),
            Op::InsertIfAbsent(k) => cache.insert_if_absent(k, v),
            Op::Remove(k) => drop(cache.remove(&k)),
            Op::Advance(n) => clock.advance(Duration::from_nanos(n)),
            Op::Clear => cache.clear(),
        }));
        if let Op::Insert(k) | Op::InsertIfAbsent(k) = *op {
            let now = cache.peek(&k);
            let reported = reports.lock().unwrap().iter().any(|r| r.1 == v);
            if now == Some(v) || reported {
                stored.insert(v, k);
            }
        }
        // A panic comes from the listener only, after the cache's work is done.
        // `len` reclaims, so it may report (and panic) too: then `validate` reports nothing.
        let flushed = catch_unwind(AssertUnwindSafe(|| cache.len()));
        cache.validate();
        let reports = reports.lock().unwrap().clone();
        if call.is_err() || flushed.is_err() {
            assert!(
                reports.iter().any(|r| panics(r.1)),
                "step {step}: a panic without a report"
            );
        }
        let mut seen = std::collections::HashSet::new();
        for &(k, v, cause) in reports.iter() {
            assert!(seen.insert(v), "step {step}: {v} reported twice");
            assert_ne!(
                cache.peek(&k),
                Some(v),
                "step {step}: {v} reported {cause}, present"
            );
        }
    }
    // info() sweeps and reclaims: every value is then present, or reported.
    drop(catch_unwind(AssertUnwindSafe(|| cache.info())));
    let reported: HashMap<u32, RemovalCause> =
        reports.lock().unwrap().iter().map(|r| (r.1, r.2)).collect();
    for (&v, &k) in &stored {
        let present = cache.peek(&k) == Some(v);
        assert!(
            present != reported.contains_key(&v),
            "{v}: present {present}, reported {:?}",
            reported.get(&v)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The adaptive policy has no exact model: what every cache with a listener must do.
    #[test]
    fn every_value_is_present_or_reported_once(
        policy in prop::sample::select(Policy::ALL),
        maxsize in 0usize..8,
        jitter in prop::sample::select(&[0.0, 0.5][..]),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        run(policy, maxsize, jitter, &ops, |_| false);
    }

    /// A listener that panics (on every third value) leaves every shard valid, and the other
    /// values of the same call are still reported.
    #[test]
    fn a_panicking_listener_leaves_the_cache_consistent(
        policy in prop::sample::select(Policy::ALL),
        maxsize in 1usize..8,
        ops in prop::collection::vec(op(), 1..150),
    ) {
        run(policy, maxsize, 0.0, &ops, |v| v % 3 == 0);
    }
}

#[test]
fn clear_reports_every_value_even_when_the_listener_panics() {
    let reports = Reports::default();
    let log = Arc::clone(&reports);
    let cache: Cache<u8, u32> = Cache::builder()
        .maxsize(64)
        .shards(4)
        .on_evict(move |k: &u8, v: &u32, cause| {
            log.lock().unwrap().push((*k, *v, cause));
            assert_ne!(*v, 7, "panics on 7");
        })
        .build()
        .unwrap();
    for k in 0..20u8 {
        cache.insert(k, u32::from(k));
    }
    let cleared = catch_unwind(AssertUnwindSafe(|| cache.clear()));
    assert!(cleared.is_err(), "the listener's panic reaches the caller");
    assert!(cache.is_empty(), "every shard was cleared");
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 20);
    assert!(
        reports.iter().all(|r| r.2 == RemovalCause::Cleared),
        "{reports:?}, {:?}",
        cache.info()
    );
    cache.validate();
}

#[test]
fn dropping_the_cache_reports_nothing_still_in_it() {
    let reports = Reports::default();
    let log = Arc::clone(&reports);
    let cache: Cache<u8, u32> = Cache::builder()
        .maxsize(4)
        .on_evict(move |k: &u8, v: &u32, cause| log.lock().unwrap().push((*k, *v, cause)))
        .build()
        .unwrap();
    for k in 0..6u8 {
        cache.insert(k, u32::from(k));
    }
    drop(cache);
    let reports = reports.lock().unwrap();
    assert_eq!(
        *reports,
        [(0, 0, RemovalCause::Size), (1, 1, RemovalCause::Size)]
    );
}

#[test]
fn a_listener_is_called_without_the_shard_lock() {
    // The listener uses the cache it listens to: it would deadlock under the shard's lock.
    type Slot = Arc<Mutex<Option<Arc<Cache<u8, u8>>>>>;
    let cache: Slot = Arc::default();
    let seen = Arc::clone(&cache);
    let built = Arc::new(
        Cache::builder()
            .maxsize(1)
            .on_evict(move |k: &u8, _: &u8, _| {
                let cache = seen.lock().unwrap().clone();
                if let (Some(cache), 1) = (cache, *k) {
                    assert_eq!(cache.len(), 1);
                    cache.insert(100, 100);
                }
            })
            .build()
            .unwrap(),
    );
    *cache.lock().unwrap() = Some(Arc::clone(&built));
    built.insert(1, 1);
    built.insert(2, 2); // evicts 1, whose report stores 100 (evicting 2)
    assert_eq!(built.peek(&100), Some(100));
    cache.lock().unwrap().take();
}
