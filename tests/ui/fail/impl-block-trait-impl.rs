// A trait `impl` cannot hold the companions of its functions: one error at the trait, and its
// functions stay as written.
use memo::memoize;

struct Counter;

#[memoize]
impl Iterator for Counter {
    type Item = u32;

    #[memoize]
    fn next(&mut self) -> Option<u32> {
        None
    }
}

fn main() {
    let _ = Counter.next();
}
