//! Named stores, configured once at start-up (Django's `CACHES`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::codec::Format;
use super::fault::{Breaker, Permit, StoreHealth};
use super::io::IoThreads;
use super::{Codec, Compression, Store, StoreError};

/// How a registered store is used: value format, key prefix and the backoff after a fault.
///
/// ```
/// use memo::stores::{Codec, Compression, StoreOptions};
/// use std::time::Duration;
///
/// let options = StoreOptions::default()
///     .codec(Codec::Json)
///     .compression(Compression::None)
///     .key_prefix("myapp")
///     .retry_after(Duration::from_millis(500));
/// assert_eq!(options.get_key_prefix(), "myapp");
/// ```
#[derive(Clone, Debug)]
pub struct StoreOptions {
    format: Format,
    single_flight_wait: Option<Duration>,
    key_prefix: String,
    retry_after: Duration,
    max_retry_after: Duration,
}

impl Default for StoreOptions {
    /// JSON, no compression, prefix `memo`, retry after 1 s, doubling up to 30 s.
    fn default() -> Self {
        StoreOptions {
            format: Format::default(),
            single_flight_wait: None,
            key_prefix: "memo".to_string(),
            retry_after: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl StoreOptions {
    /// The serde format of values (default JSON).
    ///
    /// ```
    /// let options = memo::stores::StoreOptions::default().codec(memo::stores::Codec::Json);
    /// # let _ = options;
    /// ```
    pub fn codec(mut self, codec: Codec) -> Self {
        self.format.codec = codec;
        self
    }

    /// Compression of large values (default none).
    ///
    /// ```
    /// use memo::stores::{Compression, StoreOptions};
    /// let options = StoreOptions::default().compression(Compression::None);
    /// # let _ = options;
    /// ```
    pub fn compression(mut self, compression: Compression) -> Self {
        self.format.compression = compression;
        self
    }

    /// The first part of every key (default `memo`), Django's `KEY_PREFIX`: services sharing one
    /// server keep apart by prefix.
    ///
    /// ```
    /// let options = memo::stores::StoreOptions::default().key_prefix("billing");
    /// assert_eq!(options.get_key_prefix(), "billing");
    /// ```
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The key prefix.
    ///
    /// ```
    /// assert_eq!(memo::stores::StoreOptions::default().get_key_prefix(), "memo");
    /// ```
    pub fn get_key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// How long the store is skipped after an outage begins (default 1 s); each failed retry
    /// doubles it, up to [`max_retry_after`](StoreOptions::max_retry_after).
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = memo::stores::StoreOptions::default().retry_after(Duration::from_secs(2));
    /// # let _ = options;
    /// ```
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = wait;
        self
    }

    /// The largest size a stored value may decode to, decompressed (default 64 MiB): a value
    /// past it (a zstd or LZ4 bomb, another program's huge value) is a miss, with one warning,
    /// and is never inflated beyond it.
    ///
    /// ```
    /// let options = memo::stores::StoreOptions::default().max_decoded_size(1 << 20);
    /// # let _ = options;
    /// ```
    pub fn max_decoded_size(mut self, bytes: u64) -> Self {
        self.format.max_decoded_size = bytes;
        self
    }

    /// Cross-process single-flight (off by default): when several processes miss the same key
    /// at once, one takes a short lock in the store (`SET NX PX` in Redis, `add` in memcached)
    /// and runs the function; the others poll the store for its value (every 5 ms, doubling to
    /// 50 ms) and get it as a hit. After `wait` without a value (a slow or dead lock holder:
    /// the lock also expires after `wait`), they run the function themselves, so nobody stalls
    /// longer. Stores without locks (SQLite) compute in every process, as without the option.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = memo::stores::StoreOptions::default()
    ///     .cross_process_single_flight(Duration::from_secs(2));
    /// # let _ = options;
    /// ```
    pub fn cross_process_single_flight(mut self, wait: Duration) -> Self {
        self.single_flight_wait = Some(wait).filter(|w| !w.is_zero());
        self
    }

    /// The longest wait between retries during an outage (default 30 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = memo::stores::StoreOptions::default().max_retry_after(Duration::from_secs(5));
    /// # let _ = options;
    /// ```
    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = wait;
        self
    }
}

/// A registered store with its options and its breaker.
pub(crate) struct Registered {
    pub name: String,
    pub format: Format,
    pub key_prefix: String,
    /// Cross-process single-flight: how long a miss waits for another process's value.
    pub single_flight_wait: Option<Duration>,
    store: Box<dyn Store>,
    breaker: Breaker,
    /// The threads that run the calls of `async fn`s, started on the first one.
    io: OnceLock<Option<IoThreads>>,
    /// A Redis store's async connection (feature `tokio`), for `async fn`s on tokio.
    #[cfg(all(feature = "redis", feature = "tokio"))]
    redis_async: Option<Arc<super::redis_async::AsyncRedis>>,
    /// The near cache's pushes, for a store that has them (Redis pub/sub).
    pub near_hub: Option<Arc<super::near::Hub>>,
}

/// The refusals one function was warned about: one warning per kind (the server's code).
#[derive(Default)]
pub(crate) struct Refusals(Mutex<Vec<String>>);

impl Refusals {
    /// Warns about `error`, refused by `store` for `function`, unless its kind was warned of.
    fn warn(&self, store: &str, function: &str, error: &StoreError) {
        let kind = match error.code() {
            Some(code) => code.to_string(),
            None => format!("{:?}", error.kind()),
        };
        {
            let mut warned = self.0.lock();
            if warned.contains(&kind) {
                tracing::debug!(store, function, %error, "store `{store}` refused a request");
                return;
            }
            warned.push(kind);
        }
        tracing::warn!(
            store,
            function,
            %error,
            "store `{store}` refused a request of `{function}`: {error}; such calls are not \
             cached, the store stays in use for the others (warned once per kind of refusal)"
        );
    }
}

impl Registered {
    /// Runs `job` on one of the store's I/O threads (for an `async fn`); `false` if it could not
    /// be queued (the threads are that far behind), and `job` is dropped.
    pub fn submit(self: &Arc<Self>, job: impl FnOnce(&Registered) + Send + 'static) -> bool {
        let Some(threads) = self.io.get_or_init(|| IoThreads::start(&self.name)) else {
            return false;
        };
        let this = Arc::clone(self);
        threads.submit(move || job(&this))
    }

