use memo::memoize;

#[memoize(key = city.len() as f64)]
fn population(city: &str) -> u64 {
    city.len() as u64
}

fn main() {
    let _ = population("Paris");
}
