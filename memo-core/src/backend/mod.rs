//! Stores outside the process: memoized results that outlive it and are shared by many processes
//! and machines, in the spirit of Django's `CACHES`.
//!
//! A [`Store`] keeps bytes under string keys with a ttl passed on to the server. Stores are
//! registered once at start-up under a name ([`register`]), and a [`StoreCache`] (what
//! `#[memoize(store = "name")]` uses) looks its store up by that name on first use, turns keys and
//! values into bytes ([`Codec`], [`Compression`]) and never lets a fault of the store reach the
//! caller: an unreachable, slow or restarted server makes lookups misses, so the function runs, and
//! one warning is logged per outage (through `tracing`); the store is tried again after a backoff.
//!
//! | store | feature | survives a restart | shared by | hit on loopback |
//! |---|---|---|---|---|
//! | in memory ([`Cache`](crate::Cache)) | (always) | no | threads | tens of ns |
//! | [`PersistentStore`] (SQLite file) | `persistent` | yes | processes of one machine | a few µs |
//! | [`RedisStore`] | `redis` | per server config | every machine | tens of µs |
//! | [`MemcachedStore`] | `memcached` | no | every machine | tens of µs |
//!
//! Calls are bounded by short timeouts (250 ms by default). A sync function calls its store on
//! its own thread; an `async fn` awaits it, and the executor thread goes on with other tasks
//! meanwhile, on any runtime:
//!
//! - with feature `tokio`, a [`RedisStore`] (one server, a cluster, TLS) is called through the
//!   `redis` crate's async multiplexed connection, on a tokio runtime thread of memo's own; each
//!   call, connecting included, is bounded as a whole by the store's timeout (`tokio::time`), so
//!   a lookup never takes longer;
//! - otherwise (memcached, SQLite, or Redis without the feature; no runtime is a dependency), the
//!   call runs on a few I/O threads of the store's. Their queue is bounded: when it is full, a
//!   lookup is a miss at once.
//!
//! Either way the breaker, the refusals and the fallback to calling the function are the same.
//!
//! ```
//! use memo::stores::{self, StoreCache};
//!
//! // At start-up: nothing listens on port 1, so every call below runs the function (and one
//! // warning is logged); with a real server the second call would be a hit.
//! # #[cfg(feature = "redis")] {
//! stores::register("doc-shared", stores::RedisStore::connect("redis://127.0.0.1:1/")?);
//! let squares: StoreCache<u64, u64> = StoreCache::new("doc-shared", "doc::square");
//! assert_eq!(squares.get_or_insert_with(7, || 49), 49);
//! assert_eq!(squares.get_or_insert_with(7, || 49), 49);
//! assert_eq!(stores::health("doc-shared").unwrap().outages, 1);
//! # }
//! # Ok::<(), stores::StoreError>(())
//! ```

use std::fmt;
use std::time::Duration;

mod cache;
mod codec;
mod fault;
#[cfg(any(feature = "redis", feature = "memcached"))]
mod generation;
mod io;
#[cfg(feature = "memcached")]
mod ketama;
mod key;
#[cfg(feature = "memcached")]
mod memcached;
mod near;
#[cfg(any(feature = "redis", feature = "memcached"))]
mod nodes;
#[cfg(feature = "persistent")]
mod persistent;
#[cfg(any(feature = "redis", feature = "memcached"))]
mod pool;
#[cfg(feature = "redis")]
mod redis;
#[cfg(all(feature = "redis", feature = "tokio"))]
mod redis_async;
#[cfg(feature = "redis")]
mod redis_conn;
#[cfg(feature = "redis")]
mod redis_push;
mod registry;

#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use cache::StoreCache;
#[doc(hidden)]
pub use cache::WriteBehind;
pub use codec::{Codec, CodecError, Compression, DEFAULT_MAX_DECODED_SIZE};
pub use fault::StoreHealth;
#[cfg(feature = "memcached")]
pub use memcached::MemcachedStore;
#[cfg(feature = "persistent")]
pub use persistent::PersistentStore;
pub use registry::{
    health, is_registered, near_received, near_subscribed, register, register_with, StoreOptions,
};