    /// Runs `op` on the store for `function` unless an outage is under way; `None` if skipped
    /// or failed. A fault of the connection is counted and logged once per outage; a refusal
    /// fails this call only and is logged once per kind through `refusals`.
    pub fn call<T>(
        &self,
        function: &str,
        refusals: &Refusals,
        op: impl FnOnce(&dyn Store) -> Result<T, StoreError>,
    ) -> Option<T> {
        let permit = self.breaker.allow()?;
        self.settle(function, refusals, permit, op(&*self.store))
    }

    /// [`call`](Registered::call) of an async operation: `op` is awaited only if the breaker
    /// lets the call through.
    #[cfg(all(feature = "redis", feature = "tokio"))]
    pub async fn call_async<T>(
        &self,
        function: &str,
        refusals: &Refusals,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Option<T> {
        let permit = self.breaker.allow()?;
        self.settle(function, refusals, permit, op.await)
    }

    /// The async side of a Redis store (feature `tokio`).
    #[cfg(all(feature = "redis", feature = "tokio"))]
    pub fn redis_async(&self) -> Option<&Arc<super::redis_async::AsyncRedis>> {
        self.redis_async.as_ref()
    }

    /// What a call made under `permit` answered: counted, warned, and its value if any.
    fn settle<T>(
        &self,
        function: &str,
        refusals: &Refusals,
        permit: Permit,
        result: Result<T, StoreError>,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                self.breaker.on_success(&self.name, permit);
                Some(value)
            }
            Err(error) => {
                self.breaker.on_error(&self.name, permit, &error);
                if !error.is_outage() {
                    refusals.warn(&self.name, function, &error);
                }
                None
            }
        }
    }
}

static STORES: LazyLock<RwLock<HashMap<String, Arc<Registered>>>> = LazyLock::new(Default::default);
static WARNED_MISSING: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

