use memo::memoize;

struct Pages;

impl Pages {
    #[memoize(maxweight = "1MiB")]
    fn page(&self, id: u32) -> String {
        id.to_string()
    }
}

fn main() {
    Pages.page(1);
}
