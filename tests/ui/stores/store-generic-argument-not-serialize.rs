// With a store, a generic function's argument needs its type parameter to be `Serialize`: one
// error at the argument, none at the call site or in the companions.
use memo::memoize;

#[memoize(store = "shared")]
fn describe<T: std::fmt::Debug + std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    value: T,
) -> String {
    format!("{value:?}")
}

fn main() {
    let _ = describe(3u8);
    let _ = describe::cache_invalidate(3u8);
    let _ = describe::cache_info();
}
