use memo::memoize;

#[memoize(ttl = 30)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    square(2);
}
