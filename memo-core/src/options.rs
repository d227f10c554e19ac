//! The builder of [`Cache`].

use std::marker::PhantomData;
use std::time::Duration;

use hashbrown::DefaultHashBuilder;

use crate::listener::Listener;

/// A cache's weigher.
pub(crate) type Weigher<K, V> = std::sync::Arc<dyn Fn(&K, &V) -> u64 + Send + Sync>;
use crate::{BuildError, Cache, Clock, Policy, RemovalCause};

/// Configures a [`Cache`]; [`build`](CacheBuilder::build) checks the configuration and returns an
/// error instead of panicking.
///
/// ```
/// use memo::{Cache, Policy};
/// use std::time::Duration;
///
/// let cache: Cache<u64, String> = Cache::builder()
///     .maxsize(10_000)
///     .policy(Policy::Lru)
///     .ttl(Duration::from_secs(30))
///     .build()?;
/// cache.insert(1, "one".into());
/// assert_eq!(cache.get(&1).as_deref(), Some("one"));
/// # Ok::<(), memo::BuildError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct CacheBuilder<K, V, S = DefaultHashBuilder> {
    pub(crate) maxsize: Option<usize>,
    pub(crate) policy: Policy,
    pub(crate) ttl: Option<Duration>,
    /// The fraction of the ttl over which deadlines are spread (0: none).
    pub(crate) ttl_jitter: f64,
    pub(crate) clock: Option<Clock>,
    pub(crate) shards: Option<usize>,
    pub(crate) hasher: S,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) max_weight: Option<u64>,
    /// Whether `maxsize` was given (a weighted cache is otherwise unbounded in entries).
    pub(crate) maxsize_set: bool,
    marker: PhantomData<fn(K, V)>,
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        CacheBuilder {
            maxsize: Some(crate::DEFAULT_MAXSIZE),
            policy: Policy::default(),
            ttl: None,
            ttl_jitter: 0.0,
            clock: None,
            shards: None,
            hasher: DefaultHashBuilder::default(),
            listener: None,
            weigher: None,
            max_weight: None,
            maxsize_set: false,
            marker: PhantomData,
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// The bound on the number of entries: a number, or `None` for unbounded (default 128).
    ///
    /// ```
    /// let cache = memo::Cache::<u8, u8>::builder().maxsize(None).build().unwrap();
    /// assert_eq!(cache.maxsize(), None);
    /// ```
    pub fn maxsize(mut self, maxsize: impl Into<Option<usize>>) -> Self {
        self.maxsize = maxsize.into();
        self.maxsize_set = true;
        self
    }

    /// The eviction policy (default [`Policy::Lru`]).
    ///
    /// ```
    /// use memo::{Cache, Policy};
    /// let cache = Cache::<u8, u8>::builder().policy(Policy::Mru).build().unwrap();
    /// assert_eq!(cache.policy(), Policy::Mru);
    /// ```
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How long an entry lives after it was stored (default: forever).
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = memo::Cache::<u8, u8>::builder().ttl(Duration::from_secs(5)).build().unwrap();
    /// assert_eq!(cache.ttl(), Some(Duration::from_secs(5)));
    /// ```
    pub fn ttl(mut self, ttl: impl Into<Option<Duration>>) -> Self {
        self.ttl = ttl.into();
        self
    }

    /// Spreads each entry's deadline uniformly over the last `fraction` of the ttl, so that
    /// entries stored together do not all expire together (the synchronized-expiry stampede).
    /// An entry stored at `t` expires at a time drawn uniformly from `(t + ttl * (1 - fraction),
    /// t + ttl]`: the ttl stays an upper bound on how old a returned value can be. `fraction`
    /// is in `[0, 1]`; 0 (the default) is no jitter. It needs a ttl ([`BuildError::JitterWithoutTtl`],
    /// [`BuildError::InvalidJitter`]).
    ///
    /// With jitter, [`Cache::info`] still counts only live entries, and a lookup never returns an
    /// expired one; a write's sweep may leave an expired entry in place for up to an eighth of
    /// the jitter window (`ttl * fraction / 8`) past its deadline.
    ///
    /// ```
    /// use memo::{Cache, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u32, u32> = Cache::builder()
    ///     .maxsize(None)
    ///     .ttl(Duration::from_secs(100))
    ///     .ttl_jitter(0.2)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// for k in 0..1000 {
    ///     cache.insert(k, k);
    /// }
    /// clock.advance(Duration::from_secs(80)); // no entry expires before 80 s...
    /// assert_eq!(cache.info().currsize, 1000);
    /// clock.advance(Duration::from_secs(10)); // ... about half of them by 90 s ...
    /// assert!((300..700).contains(&cache.info().currsize));
    /// clock.advance(Duration::from_secs(10)); // ... and all by 100 s.
    /// assert_eq!(cache.info().currsize, 0);
    /// # Ok::<(), memo::BuildError>(())
    /// ```
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.ttl_jitter = fraction;
        self
    }

    /// The time source for expiry (default [`Clock::coarse`] when there is a ttl); tests pass a
    /// [`ManualClock`](crate::ManualClock).
    ///
    /// ```
    /// let clock = memo::ManualClock::new();
    /// let cache = memo::Cache::<u8, u8>::builder().clock(clock).build().unwrap();
    /// # drop(cache);
    /// ```
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = Some(clock.into());
        self
    }

    /// How many independently locked shards (a power of two, at most
    /// [`MAX_SHARDS`](crate::MAX_SHARDS)). One shard (the default for a bounded cache) keeps the
    /// policy exact; more shards split `maxsize` between them, which lets writers proceed in
    /// parallel at the price of a per-shard, approximate policy. A bounded cache gets no more
    /// shards than `maxsize` can fill (each holds at least one entry).
    ///
    /// ```
    /// let cache = memo::Cache::<u8, u8>::builder().shards(4).build().unwrap();
    /// assert_eq!(cache.shard_count(), 4);
    /// let small = memo::Cache::<u8, u8>::builder().maxsize(10).shards(64).build().unwrap();
    /// assert_eq!(small.shard_count(), 8);
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Calls `listener` with the key, the value and the [`RemovalCause`] of every value that
    /// leaves the cache: evicted (size), expired, removed, replaced or cleared. As with moka's
    /// and Caffeine's removal listeners:
    ///
    /// - it runs on the thread whose call removed the value, after that call has released the
    ///   shard's lock (it may use the cache);
    /// - exactly once per value that left, and never for a value still in the cache. A value
    ///   that a lock-free reader is still cloning when it leaves is reported once that reader is
    ///   done, by the next call that writes to its shard; a lookup that finds an entry expired
    ///   reports it at the shard's next write too;
    /// - a value that never entered is not reported (the value of an
    ///   [`insert_if_absent`](Cache::insert_if_absent) whose key was present), except that a
    ///   cache of `maxsize` 0 reports every value it is given as [`RemovalCause::Size`];
    /// - when the cache itself is dropped, the values still in it are dropped without being
    ///   reported (moka does the same); values that had already left are reported then;
    /// - a listener that panics leaves the cache consistent: the other values of the same call
    ///   are still reported, then the panic resumes in the caller.
    ///
    /// `#[memoize]` has no option for it: a listener is a `Cache` feature.
    ///
    /// ```
    /// use memo::{Cache, RemovalCause};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let evicted = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&evicted);
    /// let cache: Cache<u32, String> = Cache::builder()
    ///     .maxsize(100)
    ///     .on_evict(move |_key: &u32, _value: &String, cause| {
    ///         if cause == RemovalCause::Size {
    ///             counter.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build()?;
    /// for k in 0..150 {
    ///     cache.insert(k, k.to_string());
    /// }
    /// assert_eq!(evicted.load(Ordering::Relaxed), 50);
    /// # Ok::<(), memo::BuildError>(())
    /// ```
    pub fn on_evict(
        mut self,
        listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(std::sync::Arc::new(listener));
        self
    }

    /// Bounds the cache by the total weight of its entries, as `weigher` gives each one
    /// (bytes, say: see [`Weigh`](crate::Weigh)), instead of or as well as by their number. Set
    /// with [`max_weight`](CacheBuilder::max_weight); a weighted cache without a
    /// [`maxsize`](CacheBuilder::maxsize) of its own has none (the default 128 is for counted
    /// caches).
    ///
    /// The weigher is called once per insert, before the shard's lock is taken; its weight is
    /// kept with the entry (8 bytes per entry, in weighted caches only), and an entry weighs at
    /// least 1 (a weigher's 0 counts as 1: the bound also bounds the number of entries, whatever
    /// the values weigh). The total never
    /// exceeds the bound, with every policy: an insert first evicts, in the policy's order, until
    /// the new entry fits. A value heavier than the whole bound is not cached (a listener is told
    /// [`RemovalCause::Size`]), and replacing a key with such a value removes the old one.
    ///
    /// With several [`shards`](CacheBuilder::shards), each holds an equal share of the bound,
    /// and a value heavier than its shard's share is not cached (as in quick_cache): a weighted
    /// cache has one shard unless told otherwise, so that any value up to the whole bound fits.
    /// The adaptive policy sizes its window and main regions in entries, not weight.
    ///
    /// ```
    /// use memo::Cache;
    ///
    /// let cache: Cache<u32, String> = Cache::builder()
    ///     .weigher(|_key, value: &String| value.len() as u64)
    ///     .max_weight(10)
    ///     .build()?;
    /// cache.insert(1, "abcd".into());
    /// cache.insert(2, "efgh".into());
    /// cache.insert(3, "ijkl".into()); // 12 bytes > 10: evicts 1, the least recently used
    /// assert_eq!((cache.get(&1), cache.len()), (None, 2));
    /// cache.insert(4, "a value longer than ten bytes".into()); // never cached
    /// assert_eq!(cache.get(&4), None);
    /// assert_eq!(cache.weight(), 8);
    /// # Ok::<(), memo::BuildError>(())
    /// ```
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(std::sync::Arc::new(weigher));
        self
    }

    /// The bound on the total weight of the entries (see [`weigher`](CacheBuilder::weigher),
    /// which it needs: [`BuildError::MaxWeightWithoutWeigher`]).
    ///
    /// ```
    /// let cache = memo::Cache::<u8, Vec<u8>>::builder()
    ///     .weigher(|_, v| v.len() as u64)
    ///     .max_weight(1 << 20)
    ///     .build()?;
    /// assert_eq!((cache.max_weight(), cache.maxsize()), (Some(1 << 20), None));
    /// # Ok::<(), memo::BuildError>(())
    /// ```
    pub fn max_weight(mut self, max_weight: u64) -> Self {
        self.max_weight = Some(max_weight);
        self
    }

    /// The hasher of keys (default: hashbrown's foldhash).
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// let cache = memo::Cache::<u8, u8>::builder().hasher(RandomState::new()).build().unwrap();
    /// # drop(cache);
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            maxsize: self.maxsize,
            policy: self.policy,
            ttl: self.ttl,
            ttl_jitter: self.ttl_jitter,
            clock: self.clock,
            shards: self.shards,
            hasher,
            listener: self.listener,
            weigher: self.weigher,
            max_weight: self.max_weight,
            maxsize_set: self.maxsize_set,
            marker: PhantomData,
        }
    }

    /// Checks the configuration and makes the cache.
    ///
    /// ```
    /// use memo::{BuildError, Cache};
    /// use std::time::Duration;
    /// let err = Cache::<u8, u8>::builder().ttl(Duration::ZERO).build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroTtl);
    /// ```
    pub fn build(mut self) -> Result<Cache<K, V, S>, BuildError> {
        self.weighted_maxsize();
        let shards = match self.shards {
            Some(n) if n == 0 || !n.is_power_of_two() => {
                return Err(BuildError::ShardsNotPowerOfTwo(n))
            }
            Some(n) if n > crate::MAX_SHARDS => return Err(BuildError::TooManyShards(n)),
            Some(n) => n,
            None => default_shards(self.maxsize, self.max_weight),
        };
        if self.ttl == Some(Duration::ZERO) {
            return Err(BuildError::ZeroTtl);
        }
        match (&self.weigher, self.max_weight) {
            (Some(_), None) => return Err(BuildError::WeigherWithoutMaxWeight),
            (None, Some(_)) => return Err(BuildError::MaxWeightWithoutWeigher),
            _ => {}
        }
        if !(0.0..=1.0).contains(&self.ttl_jitter) {
            return Err(BuildError::InvalidJitter);
        }
        if self.ttl_jitter > 0.0 && self.ttl.is_none() {
            return Err(BuildError::JitterWithoutTtl);
        }
        if let Some(n) = self.maxsize
            && n > crate::MAX_MAXSIZE
        {
            return Err(BuildError::MaxsizeTooLarge(n));
        }
        let shards = fillable_shards(shards, self.maxsize);
        Ok(Cache::from_builder(self, shards))
    }

    /// Makes the cache from a configuration that may be out of range, bringing each setting
    /// into range instead of failing: maxsize at most [`MAX_MAXSIZE`](crate::MAX_MAXSIZE), a
    /// zero ttl as the shortest one, shards a power of two up to [`MAX_SHARDS`](crate::MAX_SHARDS).
    /// What `#[memoize]` uses, whose options were checked at compile time: its static can
    /// never fail to initialize.
    pub(crate) fn build_clamped(mut self) -> Cache<K, V, S> {
        self.weighted_maxsize();
        self.maxsize = self.maxsize.map(|n| n.min(crate::MAX_MAXSIZE));
        if self.ttl == Some(Duration::ZERO) {
            self.ttl = Some(Duration::from_nanos(1));
        }
        self.ttl_jitter = if self.ttl_jitter.is_nan() {
            0.0
        } else {
            self.ttl_jitter.clamp(0.0, 1.0)
        };
        let shards = match self.shards {
            Some(n) => n.clamp(1, crate::MAX_SHARDS).next_power_of_two(),
            None => default_shards(self.maxsize, self.max_weight),
        };
        if self.weigher.is_none() {
            self.max_weight = None;
        }
        let shards = fillable_shards(shards, self.maxsize);
        Cache::from_builder(self, shards)
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// A weighted cache is bounded by weight alone unless `maxsize` was given.
    fn weighted_maxsize(&mut self) {
        if self.max_weight.is_some() && !self.maxsize_set {
            self.maxsize = None;
        }
    }
}

/// No more shards than `maxsize` entries (a shard of capacity zero would never cache).
fn fillable_shards(shards: usize, maxsize: Option<usize>) -> usize {
    match maxsize {
        Some(n) if n < shards => (n.max(1) + 1).next_power_of_two() / 2,
        _ => shards,
    }
}

/// One shard for a bounded cache (exact policy, and for a weighted one, room for any value up
/// to the whole bound); several for an unbounded one, which has no eviction order to keep.
fn default_shards(maxsize: Option<usize>, max_weight: Option<u64>) -> usize {
    match (maxsize, max_weight) {
        (Some(_), _) | (_, Some(_)) => 1,
        (None, None) => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores * 4).next_power_of_two().min(64)
        }
    }
}
