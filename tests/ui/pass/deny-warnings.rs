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

fn main() {
    let _ = public(1) + public::cache_info().hits;
    let _ = private("abc");
    let _ = ShoutingName();
    unit(1);
    let _ = kept_attributes(2);
    public::cache_clear();
}
