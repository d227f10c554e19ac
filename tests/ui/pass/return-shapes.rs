//! `Result` (any type whose last segment is `Result`, with one or two arguments) caches `Ok`;
//! `Option` caches `Some`; anything else is cached as is.
#![deny(warnings)]

use memo::memoize;

type Result<T> = std::result::Result<T, String>;

#[memoize]
fn std_result(n: u32) -> std::result::Result<u32, std::num::TryFromIntError> {
    u8::try_from(n).map(u32::from)
}

#[memoize]
fn io_result(path: &str) -> std::io::Result<usize> {
    Ok(path.len())
}

#[memoize]
fn alias_result(n: u32) -> Result<u32> {
    if n > 0 { Ok(n) } else { Err("zero".to_owned()) }
}

#[memoize]
fn option(n: u32) -> Option<u32> {
    n.checked_sub(1)
}

#[memoize]
fn fmt_result(n: u32) -> std::fmt::Result {
    if n > 0 { Ok(()) } else { Err(std::fmt::Error) }
}

#[memoize]
fn tuple(n: u32) -> (u32, Option<String>) {
    (n, None)
}

fn main() {
    assert_eq!(std_result(300).ok(), None);
    assert_eq!(io_result("ab").unwrap(), 2);
    assert_eq!(alias_result(0), Err("zero".to_owned()));
    assert_eq!(option(0), None);
    assert!(fmt_result(1).is_ok());
    assert_eq!(tuple(1), (1, None));
}
