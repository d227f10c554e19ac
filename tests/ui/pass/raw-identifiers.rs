#![deny(warnings)]

use memo::memoize;

#[memoize]
fn r#match(r#in: &str, r#type: u8) -> usize {
    r#in.len() + usize::from(r#type)
}

fn main() {
    assert_eq!(r#match("ab", 1), 3);
    assert_eq!(r#match::cache_info().misses, 1);
}
