//! The thread-safe cache: shards behind locks, picked by the middle bits of the key's hash.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use hashbrown::DefaultHashBuilder;

use crate::concurrent::{OnPresent, Shard, ShardConfig};
use crate::options::{CacheBuilder, Weigher};
use crate::stats::Counters;
use crate::{CacheInfo, Clock, Policy};
use std::sync::atomic::{AtomicU64, Ordering};

/// A concurrent, bounded, optionally expiring map from keys to cloneable values.
///
/// Single-threaded, its policy is exact: with [`Policy::Lru`] the hits, misses and evictions
/// equal those of Python's `functools.lru_cache` on the same sequence. It can be shared between
/// threads (`&Cache` is `Sync`), values are returned by clone (wrap large values in an `Arc`),
/// and no lock is held while user code other than `Hash`, `Eq` and `Clone` runs.
///
/// Lookups take no lock and write no memory that another thread uses: they find the entry
/// through a lock-free index and record the hit in a per-thread buffer, which writers replay
/// into the policy (in order) before they evict. An entry removed while a reader is reading it
/// is dropped once that reader has left; a reader holds back only the entry it reads, so at
/// most `maxsize` plus a small constant (16, plus one per read stripe) entries are ever alive.
///
/// ```
/// use memo::Cache;
///
/// let cache: Cache<String, usize> = Cache::new(2);
/// cache.insert("a".to_string(), 1);
/// cache.insert("b".to_string(), 2);
/// assert_eq!(cache.get("a"), Some(1)); // lookups take a borrowed key
/// cache.insert("c".to_string(), 3); // evicts "b", the least recently used
/// assert_eq!(cache.get("b"), None);
/// assert_eq!(cache.len(), 2);
/// ```
pub struct Cache<K, V, S = DefaultHashBuilder> {
    shards: Box<[Shard<K, V>]>,
    mask: usize,
    hasher: S,
    clock: Clock,
    weigher: Option<Weigher<K, V>>,
    max_weight: Option<u64>,
    maxsize: Option<usize>,
    ttl: Option<Duration>,
    policy: Policy,
    /// `flight::stamp(&hasher)` once computed (0: not yet): what [`Cache::hashes_like`]
    /// compares.
    stamp: AtomicU64,
}

impl<K, V> Cache<K, V> {
    /// A cache of at most `maxsize` entries with the default policy (LRU) and no expiry.
    ///
    /// ```
    /// let cache: memo::Cache<u32, u32> = memo::Cache::new(100);
    /// assert_eq!(cache.maxsize(), Some(100));
    /// ```
    pub fn new(maxsize: usize) -> Self {
        match Self::builder().maxsize(maxsize).build() {
            Ok(cache) => cache,
            Err(e) => panic!("Cache::new({maxsize}): {e}; use Cache::builder() to handle it"),
        }
    }

    /// A cache without a bound on its size.
    ///
    /// ```
    /// let cache: memo::Cache<u32, u32> = memo::Cache::unbounded();
    /// assert_eq!(cache.maxsize(), None);
    /// ```
    pub fn unbounded() -> Self {
        match Self::builder().maxsize(None).build() {
            Ok(cache) => cache,
            Err(e) => unreachable!("the default unbounded configuration is valid: {e}"),
        }
    }

    /// A builder for the other settings: policy, ttl, clock, shards, hasher.
    ///
    /// ```
    /// let cache = memo::Cache::<u32, u32>::builder().maxsize(10).build().unwrap();
    /// assert!(cache.is_empty());
    /// ```
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::default()
    }
}

