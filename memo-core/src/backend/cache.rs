//! [`StoreCache`]: one function's cache in a named store, what `#[memoize(store = "...")]` uses.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::key;
use super::near::{self, NearState};
use super::registry::{self, Refusals, Registered};
use crate::{Cache, CacheInfo, Policy};

/// The cache of one function in a named store: typed keys and values over a [`Store`]'s bytes.
///
/// The store is looked up by name on first use, so statics can be made before `main` registers
/// the stores. A name that was never registered gives an in-memory [`Cache`] (with one warning
/// per name). Keys are namespaced by the function's path, the version and a hash of its
/// signature; [`reset`](StoreCache::reset) removes this function's keys and no other's.
///
/// Faults never reach the caller: a store that is down, slow or restarting makes lookups misses
/// (the function runs) and inserts no-ops, and a stored value that does not decode as `V` is a
/// miss, overwritten by the next insert.
///
/// ```
/// use memo::stores::StoreCache;
/// use std::time::Duration;
///
/// // Never registered: cached in memory, with one warning.
/// let cache: StoreCache<(String, u32), f64> = StoreCache::new("doc-nowhere", "weather::temp")
///     .with_ttl(Duration::from_secs(300))
///     .with_version(2);
/// assert_eq!(cache.get_or_insert_with(("Paris".into(), 3), || 21.5), 21.5);
/// assert_eq!(cache.get_by(&("Paris", &3u32), |k| k.0 == "Paris" && k.1 == 3), Some(21.5));
/// assert_eq!((cache.info().hits, cache.info().misses), (1, 1));
/// assert_eq!(cache.namespace(), None); // in memory
/// ```
///
/// [`Store`]: super::Store
pub struct StoreCache<K, V> {
    store: String,
    path: String,
    signature: u64,
    version: u32,
    maxsize: Option<usize>,
    ttl: Option<Duration>,
    backing: OnceLock<Backing<K, V>>,
    hits: AtomicU64,
    misses: AtomicU64,
    warned_codec: AtomicBool,
    /// Whether a stored value that does not decode was reported (once per function).
    warned_decode: AtomicBool,
    refusals: Arc<Refusals>,
    /// Keys whose cross-process lock this process holds while it computes them.
    locked: Mutex<HashSet<String>>,
    /// The near cache: a bounded in-process layer in front of the store (`with_local`).
    near: Option<Near<K, V>>,
    /// `with_ttl_jitter`: each write's ttl cut by its own offset, as the near cache's.
    jitter: crate::concurrent::expiry::Jitter,
    /// `maxweight`: the bound on the values kept in this process (near cache, fallback).
    weigher: Option<Weighers<K, V>>,
}

/// How `maxweight` weighs a value, in the near cache and in the fallback, and the bound.
struct Weighers<K, V> {
    max: u64,
    near: crate::options::Weigher<K, Local<V>>,
    fallback: crate::options::Weigher<K, V>,
}

/// The near cache's entries and what makes them stale (see [`super::near`]).
struct Near<K, V> {
    entries: Cache<K, Local<V>>,
    size: usize,
    ttl: Duration,
    /// Attached when the store is looked up (a function cached in memory has no layer).
    state: OnceLock<Arc<NearState>>,
}

/// A value in the near cache: when the read or write that kept it began, the hash of its item
/// (what invalidations name), and the end of its store entry's ttl if before the local ttl's.
#[derive(Clone)]
struct Local<V> {
    value: V,
    born: u64,
    item: u64,
    until: Option<Instant>,
}

/// Locks remembered at most: a body that panics leaves its key here (the lock itself expires in
/// the store), so the set is emptied past this size.
const MAX_LOCKED: usize = 1024;

enum Backing<K, V> {
    Store {
        store: Arc<Registered>,
        namespace: String,
    },
    Memory(Cache<K, V>),
}

impl<K, V> StoreCache<K, V> {
    /// The cache of the function at `path` (`crate::module::function`) in the store registered
    /// as `store`; version 1, no ttl, maxsize 128 (which bounds only the in-memory fallback:
    /// a store has its own bound).
    ///
    /// ```
    /// let cache: memo::stores::StoreCache<u64, u64> =
    ///     memo::stores::StoreCache::new("shared", "app::fib");
    /// assert_eq!(cache.store_name(), "shared");
    /// ```
    pub fn new(store: impl Into<String>, path: impl Into<String>) -> Self {
        StoreCache {
            store: store.into(),
            path: path.into(),
            signature: 0,
            version: 1,
            maxsize: Some(crate::DEFAULT_MAXSIZE),
            ttl: None,
            backing: OnceLock::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            warned_codec: AtomicBool::new(false),
            warned_decode: AtomicBool::new(false),
            refusals: Arc::default(),
            locked: Mutex::new(HashSet::new()),
            near: None,
            jitter: crate::concurrent::expiry::Jitter::new(0.0),
            weigher: None,
        }
    }

    /// A near cache: up to `size` values kept in this process in front of the store, each for
    /// at most `ttl` and never past its store entry's ttl, so a hit costs tens of nanoseconds
    /// instead of a round trip. [`remove`](StoreCache::remove) and
    /// [`reset`](StoreCache::reset) drop them here at once and, on Redis, in every other
    /// process within milliseconds (pub/sub; while the subscription is down the layer is
    /// bypassed). On stores that cannot push (memcached, SQLite), another process's
    /// invalidation is seen here only when the local entry expires: `ttl` is the bound on that
    /// staleness. A value written by another process (after an expiry) is also seen after at
    /// most `ttl`. `size == 0` or a zero `ttl` keeps no layer. Values are kept by writes
    /// ([`insert`](StoreCache::insert), [`insert_if_absent`](StoreCache::insert_if_absent))
    /// and by the lookups that have an owned key to keep them under
    /// ([`get_by_keeping`](StoreCache::get_by_keeping), what `#[memoize(local = N)]` calls);
    /// every lookup is answered from the layer when it can.
    ///
    /// ```
    /// use memo::stores::StoreCache;
    /// use std::time::Duration;
    /// let cache = StoreCache::<u8, u8>::new("doc-nowhere", "f")
    ///     .with_local(1000, Duration::from_secs(5));
    /// assert_eq!(cache.local_len(), 0);
    /// ```
    pub fn with_local(mut self, size: usize, ttl: Duration) -> Self {
        self.near = (size > 0 && !ttl.is_zero())
            .then(|| {
                Some(Near {
                    entries: self.near_entries(size, ttl)?,
                    size,
                    ttl,
                    state: OnceLock::new(),
                })
            })
            .flatten();
        self
    }

