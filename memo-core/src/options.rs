//! The builder of [`Cache`].

use std::marker::PhantomData;
use std::time::Duration;

use hashbrown::DefaultHashBuilder;

use crate::{BuildError, Cache, Clock, Policy};

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
    pub(crate) clock: Option<Clock>,
    pub(crate) shards: Option<usize>,
    pub(crate) hasher: S,
    marker: PhantomData<fn(K, V)>,
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        CacheBuilder {
            maxsize: Some(crate::DEFAULT_MAXSIZE),
            policy: Policy::default(),
            ttl: None,
            clock: None,
            shards: None,
            hasher: DefaultHashBuilder::default(),
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
            clock: self.clock,
            shards: self.shards,
            hasher,
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
    pub fn build(self) -> Result<Cache<K, V, S>, BuildError> {
        let shards = match self.shards {
            Some(n) if n == 0 || !n.is_power_of_two() => {
                return Err(BuildError::ShardsNotPowerOfTwo(n))
            }
            Some(n) if n > crate::MAX_SHARDS => return Err(BuildError::TooManyShards(n)),
            Some(n) => n,
            None => default_shards(self.maxsize),
        };
        if self.ttl == Some(Duration::ZERO) {
            return Err(BuildError::ZeroTtl);
        }
        if let Some(n) = self.maxsize {
            if n > crate::MAX_MAXSIZE {
                return Err(BuildError::MaxsizeTooLarge(n));
            }
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
        self.maxsize = self.maxsize.map(|n| n.min(crate::MAX_MAXSIZE));
        if self.ttl == Some(Duration::ZERO) {
            self.ttl = Some(Duration::from_nanos(1));
        }
        let shards = match self.shards {
            Some(n) => n.clamp(1, crate::MAX_SHARDS).next_power_of_two(),
            None => default_shards(self.maxsize),
        };
        let shards = fillable_shards(shards, self.maxsize);
        Cache::from_builder(self, shards)
    }
}

/// No more shards than `maxsize` entries (a shard of capacity zero would never cache).
fn fillable_shards(shards: usize, maxsize: Option<usize>) -> usize {
    match maxsize {
        Some(n) if n < shards => (n.max(1) + 1).next_power_of_two() / 2,
        _ => shards,
    }
}

/// One shard for a bounded cache (exact policy); several for an unbounded one, which has no
/// eviction order to keep.
fn default_shards(maxsize: Option<usize>) -> usize {
    match maxsize {
        Some(_) => 1,
        None => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores * 4).next_power_of_two().min(64)
        }
    }
}
