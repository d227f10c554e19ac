use memo::memoize;

#[memoize(maxsize = 5000000000)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    square(2);
}