    /// The near cache's entries: `size` of them at most, each for at most `ttl` (jittered as
    /// the store's writes), weighed when the function has `maxweight`.
    fn near_entries(&self, size: usize, ttl: Duration) -> Option<Cache<K, Local<V>>> {
        let builder = Cache::builder()
            .maxsize(size)
            .ttl(ttl)
            .ttl_jitter(self.jitter.fraction());
        let mut builder = builder;
        if let Some(weighers) = &self.weigher {
            builder.weigher = Some(Arc::clone(&weighers.near));
            builder = builder.max_weight(weighers.max);
        }
        builder.build().ok()
    }

    /// Spreads the ttl of each write over its last `fraction` (in `[0, 1]`): the ttl sent to the
    /// store is uniform in `(ttl * (1 - fraction), ttl]`, per write, so that keys written
    /// together do not expire together in every process at once (`#[memoize(ttl_jitter)]`).
    /// The near cache's entries are spread the same way.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("s", "f")
    ///     .with_ttl(Duration::from_secs(60))
    ///     .with_ttl_jitter(0.1);
    /// assert_eq!(cache.info().ttl, Some(Duration::from_secs(60))); // the bound
    /// ```
    pub fn with_ttl_jitter(mut self, fraction: f64) -> Self {
        self.jitter = crate::concurrent::expiry::Jitter::new(fraction);
        self.rebuild_near();
        self
    }

    /// The near cache and the in-memory fallback bounded by `weigher` (`maxweight`).
    pub(crate) fn with_weigher(self, weigher: crate::weigh::Weigher<V>) -> Self
    where
        K: 'static,
        V: 'static,
    {
        self.weighed_by(weigher.max(), move |value: &V| weigher.weigh(value))
    }

    /// The near cache and the fallback bounded by `max` of values weighing `weigh` of them.
    fn weighed_by(
        mut self,
        max: u64,
        weigh: impl Fn(&V) -> u64 + Copy + Send + Sync + 'static,
    ) -> Self
    where
        K: 'static,
        V: 'static,
    {
        self.weigher = Some(Weighers {
            max,
            near: Arc::new(move |_: &K, local: &Local<V>| weigh(&local.value)),
            fallback: Arc::new(move |_: &K, value: &V| weigh(value)),
        });
        self.rebuild_near();
        self
    }

    fn rebuild_near(&mut self) {
        let Some((size, ttl)) = self.near.as_ref().map(|near| (near.size, near.ttl)) else {
            return;
        };
        if let (Some(entries), Some(near)) = (self.near_entries(size, ttl), self.near.as_mut()) {
            near.entries = entries;
        }
    }

    /// The ttl of one write: the function's, jittered.
    fn write_ttl(&self) -> Option<Duration> {
        self.ttl.map(|ttl| self.jitter.cut(ttl))
    }

    /// How many values the near cache holds in this process (expired or invalidated ones
    /// included until they are dropped); 0 without one.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("doc-nowhere", "f");
    /// assert_eq!(cache.local_len(), 0);
    /// ```
    pub fn local_len(&self) -> usize
    where
        K: Hash + Eq,
    {
        self.near.as_ref().map_or(0, |near| near.entries.len())
    }

    /// Entries expire `ttl` after they are stored; the ttl is passed to the server.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("s", "f")
    ///     .with_ttl(Duration::from_secs(60));
    /// assert_eq!(cache.info().ttl, Some(Duration::from_secs(60)));
    /// ```
    pub fn with_ttl(mut self, ttl: impl Into<Option<Duration>>) -> Self {
        self.ttl = ttl.into().filter(|t| !t.is_zero());
        self
    }

    /// The version (default 1), part of every key: bump it when the function's results change
    /// meaning, and old entries are no longer read (Django's `VERSION`).
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("s", "f").with_version(3);
    /// # let _ = cache;
    /// ```
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// A hash of the function's signature (argument and return types), part of every key, so
    /// that a changed signature never reads values of the old one. The macro computes it.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("s", "f").with_signature(0x5eed);
    /// # let _ = cache;
    /// ```
    pub fn with_signature(mut self, signature: u64) -> Self {
        self.signature = signature;
        self
    }

    /// The bound reported by [`info`](StoreCache::info) and kept by the in-memory fallback;
    /// `Some(0)` stores nothing (every call is a miss), as in `functools`.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("s", "f").with_maxsize(None);
    /// assert_eq!(cache.info().maxsize, None);
    /// ```
    pub fn with_maxsize(mut self, maxsize: impl Into<Option<usize>>) -> Self {
        self.maxsize = maxsize.into();
        self
    }