impl<K, V, S> Cache<K, V, S> {
    pub(crate) fn from_builder(b: CacheBuilder<K, V, S>, shards: usize) -> Self {
        let ttl_nanos = b
            .ttl
            .map(|t| t.as_nanos().clamp(1, u64::MAX as u128) as u64);
        let clock = match (b.clock, b.ttl) {
            (Some(clock), _) => clock,
            (None, Some(_)) => Clock::coarse(),
            (None, None) => Clock::system(), // never read without a ttl
        };
        let shards: Box<[_]> = (0..shards)
            .map(|i| {
                let capacity = match b.maxsize {
                    Some(n) => n / shards + usize::from(i < n % shards),
                    None => usize::MAX,
                };
                let config = ShardConfig {
                    policy: b.policy,
                    ttl_nanos,
                    jitter: b.ttl_jitter,
                    coarse_now: clock.is_coarse(),
                    listener: b.listener.clone(),
                    max_weight: b.max_weight.map(|w| {
                        let n = shards as u64;
                        w / n + u64::from((i as u64) < w % n)
                    }),
                };
                Shard::new(capacity, config)
            })
            .collect();
        assert!(!shards.is_empty(), "a cache has at least one shard");
        Cache {
            mask: shards.len() - 1,
            shards,
            hasher: b.hasher,
            clock,
            weigher: b.max_weight.and(b.weigher),
            max_weight: b.max_weight,
            maxsize: b.maxsize,
            ttl: b.ttl,
            policy: b.policy,
            stamp: AtomicU64::new(0),
        }
    }

    /// The bound on the number of entries; `None` is unbounded.
    ///
    /// ```
    /// assert_eq!(memo::Cache::<u8, u8>::new(3).maxsize(), Some(3));
    /// ```
    pub fn maxsize(&self) -> Option<usize> {
        self.maxsize
    }

    /// The bound on the total weight of the entries ([`CacheBuilder::weigher`]); `None`
    /// without a weigher.
    ///
    /// ```
    /// assert_eq!(memo::Cache::<u8, u8>::new(3).max_weight(), None);
    /// ```
    pub fn max_weight(&self) -> Option<u64> {
        self.max_weight
    }

    /// How long entries live; `None` is forever.
    ///
    /// ```
    /// assert_eq!(memo::Cache::<u8, u8>::new(3).ttl(), None);
    /// ```
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The eviction policy.
    ///
    /// ```
    /// assert_eq!(memo::Cache::<u8, u8>::new(3).policy(), memo::Policy::Lru);
    /// ```
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// How many shards the cache is split into.
    ///
    /// ```
    /// assert_eq!(memo::Cache::<u8, u8>::new(3).shard_count(), 1);
    /// ```
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    #[inline]
    fn now(&self) -> u64 {
        if self.ttl.is_some() {
            self.clock.now_nanos()
        } else {
            0
        }
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K, V> {
        // A shard's index uses the low 32 bits of the hash: pick the shard with the high ones,
        // mixed first. The default hasher's bits 32..34 alone put 17 to 20 of 20 small integer
        // keys in one of 4 shards for about one seed in a hundred (its shard then evicted while
        // the others stood empty); a multiply makes every shard bit depend on all 32 high bits.
        let mixed = (hash >> 32).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        // SAFETY: `from_builder` makes at least one shard and sets `mask` to their number less
        // one, so the index is below it (the checked index cost three instructions a lookup).
        unsafe { self.shards.get_unchecked(mixed as usize & self.mask) }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> Cache<K, V, S> {
    /// How many entries are stored (an expired entry counts until a write or `info` sweeps it,
    /// or a lookup finds it expired).
    ///
    /// ```
    /// let cache = memo::Cache::new(3);
    /// cache.insert(1, 1);
    /// assert_eq!(cache.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        let now = self.now();
        self.shards.iter().map(|s| s.len(&self.hasher, now)).sum()
    }

    /// Whether no entry is stored.
    ///
    /// ```
    /// assert!(memo::Cache::<u8, u8>::new(3).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry; the statistics are kept (see [`reset`](Cache::reset)).
    ///
    /// ```
    /// let cache = memo::Cache::new(3);
    /// cache.insert(1, 1);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// ```
    pub fn clear(&self) {
        self.clear_all(false);
    }

    /// Empties every shard, then drops (and reports) what they held, after the locks are
    /// released: a listener that panics cannot leave a shard uncleared.
    fn clear_all(&self, reset_counters: bool) {
        let now = self.now();
        let mut dropped = Vec::new();
        for shard in self.shards.iter() {
            dropped.append(&mut shard.clear(&self.hasher, now, reset_counters));
        }
        if let Some(shard) = self.shards.first() {
            shard.release(dropped);
        }
    }

    /// Removes every entry and zeroes the statistics: `functools`' `cache_clear()`.
    ///
    /// ```
    /// let cache = memo::Cache::new(3);
    /// cache.insert(1, 1);
    /// cache.get(&1);
    /// cache.reset();
    /// assert_eq!((cache.info().hits, cache.info().currsize), (0, 0));
    /// ```
    pub fn reset(&self) {
        self.clear_all(true);
    }

    /// The value for `key`, if stored and alive. Counts a hit or a miss.
    ///
    /// ```
    /// let cache = memo::Cache::new(3);
    /// cache.insert("k".to_string(), 1);
    /// assert_eq!(cache.get("k"), Some(1));
    /// assert_eq!(cache.get("nope"), None);
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.get_by(key, |k| k.borrow() == key)
    }

    /// Looks up by any borrowed form `probe` whose `Hash` equals the stored key's `Hash`, with
    /// `is_match` deciding equality. This is how `#[memoize]` looks up `(&str, &u32)` against
    /// stored `(String, u32)` keys without allocating. Counts a hit or a miss.
    ///
    /// ```
    /// let cache: memo::Cache<(String, u32), u32> = memo::Cache::new(3);
    /// cache.insert(("a".to_string(), 1), 10);
    /// let hit = cache.get_by(&("a", &1u32), |k| k.0 == "a" && k.1 == 1);
    /// assert_eq!(hit, Some(10));
    /// ```
    #[inline]
    pub fn get_by<Q: Hash + ?Sized>(&self, probe: &Q, is_match: impl FnMut(&K) -> bool) -> Option<V>
    where
        V: Clone,
    {
        let hash = self.hasher.hash_one(probe);
        self.get_by_hash(hash, is_match)
    }

    /// [`get_by`](Cache::get_by) of a probe whose hash by this cache's hasher is `hash`, and
    /// that hash: what `#[memoize]` reuses on a miss for the insert.
    #[inline]
    pub(crate) fn get_by_hashing<Q: Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
    ) -> (Option<V>, u64)
    where
        V: Clone,
    {
        let hash = self.hasher.hash_one(probe);
        (self.get_by_hash(hash, is_match), hash)
    }

