// A generic memoized function's key needs its type parameters to be `Hash + Eq`: one error at the
// argument, none at the call site or in the companions.
use memo::memoize;

#[memoize]
fn first<T: Clone + Send + Sync + 'static>(items: Vec<T>) -> Option<T> {
    items.into_iter().next()
}

fn main() {
    let _ = first(vec![1]);
    let _ = first::cache_invalidate(vec![1]);
    let _ = first::cache_info();
}