    /// The name of the store.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("shared", "f");
    /// assert_eq!(cache.store_name(), "shared");
    /// ```
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

impl<K, V> StoreCache<K, V>
where
    K: Serialize + Hash + Eq,
    V: Serialize + DeserializeOwned + Clone,
{
    fn backing(&self) -> &Backing<K, V> {
        self.backing
            .get_or_init(|| match registry::lookup(&self.store) {
                Some(store) => {
                    let namespace =
                        key::namespace(&store.key_prefix, &self.path, self.version, self.signature);
                    if let Some(near) = &self.near {
                        let hub = store.near_hub.as_ref();
                        let _ = near.state.set(NearState::attach(hub, &namespace, near.ttl));
                    }
                    Backing::Store { store, namespace }
                }
                None => {
                    let builder = Cache::builder()
                        .maxsize(self.maxsize)
                        .ttl(self.ttl)
                        .ttl_jitter(self.jitter.fraction());
                    let mut builder = builder;
                    if let Some(weighers) = &self.weigher {
                        builder.weigher = Some(Arc::clone(&weighers.fallback));
                        builder = builder.max_weight(weighers.max);
                    }
                    let built = builder.build().unwrap_or_else(|_| Cache::unbounded());
                    Backing::Memory(built)
                }
            })
    }

    /// The namespace of this function's keys in its store (`None` when it caches in memory).
    ///
    /// ```
    /// # #[cfg(feature = "redis")] {
    /// use memo::stores::{self, StoreCache};
    /// stores::register("doc-ns", stores::RedisStore::connect("redis://127.0.0.1:1")?);
    /// let cache = StoreCache::<u8, u8>::new("doc-ns", "app::get").with_signature(0xab);
    /// assert_eq!(cache.namespace(), Some("memo:app::get:v1.00000000000000ab"));
    /// # }
    /// # Ok::<(), memo::stores::StoreError>(())
    /// ```
    pub fn namespace(&self) -> Option<&str> {
        match self.backing() {
            Backing::Store { namespace, .. } => Some(namespace),
            Backing::Memory(_) => None,
        }
    }

    /// The key that `args` are stored under in the namespace: their JSON, or `#` and its
    /// SHA-256 when long or spaced. `None` when caching in memory or if `args` cannot be JSON.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<(String, u32), u8>::new("doc-nowhere", "f");
    /// assert_eq!(cache.key_of(&("Paris", 3)), None); // in memory: no key
    /// ```
    pub fn key_of<Q: Serialize + ?Sized>(&self, args: &Q) -> Option<String> {
        match self.backing() {
            Backing::Store { namespace, .. } => key::item(namespace, args).ok(),
            Backing::Memory(_) => None,
        }
    }

    /// The value stored for a key equal to `probe` (a borrowed form: `(&str, &u32)` for stored
    /// `(String, u32)`, whose `Hash`, `Eq` per `is_match`, and serialization agree). Counts a hit
    /// or a miss.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<(String,), u8>::new("doc-nowhere", "f");
    /// cache.insert(("a".to_string(),), 1);
    /// assert_eq!(cache.get_by(&("a",), |k| k.0 == "a"), Some(1));
    /// ```
    pub fn get_by<Q: Serialize + Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
    ) -> Option<V> {
        self.lookup_by(probe, is_match, None::<fn() -> K>)
    }