/// A store outside the process: bytes in and out under a key, grouped by namespace.
///
/// The namespace is what [`clear`](Store::clear) removes at once: a [`StoreCache`] uses one per
/// function and version (`memo:app::weather::temperature:v1.<signature>`), and its keys are the
/// JSON of the arguments (`["Paris",3]`) or `#` and their SHA-256 when long. Both are printable
/// ASCII or UTF-8 without spaces, and a namespace, a colon, twenty-two more bytes and a key always
/// fit in 250 bytes, Memcached's limit. Every method may fail; the registry turns failures into
/// misses and warnings, so an implementation just reports them, and should bound every call by a
/// timeout.
///
/// ```
/// use memo::stores::{Store, StoreError};
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::Duration;
///
/// /// A store in a map (ttl ignored): the smallest possible implementation.
/// #[derive(Default)]
/// struct MapStore(Mutex<HashMap<(String, String), Vec<u8>>>);
///
/// impl Store for MapStore {
///     fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
///         Ok(self.0.lock().unwrap().get(&(namespace.into(), key.into())).cloned())
///     }
///     fn set(&self, namespace: &str, key: &str, value: &[u8], _ttl: Option<Duration>)
///         -> Result<(), StoreError> {
///         self.0.lock().unwrap().insert((namespace.into(), key.into()), value.to_vec());
///         Ok(())
///     }
///     fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
///         Ok(self.0.lock().unwrap().remove(&(namespace.into(), key.into())).is_some())
///     }
///     fn clear(&self, namespace: &str) -> Result<(), StoreError> {
///         self.0.lock().unwrap().retain(|(ns, _), _| ns != namespace);
///         Ok(())
///     }
/// }
///
/// let store = MapStore::default();
/// store.set("ns", "[1]", b"2", None)?;
/// assert_eq!(store.get("ns", "[1]")?, Some(b"2".to_vec()));
/// store.clear("ns")?;
/// assert_eq!(store.get("ns", "[1]")?, None);
/// # Ok::<(), StoreError>(())
/// ```
pub trait Store: Send + Sync + 'static {
    /// The bytes stored under `key`, or `None` if there are none (or they expired).
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// [`get`](Store::get), with how long the value has left in the store if the store can
    /// tell (`None`: no expiry, or unknown): what a near cache
    /// ([`StoreCache::with_local`]) bounds its copy by. The default calls `get` and tells
    /// nothing, so a copy lives its local ttl (Redis, memcached and SQLite tell).
    ///
    /// ```
    /// # use memo::stores::{Store, StoreError};
    /// # struct One;
    /// # impl Store for One {
    /// #     fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
    /// #         Ok(Some(b"1".to_vec()))
    /// #     }
    /// #     fn set(&self, _: &str, _: &str, _: &[u8], _: Option<std::time::Duration>)
    /// #         -> Result<(), StoreError> { Ok(()) }
    /// #     fn delete(&self, _: &str, _: &str) -> Result<bool, StoreError> { Ok(false) }
    /// #     fn clear(&self, _: &str) -> Result<(), StoreError> { Ok(()) }
    /// # }
    /// assert_eq!(One.get_with_ttl("ns", "k")?, Some((b"1".to_vec(), None)));
    /// # Ok::<(), StoreError>(())
    /// ```
    #[allow(clippy::type_complexity)]
    fn get_with_ttl(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>, StoreError> {
        Ok(self.get(namespace, key)?.map(|value| (value, None)))
    }

    /// Stores `value` under `key`, replacing what was there; it expires `ttl` from now (`None`:
    /// when the store decides).
    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;

    /// Removes `key`; whether it was there.
    fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError>;

    /// Removes every key of `namespace`, and only those.
    fn clear(&self, namespace: &str) -> Result<(), StoreError>;

    /// How many live keys `namespace` has, if the store can tell (Memcached cannot).
    ///
    /// ```
    /// # use memo::stores::{Store, StoreError};
    /// # struct Nothing;
    /// # impl Store for Nothing {
    /// #     fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, StoreError> { Ok(None) }
    /// #     fn set(&self, _: &str, _: &str, _: &[u8], _: Option<std::time::Duration>)
    /// #         -> Result<(), StoreError> { Ok(()) }
    /// #     fn delete(&self, _: &str, _: &str) -> Result<bool, StoreError> { Ok(false) }
    /// #     fn clear(&self, _: &str) -> Result<(), StoreError> { Ok(()) }
    /// # }
    /// assert_eq!(Nothing.len("ns")?, None); // the default
    /// # Ok::<(), StoreError>(())
    /// ```
    fn len(&self, namespace: &str) -> Result<Option<usize>, StoreError> {
        let _ = namespace;
        Ok(None)
    }

    /// Takes the short lock of `key` for `ttl` if no one holds it (`SET NX PX` in Redis, `add`
    /// in memcached): whether this call took it. What cross-process single-flight
    /// ([`StoreOptions::cross_process_single_flight`]) uses; the default, for stores without
    /// locks, always succeeds, so every process computes.
    ///
    /// ```
    /// # use memo::stores::{Store, StoreError};
    /// # struct Nothing;
    /// # impl Store for Nothing {
    /// #     fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, StoreError> { Ok(None) }
    /// #     fn set(&self, _: &str, _: &str, _: &[u8], _: Option<std::time::Duration>)
    /// #         -> Result<(), StoreError> { Ok(()) }
    /// #     fn delete(&self, _: &str, _: &str) -> Result<bool, StoreError> { Ok(false) }
    /// #     fn clear(&self, _: &str) -> Result<(), StoreError> { Ok(()) }
    /// # }
    /// assert!(Nothing.try_lock("ns", "k", std::time::Duration::from_secs(1))?);
    /// # Ok::<(), StoreError>(())
    /// ```
    fn try_lock(&self, namespace: &str, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let _ = (namespace, key, ttl);
        Ok(true)
    }

    /// Releases the lock of `key` taken by [`try_lock`](Store::try_lock) (the default does
    /// nothing).
    ///
    /// ```
    /// # use memo::stores::{Store, StoreError};
    /// # struct Nothing;
    /// # impl Store for Nothing {
    /// #     fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, StoreError> { Ok(None) }
    /// #     fn set(&self, _: &str, _: &str, _: &[u8], _: Option<std::time::Duration>)
    /// #         -> Result<(), StoreError> { Ok(()) }
    /// #     fn delete(&self, _: &str, _: &str) -> Result<bool, StoreError> { Ok(false) }
    /// #     fn clear(&self, _: &str) -> Result<(), StoreError> { Ok(()) }
    /// # }
    /// Nothing.unlock("ns", "k")?;
    /// # Ok::<(), StoreError>(())
    /// ```
    fn unlock(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let _ = (namespace, key);
        Ok(())
    }
}

