use memo::memoize;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Counter(u32);

impl Counter {
    #[memoize]
    fn bump(&mut self, n: u32) -> u32 {
        self.0 += n;
        self.0
    }
}

fn main() {
    let _ = Counter(1).bump(1);
    let _ = Counter::bump_cache_info();
}