    /// [`get_by`](StoreCache::get_by), keeping a value found in the store in the near cache
    /// ([`with_local`](StoreCache::with_local)) under the key `owned` makes (called only then).
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = memo::stores::StoreCache::<(String,), u8>::new("doc-nowhere", "f")
    ///     .with_local(10, Duration::from_secs(1));
    /// cache.insert(("a".to_string(),), 1);
    /// assert_eq!(cache.get_by_keeping(&("a",), |k| k.0 == "a", || ("a".to_string(),)), Some(1));
    /// ```
    pub fn get_by_keeping<Q: Serialize + Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
        owned: impl FnOnce() -> K,
    ) -> Option<V> {
        self.lookup_by(probe, is_match, Some(owned))
    }

    fn lookup_by<Q: Serialize + Hash + ?Sized>(
        &self,
        probe: &Q,
        mut is_match: impl FnMut(&K) -> bool,
        owned: Option<impl FnOnce() -> K>,
    ) -> Option<V> {
        let (store, namespace) = match self.backing() {
            Backing::Memory(cache) => return cache.get_by(probe, is_match),
            Backing::Store { store, namespace } => (store, namespace),
        };
        if self.maxsize == Some(0) {
            return self.counted(None);
        }
        let near = self.near_layer();
        if let Some((near, state)) = near
            && let Some(value) = near.hit(probe, &mut is_match, state)
        {
            return self.counted(Some(value));
        }
        let born = if near.is_some() { near::stamp() } else { 0 };
        let item = match key::item(namespace, probe) {
            Ok(item) => item,
            Err(error) => return self.counted(self.codec_failed("key", &error)),
        };
        let found = self
            .fetch_item(store, namespace, &item, near.is_some())
            .or_else(|| {
                // Cross-process single-flight: take the key's lock (this process computes,
                // and `put` releases it), or wait for the value of the process holding it.
                let wait = store.single_flight_wait?;
                let waited = lock_or_wait(
                    store,
                    &self.path,
                    &self.refusals,
                    namespace,
                    item.clone(),
                    wait,
                );
                self.received(store, waited).map(|value| (value, None))
            });
        if let (Some((near, state)), Some((value, left)), Some(owned)) = (near, &found, owned) {
            self.keep(near, state, owned(), value.clone(), born, &item, *left);
        }
        self.counted(found.map(|(value, _)| value))
    }

    /// The near cache, if this function has one and it may be used now.
    #[inline]
    fn near_layer(&self) -> Option<(&Near<K, V>, &NearState)> {
        let near = self.near.as_ref()?;
        let state = near.state.get()?;
        state.usable().then_some((near, state))
    }

    /// Keeps `value` in the near cache, unless what it was read or written by (begun at `born`)
    /// was overtaken by an invalidation; `left` is its store entry's remaining ttl if known
    /// (else the function's ttl bounds it).
    #[allow(clippy::too_many_arguments)]
    fn keep(
        &self,
        near: &Near<K, V>,
        state: &NearState,
        key: K,
        value: V,
        born: u64,
        item: &str,
        left: Option<Duration>,
    ) {
        let item = near::item_hash(item);
        if !state.fresh(born, item) {
            return;
        }
        let until = left
            .or(self.ttl)
            .filter(|left| *left < near.ttl)
            .map(|left| Instant::now() + left);
        let local = Local {
            value,
            born,
            item,
            until,
        };
        near.entries.insert(key, local);
    }

    /// The value `item` holds in the store (with its remaining ttl if `with_ttl` and known).
    fn fetch_item(
        &self,
        store: &Registered,
        namespace: &str,
        item: &str,
        with_ttl: bool,
    ) -> Option<(V, Option<Duration>)> {
        let (bytes, left) = if with_ttl {
            self.call(store, |s| s.get_with_ttl(namespace, item))??
        } else {
            (self.call(store, |s| s.get(namespace, item))??, None)
        };
        let value = self.received(store, Waited::Found(bytes))?;
        Some((value, left))
    }

    fn fetch<Q: Serialize + ?Sized>(
        &self,
        store: &Registered,
        namespace: &str,
        probe: &Q,
    ) -> Option<V> {
        let item = match key::item(namespace, probe) {
            Ok(item) => item,
            Err(error) => return self.codec_failed("key", &error),
        };
        let bytes = self.call(store, |s| s.get(namespace, &item))??;
        self.received(store, Waited::Found(bytes))
    }

    /// `op` on the store, for this function (see [`Registered::call`]).
    fn call<T>(
        &self,
        store: &Registered,
        op: impl FnOnce(&dyn super::Store) -> Result<T, super::StoreError>,
    ) -> Option<T> {
        store.call(&self.path, &self.refusals, op)
    }

    /// The value in what a lookup found; a lock taken is remembered, for `put` to release.
    fn received(&self, store: &Registered, waited: Waited) -> Option<V> {
        match waited {
            Waited::Found(bytes) => match store.format.decode(bytes) {
                Ok(value) => Some(value),
                Err(error) => {
                    // Another format, another type, a corrupted value: a miss, overwritten later;
                    // said once per function, then at debug level.
                    if !self.warned_decode.swap(true, Ordering::Relaxed) {
                        tracing::warn!(store = %store.name, function = %self.path, %error,
                            "a value stored for `{}` does not decode; such lookups are misses \
                             (the function runs and overwrites it)", self.path);
                    } else {
                        tracing::debug!(store = %store.name, function = %self.path, %error,
                            "stored value does not decode; treating it as a miss");
                    }
                    None
                }
            },
            Waited::Locked(item) => {
                let mut locked = self.locked.lock();
                if locked.len() >= MAX_LOCKED {
                    locked.clear();
                }
                locked.insert(item);
                None
            }
            Waited::Nothing => None,
        }
    }

    /// Counts a lookup's hit or miss.
    fn counted(&self, found: Option<V>) -> Option<V> {
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The item and the bytes a write stores; `None` (warned once) if either cannot be made.
    fn encoded(
        &self,
        store: &Registered,
        namespace: &str,
        key: &K,
        value: &V,
    ) -> Option<(String, Vec<u8>)> {
        let item = match key::item(namespace, key) {
            Ok(item) => item,
            Err(error) => {
                self.codec_failed("key", &error);
                return None;
            }
        };
        match store.format.encode(value) {
            Ok(bytes) => Some((item, bytes)),
            Err(error) => {
                self.codec_failed("value", &error);
                None
            }
        }
    }

    fn codec_failed(&self, what: &str, error: &dyn fmt::Display) -> Option<V> {
        if !self.warned_codec.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                store = %self.store,
                function = %self.path,
                "cannot serialize a {what} of `{}` for store `{}`: {error}; such calls are not \
                 cached",
                self.path,
                self.store
            );
        }
        None
    }

    /// The value stored under `key`, if any. Counts a hit or a miss.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<String, u8>::new("doc-nowhere", "f");
    /// cache.insert("a".to_string(), 1);
    /// assert_eq!(cache.get("a"), Some(1));
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Serialize + Hash + Eq + ?Sized,
    {
        self.get_by(key, |k| k.borrow() == key)
    }

    /// Stores `value` under `key`, replacing what is there (in a store; in memory, see
    /// [`insert_if_absent`](StoreCache::insert_if_absent)), with the ttl.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("doc-nowhere", "f");
    /// cache.insert(1, 10);
    /// cache.insert(1, 11);
    /// assert_eq!(cache.get(&1), Some(11));
    /// ```
    pub fn insert(&self, key: K, value: V) {
        match self.backing() {
            Backing::Memory(cache) => cache.insert(key, value),
            Backing::Store { store, namespace } => self.put_keeping(store, namespace, key, value),
        }
    }

    /// Stores `value` under `key` after a miss: in memory, unless a recursive call stored it
    /// first (as `functools` does); in a store, by overwriting, which also replaces a value that
    /// did not decode.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("doc-nowhere", "f");
    /// cache.insert_if_absent(1, 10);
    /// assert_eq!(cache.get(&1), Some(10));
    /// ```
    pub fn insert_if_absent(&self, key: K, value: V) {
        match self.backing() {
            Backing::Memory(cache) => cache.insert_if_absent(key, value),
            Backing::Store { store, namespace } => self.put_keeping(store, namespace, key, value),
        }
    }

    /// `put`, and the value kept in the near cache too.
    fn put_keeping(&self, store: &Registered, namespace: &str, key: K, value: V) {
        self.put_keeping_tracked(store, namespace, key, value, None);
    }

    /// [`put_keeping`](StoreCache::put_keeping) of a write that `ticket` tracks (a
    /// single-flight write, which invalidations of the key wait for): see [`Write::make`].
    fn put_keeping_tracked(
        &self,
        store: &Registered,
        namespace: &str,
        key: K,
        value: V,
        ticket: Option<&dyn Pending>,
    ) {
        let ttl = self.write_ttl();
        let Some(born) = self.near.as_ref().map(|_| near::stamp()) else {
            self.put_tracked(store, namespace, &key, &value, ticket, ttl);
            return;
        };
        let item = self.put_tracked(store, namespace, &key, &value, ticket, ttl);
        if let (Some((near, state)), Some(item)) = (self.near_layer(), item) {
            self.keep(near, state, key, value, born, &item, ttl);
        }
    }

    /// Writes `value` to the store, the write tracked by `ticket` if it is a single-flight
    /// write (which invalidations of the key wait for); the item it was written as, `None` if
    /// it could not be encoded or an invalidation cancelled the write. `ttl`: the write's.
    fn put_tracked(
        &self,
        store: &Registered,
        namespace: &str,
        key: &K,
        value: &V,
        ticket: Option<&dyn Pending>,
        ttl: Option<Duration>,
    ) -> Option<String> {
        if self.maxsize == Some(0) {
            return None;
        }
        let (item, bytes) = self.encoded(store, namespace, key, value)?;
        let unlock = store.single_flight_wait.is_some() && self.locked.lock().remove(&item);
        let write = Write {
            path: &self.path,
            refusals: &self.refusals,
            namespace,
            item: &item,
            ttl,
            unlock,
        };
        write.make(store, &bytes, ticket).then_some(item)
    }

    /// The value for `key`, computing and storing it with `compute` on a miss.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u16>::new("doc-nowhere", "f");
    /// assert_eq!(cache.get_or_insert_with(2, || 4), 4);
    /// assert_eq!(cache.get_or_insert_with(2, || unreachable!()), 4);
    /// ```
    pub fn get_or_insert_with(&self, key: K, compute: impl FnOnce() -> V) -> V {
        if let Some(value) = self.get_by(&key, |k| k == &key) {
            return value;
        }
        let value = compute();
        self.insert_if_absent(key, value.clone());
        value
    }

    /// Removes `key`; whether it was stored (`false` also when the store is unreachable).
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("doc-nowhere", "f");
    /// cache.insert(1, 1);
    /// assert!(cache.remove(&1));
    /// assert!(!cache.remove(&1));
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Serialize + Hash + Eq + ?Sized,
    {
        match self.backing() {
            Backing::Memory(cache) => cache.remove(key).is_some(),
            Backing::Store { store, namespace } => {
                let Ok(item) = key::item(namespace, key) else {
                    return false;
                };
                let deleted = self.call(store, |s| s.delete(namespace, &item));
                let local = self.near_removed(key, namespace, &item, deleted.is_some());
                deleted.unwrap_or(false) || local
            }
        }
    }

    /// The near cache's part of `remove`: the entry dropped here, every older read of it
    /// refused, and (if the store answered) the other processes told. Whether it was here.
    fn near_removed<Q>(&self, key: &Q, namespace: &str, item: &str, answered: bool) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(near) = &self.near else {
            return false;
        };
        let Some(state) = near.state.get() else {
            return false;
        };
        let here = near.entries.remove(key).is_some();
        state.invalidated(near::item_hash(item));
        state.tell_invalidated(namespace, item, answered);
        here
    }

    /// Hits and misses of this cache in this process, maxsize and ttl; `currsize` is the number
    /// of this function's entries in the store where the store keeps a count (SQLite: one
    /// count it keeps), else unknown (`currsize_known` false: Redis and Memcached, whose count
    /// would be a scan of the server, and any store while it is down). One round trip at most.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("doc-nowhere", "f");
    /// cache.get(&1);
    /// assert_eq!(cache.info().misses, 1);
    /// ```
    pub fn info(&self) -> CacheInfo {
        let (store, namespace) = match self.backing() {
            Backing::Memory(cache) => return cache.info(),
            Backing::Store { store, namespace } => (store, namespace),
        };
        let currsize = self.call(store, |s| s.len(namespace)).flatten();
        CacheInfo {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            maxsize: self.maxsize,
            currsize: currsize.unwrap_or(0),
            currsize_known: currsize.is_some(),
            evictions: 0,
            expirations: 0,
            policy: Policy::Lru,
            ttl: self.ttl,
            waits: 0,
            load_time: std::time::Duration::ZERO,
            refreshes: 0,
            stale_hits: 0,
            stale_errors: 0,
        }
    }

    /// Removes this function's entries from the store (no other function's) and zeroes the
    /// statistics: `cache_clear()`.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("doc-nowhere", "f");
    /// cache.insert(1, 1);
    /// cache.get(&1);
    /// cache.reset();
    /// assert_eq!((cache.get(&1), cache.info().hits), (None, 0));
    /// ```
    pub fn reset(&self) {
        match self.backing() {
            Backing::Memory(cache) => cache.reset(),
            Backing::Store { store, namespace } => {
                let cleared = self.call(store, |s| s.clear(namespace));
                if let Some(near) = &self.near
                    && let Some(state) = near.state.get()
                {
                    state.cleared();
                    near.entries.clear();
                    state.tell_cleared(namespace, cleared.is_some());
                }
                self.hits.store(0, Ordering::Relaxed);
                self.misses.store(0, Ordering::Relaxed);
            }
        }
    }
}

