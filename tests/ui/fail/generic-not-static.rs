// A generic memoized function keeps one cache per instantiation, found by `TypeId`: its type
// parameters must be `'static`.
use memo::memoize;
use std::hash::Hash;

#[memoize]
fn first<T: Hash + Eq + Clone + Send + Sync>(items: Vec<T>) -> Option<T> {
    items.into_iter().next()
}

fn main() {
    let _ = first(vec![1]);
}
