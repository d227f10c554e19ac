//! A naive reference cache (a `Vec` in use order, a deadline and a use count per entry) that the
//! real store must match after every operation, for every exact policy, with and without a ttl.
//! The adaptive policy has no exact reference: it is checked against what any cache must do.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use std::sync::{Arc, Mutex};

use crate::{Cache, ManualClock, Policy, RemovalCause};

/// What an eviction listener was told, in order.
type Reports = Arc<Mutex<Vec<(u8, u32, RemovalCause)>>>;

/// The reference: entries front = most recently used (or inserted, for FIFO).
struct Model {
    policy: Policy,
    maxsize: usize,
    ttl: Option<u64>,
    now: u64,
    entries: Vec<(u8, u32, u64, u64)>, // key, value, deadline, uses
    hits: u64,
    misses: u64,
    evictions: u64,
    expirations: u64,
    /// Every value that left, and why: what the eviction listener must have been told.
    removed: Vec<(u8, u32, RemovalCause)>,
}

impl Model {
    fn alive(&self, i: usize) -> bool {
        self.ttl.is_none() || self.entries[i].2 > self.now
    }

    fn position(&self, key: u8) -> Option<usize> {
        self.entries.iter().position(|e| e.0 == key)
    }

    fn expire(&mut self, i: usize) {
        let e = self.entries.remove(i);
        self.expirations += 1;
        self.removed.push((e.0, e.1, RemovalCause::Expired));
    }

