use memo::memoize;

#[memoize(store = "shared", local = 0)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    square(3);
    let _ = square::cache_info();
}
