//! `cfg` applies to the companions as well; an ABI stays on the function.
#![deny(warnings)]

use memo::memoize;

#[memoize]
#[cfg(any())]
fn never_compiled(x: NoSuchType) -> u8 {
    x
}

#[memoize]
#[cfg(not(any()))]
fn compiled(x: u8) -> u8 {
    x
}

#[memoize]
extern "C" fn c_abi(x: u32) -> u32 {
    x * 2
}

fn main() {
    assert_eq!(compiled(1), 1);
    assert_eq!(compiled::cache_info().misses, 1);
    assert_eq!(c_abi(2), 4);
}
