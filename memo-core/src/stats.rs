//! Statistics: what `cache_info()` reports.

use std::fmt;
use std::time::Duration;

use crate::Policy;

/// A snapshot of a cache's statistics, as `functools.lru_cache`'s `cache_info()` gives.
///
/// `hits`, `misses`, `maxsize` and `currsize` mean what they mean in Python; `evictions` and
/// `expirations` count entries pushed out by the size bound and by the ttl.
///
/// ```
/// use memo::Cache;
///
/// let cache: Cache<u32, u32> = Cache::new(2);
/// assert_eq!(cache.get(&1), None); // a miss
/// cache.insert(1, 10);
/// assert_eq!(cache.get(&1), Some(10)); // a hit
/// let info = cache.info();
/// assert_eq!((info.hits, info.misses, info.maxsize, info.currsize), (1, 1, Some(2), 1));
/// assert_eq!(info.hit_ratio(), 0.5);
/// assert_eq!(info.waits, 0); // no memoized function waited for another caller
/// ```
///
/// With the `serde` feature it implements `serde::Serialize`: the fields by name, the policy as
/// its name (`"lru"`) and the ttl as serde writes a `Duration` (`{"secs": 30, "nanos": 0}`).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CacheInfo {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing, or an expired entry.
    pub misses: u64,
    /// The bound on the number of entries; `None` is unbounded.
    pub maxsize: Option<usize>,
    /// Entries stored now (expired entries not yet swept count until they are); meaningful only
    /// when [`currsize_known`](CacheInfo::currsize_known).
    pub currsize: usize,
    /// Whether `currsize` is a count. Always for an in-memory cache and the SQLite store; never
    /// for Redis and Memcached, which cannot count one function's entries without a scan of the
    /// server, nor for any store while it is unreachable: `currsize` is then 0 and means
    /// nothing (printed as `currsize=None`).
    pub currsize_known: bool,
    /// Entries removed to make room for new ones.
    pub evictions: u64,
    /// Entries removed because their ttl had passed.
    pub expirations: u64,
    /// The eviction policy.
    pub policy: Policy,
    /// How long an entry lives after it is stored; `None` is forever.
    pub ttl: Option<Duration>,
    /// Calls of a memoized function that took the outcome of another caller's computation of
    /// the same arguments (single-flight) instead of running the body: neither hits nor misses,
    /// so that `hits + misses + waits` is the number of calls and a miss is a run of the body.
    /// Always 0 for a bare [`Cache`](crate::Cache).
    pub waits: u64,
    /// The total time memoized calls spent running the body for the cache (Caffeine's
    /// `totalLoadTime`): `load_time / misses` is the mean cost of a miss. Zero for a bare
    /// [`Cache`](crate::Cache) and without single-flight. Bodies that take over a microsecond
    /// or so are each timed; faster ones are timed about one in 16, each sample counting for
    /// the calls it stands for (two clock reads would otherwise cost a cheap miss a third).
    pub load_time: Duration,
    /// Background recomputations of a memoized function with `refresh` or
    /// `stale_while_revalidate` (run on their own, not calls: they are in none of `hits`,
    /// `misses` and `waits`). Always 0 for a bare [`Cache`](crate::Cache).
    pub refreshes: u64,
    /// Calls answered by a value past its ttl, within `stale_while_revalidate`, while it was
    /// recomputed in the background: counted in `hits` too.
    pub stale_hits: u64,
    /// Calls whose body (or the computation they waited for) returned an `Err` or `None` and
    /// that got a value past its ttl, within `stale_if_error`, instead: counted in `misses` or
    /// `waits` too.
    pub stale_errors: u64,
}

impl CacheInfo {
    /// Hits divided by lookups, or 0 before the first lookup.
    ///
    /// ```
    /// let cache: memo::Cache<u8, u8> = memo::Cache::new(1);
    /// assert_eq!(cache.info().hit_ratio(), 0.0);
    /// ```
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

impl fmt::Display for CacheInfo {
    /// Prints like Python: `CacheInfo(hits=1, misses=2, maxsize=128, currsize=2)`, then the extras.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CacheInfo(hits={}, misses={}, maxsize=",
            self.hits, self.misses
        )?;
        match self.maxsize {
            Some(n) => write!(f, "{n}")?,
            None => f.write_str("None")?,
        }
        write!(
            f,
            ", currsize={}, evictions={}, expirations={}",
            if self.currsize_known {
                self.currsize.to_string()
            } else {
                "None".to_string()
            },
            self.evictions,
            self.expirations
        )?;
        if self.waits > 0 {
            write!(f, ", waits={}", self.waits)?;
        }
        for (name, count) in [
            ("refreshes", self.refreshes),
            ("stale_hits", self.stale_hits),
            ("stale_errors", self.stale_errors),
        ] {
            if count > 0 {
                write!(f, ", {name}={count}")?;
            }
        }
        f.write_str(")")
    }
}

/// Counters of one shard, kept under the shard's lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub expirations: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.evictions += o.evictions;
        self.expirations += o.expirations;
    }
}
