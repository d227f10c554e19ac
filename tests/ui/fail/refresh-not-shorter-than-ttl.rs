use memo::memoize;

#[memoize(ttl = "30s", refresh = "30s")]
fn rate(city: &str) -> f64 {
    city.len() as f64
}

fn main() {
    rate("oslo");
}
