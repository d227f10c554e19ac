//! What a `#[memoize]` function keeps: its cache and its single-flight table ([`Memo`]), held in a
//! static, in one static per instantiation ([`TypeCaches`], for generic functions and methods), or
//! in a field of each instance ([`InstanceCache`]).

use std::any::{Any, TypeId};
use std::fmt;
use std::hash::Hash;
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;

pub use crate::flight::FunctionCache;
use crate::flight::{Failure, Flights, Leader};
use crate::refresh::{Fresh, Freshness, Stamped};
use crate::{Cache, CacheInfo, Clock, Policy};

/// The options of one `#[memoize]`, as the macro checked them.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// The bound on the number of entries; `None` is unbounded.
    pub maxsize: Option<usize>,
    /// How long an entry lives; `None` is forever.
    pub ttl: Option<Duration>,
    /// The fraction of the ttl over which deadlines are spread (`ttl_jitter`); 0: none.
    pub ttl_jitter: f64,
    /// The eviction policy.
    pub policy: Policy,
    /// How long an `Err` (`err_ttl`) or a `None` (`none_ttl`) is cached; `None`: never.
    pub negative_ttl: Option<Duration>,
}

impl<K: Hash + Eq, V: Clone> FunctionCache<K, V> for Cache<K, V> {
    #[inline]
    fn peek(&self, key: &K) -> Option<V> {
        Cache::peek(self, key)
    }
    #[inline]
    fn insert_if_absent(&self, key: K, value: V) {
        Cache::insert_if_absent(self, key, value);
    }
    #[inline]
    fn peek_hashed(&self, stamp: u64, hash: u64, key: &K) -> Option<V> {
        if self.hashes_like(stamp) {
            self.peek_with_hash(hash, key)
        } else {
            Cache::peek(self, key)
        }
    }
    #[inline]
    fn contains_hashed(&self, stamp: u64, hash: u64, key: &K) -> bool {
        if self.hashes_like(stamp) {
            self.contains_with_hash(hash, key)
        } else {
            Cache::contains_key(self, key)
        }
    }
    #[inline]
    fn insert_if_absent_hashed(&self, stamp: u64, hash: u64, key: K, value: V) {
        if self.hashes_like(stamp) {
            self.insert_if_absent_with_hash(hash, key, value);
        } else {
            Cache::insert_if_absent(self, key, value);
        }
    }
    #[inline]
    fn remove(&self, key: &K) -> bool {
        Cache::remove(self, key).is_some()
    }
    #[inline]
    fn local(&self, stamp: u64) -> Option<&Cache<K, V>> {
        self.hashes_like(stamp).then_some(self)
    }
    fn info(&self) -> CacheInfo {
        Cache::info(self)
    }
    fn reset(&self) {
        Cache::reset(self);
    }
}

/// The cache of one memoized function (of one instantiation of a generic one) and the keys it is
/// computing right now. The cache is in memory unless the function names a store.
pub struct Memo<K, V, C = Cache<K, V>> {
    /// The values.
    pub cache: C,
    /// The keys being computed, for single-flight.
    pub flights: Flights<K, V>,
    /// The cached `Err`s or `None`s, in memory with their own ttl, when the function opted in
    /// (`err_ttl`, `none_ttl`): looked up only after a miss of `cache`.
    pub negative: Option<Cache<K, Failure>>,
    /// The freshness of a function with `refresh` or a stale window, whose values are
    /// [`Stamped`] (see `refresh.rs`); `None` for every other function.
    pub fresh: Option<Fresh>,
}

impl<K, V, C> Memo<K, V, C> {
    /// The memo of the function called `name`, over `cache`.
    pub fn with_cache(name: impl Into<Box<str>>, cache: C) -> Self {
        Memo {
            cache,
            flights: Flights::new(name),
            negative: None,
            fresh: None,
        }
    }
}

impl<K, V, C> Memo<K, V, C> {
    /// This memo, caching `Err`s or `None`s for `params.negative_ttl` when it is set.
    pub fn with_negative(mut self, params: Params) -> Self {
        self.negative = params.negative_ttl.map(|ttl| {
            let built = Cache::builder()
                .maxsize(params.maxsize)
                .ttl(Some(ttl))
                .policy(params.policy)
                .build();
            built.unwrap_or_else(|e| panic!("#[memoize] options rejected by the store: {e}"))
        });
        self
    }
}