impl<K, V> StoreCache<K, V>
where
    K: Serialize + Hash + Eq,
    V: Serialize + DeserializeOwned + Clone,
{
    /// [`get_by`](StoreCache::get_by) for an `async fn`: the store is awaited, so the executor
    /// thread never waits for the server (a Redis store with feature `tokio`: through its async
    /// connection, bounded by its timeout; any other: on the store's I/O threads).
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<(String,), u8>::new("doc-nowhere", "f");
    /// cache.insert(("a".to_string(),), 1);
    /// let found = futures_lite_block_on(cache.get_by_async(&("a",), |k| k.0 == "a"));
    /// assert_eq!(found, Some(1));
    /// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// ```
    pub async fn get_by_async<Q: Serialize + Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
    ) -> Option<V> {
        self.lookup_by_async(probe, is_match, None::<fn() -> K>)
            .await
    }

    /// [`get_by_keeping`](StoreCache::get_by_keeping) for an `async fn`.
    ///
    /// ```
    /// use std::future::Future;
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("doc-nowhere", "f")
    ///     .with_local(10, std::time::Duration::from_secs(1));
    /// cache.insert(1, 2);
    /// let mut found = std::pin::pin!(cache.get_by_keeping_async(&1, |k| *k == 1, || 1));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// assert_eq!(found.as_mut().poll(&mut cx), std::task::Poll::Ready(Some(2)));
    /// ```
    pub async fn get_by_keeping_async<Q: Serialize + Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
        owned: impl FnOnce() -> K,
    ) -> Option<V> {
        self.lookup_by_async(probe, is_match, Some(owned)).await
    }

    async fn lookup_by_async<Q: Serialize + Hash + ?Sized>(
        &self,
        probe: &Q,
        mut is_match: impl FnMut(&K) -> bool,
        owned: Option<impl FnOnce() -> K>,
    ) -> Option<V> {
        let (store, namespace) = match self.backing() {
            Backing::Memory(cache) => return cache.get_by(probe, is_match),
            Backing::Store { store, namespace } => (store, namespace),
        };
        if self.maxsize == Some(0) {
            return self.counted(None);
        }
        let near = self.near_layer();
        if let Some((near, state)) = near
            && let Some(value) = near.hit(probe, &mut is_match, state)
        {
            return self.counted(Some(value));
        }
        let born = if near.is_some() { near::stamp() } else { 0 };
        let found = self
            .fetch_async(store, namespace, probe, near.is_some())
            .await;
        if let (Some((near, state)), Some((value, left, item)), Some(owned)) = (near, &found, owned)
        {
            self.keep(near, state, owned(), value.clone(), born, item, *left);
        }
        self.counted(found.map(|(value, ..)| value))
    }

    /// [`get`](StoreCache::get) for an `async fn`.
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("doc-nowhere", "f");
    /// cache.insert(1, 2);
    /// use std::future::Future;
    /// let mut found = std::pin::pin!(cache.get_async(&1));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// assert_eq!(found.as_mut().poll(&mut cx), std::task::Poll::Ready(Some(2)));
    /// ```
    pub async fn get_async<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Serialize + Hash + Eq + ?Sized,
    {
        self.get_by_async(key, |k| k.borrow() == key).await
    }

    /// The value of `probe` in the store, with its remaining ttl if `with_ttl` (and known),
    /// and its item.
    async fn fetch_async<Q: Serialize + ?Sized>(
        &self,
        store: &Arc<Registered>,
        namespace: &str,
        probe: &Q,
        with_ttl: bool,
    ) -> Option<(V, Option<Duration>, String)> {
        let item = match key::item(namespace, probe) {
            Ok(item) => item,
            Err(error) => {
                self.codec_failed("key", &error);
                return None;
            }
        };
        let kept = item.clone();
        #[cfg(all(feature = "redis", feature = "tokio"))]
        if let Some(redis) = store.redis_async() {
            let (waited, left) = self
                .lookup_on_tokio(store, redis, namespace, item, with_ttl)
                .await;
            return Some((self.received(store, waited)?, left, kept));
        }
        let (reply, answer) = super::io::reply();
        let (path, refusals, ns) = (
            self.path.clone(),
            Arc::clone(&self.refusals),
            namespace.to_string(),
        );
        let wait = store.single_flight_wait;
        let queued = store.submit(move |store| {
            let found = if with_ttl {
                store.call(&path, &refusals, |s| s.get_with_ttl(&ns, &item))
            } else {
                let found = store.call(&path, &refusals, |s| s.get(&ns, &item));
                found.map(|found| found.map(|bytes| (bytes, None)))
            };
            let (waited, left) = match (found, wait) {
                (Some(Some((bytes, left))), _) => (Waited::Found(bytes), left),
                (Some(None), Some(wait)) => {
                    (lock_or_wait(store, &path, &refusals, &ns, item, wait), None)
                }
                _ => (Waited::Nothing, None),
            };
            answer.send((waited, left));
        });
        if !queued {
            return None;
        }
        let (waited, left) = reply.await?;
        Some((self.received(store, waited)?, left, kept))
    }

    /// A lookup of an `async fn` on tokio, through the Redis store's async connection (feature
    /// `tokio`): the same steps as [`lock_or_wait`] on the I/O threads, awaited.
    #[cfg(all(feature = "redis", feature = "tokio"))]
    async fn lookup_on_tokio(
        &self,
        store: &Registered,
        redis: &Arc<super::redis_async::AsyncRedis>,
        namespace: &str,
        item: String,
        with_ttl: bool,
    ) -> (Waited, Option<Duration>) {
        let (path, refusals) = (&self.path, &*self.refusals);
        let get = || store.call_async(path, refusals, redis.get(namespace, &item));
        let first = if with_ttl {
            let read = redis.get_with_ttl(namespace, &item);
            store.call_async(path, refusals, read).await
        } else {
            get().await.map(|found| found.map(|bytes| (bytes, None)))
        };
        let wait = match (first, store.single_flight_wait) {
            (Some(Some((bytes, left))), _) => return (Waited::Found(bytes), left),
            (Some(None), Some(wait)) => wait,
            _ => return (Waited::Nothing, None),
        };
        (
            self.lock_on_tokio(store, redis, namespace, item, wait)
                .await,
            None,
        )
    }

    /// Cross-process single-flight on tokio after a miss: [`lock_or_wait`], awaited.
    #[cfg(all(feature = "redis", feature = "tokio"))]
    async fn lock_on_tokio(
        &self,
        store: &Registered,
        redis: &Arc<super::redis_async::AsyncRedis>,
        namespace: &str,
        item: String,
        wait: Duration,
    ) -> Waited {
        let (path, refusals) = (&self.path, &*self.refusals);
        let get = || store.call_async(path, refusals, redis.get(namespace, &item));
        let lock = redis.try_lock(namespace, &item, wait);
        match store.call_async(path, refusals, lock).await {
            Some(true) => {
                // The holder may have finished between the miss and the lock: look once more.
                if let Some(Some(bytes)) = get().await {
                    let unlock = redis.unlock(namespace, &item);
                    store.call_async(path, refusals, unlock).await;
                    return Waited::Found(bytes);
                }
                return Waited::Locked(item);
            }
            Some(false) => {}
            None => return Waited::Nothing, // the store is down: compute
        }
        for pause in polls(wait) {
            tokio::time::sleep(pause).await;
            if let Some(Some(bytes)) = get().await {
                return Waited::Found(bytes);
            }
        }
        Waited::Nothing
    }

    /// Stores `value` under `key` after a miss, for an `async fn`: the write is awaited, as
    /// [`get_by_async`](StoreCache::get_by_async)'s lookup (on the I/O threads, dropped at once
    /// if their queue is full). In memory, as
    /// [`insert_if_absent`](StoreCache::insert_if_absent).
    ///
    /// ```
    /// let cache = memo::stores::StoreCache::<u8, u8>::new("doc-nowhere", "f");
    /// use std::future::Future;
    /// let mut write = std::pin::pin!(cache.insert_async(1, 10));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// assert!(write.as_mut().poll(&mut cx).is_ready());
    /// assert_eq!(cache.get(&1), Some(10));
    /// ```
    pub async fn insert_async(&self, key: K, value: V) {
        self.write_async(key, value, None).await;
    }

    /// [`insert_async`](StoreCache::insert_async) of a write that `ticket` tracks: the ticket
    /// goes with the write to the I/O thread (or memo's tokio runtime) and is dropped there once
    /// the write has ended, whether or not the caller still awaits it (see [`Write::make`]).
    async fn write_async(&self, key: K, value: V, ticket: Option<Box<dyn Pending + Send>>) {
        let (store, namespace) = match self.backing() {
            Backing::Memory(cache) => return cache.insert_if_absent(key, value),
            Backing::Store { store, namespace } => (store, namespace),
        };
        if self.maxsize == Some(0) {
            return;
        }
        let Some((item, bytes)) = self.encoded(store, namespace, &key, &value) else {
            return;
        };
        // The near cache keeps what this process writes.
        let ttl = self.write_ttl();
        if let Some((near, state)) = self.near_layer() {
            self.keep(near, state, key, value, near::stamp(), &item, ttl);
        }
        let unlock = store.single_flight_wait.is_some() && self.locked.lock().remove(&item);
        #[cfg(all(feature = "redis", feature = "tokio"))]
        if let Some(redis) = store.redis_async() {
            let (path, refusals) = (&self.path, &*self.refusals);
            let set = redis.set(namespace, &item, bytes, ttl, ticket);
            store.call_async(path, refusals, set).await;
            if unlock {
                let release = redis.unlock(namespace, &item);
                store.call_async(path, refusals, release).await;
            }
            return;
        }
        let (path, refusals, ns) = (
            self.path.clone(),
            Arc::clone(&self.refusals),
            namespace.to_string(),
        );
        let (reply, answer) = super::io::reply();
        // A job that cannot be queued is dropped with its ticket: the write has ended.
        let queued = store.submit(move |store| {
            let write = Write {
                path: &path,
                refusals: &refusals,
                namespace: &ns,
                item: &item,
                ttl,
                unlock,
            };
            write.make(store, &bytes, ticket.as_deref().map(|t| t as &dyn Pending));
            drop(ticket);
            answer.send(());
        });
        if queued {
            reply.await;
        }
    }
}

