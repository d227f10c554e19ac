//! Memoization for Rust, as easy as Python's `@functools.lru_cache`, over a fast concurrent
//! store.
//!
//! ```
//! use memo::memoize;
//!
//! #[memoize]
//! fn fib(n: u64) -> u128 {
//!     if n < 2 { n as u128 } else { fib(n - 1) + fib(n - 2) }
//! }
//!
//! assert_eq!(fib(150), 9969216677189303386214405760200);
//! let info = fib::cache_info();
//! assert_eq!((info.hits, info.misses), (148, 151)); // the same as functools.lru_cache
//! fib::cache_clear();
//! assert_eq!(fib::cache_info().currsize, 0);
//! ```
//!
//! # Options of [`#[memoize]`](memoize)
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `maxsize = N` / `maxsize = None` | at most N entries (`0` caches nothing) / unbounded | `128` |
//! | `ttl = "30s"` | an entry expires that long after it was stored (humantime: `500ms`, `1h 30m`) | no expiry |
//! | `policy = "lru"` | `"lru"`, `"fifo"`, `"lfu"`, `"mru"` or `"adaptive"` (see [`Policy`]) | `"lru"` |
//! | `key = <expr>` | the key, computed from the arguments: `key = city.to_lowercase()` | the arguments |
//! | `ignore = [a, ..]` | arguments left out of the key: `ignore = [client]`, `ignore = [self]` | none |
//! | `single_flight = false` | concurrent misses of one key each run the body | one runs, the others wait |
//! | `cache_field = f` | a method keeps its cache in this [`InstanceCache`] field of `self` | one cache for all instances |
//! | `store = "name"`, `version = N` | the cache lives in a named store ([`stores`], feature `stores`) | in memory |
//! | `local = N`, `local_ttl = "5s"` | with a store, a near cache of N entries in front of it, coherent across processes on Redis | every hit reads the store |
//! | `refresh = "25s"` | with `ttl`, an older entry is returned and recomputed in the background | no refresh |
//! | `stale_while_revalidate = "1m"`, `stale_if_error = "10m"` | with `ttl`, how long past it a stale value is served while recomputed, or instead of an `Err`/`None` | expired at `ttl` |
//! | `err_ttl = "5s"`, `none_ttl = "5s"` | how long an `Err` or a `None` is cached | not cached |
//! | `ttl_jitter = "10%"` | spreads each entry's expiry (and refresh) over that last fraction of the ttl | exact deadlines |
//! | `maxweight = "64MiB"` | the total weight ([`Weigh`], e.g. bytes) of the values kept in the process | no weight bound |
//! | `crate = "name"` | the facade's name when renamed in Cargo.toml | `memo` |
//!
//! A misspelled or misplaced option, an argument that is not `Hash + Eq`, or a return type that
//! is not `Clone` is a compile error at the offending token. A function returning `Result`
//! caches only `Ok`, one returning `Option` only `Some`.
//!
//! # Companions
//!
//! Beside a memoized `fn f`, under the same name (for a method `m`: `Type::m_cache_info()`, ...):
//!
//! | companion | does |
//! |---|---|
//! | `f::cache_info()` | a [`CacheInfo`]: hits, misses, maxsize, currsize, evictions, expirations, policy, ttl |
//! | `f::cache_clear()` | empties the cache and zeroes its statistics |
//! | `f::cache_invalidate(args..) -> bool` | removes the entry of these arguments |
//! | `f::cache_prime(args.., value)` | stores a known value |
//! | `f::uncached(args..)` | the body, without the cache (`functools`' `__wrapped__`) |
//!
//! They are functions, not methods of `f`: write `square::cache_info()`, not
//! `square.cache_info()`.
//!
//! ```
//! use memo::memoize;
//!
//! #[memoize(maxsize = 2)]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! square::cache_prime(3, 9);
//! assert_eq!(square(3), 9); // a hit: primed
//! assert!(square::cache_invalidate(3));
//! assert_eq!(square::uncached(4), 16); // the cache is not touched
//! assert_eq!(square::cache_info().hits, 1);
//! ```
//!
//! # Policies and the store
//!
//! [`Cache`] is the store under the macro, usable on its own ([`Cache::builder`]). Its
//! [`Policy`]: `Lru` (exact, as functools), `Fifo`, `Lfu`, `Mru`, and `Adaptive` (W-TinyLFU
//! with a window that adapts between recency and frequency: the best hit ratio on most
//! workloads). A hit takes no lock; expiry reads a [`Clock`], which tests replace with a
//! [`ManualClock`].
//!
//! ```
//! use memo::{Cache, Policy};
//! use std::time::Duration;
//!
//! let cache: Cache<u64, String> = Cache::builder()
//!     .maxsize(10_000)
//!     .policy(Policy::Adaptive)
//!     .ttl(Duration::from_secs(30))
//!     .build()?;
//! cache.insert(1, "one".into());
//! assert_eq!(cache.get(&1).as_deref(), Some("one"));
//! # Ok::<(), memo::BuildError>(())
//! ```
//!
//! # Watching the caches
//!
//! [`caches()`] lists every memoized function of the process that has been called, with its
//! [`CacheInfo`] ([`CacheReport`]); the `metrics` feature exports them all through the
//! `metrics` facade ([`metrics`](mod@metrics), e.g. to Prometheus); the `serde` feature makes
//! them `Serialize`, for a JSON status page. Stores report outages through `tracing`: install a
//! subscriber to see them (`tracing_subscriber::fmt::init();`).
//!
//! # Features
//!
//! None is on by default: the library alone is 17 crates. Each feature's cost is the number of
//! crates it adds to that build.
//!
//! | feature | gives | adds |
//! |---|---|---|
//! | `serde` | `CacheInfo` and `CacheReport` implement `serde::Serialize` | 4 (serde) |
//! | `metrics` | [`metrics`](mod@metrics): every cache's counters through the `metrics` facade | 3 (metrics) |
//! | `stores` | [`stores`]: the `Store` trait, named stores, JSON values, `store = ...` | 18 (serde_json, sha2, tracing) |
//! | `redis` | `stores::RedisStore`: one server or a Redis Cluster | 60 with `stores` (redis) |
//! | `redis-tls` | `rediss://` URLs for `stores::RedisStore` | 73 with `redis` (rustls, ring) |
//! | `memcached` | `stores::MemcachedStore`: one server or a ketama pool (its text protocol) | 19 with `stores` (md-5) |
//! | `persistent` | `stores::PersistentStore`: one SQLite file that survives restarts | 31 with `stores` (rusqlite, SQLite compiled in) |
//! | `msgpack` | `stores::Codec::MessagePack` values | 22 with `stores` (rmp-serde) |
//! | `lz4`, `zstd` | compression of large stored values | 20 / 26 with `stores` (lz4_flex / zstd, C) |
#![warn(missing_docs)]

