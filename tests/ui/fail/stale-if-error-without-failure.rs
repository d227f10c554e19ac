use memo::memoize;

#[memoize(ttl = "30s", stale_if_error = "10m")]
fn rate(city: &str) -> f64 {
    city.len() as f64
}

fn main() {
    rate("oslo");
}
