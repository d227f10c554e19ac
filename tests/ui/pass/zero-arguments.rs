#![deny(warnings)]

use memo::memoize;

#[memoize]
fn config() -> Vec<String> {
    vec!["a".to_owned()]
}

fn main() {
    assert_eq!(config(), config());
    assert_eq!(config::cache_info().hits, 1);
}
