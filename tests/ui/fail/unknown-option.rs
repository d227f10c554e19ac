use memo::memoize;

#[memoize(maxsise = 3)]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    square(2);
}
