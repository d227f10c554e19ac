use memo::memoize;

#[derive(Clone, PartialEq, Eq)]
struct Point {
    x: i32,
    y: i32,
}

#[memoize]
fn norm(point: &Point) -> i32 {
    point.x.abs() + point.y.abs()
}

fn main() {
    norm(&Point { x: 1, y: 2 });
}
