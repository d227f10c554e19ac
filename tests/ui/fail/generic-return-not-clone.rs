// A generic memoized function's cached value needs its type parameters to be `Clone`: one error
// at the return type, none at the call site or in the companions.
use memo::memoize;

#[memoize]
fn pick<T: Send + Sync + 'static>(index: usize, items: fn() -> Vec<T>) -> Option<T> {
    items().into_iter().nth(index)
}

fn main() {
    let _ = pick(0, || vec![1]);
    pick::cache_prime(0, || vec![1], 1);
    let _ = pick::cache_info();
}