// Refresh-ahead and stale windows (`refresh.rs`): their values replace what is stored, and a
// refresh's only over the value it refreshed.
impl<K, V> StoreCache<K, V>
where
    K: Serialize + Hash + Eq,
    V: Serialize + DeserializeOwned + Clone,
{
    /// Stores `value` for `key`, replacing what is stored (in memory too), as the write that
    /// `end` tracks if any; with `accept`, only if it accepts the value stored now (read from
    /// the store, not the near cache), which is otherwise kept in the near cache. Not an API.
    #[doc(hidden)]
    pub fn replace_if(
        &self,
        key: K,
        value: V,
        accept: Option<impl FnOnce(Option<&V>) -> bool>,
        end: Option<crate::flight::WriteEnd<K, V>>,
    ) {
        let (store, namespace) = match self.backing() {
            Backing::Memory(cache) => {
                if accept.is_none_or(|accept| accept(cache.peek(&key).as_ref())) {
                    cache.insert(key, value);
                }
                return;
            }
            Backing::Store { store, namespace } => (store, namespace),
        };
        if let Some(accept) = accept {
            let born = near::stamp();
            let current = self.fetch(store, namespace, &key);
            if !accept(current.as_ref()) {
                let near = self.near_layer();
                if let (Some((near, state)), Some(current)) = (near, current)
                    && let Ok(item) = key::item(namespace, &key)
                {
                    self.keep(near, state, key, current, born, &item, None);
                }
                return;
            }
        }
        let ticket = end.as_ref().map(|end| end as &dyn Pending);
        self.put_keeping_tracked(store, namespace, key, value, ticket);
    }
}

