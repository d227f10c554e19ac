// The `key` expression's type must be `Hash + Eq`: one error at the expression, none at the call
// site or in the companions.
use memo::memoize;

#[memoize(key = city.len() as f64)]
fn population(city: &str) -> u64 {
    city.len() as u64
}

fn main() {
    let _ = population("Paris");
    let _ = population::cache_invalidate("Paris");
    population::cache_prime("Paris", 5);
    let _ = population::cache_info();
}
