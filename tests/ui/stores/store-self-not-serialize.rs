use memo::memoize;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Poly(Vec<i64>);

impl Poly {
    #[memoize(store = "shared")]
    fn at(&self, x: i64) -> i64 {
        self.0.iter().rev().fold(0, |acc, c| acc * x + c)
    }
}

fn main() {
    Poly(vec![1]).at(2);
    let _ = Poly::at_cache_info();
}