impl<K: Hash + Eq, V: Clone, C> Memo<K, V, C> {
    /// The cached `Err` or `None` of `key`, after a miss of the cache (counted a hit).
    #[inline]
    pub fn negative_get_by<Q: Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
    ) -> Option<Failure> {
        self.negative.as_ref()?.get_by(probe, is_match)
    }

    /// [`Memo::negative_get_by`] with an owned key.
    #[inline]
    pub fn negative_get(&self, key: &K) -> Option<Failure> {
        self.negative.as_ref()?.get(key)
    }

    /// Ends the leader's flight with `failure` (an `Err` or `None`), shared with its waiters and
    /// cached when negative caching is on.
    pub fn fail_cached(&self, leader: Leader<'_, K, V>, failure: Failure) {
        match &self.negative {
            Some(negative) => self
                .flights
                .fail_into(leader, failure.clone(), negative, failure),
            None => self.flights.fail(leader, Some(failure)),
        }
    }

    /// Caches `failure` for `key`, computed without single-flight from the epoch `since`, when
    /// negative caching is on.
    pub fn store_failure_since(&self, since: u64, key: K, failure: Failure) {
        if let Some(negative) = &self.negative {
            self.flights
                .store_aside_since(negative, since, key, failure);
        }
    }
}

impl<K: Hash + Eq, V: Clone, C: FunctionCache<K, V>> Memo<K, V, C> {
    /// Removes the value of `key`; no computation of it running now stores its value or is
    /// joined after this returns. Whether a value was stored.
    pub fn invalidate(&self, key: &K) -> bool {
        let removed = self.flights.invalidate(&self.cache, key);
        // After the flights' invalidation: a failure stored since is removed, one stored later
        // was computed after it.
        let negative = self.negative.as_ref().and_then(|n| n.remove(key));
        removed || negative.is_some()
    }

    /// Empties the cache and zeroes the statistics; no computation running now stores its value
    /// or is joined after this returns.
    pub fn clear(&self) {
        self.flights.clear(&self.cache);
        if let Some(negative) = &self.negative {
            negative.reset();
        }
        if let Some(fresh) = &self.fresh {
            fresh.zero();
        }
    }

    /// The statistics: the cache's, with the calls that waited for another caller's outcome; a
    /// call answered by a cached `Err` or `None` is a hit (the cache counted it a miss).
    pub fn info(&self) -> CacheInfo {
        let mut info = self.cache.info();
        if let Some(fresh) = &self.fresh {
            fresh.adjust(&mut info);
        }
        let mut info = self.flights.counts().apply(info);
        if let Some(negative) = &self.negative {
            let hits = negative.info().hits;
            info.hits += hits;
            info.misses = info.misses.saturating_sub(hits);
        }
        info
    }
}

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    /// `cache.get_by(probe, is_match)` and the probe's hash, for
    /// [`store_since_hashed`](Memo::store_since_hashed) after a miss (what a `#[memoize]`
    /// without single-flight or a store looks up with).
    #[doc(hidden)]
    #[inline]
    pub fn get_by_hashing<Q: Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
    ) -> (Option<V>, u64) {
        self.cache.get_by_hashing(probe, is_match)
    }

    /// `flights.store_since(&cache, since, key, value)` of a key whose hash `hash` came from
    /// [`get_by_hashing`](Memo::get_by_hashing): not hashed again.
    #[doc(hidden)]
    #[inline]
    pub fn store_since_hashed(&self, hash: u64, since: u64, key: K, value: V) {
        self.flights
            .store_since_hashed(&self.cache, hash, since, key, value);
    }

    /// The cache of the function called `name`, with the options the macro checked.
    pub fn new(name: impl Into<Box<str>>, params: Params) -> Self {
        // Infallible: a panic here would poison the function's static for good.
        let hasher = hashbrown::DefaultHashBuilder::default();
        // One hasher for both: a miss hashes its key once for the flights and the cache.
        let cache = Self::builder(params).hasher(hasher.clone()).build_clamped();
        Memo {
            cache,
            flights: Flights::with_hasher(name, hasher),
            negative: None,
            fresh: None,
        }
        .with_negative(params)
    }

    pub(crate) fn builder(params: Params) -> crate::CacheBuilder<K, V> {
        Cache::builder()
            .maxsize(params.maxsize)
            .ttl(params.ttl)
            .ttl_jitter(params.ttl_jitter)
            .policy(params.policy)
    }
}

