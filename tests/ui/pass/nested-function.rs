//! A memoized function nested in another function's body, using types of the module.
#![deny(warnings)]

use memo::memoize;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Key(u32);

fn main() {
    #[memoize]
    fn lookup(key: &Key, label: String) -> String {
        format!("{label}{}", key.0)
    }

    fn helper() -> String {
        lookup(&Key(1), "a".to_owned())
    }

    assert_eq!(helper(), "a1");
    assert_eq!(lookup(&Key(1), "a".to_owned()), "a1");
    assert_eq!(lookup::cache_info().hits, 1);
}
