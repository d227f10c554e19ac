// `self` is part of a method's key by default; a type that is not `Hash + Eq + Clone` is told to
// use `ignore = [self]`, `key = ...` or `cache_field`, once, at `&self`: not again at the call
// site or in the companions.
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
    let counter = Counter { step: 1 };
    let _ = counter.next(1);
    let _ = counter.next_cache_invalidate(1);
    counter.next_cache_prime(1, 2);
    let _ = Counter::next_cache_info();
}
