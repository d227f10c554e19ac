//! The registry of the process's memoized functions: [`caches`] lists each one's path and
//! statistics, for dashboards, health pages and metrics ([`crate::metrics`]).
//!
//! A function is registered when its cache is made, on its first call (for a generic function or
//! method, on the first call of each instantiation), so a hit never touches the registry and a
//! function never called is not listed.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use parking_lot::Mutex;

use crate::memo::{ErasedMemo, TypeCaches};
use crate::CacheInfo;

/// One memoized function's statistics, as [`caches`] lists them.
///
/// ```
/// use memo::memoize;
///
/// #[memoize]
/// fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// double(21);
/// let report = memo::caches()
///     .into_iter()
///     .find(|report| report.function.ends_with("::double"))
///     .expect("registered by its first call");
/// assert_eq!((report.info.hits, report.info.misses), (0, 1));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CacheReport {
    /// The function's path: `crate::module::function`, or `crate::module::Type::method` for a
    /// function of an `impl` (without the type arguments of a generic one).
    pub function: String,
    /// Its statistics, as its `cache_info()` companion gives them (summed over the
    /// instantiations of a generic function).
    pub info: CacheInfo,
}

/// Every memoized function of the process that has been called at least once, by path, with its
/// statistics: free functions, methods, generic functions (one report each, summed over the
/// instantiations) and functions with a store (the hits and misses of this process).
/// Per-instance caches (`cache_field = ...`) belong to their instances and are not listed.
///
/// ```
/// use memo::memoize;
///
/// #[memoize(maxsize = 16)]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// assert!(!memo::caches().iter().any(|r| r.function.ends_with("::square"))); // not called yet
/// square(3);
/// square(3);
/// for report in memo::caches() {
///     println!("{}: {:.0}% hits, {} entries", report.function, report.info.hit_ratio() * 100.0,
///         report.info.currsize);
/// }
/// let report = memo::caches().into_iter().find(|r| r.function.ends_with("::square")).unwrap();
/// assert_eq!((report.info.hits, report.info.misses, report.info.maxsize), (1, 1, Some(16)));
/// ```
///
/// The reports are sorted by path; two functions of one path (functions of one name nested in
/// different function bodies of a module) are one report, summed.
pub fn caches() -> Vec<CacheReport> {
    // Read the statistics outside the registry's lock: a cache being made registers itself
    // under that lock, and reading one (`LazyLock::force`) waits for it to be made.
    let entries: Vec<(String, &'static dyn Inspect)> = REGISTRY
        .lock()
        .entries
        .iter()
        .map(|(path, memo)| (path.to_string(), *memo))
        .collect();
    let mut reports: Vec<CacheReport> = entries
        .into_iter()
        .map(|(function, memo)| CacheReport {
            function,
            info: memo.info(),
        })
        .collect();
    reports.sort_by(|a, b| a.function.cmp(&b.function));
    reports.dedup_by(|later, kept| {
        let same = later.function == kept.function;
        if same {
            accumulate(&mut kept.info, &later.info);
        }
        same
    });
    reports
}

/// A policy serializes as its name: `"lru"`, `"adaptive"`, ...
#[cfg(feature = "serde")]
impl serde::Serialize for crate::Policy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Adds `one`'s counts to `total`: two functions reported as one.
fn accumulate(total: &mut CacheInfo, one: &CacheInfo) {
    total.hits += one.hits;
    total.misses += one.misses;
    total.waits += one.waits;
    total.load_time += one.load_time;
    total.refreshes += one.refreshes;
    total.stale_hits += one.stale_hits;
    total.stale_errors += one.stale_errors;
    total.currsize += one.currsize;
    total.evictions += one.evictions;
    total.expirations += one.expirations;
    total.maxsize = total.maxsize.zip(one.maxsize).map(|(a, b)| a + b);
}

/// What the registry keeps of a cache: its statistics on demand.
trait Inspect: Sync {
    fn info(&self) -> CacheInfo;
}

/// The `static` of a non-generic function, registered from its own initializer (so reading it
/// may wait for that initializer to finish, never longer).
impl<M: ErasedMemo> Inspect for LazyLock<M> {
    fn info(&self) -> CacheInfo {
        LazyLock::force(self).info()
    }
}

impl Inspect for TypeCaches {
    fn info(&self) -> CacheInfo {
        TypeCaches::info(self)
    }
}

struct Registry {
    /// Every registered function: its path and its cache.
    entries: Vec<(Box<str>, &'static dyn Inspect)>,
    /// The addresses of the registered `TypeCaches`, registered by their first instantiation.
    generic: BTreeSet<usize>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    entries: Vec::new(),
    generic: BTreeSet::new(),
});

/// Registers the `static` memo of the function at `path`; what its initializer returns.
pub(crate) fn register_static<M: ErasedMemo + 'static>(
    path: &'static str,
    memo: &'static LazyLock<M>,
) {
    REGISTRY.lock().entries.push((path.into(), memo));
}

/// Registers the memos of a generic function or of a function of an `impl`, once, as the
/// function whose first instantiation is called `name` (`crate::Type<u8>::f`: the path is
/// taken without the type arguments).
pub(crate) fn register_generic(caches: &'static TypeCaches, name: &str) {
    let mut registry = REGISTRY.lock();
    if registry
        .generic
        .insert(caches as *const TypeCaches as usize)
    {
        registry
            .entries
            .push((without_type_arguments(name).into(), caches));
    }
}

/// `name` without anything between angle brackets: `a::B<c::D<u8>>::f` is `a::B::f`.
fn without_type_arguments(name: &str) -> String {
    let mut depth = 0usize;
    name.chars()
        .filter(|&c| {
            match c {
                '<' => depth += 1,
                '>' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_arguments_are_dropped_from_paths() {
        assert_eq!(without_type_arguments("a::B<c::D<u8>>::f"), "a::B::f");
        assert_eq!(without_type_arguments("a::B<u8, u16>::f"), "a::B::f");
        assert_eq!(without_type_arguments("a::f"), "a::f");
    }

    #[test]
    fn reports_of_one_path_are_summed() {
        let mut total = crate::Cache::<u8, u8>::new(2).info();
        let mut one = total.clone();
        one.hits = 3;
        one.misses = 1;
        one.currsize = 1;
        accumulate(&mut total, &one);
        accumulate(&mut total, &one);
        assert_eq!((total.hits, total.misses, total.currsize), (6, 2, 2));
        assert_eq!(total.maxsize, Some(6));
    }
}