/// What went wrong in a store: its kind decides whether the store is considered down.
///
/// ```
/// use memo::stores::{ErrorKind, StoreError};
///
/// let error = StoreError::new(ErrorKind::Timeout, "no answer within 250ms");
/// assert_eq!(error.kind(), ErrorKind::Timeout);
/// assert!(error.is_outage());
/// assert_eq!(error.to_string(), "timed out: no answer within 250ms");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    kind: ErrorKind,
    message: String,
    code: Option<String>,
}

/// The kinds of [`StoreError`].
///
/// ```
/// use memo::stores::ErrorKind;
/// assert_ne!(ErrorKind::Connect, ErrorKind::Rejected);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server could not be reached.
    Connect,
    /// The server did not answer in time.
    Timeout,
    /// The connection failed in the middle of a request.
    Io,
    /// The server answered something that is not its protocol.
    Protocol,
    /// The server answered, refusing this one request (a value too large, a write to a full or
    /// read-only server, a key of another type): that call is not cached, the others go on.
    Rejected,
    /// The store was configured wrongly (a bad URL).
    Config,
}

impl StoreError {
    /// An error of `kind` explained by `message`.
    ///
    /// ```
    /// let e = memo::stores::StoreError::new(memo::stores::ErrorKind::Io, "reset");
    /// assert_eq!(e.message(), "reset");
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            code: None,
        }
    }

    /// The same error with the server's code for it (`OOM`, `READONLY`, `WRONGTYPE`, `FULL`):
    /// refusals are warned once per code and function.
    ///
    /// ```
    /// use memo::stores::{ErrorKind, StoreError};
    /// let e = StoreError::new(ErrorKind::Rejected, "maxmemory reached").with_code("OOM");
    /// assert_eq!(e.code(), Some("OOM"));
    /// assert_eq!(e.to_string(), "request rejected: OOM maxmemory reached");
    /// ```
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The server's code for the error, if it gave one.
    ///
    /// ```
    /// use memo::stores::{ErrorKind, StoreError};
    /// assert_eq!(StoreError::new(ErrorKind::Io, "reset").code(), None);
    /// ```
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The kind of error.
    ///
    /// ```
    /// use memo::stores::{ErrorKind, StoreError};
    /// assert_eq!(StoreError::new(ErrorKind::Config, "bad url").kind(), ErrorKind::Config);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The explanation.
    ///
    /// ```
    /// use memo::stores::{ErrorKind, StoreError};
    /// assert_eq!(StoreError::new(ErrorKind::Config, "bad url").message(), "bad url");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the error is a fault of the connection (cannot connect, no answer in time, a
    /// connection broken or speaking garbage), so the store is skipped for a while, rather than
    /// an answer refusing one request (or a wrong configuration), which fails that call only.
    ///
    /// ```
    /// use memo::stores::{ErrorKind, StoreError};
    /// assert!(StoreError::new(ErrorKind::Connect, "refused").is_outage());
    /// assert!(!StoreError::new(ErrorKind::Rejected, "too large").is_outage());
    /// ```
    pub fn is_outage(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Io | ErrorKind::Protocol
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Connect => "cannot connect",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Io => "connection failed",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Rejected => "request rejected",
            ErrorKind::Config => "bad configuration",
        };
        match &self.code {
            Some(code) => write!(f, "{kind}: {code} {}", self.message),
            None => write!(f, "{kind}: {}", self.message),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match e.kind() {
            Io::TimedOut | Io::WouldBlock => ErrorKind::Timeout,
            Io::ConnectionRefused | Io::AddrNotAvailable | Io::NotFound => ErrorKind::Connect,
            _ => ErrorKind::Io,
        };
        StoreError::new(kind, e.to_string())
    }
}

/// The default connect and read/write timeout of the network stores.
///
/// ```
/// assert_eq!(memo::stores::DEFAULT_TIMEOUT.as_millis(), 250);
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests;