    fn get(&mut self, key: u8) -> Option<u32> {
        match self.position(key) {
            Some(i) if self.alive(i) => {
                self.hits += 1;
                self.entries[i].3 += 1;
                let e = self.entries[i];
                if self.policy != Policy::Fifo {
                    self.entries.remove(i);
                    self.entries.insert(0, e);
                }
                Some(e.1)
            }
            Some(i) => {
                self.expire(i);
                self.misses += 1;
                None
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    fn insert(&mut self, key: u8, value: u32, replace: bool) {
        if self.maxsize == 0 {
            self.removed.push((key, value, RemovalCause::Size));
            return;
        }
        let deadline = self.ttl.map_or(0, |t| self.now + t);
        if let Some(i) = self.position(key) {
            if self.alive(i) {
                if replace {
                    let old = self.entries[i];
                    self.removed.push((old.0, old.1, RemovalCause::Replaced));
                }
                let uses = self.entries[i].3 + 1; // a replacement counts as a use
                if replace && self.policy == Policy::Fifo {
                    // An update is not a new insertion: the key keeps its place in line.
                    self.entries[i] = (key, value, deadline, uses);
                } else if replace {
                    self.entries.remove(i);
                    self.entries.insert(0, (key, value, deadline, uses));
                }
                return;
            }
            self.expire(i);
        }
        while let Some(i) = (0..self.entries.len()).find(|&i| !self.alive(i)) {
            self.expire(i);
        }
        if self.entries.len() >= self.maxsize {
            let victim = match self.policy {
                Policy::Mru => 0,
                // The fewest uses; among those the least recent (the last in use order).
                Policy::Lfu => (0..self.entries.len())
                    .rev()
                    .min_by_key(|&i| self.entries[i].3)
                    .expect("a full cache has entries"),
                _ => self.entries.len() - 1,
            };
            let e = self.entries.remove(victim);
            self.evictions += 1;
            self.removed.push((e.0, e.1, RemovalCause::Size));
        }
        self.entries.insert(0, (key, value, deadline, 1));
    }

    fn remove(&mut self, key: u8) -> Option<u32> {
        let i = self.position(key)?;
        let alive = self.alive(i);
        let e = self.entries.remove(i);
        if !alive {
            self.expirations += 1;
        }
        let cause = if alive {
            RemovalCause::Explicit
        } else {
            RemovalCause::Expired
        };
        self.removed.push((e.0, e.1, cause));
        alive.then_some(e.1)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Get(u8),
    Insert(u8, u32),
    InsertIfAbsent(u8, u32),
    Remove(u8),
    Advance(u64),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..12;
    prop_oneof![
        8 => key.clone().prop_map(Op::Get),
        4 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        4 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::InsertIfAbsent(k, v)),
        1 => key.prop_map(Op::Remove),
        2 => (0u64..40).prop_map(Op::Advance),
        1 => Just(Op::Clear),
    ]
}

fn check(policy: Policy, maxsize: usize, ttl: Option<u64>, ops: &[Op]) {
    if policy == Policy::Adaptive {
        return check_without_reference(policy, maxsize, ttl, ops);
    }
    let clock = ManualClock::new();
    let reports = Reports::default();
    let log = Arc::clone(&reports);
    let cache: Cache<u8, u32> = Cache::builder()
        .maxsize(maxsize)
        .policy(policy)
        .ttl(ttl.map(Duration::from_nanos))
        .clock(clock.clone())
        .on_evict(move |k: &u8, v: &u32, cause| log.lock().unwrap().push((*k, *v, cause)))
        .build()
        .unwrap();
    let mut model = Model {
        policy,
        maxsize,
        ttl,
        now: 0,
        entries: Vec::new(),
        hits: 0,
        misses: 0,
        evictions: 0,
        expirations: 0,
        removed: Vec::new(),
    };
    for (step, op) in ops.iter().enumerate() {
        // Each stored value is unique, so that the listener's reports name one value each.
        let unique = step as u32;
        match *op {
            Op::Get(k) => assert_eq!(cache.get(&k), model.get(k), "step {step}: {op:?}"),
            Op::Insert(k, _) => {
                cache.insert(k, unique);
                model.insert(k, unique, true);
            }
            Op::InsertIfAbsent(k, _) => {
                cache.insert_if_absent(k, unique);
                model.insert(k, unique, false);
            }
            Op::Remove(k) => assert_eq!(cache.remove(&k), model.remove(k), "step {step}"),
            Op::Advance(n) => {
                clock.advance(Duration::from_nanos(n));
                model.now += n;
            }
            Op::Clear => {
                cache.clear();
                for e in model.entries.drain(..) {
                    model.removed.push((e.0, e.1, RemovalCause::Cleared));
                }
            }
        }
        cache.validate();
        // No value reported is still in the cache.
        for &(k, v, cause) in reports.lock().unwrap().iter() {
            assert_ne!(
                cache.peek(&k),
                Some(v),
                "step {step}: {v} reported {cause} but present"
            );
        }
        // Compare without sweeping (info() sweeps): the stored keys, then the counters.
        let mut stored: Vec<u8> = model.entries.iter().map(|e| e.0).collect();
        stored.sort_unstable();
        let mut actual: Vec<u8> = (0..12u8).filter(|k| cache.peek(k).is_some()).collect();
        actual.sort_unstable();
        let live: Vec<u8> = {
            let mut v: Vec<u8> = (0..model.entries.len())
                .filter(|&i| model.alive(i))
                .map(|i| model.entries[i].0)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(
            actual, live,
            "step {step}: live keys after {op:?} (stored {stored:?})"
        );
        assert_eq!(
            cache.len(),
            model.entries.len(),
            "step {step}: len after {op:?}"
        );
    }
    let info = cache.info();
    while let Some(i) = (0..model.entries.len()).find(|&i| !model.alive(i)) {
        model.expire(i);
    }
    assert_eq!(
        (
            info.hits,
            info.misses,
            info.currsize,
            info.evictions,
            info.expirations
        ),
        (
            model.hits,
            model.misses,
            model.entries.len(),
            model.evictions,
            model.expirations
        )
    );
    // Every value that left was reported once, with the model's cause (the order of one
    // call's reports is the shard's; lookups that find an entry expired report at the next
    // write, so compare as sets).
    let mut reported = reports.lock().unwrap().clone();
    reported.sort_unstable_by_key(|r| r.1);
    model.removed.sort_unstable_by_key(|r| r.1);
    assert_eq!(reported, model.removed, "what the listener was told");
}

/// What every cache must do whatever it evicts, for a policy without an exact reference: it
/// never holds more than `maxsize`, never returns a value that was not the last stored for its
/// key or that expired, always holds what was just stored, and counts every lookup.
fn check_without_reference(policy: Policy, maxsize: usize, ttl: Option<u64>, ops: &[Op]) {
    let clock = ManualClock::new();
    let cache: Cache<u8, u32> = Cache::builder()
        .maxsize(maxsize)
        .policy(policy)
        .ttl(ttl.map(Duration::from_nanos))
        .clock(clock.clone())
        .build()
        .unwrap();
    // What an unbounded cache would hold: key -> (value, deadline).
    let mut unbounded: HashMap<u8, (u32, u64)> = HashMap::new();
    let mut now = 0u64;
    let (mut lookups, mut hits) = (0u64, 0u64);
    let alive = |e: &(u32, u64), now: u64| ttl.is_none() || e.1 > now;
    for (step, op) in ops.iter().enumerate() {
        let deadline = ttl.map_or(0, |t| now + t);
        match *op {
            Op::Get(k) => {
                lookups += 1;
                if let Some(v) = cache.get(&k) {
                    hits += 1;
                    let expected = unbounded.get(&k).filter(|e| alive(e, now)).map(|e| e.0);
                    assert_eq!(Some(v), expected, "step {step}: {op:?}");
                }
            }
            Op::Insert(k, v) => {
                cache.insert(k, v);
                unbounded.insert(k, (v, deadline));
            }
            Op::InsertIfAbsent(k, v) => {
                let before = cache.peek(&k);
                cache.insert_if_absent(k, v);
                if before.is_none() {
                    unbounded.insert(k, (v, deadline));
                }
            }
            Op::Remove(k) => {
                let expected = unbounded.remove(&k).filter(|e| alive(e, now)).map(|e| e.0);
                if let Some(v) = cache.remove(&k) {
                    assert_eq!(Some(v), expected, "step {step}: {op:?}");
                }
            }
            Op::Advance(n) => {
                clock.advance(Duration::from_nanos(n));
                now += n;
            }
            Op::Clear => {
                cache.clear();
                unbounded.clear();
            }
        }
        cache.validate();
        assert!(cache.len() <= maxsize, "step {step}: over maxsize");
        if let Op::Insert(k, v) | Op::InsertIfAbsent(k, v) = *op
            && maxsize > 0
        {
            let stored = unbounded[&k].0;
            assert_eq!(cache.peek(&k), Some(stored), "step {step}: just stored {v}");
        }
        for k in 0..12u8 {
            if let Some(v) = cache.peek(&k) {
                let expected = unbounded.get(&k).filter(|e| alive(e, now)).map(|e| e.0);
                assert_eq!(Some(v), expected, "step {step}: stored value of {k}");
            }
        }
    }
    let info = cache.info();
    assert_eq!((info.hits, info.misses), (hits, lookups - hits));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_policy_matches_the_reference_model(
        policy in prop::sample::select(Policy::ALL.to_vec()),
        maxsize in 0usize..6,
        ttl in prop::option::of(1u64..60),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        check(policy, maxsize, ttl, &ops);
    }
}

#[test]
fn lru_evicts_least_recently_used() {
    let cache = Cache::new(2);
    cache.insert(1, 'a');
    cache.insert(2, 'b');
    assert_eq!(cache.get(&1), Some('a'));
    cache.insert(3, 'c');
    assert_eq!(cache.get(&2), None);
    assert_eq!(cache.get(&1), Some('a'));
    assert_eq!(cache.info().evictions, 1);
    cache.validate();
}

#[test]
fn mru_evicts_most_recently_used() {
    let cache = Cache::builder()
        .maxsize(2)
        .policy(Policy::Mru)
        .build()
        .unwrap();
    cache.insert(1, 'a');
    cache.insert(2, 'b');
    assert_eq!(cache.get(&1), Some('a'));
    cache.insert(3, 'c');
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.get(&2), Some('b'));
    cache.validate();
}

#[test]
fn ttl_expires_entry_after_deadline() {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .ttl(Duration::from_secs(30))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert("k", 1);
    clock.advance(Duration::from_secs(29));
    assert_eq!(cache.get("k"), Some(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get("k"), None);
    let info = cache.info();
    assert_eq!(
        (info.hits, info.misses, info.expirations, info.currsize),
        (1, 1, 1, 0)
    );
}

#[test]
fn expired_entries_are_swept_without_being_read() {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .maxsize(None)
        .ttl(Duration::from_secs(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in 0..1000 {
        cache.insert(k, k);
    }
    clock.advance(Duration::from_secs(2));
    cache.insert(5000, 0);
    let info = cache.info();
    assert_eq!((info.currsize, info.expirations), (1, 1000));
    cache.validate();
}

#[test]
fn maxsize_zero_stores_nothing_and_counts_misses() {
    let cache = Cache::new(0);
    for _ in 0..3 {
        assert_eq!(cache.get(&1), None);
        cache.insert(1, 1);
    }
    let info = cache.info();
    assert_eq!((info.hits, info.misses, info.currsize), (0, 3, 0));
}

#[test]
fn sharded_cache_never_exceeds_maxsize() {
    let cache = Cache::builder().maxsize(100).shards(8).build().unwrap();
    for k in 0..10_000u32 {
        cache.insert(k, k);
        assert!(cache.len() <= 100);
    }
    assert!(cache.len() > 50, "shards share the bound: {}", cache.len());
    cache.validate();
}

#[test]
fn reset_zeroes_counters_and_clear_keeps_them() {
    let cache = Cache::new(4);
    cache.insert(1, 1);
    cache.get(&1);
    cache.get(&2);
    cache.clear();
    assert_eq!((cache.info().hits, cache.info().misses), (1, 1));
    cache.reset();
    assert_eq!((cache.info().hits, cache.info().misses), (0, 0));
}

#[test]
fn builder_rejects_bad_configuration() {
    use crate::BuildError;
    let e = Cache::<u8, u8>::builder().shards(0).build().unwrap_err();
    assert_eq!(e, BuildError::ShardsNotPowerOfTwo(0));
    let e = Cache::<u8, u8>::builder()
        .ttl(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(e, BuildError::ZeroTtl);
    let e = Cache::<u8, u8>::builder()
        .maxsize(usize::MAX)
        .build()
        .unwrap_err();
    assert_eq!(e, BuildError::MaxsizeTooLarge(usize::MAX));
    let e = Cache::<u8, u8>::builder()
        .shards(1 << 31)
        .build()
        .unwrap_err();
    assert_eq!(e, BuildError::TooManyShards(1 << 31));
    let e = Cache::<u8, u8>::builder()
        .maxsize(5_000_000_000usize)
        .build()
        .unwrap_err();
    assert_eq!(e, BuildError::MaxsizeTooLarge(5_000_000_000));
    assert!(Cache::<u8, u8>::builder()
        .maxsize(crate::MAX_MAXSIZE)
        .build()
        .is_ok());
}

/// More shards than `maxsize` can fill are clamped: every shard caches at least one entry, so
/// `maxsize` keys all fit.
#[test]
fn shards_are_clamped_to_what_maxsize_can_fill() {
    for (maxsize, asked, got) in [(10, 64, 8), (1, 4, 1), (0, 8, 1), (64, 64, 64), (100, 4, 4)] {
        let cache: Cache<u32, u32> = Cache::builder()
            .maxsize(maxsize)
            .shards(asked)
            .build()
            .unwrap();
        assert_eq!(
            cache.shard_count(),
            got,
            "maxsize {maxsize}, shards {asked}"
        );
    }
    let cache: Cache<u32, u32> = Cache::builder().maxsize(10).shards(64).build().unwrap();
    for k in 0..200 {
        cache.insert(k, k);
        cache.validate();
    }
    assert_eq!(
        cache.len(),
        10,
        "every shard holds entries: the cache fills up"
    );
}

/// The configuration `#[memoize]` passes never fails to build, whatever is out of range.
#[test]
fn clamped_build_never_fails() {
    let cache: Cache<u8, u8> = Cache::builder()
        .maxsize(usize::MAX)
        .ttl(Duration::ZERO)
        .shards(3)
        .build_clamped();
    assert_eq!(cache.maxsize(), Some(crate::MAX_MAXSIZE));
    assert_eq!(cache.shard_count(), 4);
    let cache: Cache<u8, u8> = Cache::builder().shards(1 << 40).build_clamped();
    assert!(cache.shard_count() <= crate::MAX_SHARDS);
}

/// Evicted values are dropped in batches (a slot is reused once no lock-free reader can be
/// looking at it, checked once per `RESERVE` evictions): never more than `maxsize + RESERVE`
/// values are alive, and `clear` drops everything at once when no reader is inside.
#[test]
fn values_are_dropped_soon_after_eviction_and_at_clear() {
    use std::sync::Arc;
    let reserve = crate::concurrent::shard::RESERVE;
    let values: Vec<Arc<()>> = (0..200).map(|_| Arc::new(())).collect();
    let alive = |values: &[Arc<()>]| values.iter().filter(|v| Arc::strong_count(v) > 1).count();
    for maxsize in [1, 4, 50] {
        let cache = Cache::new(maxsize);
        for (k, v) in values.iter().enumerate() {
            cache.insert(k, Arc::clone(v));
            let n = alive(&values);
            assert!(
                n <= maxsize + reserve,
                "{n} values alive at maxsize {maxsize}"
            );
        }
        assert!(alive(&values) >= maxsize);
        cache.clear();
        assert_eq!(alive(&values), 0, "clear drops every value");
        cache.insert(0, Arc::clone(&values[0]));
        drop(cache);
        assert_eq!(alive(&values), 0, "dropping the cache drops its values");
    }
}

#[test]
fn coarse_clock_advances_by_itself() {
    let clock = crate::Clock::coarse();
    let start = clock.now_nanos();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while clock.now_nanos() == start {
        assert!(
            std::time::Instant::now() < deadline,
            "the coarse clock never ticked"
        );
        std::thread::yield_now();
    }
}

/// Keys and values whose `Hash`, `Eq`, `Clone` and `Drop` panic when a fuse burns down: the
/// fuse counts calls of user code on this thread and fires once.
mod fused {
    use std::cell::Cell;
    use std::hash::{Hash, Hasher};

    std::thread_local! {
        static FUSE: Cell<u32> = const { Cell::new(0) };
    }

    /// Panics at the `n`-th call of user code from now (0: never).
    pub(super) fn arm(n: u32) {
        FUSE.with(|f| f.set(n));
    }

    fn tick(what: &str) {
        let fire = FUSE.with(|f| match f.get() {
            0 => false,
            1 => {
                f.set(0);
                true
            }
            n => {
                f.set(n - 1);
                false
            }
        });
        if fire {
            panic!("armed {what} panics");
        }
    }

    #[derive(Debug)]
    pub(super) struct Key(pub(super) u8);

    impl Hash for Key {
        fn hash<H: Hasher>(&self, state: &mut H) {
            tick("Hash");
            self.0.hash(state);
        }
    }

    impl PartialEq for Key {
        fn eq(&self, other: &Self) -> bool {
            tick("Eq");
            self.0 == other.0
        }
    }

    impl Eq for Key {}

    #[derive(Debug)]
    pub(super) struct Val(pub(super) u8);

    impl Clone for Val {
        fn clone(&self) -> Self {
            tick("Clone");
            Val(self.0)
        }
    }

    impl Drop for Val {
        fn drop(&mut self) {
            tick("Drop");
        }
    }
}

fn panicking_operation(cache: &Cache<fused::Key, fused::Val>, op: u8, k: u8, clock: &ManualClock) {
    use fused::{Key, Val};
    match op {
        0 | 1 => drop(cache.get(&Key(k))),
        2 | 3 => cache.insert(Key(k), Val(k)),
        4 => cache.insert_if_absent(Key(k), Val(k)),
        5 => drop(cache.remove(&Key(k))),
        6 => drop(cache.peek(&Key(k))),
        7 => clock.advance(Duration::from_millis(40)),
        8 => drop(cache.info()),
        _ => {
            if k.is_multiple_of(4) {
                cache.clear();
            } else {
                let _ = cache.len();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    /// A key's `Hash`/`Eq` or a value's `Clone`/`Drop` panicking at any point of any operation
    /// leaves every shard consistent, and once nothing panics any more every operation works.
    #[test]
    fn a_panic_in_user_code_leaves_the_cache_consistent(
        policy in prop::sample::select(Policy::ALL),
        ttl in any::<bool>(),
        maxsize in 1usize..6,
        ops in prop::collection::vec((0u8..10, 0u8..10, 0u32..8), 1..120),
    ) {
        let clock = ManualClock::new();
        let mut builder = Cache::builder().maxsize(maxsize).policy(policy).clock(clock.clone());
        if ttl {
            builder = builder.ttl(Duration::from_millis(100));
        }
        let cache: Cache<fused::Key, fused::Val> = builder.build().unwrap();
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for &(op, k, fuse) in &ops {
            fused::arm(fuse);
            let run = std::panic::AssertUnwindSafe(|| panicking_operation(&cache, op, k, &clock));
            let _ = std::panic::catch_unwind(run);
            fused::arm(0);
            cache.validate();
        }
        std::panic::set_hook(hook);
        for k in 0..10u8 {
            cache.insert(fused::Key(k), fused::Val(k));
            let got = cache.get(&fused::Key(k)).map(|v| v.0);
            prop_assert_eq!(got, Some(k));
            cache.validate();
        }
        prop_assert!(cache.len() <= maxsize);
        cache.clear();
        cache.validate();
    }
}

/// One step of [`a_panic_in_user_code_leaves_no_computation_behind`]: `leaders` are the
/// computations this caller leads (at most four).
fn panicking_flight_step<'a, C: crate::memo::FunctionCache<fused::Key, fused::Val>>(
    flights: &'a crate::flight::Flights<fused::Key, fused::Val>,
    cache: &'a C,
    leaders: &mut Vec<(u8, crate::flight::Leader<'a, fused::Key, fused::Val>)>,
    watches: &mut Vec<(u8, crate::flight::Watch<fused::Val>)>,
    op: u8,
    k: u8,
) {
    use crate::flight::Joined;
    use fused::{Key, Val};
    match op {
        // Lead `k`, or join it (a caller that would wait keeps the flight it waits for).
        0..=2 => match flights.join_or_watch(cache, Key(k)) {
            Ok(Joined::Lead(leader)) if leaders.len() < 4 => leaders.push((k, leader)),
            Ok(_) => {}
            Err(watch) => watches.push((k, watch)),
        },
        3 | 4 => {
            if !leaders.is_empty() {
                let (k, leader) = leaders.remove(0);
                flights.complete(leader, cache, Val(k));
            }
        }
        5 => {
            if let Some((_, leader)) = leaders.pop() {
                flights.fail(leader, None);
            }
        }
        6 => drop(leaders.pop()),
        7 => drop(flights.invalidate(cache, &Key(k))),
        8 => flights.clear(cache),
        _ => drop(cache.peek(&Key(k))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    /// Single-flight with a key's `Hash`/`Eq` or a value's `Clone`/`Drop` panicking at any
    /// point of leading, joining, completing (with callers waiting: the hand-over clones),
    /// failing, abandoning, invalidating or clearing, with its computations in the cache's own
    /// shards (a memo) or in the table of flights: the cache stays consistent, and afterwards
    /// every key can be led again (no computation is left that a caller would wait for, for
    /// good), every caller that waited was woken, and the flights end empty.
    #[test]
    fn a_panic_in_user_code_leaves_no_computation_behind(
        policy in prop::sample::select(Policy::ALL),
        local in any::<bool>(),
        maxsize in 1usize..6,
        ops in prop::collection::vec((0u8..10, 0u8..6, 0u32..8), 1..100),
    ) {
        let params = crate::memo::Params {
            maxsize: Some(maxsize),
            ttl: None,
            ttl_jitter: 0.0,
            policy,
            negative_ttl: None,
        };
        let memo = crate::memo::Memo::<fused::Key, fused::Val>::new("fused", params);
        let table_flights = crate::flight::Flights::new("fused, in the table");
        let flights = if local { &memo.flights } else { &table_flights };
        let cache = &memo.cache;
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let (mut leaders, mut watches) = (Vec::new(), Vec::new());
        for &(op, k, fuse) in &ops {
            fused::arm(fuse);
            let run = std::panic::AssertUnwindSafe(|| {
                panicking_flight_step(flights, cache, &mut leaders, &mut watches, op, k);
            });
            let _ = std::panic::catch_unwind(run);
            fused::arm(0);
            cache.validate();
        }
        std::panic::set_hook(hook);
        for (k, leader) in leaders.drain(..) {
            flights.complete(leader, cache, fused::Val(k));
        }
        // Every leader is gone: every caller that waited was woken.
        for (i, (k, watch)) in watches.iter().enumerate() {
            prop_assert!(watch.ended(), "waiter {}: its flight never ends", i);
            // Woken with a value, it is its key's (a leader completes `k` with `Val(k)`).
            if let Some(value) = watch.value() {
                prop_assert_eq!(value.0, *k);
            }
        }
        for k in 0..6u8 {
            match flights.join_or_busy(cache, fused::Key(k)) {
                Some(crate::flight::Joined::Lead(leader)) => {
                    flights.complete(leader, cache, fused::Val(k));
                }
                Some(_) => {}
                None => prop_assert!(false, "key {}: a computation nobody leads is left", k),
            }
            cache.validate();
        }
        prop_assert_eq!(flights.in_flight(), 0);
    }
}
