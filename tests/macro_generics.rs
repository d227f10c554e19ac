//! Generic functions: one cache per instantiation.

use std::fmt::Display;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

use memo::memoize;

#[memoize]
fn describe<T: Display + Hash + Eq + Clone + Send + Sync + 'static>(value: T) -> String {
    format!("<{value}>")
}

#[test]
fn each_instantiation_has_its_own_cache() {
    assert_eq!(describe(1u8), "<1>");
    assert_eq!(describe(1u64), "<1>");
    assert_eq!(describe(1u8), "<1>");
    assert_eq!(describe("one"), "<one>");
    let info = describe::cache_info(); // summed over every instantiation
    assert_eq!((info.hits, info.misses, info.currsize), (1, 3, 3));
    assert!(describe::cache_invalidate(1u64));
    assert!(!describe::cache_invalidate(2u64));
    describe::cache_prime(9i32, "nine".to_owned());
    assert_eq!(describe(9i32), "nine");
    describe::cache_clear();
    assert_eq!(describe::cache_info().currsize, 0);
}

#[memoize]
fn parse<T>(text: &str) -> Option<T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
{
    text.parse().ok()
}

#[test]
fn a_type_parameter_only_in_the_return_type() {
    assert_eq!(parse::<u8>("7"), Some(7));
    assert_eq!(parse::<i64>("7"), Some(7));
    assert_eq!(parse::<u8>("300"), None); // not cached
    assert_eq!(parse::<u8>("7"), Some(7));
    let info = parse::cache_info();
    assert_eq!((info.hits, info.misses, info.currsize), (1, 3, 2));
}

#[memoize]
fn sum<const N: usize>(values: [u32; N]) -> u32 {
    values.iter().sum()
}

#[test]
fn const_generics() {
    assert_eq!(sum([1, 2]), 3);
    assert_eq!(sum([1, 2, 3]), 6);
    assert_eq!(sum([1, 2]), 3);
    assert_eq!(sum::cache_info().hits, 1);
}

#[memoize(key = text.len())]
fn first_of_length<'a, T: From<&'a str> + Clone + Send + Sync + 'static>(text: &'a str) -> T {
    T::from(text)
}

#[test]
fn lifetimes_and_key_expressions_in_generic_functions() {
    assert_eq!(first_of_length::<String>("abc"), "abc");
    assert_eq!(first_of_length::<String>("xyz"), "abc"); // same length: same key
}

static SIZES: AtomicUsize = AtomicUsize::new(0);

/// `T` is in neither the key nor the value: its instantiations still keep a cache each.
#[memoize]
fn bytes_for<T: 'static>(count: u32) -> usize {
    SIZES.fetch_add(1, Ordering::SeqCst);
    std::mem::size_of::<T>() * count as usize
}

#[test]
fn a_type_parameter_in_neither_key_nor_value_keeps_a_cache_per_instantiation() {
    assert_eq!(bytes_for::<u8>(4), 4);
    assert_eq!(bytes_for::<u64>(4), 32);
    assert_eq!(bytes_for::<u8>(4), 4);
    assert_eq!(bytes_for::<u64>(4), 32);
    assert_eq!(SIZES.load(Ordering::SeqCst), 2);
    let info = bytes_for::cache_info();
    assert_eq!((info.hits, info.misses), (2, 2));
    assert!(bytes_for::cache_invalidate::<u64>(4));
    assert_eq!(bytes_for::<u8>(4), 4); // still cached
    assert_eq!(SIZES.load(Ordering::SeqCst), 2);
}

/// A generic type whose memoized method leaves `self` out of the key.
struct Width<T>(std::marker::PhantomData<T>);

impl<T> Width<T> {
    fn new() -> Self {
        Width(std::marker::PhantomData)
    }

    // The attribute sits on the function alone, so it cannot see that the `impl` is generic;
    // neither the key (`n`) nor the value (`usize`) mentions `T`.
    #[memoize(ignore = [self])]
    fn bytes(&self, n: usize) -> usize {
        n * std::mem::size_of::<T>()
    }
}

#[test]
fn a_method_of_a_generic_impl_keeps_a_cache_per_self_type_without_the_block_attribute() {
    assert_eq!(Width::<u8>::new().bytes(4), 4);
    assert_eq!(Width::<u64>::new().bytes(4), 32, "not u8's cached value");
    assert_eq!(Width::<u8>::new().bytes(4), 4);
    let info = Width::<u8>::bytes_cache_info();
    assert_eq!(
        (info.hits, info.misses),
        (1, 2),
        "summed over both Self types"
    );
}

/// A type that is not `'static`: told apart by name, which needs no `'static`.
struct View<'a>(&'a str);

impl View<'_> {
    #[memoize(ignore = [self])]
    fn doubled(&self, n: u32) -> u32 {
        n * 2
    }
}

#[test]
fn a_method_of_a_borrowing_type_is_memoized() {
    let text = String::from("borrowed");
    let view = View(&text);
    assert_eq!(view.doubled(21), 42);
    assert_eq!(view.doubled(21), 42);
    assert_eq!(View::doubled_cache_info().hits, 1);
    assert_eq!(view.0, "borrowed");
}
