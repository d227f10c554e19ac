use memo::memoize;

struct Client {
    lookups: Vec<u8>,
}

impl Client {
    #[memoize(cache_field = lookups)]
    fn fetch(&self, path: &str) -> String {
        path.to_owned()
    }
}

fn main() {
    let client = Client { lookups: Vec::new() };
    let _ = client.fetch("a");
}
