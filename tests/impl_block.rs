//! `#[memoize]` on an `impl` block: it expands every function of the block that carries its own
//! `#[memoize(...)]`, associated functions that never name `Self` included.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

use memo::memoize;

/// A value type: `self` is part of the key of its methods.
#[derive(Clone, Hash, PartialEq, Eq)]
struct Stats {
    scale: u64,
}

static MEANS: AtomicUsize = AtomicUsize::new(0);
static SCALED: AtomicUsize = AtomicUsize::new(0);

#[memoize]
impl Stats {
    /// An associated function that never names `Self`: without the block's attribute it would
    /// look free to the function's.
    #[memoize(maxsize = 16)]
    fn mean(xs: &[u64]) -> u64 {
        MEANS.fetch_add(1, Ordering::SeqCst);
        xs.iter().sum::<u64>() / xs.len() as u64
    }

    /// A method: `self` is part of the key.
    #[memo::memoize]
    fn scaled_mean(&self, xs: &[u64]) -> u64 {
        SCALED.fetch_add(1, Ordering::SeqCst);
        // Not `Self::mean(xs)`: the tests run in parallel and count `mean`'s calls.
        xs.iter().sum::<u64>() / xs.len() as u64 * self.scale
    }

    /// An associated function that names `Self`.
    #[memoize(key = scale % 10)]
    fn with_scale(scale: u64) -> Self {
        Stats { scale: scale % 10 }
    }

    /// Not memoized: left as written.
    fn double(x: u64) -> u64 {
        x * 2
    }
}

#[test]
fn associated_function_without_self_is_memoized_with_associated_companions() {
    assert_eq!(Stats::mean(&[1, 2, 3]), 2);
    assert_eq!(Stats::mean(&[1, 2, 3]), 2);
    assert_eq!(Stats::mean(&[10, 20]), 15);
    assert_eq!(MEANS.load(Ordering::SeqCst), 2);
    let info = Stats::mean_cache_info();
    assert_eq!((info.hits, info.misses, info.maxsize), (1, 2, Some(16)));

    assert!(Stats::mean_cache_invalidate(&[10, 20]));
    assert!(!Stats::mean_cache_invalidate(&[10, 20]));
    Stats::mean_cache_prime(&[4, 4], 100);
    assert_eq!(Stats::mean(&[4, 4]), 100);
    assert_eq!(Stats::mean_uncached(&[4, 4]), 4);
    Stats::mean_cache_clear();
    assert_eq!(Stats::mean_cache_info().currsize, 0);
    assert_eq!(Stats::double(2), 4);
}

#[test]
fn methods_and_functions_naming_self_in_the_block_are_memoized() {
    let (two, three) = (Stats { scale: 2 }, Stats { scale: 3 });
    assert_eq!(two.scaled_mean(&[2, 4]), 6);
    assert_eq!(three.scaled_mean(&[2, 4]), 9); // another `self`: another entry
    assert_eq!(two.clone().scaled_mean(&[2, 4]), 6); // an equal `self`: a hit
    assert_eq!(SCALED.load(Ordering::SeqCst), 2);
    assert_eq!(Stats::scaled_mean_cache_info().hits, 1);
    assert!(two.scaled_mean_cache_invalidate(&[2, 4]));
    three.scaled_mean_cache_prime(&[0], 7);
    assert_eq!(three.scaled_mean(&[0]), 7);

    assert!(Stats::with_scale(3) == Stats::with_scale(13)); // same key: `13 % 10`
    let info = Stats::with_scale_cache_info();
    assert_eq!((info.hits, info.misses), (1, 1));
}

/// A generic type: one cache per instantiation of its methods.
struct Table<T> {
    marker: PhantomData<T>,
}

static WIDTHS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
impl<T: 'static> Table<T> {
    #[memoize]
    fn width(columns: u32) -> usize {
        WIDTHS.fetch_add(1, Ordering::SeqCst);
        std::mem::size_of::<T>() * columns as usize
    }
}

#[test]
fn generic_impl_keeps_a_cache_per_instantiation() {
    assert_eq!(Table::<u8>::width(4), 4);
    assert_eq!(Table::<u64>::width(4), 32);
    assert_eq!(Table::<u8>::width(4), 4);
    assert_eq!(WIDTHS.load(Ordering::SeqCst), 2);
    let info = Table::<u8>::width_cache_info();
    assert_eq!((info.hits, info.misses), (1, 2)); // summed over the instantiations
    let table = Table::<u16> {
        marker: PhantomData,
    };
    let _ = &table.marker;
    assert_eq!(Table::<u16>::width_uncached(2), 4);
}

/// A trait whose implementation is memoized.
trait Repo {
    fn find(&self, id: u32) -> Option<String>;
}

struct Pg {
    table: &'static str,
}

static FINDS: AtomicUsize = AtomicUsize::new(0);

#[memoize]
impl Repo for Pg {
    /// The companions go to an inherent `impl Pg`: `Pg::find_cache_info()`.
    #[memoize(ignore = [self])]
    fn find(&self, id: u32) -> Option<String> {
        FINDS.fetch_add(1, Ordering::SeqCst);
        (id > 0).then(|| format!("{}#{id}", self.table))
    }
}

#[test]
fn a_trait_impl_is_memoized_with_its_companions_on_the_type() {
    let pg = Pg { table: "users" };
    let repo: &dyn Repo = &pg;
    assert_eq!(repo.find(7).as_deref(), Some("users#7"));
    assert_eq!(repo.find(7).as_deref(), Some("users#7"));
    assert_eq!(repo.find(0), None);
    assert_eq!(FINDS.load(Ordering::SeqCst), 2);
    let info = Pg::find_cache_info();
    assert_eq!((info.hits, info.misses, info.currsize), (1, 2, 1));
    // Only the key's arguments: `self` is ignored.
    assert!(Pg::find_cache_invalidate(7));
    Pg::find_cache_clear();
    assert_eq!(Pg::find_uncached(&pg, 3).as_deref(), Some("users#3"));
}