    #[inline]
    fn get_by_hash(&self, hash: u64, is_match: impl FnMut(&K) -> bool) -> Option<V>
    where
        V: Clone,
    {
        let now = self.now();
        self.shard(hash).get(&self.hasher, hash, is_match, now)
    }

    /// Whether this cache's hasher has [`flight::stamp`](crate::flight::stamp) `stamp`: then a
    /// hash made by the hasher so named is this cache's hash of the same key.
    #[inline]
    pub(crate) fn hashes_like(&self, stamp: u64) -> bool {
        let mut known = self.stamp.load(Ordering::Relaxed);
        if known == 0 {
            // A stamp of 0 is taken as 1: 0 means "not computed yet".
            known = crate::flight::stamp(&self.hasher).max(1);
            self.stamp.store(known, Ordering::Relaxed);
        }
        known == stamp.max(1)
    }

    /// The shard that keeps the keys of hash `hash`, the hasher, and the time for a write:
    /// what single-flight needs to keep its pending computations in the cache's own shards
    /// (`flight.rs`). `None` for a weighted cache, whose weigher must run outside the lock.
    #[inline]
    pub(crate) fn local_shard(&self, hash: u64) -> Option<(&Shard<K, V>, &S, u64)> {
        if self.weigher.is_some() {
            return None;
        }
        Some((self.shard(hash), &self.hasher, self.now()))
    }

    /// The hasher and the time for a write into a shard found by
    /// [`local_shard`](Cache::local_shard) before.
    #[inline]
    pub(crate) fn write_context(&self) -> (&S, u64) {
        (&self.hasher, self.now())
    }

    /// Every shard, the hasher and the time for a write (see [`Cache::local_shard`]).
    pub(crate) fn local_shards(&self) -> (&[Shard<K, V>], &S, u64) {
        (&self.shards, &self.hasher, self.now())
    }

