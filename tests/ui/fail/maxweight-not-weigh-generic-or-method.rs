use memo::memoize;

#[derive(Clone)]
struct Page(String);

#[memoize(maxweight = "1MiB")]
fn generic<T: std::hash::Hash + Eq + Clone + Send + Sync + 'static>(x: T) -> Page {
    let _ = x;
    Page(String::new())
}

#[derive(Clone)]
struct Site;

impl Site {
    #[memoize(maxweight = "1MiB", ttl = "1m", refresh = "30s", ignore = [self])]
    fn page(&self, id: u32) -> Page {
        Page(id.to_string())
    }
}

fn main() {
    let _ = generic(1u8);
    let _ = Site.page(1);
}
