//! `#[memoize(maxweight = ...)]` on every storage: a free function (its static), a method (one
//! memo per `Self` type), a generic function (one per instantiation), `key = ...`, a cache in a
//! field (`cache_field`), and `refresh` (stamped values: the value is weighed, not its stamp).
//! For each, over several seeded rounds of values of random sizes: the values still cached
//! (found by `cache_invalidate`, which says whether a value was stored) weigh at most
//! `maxweight` in all, and fill it but for less than the heaviest value; a value heavier than the
//! whole bound is computed every time and never cached.

use std::sync::atomic::{AtomicU64, Ordering};

use memo::{memoize, InstanceCache, Weigh};

const MAX: u64 = 4096;
/// Keys per round, values of 0..=300 bytes (each weighs 24 more: the `String`).
const KEYS: u32 = 200;
const HEAVY: u32 = 1_000_000;

/// The size of the value of `id`: pseudo-random in 0..=300, 5000 for [`HEAVY`].
fn size(id: u32) -> usize {
    if id == HEAVY {
        return 5000;
    }
    (u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % 301
}

fn value(id: u32) -> String {
    "x".repeat(size(id))
}

fn weight(id: u32) -> u64 {
    value(id).weight()
}

/// A small deterministic shuffle (an LCG), so each round fills in another order.
fn order(seed: u64) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..KEYS).collect();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..ids.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ids.swap(i, (state >> 33) as usize % (i + 1));
    }
    ids
}

/// Fills through `call` in several orders, each key called twice in a round (the second call
/// a hit or a refill), and checks the bound after each round through `invalidate` (which
/// empties the cache again); then the heavy value, through `calls` (the body's runs).
fn check(call: impl Fn(u32) -> String, invalidate: impl Fn(u32) -> bool, calls: &AtomicU64) {
    let heaviest = (0..KEYS).map(weight).max().unwrap();
    for seed in 0..4 {
        for id in order(seed).into_iter().chain(order(seed + 100)) {
            assert_eq!(call(id), value(id));
        }
        let cached: Vec<u32> = (0..KEYS).filter(|&id| invalidate(id)).collect();
        let total: u64 = cached.iter().map(|&id| weight(id)).sum();
        assert!(total <= MAX, "round {seed}: {total} > {MAX} ({cached:?})");
        assert!(
            total > MAX - heaviest,
            "round {seed}: only {total} of {MAX} used"
        );
    }
    let before = calls.load(Ordering::SeqCst);
    assert_eq!(call(HEAVY).len(), 5000);
    assert_eq!(call(HEAVY).len(), 5000);
    assert_eq!(
        calls.load(Ordering::SeqCst) - before,
        2,
        "a too heavy value was cached"
    );
    assert!(!invalidate(HEAVY));
}

static FREE: AtomicU64 = AtomicU64::new(0);

#[memoize(maxweight = 4096)]
fn free(id: u32) -> String {
    FREE.fetch_add(1, Ordering::SeqCst);
    value(id)
}

#[test]
fn a_free_function_stays_within_its_weight() {
    check(free, free::cache_invalidate, &FREE);
    assert_eq!(free::cache_info().maxsize, None);
}

static METHOD: AtomicU64 = AtomicU64::new(0);

#[derive(Hash, PartialEq, Eq, Clone)]
struct Pages(u8);

impl Pages {
    #[memoize(maxweight = 4096)]
    fn page(&self, id: u32) -> String {
        METHOD.fetch_add(1, Ordering::SeqCst);
        value(id)
    }
}

#[test]
fn a_method_stays_within_its_weight() {
    let pages = Pages(1);
    check(
        |id| pages.page(id),
        |id| pages.page_cache_invalidate(id),
        &METHOD,
    );
}

static GENERIC: AtomicU64 = AtomicU64::new(0);

#[memoize(maxweight = "4KiB")]
fn generic<T: Into<u64> + Copy + std::hash::Hash + Eq + Send + Sync + 'static>(id: T) -> String {
    GENERIC.fetch_add(1, Ordering::SeqCst);
    value(id.into() as u32)
}

#[test]
fn each_instantiation_of_a_generic_function_stays_within_its_weight() {
    check(generic::<u32>, generic::cache_invalidate::<u32>, &GENERIC);
    // Another instantiation has a bound of its own.
    assert_eq!(generic(3u16), value(3));
    assert!(generic::cache_invalidate::<u16>(3));
}

static KEYED: AtomicU64 = AtomicU64::new(0);

#[memoize(maxweight = 4096, key = id)]
fn keyed(id: u32, _request: &str) -> String {
    KEYED.fetch_add(1, Ordering::SeqCst);
    value(id)
}