impl<K: Hash + Eq, V: Clone> Memo<K, Stamped<V>> {
    /// The cache of the function called `name` with `refresh` or a stale window: its entries
    /// are kept for the ttl and the longest window, stamped with their write time.
    pub fn fresh(name: impl Into<Box<str>>, params: Params, freshness: Freshness) -> Self {
        Self::fresh_with_clock(name, params, freshness, Clock::coarse())
    }

    /// [`Memo::fresh`] over `clock`.
    pub(crate) fn fresh_with_clock(
        name: impl Into<Box<str>>,
        params: Params,
        freshness: Freshness,
        clock: Clock,
    ) -> Self {
        let mut memo = Memo::new(name, freshness.kept(params));
        memo.fresh = Some(Fresh::new(freshness, clock, false).with_jitter(params.ttl_jitter));
        memo
    }
}

/// A [`Memo`] whose key and value types are forgotten: what a function's statistics need.
pub trait ErasedMemo: Send + Sync {
    /// This memo as `Any`, to get its types back.
    fn as_any(&self) -> &dyn Any;
    /// The statistics of its cache.
    fn info(&self) -> CacheInfo;
    /// Empties its cache and zeroes the statistics.
    fn reset(&self);
}

impl<K, V, C> ErasedMemo for Memo<K, V, C>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: FunctionCache<K, V> + Send + Sync + 'static,
{
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn info(&self) -> CacheInfo {
        Memo::info(self)
    }
    fn reset(&self) {
        self.clear();
    }
}

fn downcast<M: 'static>(memo: &dyn ErasedMemo) -> &M {
    match memo.as_any().downcast_ref::<M>() {
        Some(memo) => memo,
        None => unreachable!("memos are stored under their own TypeId"),
    }
}

/// One [`Memo`] per instantiation of a generic function or method, created on first use and
/// kept for the program's life, as a static would be.
pub struct TypeCaches {
    params: Params,
    /// The first instantiation: found with one atomic load and a compare.
    first: OnceLock<Instance>,
    /// The others, and the lock under which every instantiation is created.
    rest: Mutex<Vec<Instance>>,
}

/// One instantiation: its memo's type, the name of its `Self` type (or ""), and the memo.
type Instance = (TypeId, &'static str, &'static dyn ErasedMemo);

/// Whether `a` and `b` name the same type: equal pointers, almost always, else equal text.
#[inline]
fn same_name(a: &'static str, b: &'static str) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl TypeCaches {
    /// No instantiation yet; each will be made with `params`.
    pub fn new(params: Params) -> Self {
        TypeCaches {
            params,
            first: OnceLock::new(),
            rest: Mutex::new(Vec::new()),
        }
    }

    /// The options every instantiation is made with.
    pub fn params(&self) -> Params {
        self.params
    }

    /// The memo of type `M`, made by `init` on first use.
    #[inline]
    pub fn get<M: ErasedMemo + 'static>(&self, init: impl FnOnce(Params) -> M) -> &'static M {
        self.get_for("", init)
    }

    /// The memo of type `M` for the `Self` type named `self_type` (`""` for none), made by
    /// `init` on first use.
    #[inline]
    pub fn get_for<M: ErasedMemo + 'static>(
        &self,
        self_type: &'static str,
        init: impl FnOnce(Params) -> M,
    ) -> &'static M {
        let id = TypeId::of::<M>();
        match self.first.get() {
            Some((first, name, memo)) if *first == id && same_name(name, self_type) => {
                downcast(*memo)
            }
            _ => self.get_slow(id, self_type, init),
        }
    }

    #[cold]
    fn get_slow<M: ErasedMemo + 'static>(
        &self,
        id: TypeId,
        self_type: &'static str,
        init: impl FnOnce(Params) -> M,
    ) -> &'static M {
        let mut rest = self.rest.lock();
        if let Some((_, _, memo)) = self
            .first
            .get()
            .into_iter()
            .chain(rest.iter())
            .find(|(t, name, _)| *t == id && same_name(name, self_type))
        {
            return downcast(*memo);
        }
        let memo: &'static M = Box::leak(Box::new(init(self.params)));
        // Only this lock's holder sets `first`, so the set fails only when `first` is taken.
        if self.first.set((id, self_type, memo)).is_err() {
            rest.push((id, self_type, memo));
        }
        memo
    }

    /// The statistics summed over every instantiation (`maxsize` is each one's bound).
    pub fn info(&self) -> CacheInfo {
        let mut info = empty_info(self.params);
        for memo in self.all() {
            let one = memo.info();
            info.hits += one.hits;
            info.misses += one.misses;
            info.currsize += one.currsize;
            info.currsize_known &= one.currsize_known;
            info.evictions += one.evictions;
            info.expirations += one.expirations;
            info.waits += one.waits;
            info.load_time += one.load_time;
            info.refreshes += one.refreshes;
            info.stale_hits += one.stale_hits;
            info.stale_errors += one.stale_errors;
        }
        info
    }

    /// Empties every instantiation's cache and zeroes the statistics.
    pub fn reset(&self) {
        for memo in self.all() {
            memo.reset();
        }
    }

    fn all(&self) -> Vec<&'static dyn ErasedMemo> {
        let rest = self.rest.lock();
        self.first
            .get()
            .iter()
            .map(|(_, _, memo)| *memo)
            .chain(rest.iter().map(|(_, _, memo)| *memo))
            .collect()
    }
}

