use memo::memoize;

#[memoize(ttl = "0s")]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    square(2);
}
