//! `#[memoize]` on methods and associated functions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use memo::memoize;
// `memo::InstanceCache` once the facade re-exports it (a one-line change in src/lib.rs).
use memo_core::InstanceCache;

/// A value type: `self` is part of the key.
#[derive(Clone, Hash, PartialEq, Eq)]
struct Polynomial {
    coefficients: Vec<i64>,
}

static EVALUATIONS: AtomicUsize = AtomicUsize::new(0);

impl Polynomial {
    /// Evaluates at `x`.
    #[memoize(maxsize = 64)]
    pub fn at(&self, x: i64) -> i64 {
        EVALUATIONS.fetch_add(1, Ordering::SeqCst);
        self.coefficients.iter().rev().fold(0, |acc, c| acc * x + c)
    }

    /// An associated function (no receiver), recognized by its `Self`.
    #[memoize]
    fn constant(c: i64) -> Self {
        Polynomial {
            coefficients: vec![c],
        }
    }
}

#[test]
fn self_is_part_of_the_key() {
    let square = Polynomial {
        coefficients: vec![0, 0, 1],
    };
    let line = Polynomial {
        coefficients: vec![1, 1],
    };
    assert_eq!(square.at(3), 9);
    assert_eq!(line.at(3), 4); // another `self`: another entry
    assert_eq!(square.clone().at(3), 9); // an equal `self`: a hit
    assert_eq!(EVALUATIONS.load(Ordering::SeqCst), 2);
    let info = Polynomial::at_cache_info();
    assert_eq!((info.hits, info.misses, info.maxsize), (1, 2, Some(64)));
    // Typed companions take `self` and the arguments.
    assert!(square.at_cache_invalidate(3));
    line.at_cache_prime(10, -1);
    assert_eq!(line.at(10), -1);
    assert_eq!(line.at_uncached(10), 11);
    Polynomial::at_cache_clear();
    assert_eq!(Polynomial::at_cache_info().currsize, 0);

    assert!(Polynomial::constant(4) == Polynomial::constant(4));
    assert_eq!(Polynomial::constant_cache_info().hits, 1);
}

/// Not `Hash`: its methods leave `self` out of the key, or keep a cache per instance.
struct Geocoder {
    requests: AtomicUsize,
    lookups: InstanceCache,
}

impl Geocoder {
    fn new() -> Self {
        Geocoder {
            requests: AtomicUsize::new(0),
            lookups: InstanceCache::new(),
        }
    }

    /// Shared by every instance: `self` is only the client.
    #[memoize(ignore = [self])]
    fn country(&self, city: &str) -> String {
        self.requests.fetch_add(1, Ordering::SeqCst);
        format!("country of {city}")
    }

    /// One cache per instance, in its `lookups` field.
    #[memoize(cache_field = lookups, maxsize = 8)]
    fn coordinates(&self, city: &str) -> Arc<(f64, f64)> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Arc::new((city.len() as f64, 0.0))
    }
}

#[test]
fn ignore_self_shares_one_cache_between_instances() {
    let (a, b) = (Geocoder::new(), Geocoder::new());
    assert_eq!(a.country("Rome"), "country of Rome");
    assert_eq!(b.country("Rome"), "country of Rome");
    assert_eq!(
        a.requests.load(Ordering::SeqCst) + b.requests.load(Ordering::SeqCst),
        1
    );
    assert_eq!(Geocoder::country_cache_info().hits, 1);
}

#[test]
fn per_instance_cache_lives_and_dies_with_its_instance() {
    let (a, b) = (Geocoder::new(), Geocoder::new());
    let kept = a.coordinates("Rome");
    assert!(Arc::ptr_eq(&kept, &a.coordinates("Rome")));
    let _ = b.coordinates("Rome"); // b's own cache: a miss
    assert_eq!(b.requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        (
            a.coordinates_cache_info().hits,
            a.coordinates_cache_info().maxsize
        ),
        (1, Some(8))
    );
    assert_eq!(b.coordinates_cache_info().hits, 0);
    assert!(a.coordinates_cache_invalidate("Rome"));
    a.coordinates_cache_clear();
    assert_eq!(a.coordinates_cache_info().misses, 0);
    // The cached value is freed with the instance: nothing keeps `a` or its values alive.
    let cached = b.coordinates("Oslo");
    assert_eq!(Arc::strong_count(&cached), 2);
    drop(b);
    assert_eq!(Arc::strong_count(&cached), 1);
}

/// A generic impl: one cache per `Self` type, which the attribute cannot see.
#[derive(Clone, Hash, PartialEq, Eq)]
struct Scaled<T> {
    factor: T,
}

impl<T: Copy + std::ops::Mul<Output = T> + std::hash::Hash + Eq + Send + Sync + 'static> Scaled<T> {
    #[memoize]
    fn apply(&self, x: T) -> T {
        self.factor * x
    }
}

#[test]
fn generic_impls_keep_one_cache_per_self_type() {
    assert_eq!(Scaled { factor: 2u8 }.apply(3), 6);
    assert_eq!(Scaled { factor: 2u64 }.apply(3), 6);
    assert_eq!(Scaled { factor: 2u64 }.apply(3), 6);
    let info = Scaled::<u8>::apply_cache_info(); // summed over `Scaled<u8>` and `Scaled<u64>`
    assert_eq!((info.hits, info.misses, info.currsize), (1, 2, 2));
}

struct Tree;

impl Tree {
    /// Recursion through `Self::`.
    #[memoize(maxsize = None)]
    fn paths(n: u64) -> u64 {
        if n < 2 {
            1
        } else {
            Self::paths(n - 1) + Self::paths(n - 2)
        }
    }

    #[memoize(key = label.trim().to_owned())]
    fn tag(&self, label: &str) -> String {
        format!("<{}>", label.trim())
    }
}

#[test]
fn associated_recursion_and_key_expressions() {
    assert_eq!(Tree::paths(80), 37_889_062_373_143_906);
    assert_eq!(Tree::paths_cache_info().misses, 81);
    assert_eq!(Tree.tag(" a "), "<a>");
    assert_eq!(Tree.tag("a"), "<a>");
    assert_eq!(Tree::tag_cache_info().hits, 1);
    assert!(Tree.tag_cache_invalidate("a  "));
}