pub use memo_core::{
    caches, BuildError, Cache, CacheBuilder, CacheInfo, CacheReport, Clock, InstanceCache,
    ManualClock, Policy, DEFAULT_MAXSIZE, MAX_MAXSIZE, MAX_SHARDS,
};
// Issue 14: eviction listeners, weighted caches.
pub use memo_core::{RemovalCause, Weigh};

#[cfg(feature = "metrics")]
#[doc(inline)]
pub use memo_core::metrics;

#[cfg(feature = "stores")]
#[doc(inline)]
pub use memo_core::stores;

#[doc(inline)]
pub use memo_macros::memoize;

/// What code generated by `#[memoize]` calls; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use memo_core::__private::*;
}

/// What `#[memoize(store = "...")]` expands to first: nothing, as the `stores` feature is on.
#[cfg(feature = "stores")]
#[doc(hidden)]
#[macro_export]
macro_rules! __memoize_store_enabled {
    () => {};
}

/// What `#[memoize(store = "...")]` expands to first: the one error saying to enable the
/// `stores` feature (the function then compiles with an in-memory cache, so nothing else fails).
#[cfg(not(feature = "stores"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __memoize_store_enabled {
    () => {
        ::core::compile_error!(
            "`store = ...` needs a store feature of `memo`: enable `redis`, `memcached`, \
             `persistent` or `stores` in Cargo.toml, e.g. `memo = { version = \"0.2\", \
             features = [\"redis\"] }`"
        );
    };
}
