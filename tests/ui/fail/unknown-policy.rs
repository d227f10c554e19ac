use memo::memoize;

#[memoize(policy = "lfru")]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    let _ = square(2);
    let _ = square::cache_info();
}