/// A write of a single-flight leader's value that invalidations of its key wait for: a
/// [`WriteEnd`](crate::flight::WriteEnd), without its key and value types.
pub(crate) trait Pending {
    /// Whether an invalidation stopped waiting for the write (see
    /// [`WriteEnd::cancelled`](crate::flight::WriteEnd::cancelled)).
    fn cancelled(&self) -> bool;
}

impl<K, V> Pending for crate::flight::WriteEnd<K, V> {
    fn cancelled(&self) -> bool {
        crate::flight::WriteEnd::cancelled(self)
    }
}

/// One write of a function's value to its store, on the caller's thread or an I/O thread.
struct Write<'a> {
    path: &'a str,
    refusals: &'a Refusals,
    namespace: &'a str,
    item: &'a str,
    ttl: Option<Duration>,
    /// Whether to release the key's cross-process lock after the write.
    unlock: bool,
}

impl Write<'_> {
    /// Writes `bytes`; with a `ticket` whose invalidation stopped waiting for the write (a store
    /// slower than [`REMOTE_WRITE_WAIT`](crate::flight::REMOTE_WRITE_WAIT)), the write is not
    /// made if it has not started, and the key is deleted again if it was made meanwhile.
    /// Returns whether the write stands (made, or attempted, and not cancelled).
    fn make(&self, store: &Registered, bytes: &[u8], ticket: Option<&dyn Pending>) -> bool {
        let (path, refusals, namespace, item) =
            (self.path, self.refusals, self.namespace, self.item);
        let mut stands = false;
        if !ticket.is_some_and(|t| t.cancelled()) {
            store.call(path, refusals, |s| s.set(namespace, item, bytes, self.ttl));
            if ticket.is_some_and(|t| t.cancelled()) {
                store.call(path, refusals, |s| s.delete(namespace, item));
            } else {
                stands = true;
            }
        }
        if self.unlock {
            store.call(path, refusals, |s| s.unlock(namespace, item));
        }
        stands
    }
}

impl<K: Hash + Eq, V: Clone> Near<K, V> {
    /// The value kept for a key matching `probe`, if it is still good.
    #[inline]
    fn hit<Q: Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: &mut impl FnMut(&K) -> bool,
        state: &NearState,
    ) -> Option<V> {
        let local = self.entries.get_by(probe, is_match)?;
        let good = state.fresh(local.born, local.item)
            && local.until.is_none_or(|until| Instant::now() < until);
        good.then_some(local.value)
    }
}

