use memo::memoize;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Square(u64);

impl Square {
    #[memoize(store = "shared", key = scale)]
    fn area(&self, scale: u64) -> u64 {
        self.0 * self.0 * scale
    }
}

fn main() {
    Square(2).area(1);
    let _ = Square::area_cache_info();
}
