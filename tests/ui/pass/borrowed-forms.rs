//! Keys own their arguments: `&str` as `String`, `&[T]` as `Vec<T>`, `&T` as `T`, `&Path` as
//! `PathBuf`; explicit `'static` and function pointers are fine.
#![deny(warnings)]

use std::path::Path;

use memo::memoize;

#[memoize]
fn all(a: &str, b: &[u8], c: &u64, d: &Path, e: &'static str, f: fn(&str) -> usize, g: Vec<String>) -> usize {
    a.len() + b.len() + *c as usize + d.as_os_str().len() + e.len() + f(a) + g.len()
}

fn main() {
    let n = all("ab", &[1, 2], &3, Path::new("/x"), "e", str::len, vec![]);
    assert_eq!(n, 2 + 2 + 3 + 2 + 1 + 2);
    assert_eq!(all("ab", &[1, 2], &3, Path::new("/x"), "e", str::len, vec![]), n);
    assert_eq!(all::cache_info().hits, 1);
}
