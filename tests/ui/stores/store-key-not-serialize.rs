// With a store, the `key` expression's type must be `Serialize`: one error at the expression,
// none at the call site or in the companions.
use memo::memoize;

#[derive(Hash, PartialEq, Eq)]
struct Initial(char);

#[memoize(store = "shared", key = Initial(city.chars().next().unwrap_or(' ')))]
fn population(city: &str) -> u64 {
    city.len() as u64
}

fn main() {
    let _ = population("Paris");
    let _ = population::cache_invalidate("Paris");
    population::cache_prime("Paris", 5);
    let _ = population::cache_info();
}
