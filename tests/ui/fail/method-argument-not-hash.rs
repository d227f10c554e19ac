// A method's argument that is not `Hash`: one error at the argument, none at the call site or in
// the companions.
use memo::memoize;

struct Point {
    x: i32,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Grid;

impl Grid {
    #[memoize]
    fn cell(&self, at: Point) -> i32 {
        at.x
    }
}

fn main() {
    let _ = Grid.cell(Point { x: 1 });
    let _ = Grid.cell_cache_invalidate(Point { x: 1 });
    let _ = Grid::cell_cache_info();
}
