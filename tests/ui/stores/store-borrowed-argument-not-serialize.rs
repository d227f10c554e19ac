use memo::memoize;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Point {
    x: i32,
    y: i32,
}

#[memoize(store = "shared")]
async fn distance(to: &Point) -> i32 {
    to.x.abs() + to.y.abs()
}

fn main() {
    let _ = distance(&Point { x: 1, y: 2 });
    let _ = distance::cache_info();
}
