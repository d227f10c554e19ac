// What the float argument's error suggests compiles.
#![deny(warnings)]
use memo::memoize;

#[memoize(key = side.to_bits())]
fn area(side: f64) -> f64 {
    side * side
}

fn main() {
    assert_eq!(area(2.0), 4.0);
    assert_eq!(area(2.0), 4.0);
    assert_eq!(area::cache_info().hits, 1);
}