    /// [`peek`](Cache::peek) of `key`, whose hash by this cache's hasher is `hash`.
    #[inline]
    pub(crate) fn peek_with_hash(&self, hash: u64, key: &K) -> Option<V>
    where
        V: Clone,
    {
        let now = self.now();
        self.shard(hash).peek(hash, |k| k == key, now, V::clone)
    }

    /// [`contains_key`](Cache::contains_key) of `key`, whose hash by this cache's hasher is
    /// `hash`.
    #[inline]
    pub(crate) fn contains_with_hash(&self, hash: u64, key: &K) -> bool {
        let now = self.now();
        self.shard(hash)
            .peek(hash, |k| k == key, now, |_| ())
            .is_some()
    }

    /// [`insert_if_absent`](Cache::insert_if_absent) of `key`, whose hash by this cache's
    /// hasher is `hash`.
    #[inline]
    pub(crate) fn insert_if_absent_with_hash(&self, hash: u64, key: K, value: V) {
        self.insert_hashed(hash, key, value, OnPresent::Keep);
    }

    /// The value for `key` without counting a hit or a miss and without touching the policy.
    ///
    /// ```
    /// let cache = memo::Cache::new(3);
    /// cache.insert(1, 1);
    /// assert_eq!(cache.peek(&1), Some(1));
    /// assert_eq!(cache.info().hits, 0);
    /// ```
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let hash = self.hasher.hash_one(key);
        let now = self.now();
        self.shard(hash)
            .peek(hash, |k| k.borrow() == key, now, V::clone)
    }

    /// Whether `key` is stored and alive (counts nothing).
    ///
    /// ```
    /// let cache = memo::Cache::new(3);
    /// cache.insert(1, ());
    /// assert!(cache.contains_key(&1));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let now = self.now();
        self.shard(hash)
            .peek(hash, |k| k.borrow() == key, now, |_| ())
            .is_some()
    }

    /// Stores `value` under `key`, replacing any value stored there (which counts as a use of
    /// the entry and restarts its ttl). A full cache first evicts one entry per its policy.
    ///
    /// ```
    /// let cache = memo::Cache::new(1);
    /// cache.insert(1, "a");
    /// cache.insert(1, "b");
    /// assert_eq!(cache.get(&1), Some("b"));
    /// cache.insert(2, "c");
    /// assert_eq!(cache.get(&1), None);
    /// ```
    pub fn insert(&self, key: K, value: V) {
        self.insert_with(key, value, OnPresent::Replace);
    }

    /// Stores `value` under `key` unless a live entry is there already, which is left untouched
    /// (neither replaced nor counted as a use): what `functools.lru_cache` does when a recursive
    /// call stored the key while the outer call was computing it.
    ///
    /// ```
    /// let cache = memo::Cache::new(3);
    /// cache.insert_if_absent(1, "first");
    /// cache.insert_if_absent(1, "second");
    /// assert_eq!(cache.get(&1), Some("first"));
    /// ```
    pub fn insert_if_absent(&self, key: K, value: V) {
        self.insert_with(key, value, OnPresent::Keep);
    }

    // Inline: a wrapper of `insert_hashed`, which is; otherwise whether it inlines into the
    // caller depends on which codegen unit each lands in (an unrelated change moved it out of
    // line in hit_loop, for 20 instructions more per insert).
    #[inline]
    fn insert_with(&self, key: K, value: V, on_present: OnPresent) {
        let hash = self.hasher.hash_one(&key);
        self.insert_hashed(hash, key, value, on_present);
    }

    #[inline]
    fn insert_hashed(&self, hash: u64, key: K, value: V, on_present: OnPresent) {
        let now = self.now();
        // User code, before the lock: the weigher. An entry weighs at least 1, so that the bound
        // also bounds the number of entries (values that weigh nothing, such as `()`, filled
        // memory without end).
        let weight = match &self.weigher {
            Some(weigher) => weigher(&key, &value).max(1),
            None => 0,
        };
        let shard = self.shard(hash);
        let dropped = shard.insert(&self.hasher, hash, key, value, weight, now, on_present);
        shard.release(dropped); // user code (Drop, the listener) runs without the lock
    }

    /// The value for `key`, computing and storing it with `compute` on a miss. No lock is held
    /// while `compute` runs, so it may use the cache itself (recursion works).
    ///
    /// ```
    /// let cache = memo::Cache::new(10);
    /// assert_eq!(cache.get_or_insert_with(2, || 2 * 21), 42);
    /// assert_eq!(cache.get_or_insert_with(2, || unreachable!()), 42);
    /// ```
    pub fn get_or_insert_with(&self, key: K, compute: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        if let Some(v) = self.get(&key) {
            return v;
        }
        let value = compute();
        self.insert_if_absent(key, value.clone());
        value
    }

    /// Removes `key`, returning (a clone of) its value if it was stored and alive.
    ///
    /// ```
    /// let cache = memo::Cache::new(3);
    /// cache.insert(1, "a");
    /// assert_eq!(cache.remove(&1), Some("a"));
    /// assert_eq!(cache.remove(&1), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let hash = self.hasher.hash_one(key);
        let now = self.now();
        let shard = self.shard(hash);
        let (value, dropped) = shard.remove(&self.hasher, hash, |k| k.borrow() == key, now);
        shard.release(dropped); // user code (Drop, the listener) runs without the lock
        value
    }

    /// The statistics, summed over the shards. Expired entries are swept first, so `currsize`
    /// counts live entries.
    ///
    /// ```
    /// let cache = memo::Cache::new(3);
    /// cache.insert(1, 1);
    /// let info = cache.info();
    /// assert_eq!((info.currsize, info.maxsize), (1, Some(3)));
    /// ```
    pub fn info(&self) -> CacheInfo {
        let now = self.now();
        let mut counters = Counters::default();
        let mut currsize = 0;
        for shard in self.shards.iter() {
            let (shard_counters, len) = shard.info(&self.hasher, now);
            counters += shard_counters;
            currsize += len;
        }
        CacheInfo {
            hits: counters.hits,
            misses: counters.misses,
            maxsize: self.maxsize,
            currsize,
            currsize_known: true,
            evictions: counters.evictions,
            expirations: counters.expirations,
            policy: self.policy,
            ttl: self.ttl,
            waits: 0,
            load_time: std::time::Duration::ZERO,
            refreshes: 0,
            stale_hits: 0,
            stale_errors: 0,
        }
    }

    /// The total weight of the entries stored (0 in a cache without a weigher).
    ///
    /// ```
    /// let cache = memo::Cache::<u8, String>::builder()
    ///     .weigher(|_, v| v.len() as u64)
    ///     .max_weight(100)
    ///     .build()?;
    /// cache.insert(1, "four".into());
    /// assert_eq!(cache.weight(), 4);
    /// # Ok::<(), memo::BuildError>(())
    /// ```
    pub fn weight(&self) -> u64 {
        let now = self.now();
        self.shards
            .iter()
            .map(|s| s.weight(&self.hasher, now))
            .sum()
    }

    /// How many buckets the shards' indexes have (tests only).
    #[cfg(test)]
    pub(crate) fn index_buckets(&self) -> usize {
        self.shards.iter().map(|s| s.index_buckets()).sum()
    }

    /// How many slots the shards have handed out (tests only): what the cache's storage holds.
    #[cfg(test)]
    pub(crate) fn slots_handed_out(&self) -> usize {
        self.shards.iter().map(|s| s.slots_handed_out()).sum()
    }

    /// Checks every shard's invariants (tests only).
    #[cfg(test)]
    pub(crate) fn validate(&self) {
        for shard in self.shards.iter() {
            shard.validate(&self.hasher);
        }
        if let Some(max) = self.maxsize {
            assert!(self.len() <= max);
        }
        if let Some(max) = self.max_weight {
            assert!(self.weight() <= max);
        }
    }
}

impl<K, V, S> Drop for Cache<K, V, S> {
    /// Reports the values that had left but were still held back for a reader; the values still
    /// in the cache are dropped unreported.
    fn drop(&mut self) {
        for shard in self.shards.iter_mut() {
            let dropped = shard.take_retired();
            shard.release(dropped);
        }
    }
}

impl<K, V, S> fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("maxsize", &self.maxsize)
            .field("policy", &self.policy)
            .field("ttl", &self.ttl)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}
