// A mistake in the options is one error: the function and its companions are still generated
// (with the default options), so neither the call nor `cache_info()` adds an error.
use memo::memoize;

#[memoize(maxsize = "big")]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    let squared: u64 = square(2);
    let info: memo::CacheInfo = square::cache_info();
    square::cache_clear();
    println!("{squared} {info:?}");
}