/// Registers `store` under `name` with the default [`StoreOptions`]; call it once at start-up,
/// before the first call of a function that uses the name. Registering a name again replaces
/// the store for functions not yet called.
///
/// ```
/// use memo::stores::{self, StoreCache};
/// # #[cfg(feature = "persistent")] {
/// let path = std::env::temp_dir().join(format!("memo-doc-register-{}.sqlite", std::process::id()));
/// stores::register("doc-local", stores::PersistentStore::open(&path)?);
/// assert!(stores::is_registered("doc-local"));
/// let cache: StoreCache<String, usize> = StoreCache::new("doc-local", "doc::len");
/// cache.insert("four".to_string(), 4);
/// assert_eq!(cache.get("four"), Some(4));
/// # drop(cache); let _ = std::fs::remove_file(&path);
/// # }
/// # Ok::<(), stores::StoreError>(())
/// ```
pub fn register(name: impl Into<String>, store: impl Store) {
    register_with(name, store, StoreOptions::default());
}

/// Registers `store` under `name` with `options`.
///
/// ```
/// use memo::stores::{self, Codec, StoreOptions};
/// # #[cfg(feature = "redis")] {
/// let options = StoreOptions::default().codec(Codec::Json).key_prefix("billing");
/// stores::register_with("doc-billing", stores::RedisStore::connect("redis://127.0.0.1:1")?, options);
/// assert!(stores::is_registered("doc-billing"));
/// # }
/// # Ok::<(), stores::StoreError>(())
/// ```
pub fn register_with(name: impl Into<String>, store: impl Store, options: StoreOptions) {
    let name = name.into();
    // A Redis store also gets its async side, used by `async fn`s on tokio.
    #[cfg(all(feature = "redis", feature = "tokio"))]
    let redis_async = (&store as &dyn std::any::Any)
        .downcast_ref::<super::RedisStore>()
        .map(|redis| Arc::new(redis.async_side()));
    // A Redis store pushes the near cache's invalidations (pub/sub).
    #[cfg(feature = "redis")]
    let near_hub = (&store as &dyn std::any::Any)
        .downcast_ref::<super::RedisStore>()
        .map(|redis| {
            super::near::Hub::new(&name, &options.key_prefix, Box::new(redis.push_side()))
        });
    #[cfg(not(feature = "redis"))]
    let near_hub = None;
    let registered = Registered {
        name: name.clone(),
        format: options.format,
        key_prefix: options.key_prefix,
        single_flight_wait: options.single_flight_wait,
        store: Box::new(store),
        breaker: Breaker::new(options.retry_after, options.max_retry_after),
        io: OnceLock::new(),
        #[cfg(all(feature = "redis", feature = "tokio"))]
        redis_async,
        near_hub,
    };
    STORES.write().insert(name, Arc::new(registered));
}

/// Whether a store is registered under `name`.
///
/// ```
/// assert!(!memo::stores::is_registered("never-registered"));
/// ```
pub fn is_registered(name: &str) -> bool {
    STORES.read().contains_key(name)
}

/// The health of the store registered under `name`: whether it is up, and how many outages,
/// errors and skipped calls it has had.
///
/// ```
/// assert_eq!(memo::stores::health("never-registered"), None);
/// ```
pub fn health(name: &str) -> Option<StoreHealth> {
    STORES.read().get(name).map(|r| r.breaker.health())
}

/// Whether the near cache ([`StoreCache::with_local`](super::StoreCache::with_local), `local =
/// N`) of the store registered under `name` hears other processes' invalidations now
/// (`Some(true)`), or has lost its subscription or not made it yet (`Some(false)`: it is made
/// on the first call of a function with a local layer, and meanwhile those layers are
/// bypassed); `None` for a store that cannot push (not Redis: its layers are bounded by their
/// local ttl only) or a name never registered.
///
/// ```
/// assert_eq!(memo::stores::near_subscribed("never-registered"), None);
/// ```
pub fn near_subscribed(name: &str) -> Option<bool> {
    let hub = STORES.read().get(name)?.near_hub.clone()?;
    Some(hub.status().0)
}

/// Messages of other processes the near cache of store `name` received (0 without pushes).
#[doc(hidden)]
pub fn near_received(name: &str) -> u64 {
    let hub = STORES.read().get(name).and_then(|r| r.near_hub.clone());
    hub.map_or(0, |hub| hub.status().1)
}

/// The store registered under `name`; `None`, with one warning per name, if there is none.
pub(crate) fn lookup(name: &str) -> Option<Arc<Registered>> {
    if let Some(found) = STORES.read().get(name) {
        return Some(Arc::clone(found));
    }
    if WARNED_MISSING.lock().insert(name.to_string()) {
        tracing::warn!(
            store = name,
            "no store is registered as `{name}`; functions using it cache in memory \
             (register it at start-up with memo::stores::register)"
        );
    }
    None
}