fn empty_info(params: Params) -> CacheInfo {
    CacheInfo {
        hits: 0,
        misses: 0,
        maxsize: params.maxsize,
        currsize: 0,
        currsize_known: true,
        evictions: 0,
        expirations: 0,
        policy: params.policy,
        ttl: params.ttl,
        waits: 0,
        load_time: Duration::ZERO,
        refreshes: 0,
        stale_hits: 0,
        stale_errors: 0,
    }
}

/// The cache of one memoized method, kept in a field of each instance and dropped with it:
/// `#[memoize(cache_field = name)]` on the method. Give each memoized method its own field.
///
/// ```text
/// #[derive(Default)]
/// struct Client {
///     base: String,
///     fetches: memo::InstanceCache,
/// }
///
/// impl Client {
///     #[memoize(cache_field = fetches)]
///     fn fetch(&self, path: &str) -> String {
///         format!("{}/{path}", self.base)
///     }
/// }
/// ```
///
/// The method makes the cache on its first call; until then it is empty. Cloning an instance
/// gives the clone an empty cache.
///
/// ```
/// let cache = memo::InstanceCache::new();
/// assert_eq!(cache.info(), None); // the method was not called yet
/// assert!(cache.clone().info().is_none());
/// ```
#[derive(Default)]
pub struct InstanceCache {
    /// The method that owns this field (a type of its own) and its memo.
    memo: OnceLock<(TypeId, Box<dyn ErasedMemo>)>,
}

impl InstanceCache {
    /// An empty cache; the method makes it on first use with its own options.
    ///
    /// ```
    /// let cache = memo::InstanceCache::new();
    /// assert_eq!(cache.info(), None);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The statistics, or `None` before the method's first call.
    ///
    /// ```
    /// assert!(memo::InstanceCache::new().info().is_none());
    /// ```
    pub fn info(&self) -> Option<CacheInfo> {
        self.memo.get().map(|(_, memo)| memo.info())
    }

    /// Empties the cache and zeroes its statistics.
    ///
    /// ```
    /// memo::InstanceCache::new().clear();
    /// ```
    pub fn clear(&self) {
        if let Some((_, memo)) = self.memo.get() {
            memo.reset();
        }
    }

    /// The memo of the method marked by `Owner`, made by `init` on first use; `name` names the
    /// method when the field turns out to belong to another one.
    #[doc(hidden)]
    #[inline]
    pub fn __memo<Owner: 'static, M: ErasedMemo + 'static, S: fmt::Display>(
        &self,
        init: impl FnOnce() -> M,
        name: impl FnOnce() -> S,
    ) -> &M {
        let (owner, memo) = self
            .memo
            .get_or_init(|| (TypeId::of::<Owner>(), Box::new(init())));
        if *owner != TypeId::of::<Owner>() {
            panic!(
                "`{}` keeps its cache in a field that another memoized method uses already; \
                 give each memoized method its own `InstanceCache` field",
                name()
            );
        }
        downcast(&**memo)
    }

