use memo::memoize;

/// Not `Clone`: a refresh in the background cannot own a copy of it.
struct Catalog;

impl Catalog {
    #[memoize(ttl = "30s", refresh = "25s", ignore = [self])]
    fn price(&self, item: u32) -> u64 {
        u64::from(item)
    }
}

fn main() {
    Catalog.price(1);
}
