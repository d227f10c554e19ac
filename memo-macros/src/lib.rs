//! The `#[memoize]` attribute of [memo](https://docs.rs/memo): caches a function's results by its
//! arguments, like Python's `functools.lru_cache`.
//!
//! Use it through the `memo` facade (`memo::memoize`), which re-exports it next to the store it
//! expands to; this crate's output names everything through `::memo::__private`.
//!
//! The pipeline: [`memoize`] hands its tokens to `expand::memoize`, which parses the options
//! (`attr`), builds a typed model of the signature (`ast`), checks what this version supports
//! (`valid`) and generates code from the checked model (`expand`), or, when the signature is not
//! supported, the untouched function plus companions that still resolve (`fallback`).
#![forbid(unsafe_code)]

mod ast;
mod attr;
mod companions;
mod context;
mod error;
mod expand;
mod fallback;
mod fresh;
mod impl_block;
mod store;
mod valid;

use proc_macro::TokenStream;

/// Caches a function's results by its arguments.
///
/// ```
/// use memo::memoize;
///
/// #[memoize]                              // maxsize = 128, LRU, no expiry
/// fn fib(n: u64) -> u128 {
///     if n < 2 { n as u128 } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// #[memoize(maxsize = None, ttl = "30m")] // unbounded; entries expire 30 minutes after they are stored
/// fn temperature(city: &str) -> Result<f64, std::io::Error> {
///     Ok(city.len() as f64)               // only `Ok` values are cached
/// }
///
/// assert_eq!(fib(90), 2_880_067_194_370_816_120);
/// let info = fib::cache_info();           // hits, misses, maxsize, currsize
/// assert_eq!((info.hits, info.misses, info.maxsize), (88, 91, Some(128)));
/// fib::cache_clear();                     // empties the cache and zeroes the statistics
///
/// assert_eq!(temperature("Paris").ok(), Some(5.0));
/// assert_eq!(temperature::cache_info().maxsize, None);
/// ```
///
/// # Options
///
/// | option | values | default |
/// | --- | --- | --- |
/// | `maxsize` | an integer (`0` caches nothing but counts every call as a miss), or `None` for no bound | `128` |
/// | `ttl` | a [humantime](https://docs.rs/humantime) duration string: `"500ms"`, `"30s"`, `"1h 30m"` | no expiry |
/// | `err_ttl` | for a `Result` function, how long an `Err` is cached (the error must be `Clone + Send + Sync + 'static`), a duration as for `ttl`: `err_ttl = "5s"` (see [Negative caching](#negative-caching)) | an `Err` is not cached |
/// | `none_ttl` | for an `Option` function, how long a `None` is cached: `none_ttl = "5s"` | a `None` is not cached |
/// | `refresh` | with `ttl`, the age (shorter than `ttl`) from which a hit returns the entry and recomputes it in the background: `refresh = "25s"` (see [Refresh-ahead and stale values](#refresh-ahead-and-stale-values)) | no refresh |
/// | `stale_while_revalidate` | with `ttl`, how long past it a hit returns the stale entry and recomputes it in the background: `stale_while_revalidate = "1m"` | expired at `ttl` |
/// | `stale_if_error` | with `ttl`, for a `Result` or `Option` function, how long past it an `Err` or `None` is answered with the stale value: `stale_if_error = "10m"` | the `Err` or `None` |
/// | `policy` | `"lru"`, `"fifo"`, `"lfu"`, `"mru"` or `"adaptive"` (see `memo::Policy`) | `"lru"` |
/// | `key` | an expression over the arguments that is the key: `key = city.to_lowercase()` | the arguments |
/// | `ignore` | arguments left out of the key: `ignore = [client]`, `ignore = [self]` | none |
/// | `single_flight` | `false` lets concurrent misses of one key each run the function | `true` |
/// | `cache_field` | a method's cache lives in this `memo::InstanceCache` field of `self` | one cache for all instances |
/// | `store` | the name of a store registered with `memo::stores::register`: `store = "shared"` (see [Stores](#stores)) | in memory |
/// | `version` | with `store`, part of every key; bump it when results change meaning: `version = 2` | `1` |
/// | `local` | with `store`, a near cache of at most N entries in front of it, kept coherent across processes through Redis pub/sub: `local = 1000` | every hit reads the store |
/// | `local_ttl` | with `local`, how long a local copy is kept at most (the only bound on memcached and SQLite, which cannot push invalidations): `local_ttl = "5s"` | 60 s, and never past the store's entry |
/// | `ttl_jitter` | with `ttl`, spreads each entry's expiry (and refresh) uniformly over that last fraction of it, in memory and for each write to a store: `ttl_jitter = "10%"` | exact deadlines |
/// | `maxweight` | the total weight of the values kept in the process (their `memo::Weigh`, e.g. bytes), on any storage; with `store`, the near cache's (`local`): `maxweight = "64MiB"` | no weight bound |
/// | `crate` | the facade's name when renamed in `Cargo.toml`: `crate = "my_memo"` | `memo` |
///
/// # What is cached
///
/// The key is the tuple of the arguments (and of `self`, for a method), owned: a `&str` argument
/// is stored as a `String`, a `&[T]` as a `Vec<T>`, a `&T` as a `T`, an argument taken by value
/// as a clone of it. Lookups hash the borrowed arguments, so a hit allocates nothing. Every key
/// type must be `Hash + Eq + Send + Sync` and cloneable (`ToOwned` for the referent of a `&` argument);
/// the return type must be `Clone + Send + Sync` (return an `Arc<T>` for large values). A function
/// returning `Result<T, E>` (any type whose last path segment is `Result`, such as
/// `io::Result<T>`) caches only `Ok` values; one returning `Option<T>` caches only `Some`.
///
/// With `key = <expr>`, the key is the expression's value instead (any `Hash + Eq + Send + Sync +
/// 'static` type, computed on every call); `ignore = [a, b]` leaves arguments out of the key, so
/// they need not be `Hash` (a client handle, a logger).
///
/// # Negative caching
///
/// By default an `Err` or a `None` is never cached: the next call runs the function again. With
/// `err_ttl` (for `Result`) or `none_ttl` (for `Option`) it is cached too, for its own, usually
/// shorter, time: repeated lookups of a missing row stop reaching the database, while a transient
/// error is retried soon. The cached `Err`s and `None`s live in memory beside the cache (also with
/// `store = ...`, whose store keeps only the values), bounded by the same `maxsize`; a call they
/// answer counts as a hit, and `cache_invalidate` and `cache_clear` remove them too.
///
/// ```
/// use memo::memoize;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static QUERIES: AtomicU32 = AtomicU32::new(0);
///
/// #[memoize(ttl = "5m", none_ttl = "5s")]
/// fn find_user(id: u32) -> Option<String> {
///     QUERIES.fetch_add(1, Ordering::Relaxed); // a database query
///     (id == 1).then(|| "ada".to_string())
/// }
///
/// #[memoize(ttl = "5m", err_ttl = "5s")]
/// fn rate(currency: &str) -> Result<f64, String> {
///     Err(format!("no rate for {currency} yet"))
/// }
///
/// assert_eq!(find_user(2), None);
/// assert_eq!(find_user(2), None);                     // the cached `None`
/// assert_eq!(QUERIES.load(Ordering::Relaxed), 1);
/// assert_eq!(find_user::cache_info().hits, 1);
/// find_user::cache_invalidate(2);                     // e.g. after the row was inserted
/// assert_eq!(find_user(2), None);
/// assert_eq!(QUERIES.load(Ordering::Relaxed), 2);
///
/// assert!(rate("EUR").is_err());
/// assert!(rate("EUR").is_err());                      // the cached `Err`, for 5 seconds
/// assert_eq!(rate::cache_info().hits, 1);
/// ```
///
/// # Refresh-ahead and stale values
///
/// With a `ttl`, every entry expires at once for everyone, and the next caller waits for the
/// function (with the callers that join it). `refresh = "25s"` recomputes an entry before that:
/// a call that finds it older than `refresh` (and younger than `ttl`) returns it at once, and
/// one recomputation of the key starts in the background (at most one per key at a time, none
/// while a caller computes it; a caller never waits for one); its value replaces the entry. `stale_while_revalidate = "1m"`
/// does the same for an entry past its `ttl`, for that long. A recomputation that fails (an
/// `Err`, a `None`, a panic) keeps the old value until it expires, and one that an invalidation
/// or `cache_clear` overtook stores nothing. `stale_if_error = "10m"`: a call past the `ttl`
/// computes as after a miss, but when the function returns an `Err` or a `None` the call (and
/// every caller that waited for it) gets the stale value instead, for that long past the `ttl`.
///
/// A sync function's recomputations run on a few threads that memo starts on first use, behind
/// a bounded queue (when it is full, a recomputation is skipped; a later call schedules it). An
/// `async fn`'s run on the caller's tokio runtime with memo's `tokio` feature (called off a
/// runtime, on those threads, each with a tokio runtime of its own); without the feature on
/// those threads, where a body that needs a tokio reactor fails (so keeps the old value: enable
/// the feature). Each recomputation owns copies of the arguments (`&T` through `T::to_owned`, by
/// value moved, a method's `self` cloned), which must be `Send + 'static`, and an async body
/// must be `Send`.
/// `cache_info()` counts `refreshes` (not calls), `stale_hits` (calls answered by a stale
/// value, within `hits`) and `stale_errors` (calls answered by a stale value instead of a
/// failure, within `misses` and `waits`). With `err_ttl` or `none_ttl` too, a failure that a
/// stale value answers is not cached, any other is. With `store = ...` the store keeps each
/// value with its write time (on the wall clock, so every process reads its age) for `ttl`
/// plus the longest window, and a recomputation writes through the store (with `local = N`, the
/// near cache too) only over the value it recomputed. They combine with `cache_field` and
/// `single_flight = false` as well.
///
/// ```
/// use memo::memoize;
/// use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
/// use std::time::Duration;
///
/// static VERSION: AtomicU64 = AtomicU64::new(1);
/// static DOWN: AtomicBool = AtomicBool::new(false);
///
/// #[memoize(ttl = "1h", refresh = "20ms")]
/// fn settings(name: &str) -> u64 {
///     VERSION.load(Ordering::SeqCst) // a slow fetch
/// }
///
/// #[memoize(ttl = "20ms", stale_if_error = "1h")]
/// fn price(item: u32) -> Result<u64, String> {
///     match DOWN.load(Ordering::SeqCst) {
///         true => Err("upstream down".to_string()),
///         false => Ok(u64::from(item) * VERSION.load(Ordering::SeqCst)),
///     }
/// }
///
/// assert_eq!((settings("db"), price(10)), (1, Ok(10)));
/// VERSION.store(2, Ordering::SeqCst);
/// DOWN.store(true, Ordering::SeqCst);
/// std::thread::sleep(Duration::from_millis(30));
/// assert_eq!(settings("db"), 1); // due: the old value at once, recomputed in the background
/// while settings::cache_info().refreshes == 0 {
///     std::thread::sleep(Duration::from_millis(1));
/// }
/// assert_eq!(settings("db"), 2);
/// assert_eq!(price(10), Ok(10)); // expired, and the upstream fails: the stale value
/// assert_eq!(price::cache_info().stale_errors, 1);
/// ```
///
/// # Stores
///
/// With `store = "name"` the cache is the store registered under that name (Redis, Memcached, a
/// SQLite file; features `redis`, `memcached`, `persistent` of `memo`), shared by every process
/// that registers the same store. The store is looked up on the function's first call, so
/// register it at start-up; a name not registered by then caches in memory, with one warning. Keys are the arguments
/// as JSON, namespaced by the function's path (`module_path!()::f`, or the `Self` type's path for
/// a method, with the type arguments of a generic `impl`, plus each type argument of a generic
/// function), a hash of its signature, and `version`. Keys must also be `serde::Serialize`,
/// values `Serialize + DeserializeOwned`; a missing one is one error at the argument, `&self`,
/// the `key` expression or the return type. The
/// ttl is passed to the server; `maxsize` bounds only the in-memory fallback, and `policy` has
/// no effect (the store evicts by its own rules). A store
/// that is down makes calls misses, never failures. Everything else is as in memory:
/// single-flight within the process, only `Ok`/`Some` cached, the companions (`cache_clear()`
/// removes this function's keys and no other's).
///
/// ```
/// use memo::memoize;
///
/// #[memoize(store = "rates", ttl = "5m", version = 2)]
/// fn rate(from: &str, to: &str) -> Option<f64> {
///     (from != to).then_some(1.08)
/// }
///
/// // At start-up: memo::stores::register("rates", memo::stores::RedisStore::connect(url)?);
/// // never registered here, so `rate` caches in memory (with one warning).
/// assert_eq!(rate("EUR", "USD"), Some(1.08));
/// assert_eq!(rate("EUR", "USD"), Some(1.08));
/// assert_eq!((rate::cache_info().hits, rate::cache_info().misses), (1, 1));
/// ```
///
/// # Single-flight
///
/// When several threads or tasks miss the same key at once, the first runs the function and the
/// others wait for its value (`single_flight = false` opts out). A hit never touches it; a miss
/// takes its shard of the function's flight table twice (a few shards per core), looks at the
/// cache once more and reads the CPU's time-stamp counter twice for `load_time` (in about one
/// miss in 16 once the function's body proves faster than a microsecond or so;
/// `benches/single_flight.rs` measures each part). A panic in the function reaches its own
/// caller, caches nothing and poisons nothing: the waiters wake up and one of them runs the
/// function again. A function that calls itself with the same arguments on the same thread (or,
/// for an `async fn`, from inside its own computation) panics with its name instead of waiting
/// for itself forever; recursion on other arguments (`fib(n - 1)`) is unaffected.
///
/// # Signatures
///
/// - Free functions, `pub` or not, nested in blocks, with any argument patterns, raw identifiers
///   and an `extern` ABI.
/// - `&self` methods and associated functions in inherent `impl` blocks (generic ones too). By
///   default `self` is part of the key, which needs `Self: Hash + Eq + Clone + Send + Sync + 'static`;
///   otherwise write `ignore = [self]`, `key = ...`, or `cache_field = field` for a cache per
///   instance that is dropped with it.
/// - `#[memoize]` on an inherent `impl` block, with no options (but `crate = "..."`): it expands
///   every function of the block that carries its own `#[memoize(...)]` (or
///   `#[memo::memoize(...)]`) as an item of the `impl`. This is what an associated function that
///   never names `Self` needs (see below).
/// - `async fn`, free or method: the memoized function is an `async fn` that runs on any
///   executor (tokio, `futures::executor::block_on`, ...); concurrent awaits of a key run the
///   body once.
/// - Generic functions (type, const and lifetime parameters, `where` clauses): one cache per
///   instantiation, found by `TypeId`, so type parameters must be `'static`.
///
/// ```
/// use memo::memoize;
///
/// struct Stats;
///
/// #[memoize]                              // on the block: its functions are associated items
/// impl Stats {
///     #[memoize(maxsize = 16)]
///     fn mean(xs: &[u64]) -> u64 {        // never names `Self`
///         xs.iter().sum::<u64>() / xs.len() as u64
///     }
/// }
///
/// assert_eq!(Stats::mean(&[1, 2, 3]), 2);
/// assert_eq!(Stats::mean(&[1, 2, 3]), 2);
/// assert_eq!(Stats::mean_cache_info().hits, 1);
/// ```
///
/// Not supported, each reported at the offending token: `&mut self`, `self` by value and typed
/// receivers, `&mut` and `impl Trait` arguments, borrowed return types, `const fn`, `unsafe fn`,
/// a method of a trait `impl` without `#[memoize]` on the block (one error at the attribute
/// saying to add it: the companions cannot be trait items, and only the block's attribute can
/// move them to an inherent `impl` of the type). A bound that a key, `self` or
/// the value misses is reported at that argument, `&self`, the `key` expression or the return
/// type, and not again at the call sites or in the companions.
///
/// On a function alone, the attribute sees only that function's tokens, not the `impl` around
/// it. An associated function that never names `Self`, neither in its signature nor in its body,
/// then looks free, and the hidden `static` and companion type emitted for a free function are
/// rejected by the `impl` (rustc: "associated `static` items are not allowed", "enum is not
/// supported in `trait`s or `impl`s"): put `#[memoize]` on the `impl` block as well. Nor can it
/// see that an `impl` is generic, so a function of an `impl` that is not keyed by `self`
/// (`ignore = [self]`, `key = ...`) keeps its caches apart by the name of its `Self` type
/// (`Parser<u8>` and `Parser<u16>` never share one), which works for types that are not
/// `'static` too.
///
/// # Companions
///
/// Beside a free function `f`, typed with its own arguments:
///
/// | companion | does |
/// | --- | --- |
/// | `f::cache_info()` | hits, misses, maxsize, currsize, evictions, expirations, policy, ttl (summed over a generic function's instantiations) |
/// | `f::cache_clear()` | empties the cache and zeroes the statistics |
/// | `f::cache_invalidate(args..) -> bool` | removes the entry of these arguments |
/// | `f::cache_prime(args.., value)` | stores `value` for these arguments (warming the cache at start-up) |
/// | `f::uncached(args..)` | runs the body without the cache (`functools`' `__wrapped__`) |
///
/// They are associated functions of an uninhabited `enum f {}` beside the function (types and
/// functions live in different namespaces). Beside a method `m` they are associated functions of
/// `Self`: `Type::m_cache_info()`, `Type::m_cache_clear()`, `value.m_cache_invalidate(args..)`,
/// `value.m_cache_prime(args.., v)`, `value.m_uncached(args..)` (with `cache_field`,
/// `m_cache_info` and `m_cache_clear` take `&self`).
///
/// ```
/// use memo::memoize;
///
/// #[derive(Clone, Hash, PartialEq, Eq)]
/// struct Poly(Vec<i64>);
///
/// impl Poly {
///     #[memoize(maxsize = 64)]
///     fn at(&self, x: i64) -> i64 {
///         self.0.iter().rev().fold(0, |acc, c| acc * x + c)
///     }
/// }
///
/// #[memoize(key = city.to_lowercase(), ttl = "10m")]
/// fn population(city: &str) -> u64 {
///     city.len() as u64
/// }
///
/// let square = Poly(vec![0, 0, 1]);
/// assert_eq!(square.at(3), 9);
/// assert_eq!(square.at(3), 9);
/// assert_eq!(Poly::at_cache_info().hits, 1);
///
/// population::cache_prime("Paris", 2_100_000);
/// assert_eq!(population("PARIS"), 2_100_000);
/// assert!(population::cache_invalidate("paris"));
/// assert_eq!(population::uncached("Paris"), 5);
/// ```
#[proc_macro_attribute]
pub fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::memoize(attr.into(), item.into()).into()
}
