use memo::memoize;

#[memoize(local = 100, local_ttl = "5s")]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    square(3);
    let _ = square::cache_info();
}