    /// The statistics for `cache_info()`: zeros with `params` before the first call.
    #[doc(hidden)]
    pub fn __info(&self, params: Params) -> CacheInfo {
        self.info().unwrap_or_else(|| empty_info(params))
    }
}

impl Clone for InstanceCache {
    /// An empty cache: a clone computes its own values.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl fmt::Debug for InstanceCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceCache")
            .field("info", &self.info())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: Params = Params {
        maxsize: Some(4),
        ttl: None,
        ttl_jitter: 0.0,
        policy: Policy::Fifo,
        negative_ttl: None,
    };

    /// A miss's hash from `get_by_hashing` stores the value where a lookup finds it, whether
    /// the memo's flights hash as its cache does (`Memo::new`: the hash is reused) or not
    /// (`Memo::with_cache`: hashed again); an invalidation since the epoch stores nothing.
    #[test]
    fn a_miss_stores_with_its_lookups_hash_unless_invalidated() {
        let shared = Memo::<u64, u64>::new("shared", PARAMS);
        let apart = Memo::with_cache("apart", Cache::<u64, u64>::new(4));
        for memo in [&shared, &apart] {
            for key in 0..3u64 {
                let (found, hash) = memo.get_by_hashing(&key, |k| *k == key);
                assert_eq!(found, None);
                let since = memo.flights.epoch();
                memo.store_since_hashed(hash, since, key, key * 10);
                assert_eq!(memo.cache.get(&key), Some(key * 10));
                assert_eq!(memo.get_by_hashing(&key, |k| *k == key).0, Some(key * 10));
            }
            let (_, hash) = memo.get_by_hashing(&7, |k| *k == 7);
            let since = memo.flights.epoch();
            memo.invalidate(&7);
            memo.store_since_hashed(hash, since, 7, 70);
            assert_eq!(memo.cache.peek(&7), None, "stored after an invalidation");
            memo.cache.validate();
        }
    }

    #[test]
    fn type_caches_keep_one_memo_per_type_and_sum_their_statistics() {
        let caches: &'static TypeCaches = Box::leak(Box::new(TypeCaches::new(PARAMS)));
        assert_eq!(caches.info().maxsize, Some(4));
        let a = caches.get(|p| Memo::<u8, u8>::new("a", p));
        let b = caches.get(|p| Memo::<u16, u8>::new("b", p));
        assert!(std::ptr::eq(a, caches.get(|_| unreachable!())));
        assert!(std::ptr::eq(
            b,
            caches.get::<Memo<u16, u8>>(|_| unreachable!())
        ));
        assert_eq!(a.cache.policy(), Policy::Fifo);
        a.cache.insert(1, 1);
        b.cache.insert(1, 1);
        assert_eq!(a.cache.get(&1), Some(1));
        assert_eq!(b.cache.get(&2), None);
        let info = caches.info();
        assert_eq!((info.hits, info.misses, info.currsize), (1, 1, 2));
        caches.reset();
        assert_eq!(caches.info().currsize, 0);
    }

    #[test]
    fn type_caches_are_created_once_under_contention() {
        let caches: &'static TypeCaches = Box::leak(Box::new(TypeCaches::new(PARAMS)));
        let found: Vec<usize> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| caches.get(|p| Memo::<u32, u32>::new("c", p)) as *const _ as usize)
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(found.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn instance_cache_belongs_to_one_method() {
        struct First;
        struct Second;
        let field = InstanceCache::new();
        assert_eq!(field.__info(PARAMS).maxsize, Some(4));
        let memo = field.__memo::<First, _, _>(|| Memo::<u8, u8>::new("first", PARAMS), || "first");
        memo.cache.insert(1, 2);
        assert_eq!(field.info().map(|i| i.currsize), Some(1));
        assert!(field.clone().info().is_none());
        let shared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            field.__memo::<Second, _, _>(|| Memo::<u8, u8>::new("second", PARAMS), || "second");
        }));
        let message = shared.unwrap_err().downcast::<String>().unwrap();
        assert!(message.starts_with("`second` keeps its cache in a field that another"));
        field.clear();
        assert_eq!(field.info().map(|i| i.currsize), Some(0));
    }
}
