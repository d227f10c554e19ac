//! A crate that denies warnings and missing docs, and forbids unsafe code: the generated code
//! must add none, whatever the visibility, and the user's doc comments stay on the function.
#![deny(warnings, missing_docs, unreachable_pub, unused_qualifications, unused_results)]
#![forbid(unsafe_code)]

use memo::memoize;

/// Public, so `missing_docs` checks the wrapper and its companions.
#[memoize]
pub fn public(n: u64) -> u64 {
    n + 1
}

/// Private and never asked for its statistics: the companions must not be dead code.
#[memoize(maxsize = None)]
fn private(text: &str) -> usize {
    text.len()
}

/// Lint attributes on the function cover the companion module too.
#[allow(non_snake_case)]
#[memoize]
fn ShoutingName() -> u8 {
    1
}

/// A function returning nothing.
#[memoize]
fn unit(n: u8) {
    let _ = n;
}

/// `#[must_use]` and `#[inline]` stay on the wrapper.
#[must_use]
#[inline]
#[memoize(ttl = "500ms")]
pub fn kept_attributes(x: u8) -> u8 {
    x
}

/// A type whose `impl` block carries `#[memoize]`.
#[derive(Clone, Hash, PartialEq, Eq)]
pub struct Stats<T> {
    /// Only its type matters.
    pub marker: std::marker::PhantomData<T>,
}

#[memoize]
impl<T: 'static> Stats<T> {
    /// Public, never naming `Self`: documented, companions included.
    #[memoize(maxsize = 8)]
    pub fn mean(xs: &[u64]) -> u64 {
        xs.iter().sum::<u64>() / xs.len().max(1) as u64
    }

    /// Private, keyed by an expression, never asked for its statistics.
    #[memoize(key = n % 2)]
    fn parity(n: u64) -> bool {
        n % 2 == 0
    }
}

/// A generic function whose parameter is in neither the key nor the value.
#[memoize]
pub fn width<T: 'static>(n: u32) -> usize {
    size_of::<T>() * n as usize
}

fn main() {
    let _ = Stats::<u8>::mean(&[1, 2]) + Stats::<u8>::mean_cache_info().hits as u64;
    let _ = Stats::<u8>::parity(3);
    let _ = width::<u8>(2);
    let _ = public(1) + public::cache_info().hits;
    let _ = private("abc");
    let _ = ShoutingName();
    unit(1);
    let _ = kept_attributes(2);
    public::cache_clear();
}
