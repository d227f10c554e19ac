// `self` is part of a method's key by default; a type that is not `Hash + Eq + Clone` is told to
// use `ignore = [self]`, `key = ...` or `cache_field`.
use memo::memoize;

struct Counter {
    step: u32,
}

impl Counter {
    #[memoize]
    fn next(&self, n: u32) -> u32 {
        n + self.step
    }
}

fn main() {
    let _ = Counter { step: 1 }.next(1);
}
