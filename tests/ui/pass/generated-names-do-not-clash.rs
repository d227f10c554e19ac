//! Arguments and items named like the generated ones change nothing: the generated locals are
//! hygienic.
#![deny(warnings)]

use memo::memoize;

#[allow(dead_code)]
fn __memo_body() -> u8 {
    0
}

#[memoize]
fn sum(
    __memo_cache: u8,
    __memo_key: u8,
    __memo_ret: u8,
    __memo_found: u8,
    __memo_stored: u8,
    __memo_k: u8,
    (__memo_arg0, __memo_arg1): (u8, u8),
) -> u8 {
    __memo_cache + __memo_key + __memo_ret + __memo_found + __memo_stored + __memo_k + __memo_arg0 + __memo_arg1
}

#[memoize]
fn cache_info(cache_clear: u8) -> u8 {
    cache_clear
}

fn main() {
    assert_eq!(sum(1, 2, 3, 4, 5, 6, (7, 8)), 36);
    assert_eq!(sum(1, 2, 3, 4, 5, 6, (7, 8)), 36);
    assert_eq!(sum::cache_info().hits, 1);
    assert_eq!(cache_info(1), 1);
    assert_eq!(cache_info::cache_info().misses, 1);
}
