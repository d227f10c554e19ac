use memo::memoize;

#[memoize(store = "shared", ttl = "5m", version = 2)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    square(3);
    let _ = square::cache_info();
    assert!(square::cache_invalidate(3));
}
