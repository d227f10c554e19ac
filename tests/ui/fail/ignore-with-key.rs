use memo::memoize;

#[memoize(key = city.to_lowercase(), ignore = [day])]
fn forecast(city: &str, day: u32) -> u64 {
    city.len() as u64 + u64::from(day)
}

fn main() {
    let _ = forecast("Paris", 1);
}
