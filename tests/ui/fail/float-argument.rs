// A float argument cannot be part of the key: one error at its type, saying to key it by its
// bits; none at the call sites or in the companions.
use memo::memoize;

#[memoize]
fn area(side: f64) -> f64 {
    side * side
}

fn main() {
    let _ = area(2.0);
    let _ = area::cache_info();
}
