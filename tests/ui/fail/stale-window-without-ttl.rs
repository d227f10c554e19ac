use memo::memoize;

#[memoize(maxsize = 64, stale_while_revalidate = "1m")]
fn rate(city: &str) -> f64 {
    city.len() as f64
}

fn main() {
    rate("oslo");
}
