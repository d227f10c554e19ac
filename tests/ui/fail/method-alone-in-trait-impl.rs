// `#[memoize]` on a method of a trait impl, without `#[memoize]` on the block: one error at the
// attribute saying to put it on the block (the method's companions cannot be trait items).
use memo::memoize;

trait Repo {
    fn find(&self, id: u32) -> String;
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Pg;

impl Repo for Pg {
    #[memoize(maxsize = 16)]
    fn find(&self, id: u32) -> String {
        format!("row {id}")
    }
}

fn main() {
    assert_eq!(Pg.find(1), "row 1");
}
