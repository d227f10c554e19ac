use memo::memoize;

#[memoize(maxsize = 16, ttl = "1s", maxsize = 32)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    square(2);
}
