use memo::memoize;

#[memoize(single_flight = "off")]
fn square(n: u64) -> u64 {
    n * n
}

fn main() {
    let _ = square(2);
}
