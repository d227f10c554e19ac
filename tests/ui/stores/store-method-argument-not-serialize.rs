// With a store, a method's argument must be `Serialize`: one error at the argument, none at the
// call site or in the companions.
use memo::memoize;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Point {
    x: i32,
}

#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
struct Grid;

impl Grid {
    #[memoize(store = "shared")]
    fn cell(&self, at: Point) -> i32 {
        at.x
    }
}

fn main() {
    let _ = Grid.cell(Point { x: 1 });
    let _ = Grid.cell_cache_invalidate(Point { x: 1 });
    Grid.cell_cache_prime(Point { x: 1 }, 2);
    let _ = Grid::cell_cache_info();
}
