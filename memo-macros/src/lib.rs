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
mod error;
mod expand;
mod fallback;
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
///
/// # What is cached
///
/// The key is the tuple of the arguments, owned: a `&str` argument is stored as a `String`, a
/// `&[T]` as a `Vec<T>`, a `&T` as a `T`, an argument taken by value as a clone of it. Lookups
/// hash the borrowed arguments, so a hit allocates nothing. Every argument type must be
/// `Hash + Eq + Send` and cloneable (`ToOwned` for the referent of a `&` argument); the return
/// type must be `Clone + Send` (return an `Arc<T>` for large values). A function returning
/// `Result<T, E>` (any type whose last path segment is `Result`, such as `io::Result<T>`) caches
/// only `Ok` values; one returning `Option<T>` caches only `Some`.
///
/// Recursion works (no lock is held while the function runs) and the function can be called from
/// many threads at once.
///
/// # Companions
///
/// Beside a function `f`, the attribute generates a module `f` with the same visibility:
/// `f::cache_info()` returns the statistics and `f::cache_clear()` empties the cache.
///
/// # Not supported yet
///
/// Methods and associated functions, `async fn`, generic functions, `impl Trait` and `&mut`
/// arguments; each is reported as an error at the offending token. Types in the signature must
/// be nameable from the enclosing module: a function nested in a block may use the module's
/// types, not types declared in that block.
#[proc_macro_attribute]
pub fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::memoize(attr.into(), item.into()).into()
}