#[test]
fn a_key_expression_stays_within_its_weight() {
    check(
        |id| keyed(id, "request"),
        |id| keyed::cache_invalidate(id, "another request"),
        &KEYED,
    );
}

static FIELD: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Default)]
struct Client {
    pages: InstanceCache,
}

impl Client {
    #[memoize(cache_field = pages, maxweight = 4096)]
    fn fetch(&self, id: u32) -> String {
        FIELD.fetch_add(1, Ordering::SeqCst);
        value(id)
    }
}

#[test]
fn a_cache_in_a_field_stays_within_its_weight() {
    let client = Client::default();
    check(
        |id| client.fetch(id),
        |id| client.fetch_cache_invalidate(id),
        &FIELD,
    );
}

static FRESH_FIELD: AtomicU64 = AtomicU64::new(0);

impl Client {
    #[memoize(cache_field = pages, ttl = "1h", refresh = "30m", maxweight = 4096)]
    fn fetch_fresh(&self, id: u32) -> String {
        FRESH_FIELD.fetch_add(1, Ordering::SeqCst);
        value(id)
    }
}

#[test]
fn a_cache_in_a_field_with_refresh_stays_within_its_weight() {
    let client = Client::default();
    check(
        |id| client.fetch_fresh(id),
        |id| client.fetch_fresh_cache_invalidate(id),
        &FRESH_FIELD,
    );
}

static FRESH: AtomicU64 = AtomicU64::new(0);

#[memoize(ttl = "1h", refresh = "30m", maxweight = 4096)]
fn fresh(id: u32) -> String {
    FRESH.fetch_add(1, Ordering::SeqCst);
    value(id)
}

#[test]
fn a_function_with_refresh_weighs_its_values_not_their_stamps() {
    check(fresh, fresh::cache_invalidate, &FRESH);
}

static FRESH_GENERIC: AtomicU64 = AtomicU64::new(0);

#[memoize(ttl = "1h", stale_while_revalidate = "1h", maxweight = 4096)]
fn fresh_generic<T: Into<u64> + Copy + std::hash::Hash + Eq + Send + Sync + 'static>(
    id: T,
) -> Result<String, ()> {
    FRESH_GENERIC.fetch_add(1, Ordering::SeqCst);
    Ok(value(id.into() as u32))
}

#[test]
fn a_generic_function_with_a_stale_window_stays_within_its_weight() {
    check(
        |id| fresh_generic::<u32>(id).unwrap(),
        fresh_generic::cache_invalidate::<u32>,
        &FRESH_GENERIC,
    );
}

#[cfg(feature = "stores")]
static STORED: AtomicU64 = AtomicU64::new(0);

/// A generic function with a store that is never registered: its values are kept in memory, in
/// the fallback, which `maxweight` bounds as it bounds the near cache.
#[cfg(feature = "stores")]
#[memoize(store = "never-registered", local = 1000, maxweight = 4096)]
fn stored<T: Into<u64> + Copy + serde::Serialize + std::hash::Hash + Eq + Send + Sync + 'static>(
    id: T,
) -> String {
    STORED.fetch_add(1, Ordering::SeqCst);
    let _: u64 = id.into();
    "x".repeat(100)
}

#[cfg(feature = "stores")]
#[test]
fn a_generic_function_with_a_store_keeps_at_most_its_weight_in_memory() {
    // 124 bytes each: 33 fit in 4096 (the count bound, 128, would keep them all).
    for id in 0..100u32 {
        stored(id);
    }
    let runs = STORED.load(Ordering::SeqCst);
    for id in (67..100u32).rev() {
        stored(id);
    }
    assert_eq!(STORED.load(Ordering::SeqCst), runs, "the last 33 are kept");
    stored(66u32);
    assert_eq!(STORED.load(Ordering::SeqCst), runs + 1, "the 34th is not");
}

static FAILING: AtomicU64 = AtomicU64::new(0);

/// `maxweight` leaves `maxsize` unset, and the cached `Err`s are not weighed: they are bounded
/// by the default `maxsize`, not by nothing.
#[memoize(maxweight = 4096, err_ttl = "1h")]
fn failing(id: u32) -> Result<String, u32> {
    FAILING.fetch_add(1, Ordering::SeqCst);
    Err(id)
}

#[test]
fn the_cached_errors_of_a_weighed_function_are_bounded() {
    for id in 0..300 {
        assert_eq!(failing(id), Err(id));
    }
    let runs = FAILING.load(Ordering::SeqCst);
    assert_eq!(failing(299), Err(299));
    assert_eq!(
        FAILING.load(Ordering::SeqCst),
        runs,
        "the last error is cached"
    );
    let cached = (0..300).filter(|&id| failing::cache_invalidate(id)).count();
    assert_eq!(cached, memo::DEFAULT_MAXSIZE);
}