/// What an async lookup found on the store's I/O thread.
enum Waited {
    /// The value's bytes (this process's read, or another process's value after waiting).
    Found(Vec<u8>),
    /// A miss, and this process took the key's cross-process lock (the key): it computes.
    Locked(String),
    /// A miss: compute (the store is down, or the wait ran out).
    Nothing,
}

/// Cross-process single-flight after a miss, on the caller's thread or an I/O thread of the
/// store (the caller of an `async fn` awaits it, so it may sleep): take the key's lock (this
/// process computes), or, if another process holds it, poll for its value for up to `wait`;
/// [`Waited::Nothing`] then (compute after all).
fn lock_or_wait(
    store: &Registered,
    path: &str,
    refusals: &Refusals,
    namespace: &str,
    item: String,
    wait: Duration,
) -> Waited {
    let get = || {
        store
            .call(path, refusals, |s| s.get(namespace, &item))
            .flatten()
    };
    match store.call(path, refusals, |s| s.try_lock(namespace, &item, wait)) {
        Some(true) => {
            // The holder may have finished between the miss and the lock: look once more.
            if let Some(bytes) = get() {
                store.call(path, refusals, |s| s.unlock(namespace, &item));
                return Waited::Found(bytes);
            }
            return Waited::Locked(item);
        }
        Some(false) => {}
        None => return Waited::Nothing, // the store is down: compute
    }
    for pause in polls(wait) {
        std::thread::sleep(pause);
        if let Some(bytes) = get() {
            return Waited::Found(bytes);
        }
    }
    Waited::Nothing
}

/// The pauses between the polls of a process waiting for another's value: 5 ms, doubling to
/// 50 ms, until `wait` has passed (measured from the first pause).
fn polls(wait: Duration) -> impl Iterator<Item = Duration> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(5);
    std::iter::from_fn(move || {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = pause.min(left);
        pause = (pause * 2).min(Duration::from_millis(50));
        (!next.is_zero()).then_some(next)
    })
}

/// What the single-flight leader of an `async fn` with a store completes into: the write is
/// kept, to be awaited by [`flush`](WriteBehind::flush) once the flight's lock is released.
#[doc(hidden)]
pub struct WriteBehind<'a, K, V> {
    cache: &'a StoreCache<K, V>,
    /// The write, and what tracks it for the invalidations of its key: dropped with this
    /// write-behind if it is never flushed (a cancelled `async fn`), which ends it for them.
    pending: parking_lot::Mutex<Option<Kept<K, V>>>,
}

type Kept<K, V> = (K, V, Option<Box<dyn Pending + Send>>);

impl<'a, K, V> WriteBehind<'a, K, V>
where
    K: Serialize + Hash + Eq,
    V: Serialize + DeserializeOwned + Clone,
{
    /// Writes into `cache`, later.
    pub fn new(cache: &'a StoreCache<K, V>) -> Self {
        WriteBehind {
            cache,
            pending: parking_lot::Mutex::new(None),
        }
    }

    /// Makes the kept write, awaiting the store.
    pub async fn flush(self) {
        if let Some((key, value, ticket)) = self.pending.into_inner() {
            self.cache.write_async(key, value, ticket).await;
        }
    }
}

impl<K, V> crate::memo::FunctionCache<K, V> for WriteBehind<'_, K, V>
where
    K: Serialize + Hash + Eq + Send + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + 'static,
{
    const REMOTE: bool = true;

    fn peek(&self, key: &K) -> Option<V> {
        crate::memo::FunctionCache::peek(self.cache, key)
    }
    fn insert_if_absent(&self, key: K, value: V) {
        *self.pending.lock() = Some((key, value, None));
    }
    fn insert_tracked(&self, key: K, value: V, end: crate::flight::WriteEnd<K, V>) {
        *self.pending.lock() = Some((key, value, Some(Box::new(end))));
    }
    fn remove(&self, key: &K) -> bool {
        self.cache.remove(key)
    }
    fn info(&self) -> CacheInfo {
        self.cache.info()
    }
    fn reset(&self) {
        self.cache.reset();
    }
}

impl<K, V> crate::memo::FunctionCache<K, V> for StoreCache<K, V>
where
    K: Serialize + Hash + Eq,
    V: Serialize + DeserializeOwned + Clone,
{
    const REMOTE: bool = true;

    fn peek(&self, key: &K) -> Option<V> {
        match self.backing() {
            Backing::Memory(cache) => cache.peek(key),
            Backing::Store { store, namespace } => self.fetch(store, namespace, key),
        }
    }
    fn insert_if_absent(&self, key: K, value: V) {
        StoreCache::insert_if_absent(self, key, value);
    }
    fn insert_tracked(&self, key: K, value: V, end: crate::flight::WriteEnd<K, V>) {
        match self.backing() {
            Backing::Memory(cache) => cache.insert_if_absent(key, value),
            Backing::Store { store, namespace } => {
                self.put_keeping_tracked(store, namespace, key, value, Some(&end));
            }
        }
    }
    fn remove(&self, key: &K) -> bool {
        StoreCache::remove(self, key)
    }
    fn info(&self) -> CacheInfo {
        StoreCache::info(self)
    }
    fn reset(&self) {
        StoreCache::reset(self);
    }
}

impl<K, V> fmt::Debug for StoreCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreCache")
            .field("store", &self.store)
            .field("path", &self.path)
            .field("version", &self.version)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> StoreCache<K, crate::refresh::Stamped<V>> {
    /// [`with_weigher`](StoreCache::with_weigher) for a cache of stamped values (`refresh` or a
    /// stale window): the value is weighed, not its stamp.
    pub(crate) fn with_stamped_weigher(self, weigher: crate::weigh::Weigher<V>) -> Self {
        self.weighed_by(
            weigher.max(),
            move |stamped: &crate::refresh::Stamped<V>| weigher.weigh(stamped.get()),
        )
    }
}
