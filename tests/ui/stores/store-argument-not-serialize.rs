use memo::memoize;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Point {
    x: i32,
    y: i32,
}

#[memoize(store = "shared")]
fn distance(label: &str, to: Point) -> i32 {
    label.len() as i32 + to.x.abs() + to.y.abs()
}

fn main() {
    distance("origin", Point { x: 1, y: 2 });
    let _ = distance::cache_info();
    distance::cache_clear();
}
