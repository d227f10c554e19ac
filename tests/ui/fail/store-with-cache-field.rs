use memo::memoize;

#[derive(Default)]
struct Client {
    lookups: memo::InstanceCache,
}

impl Client {
    #[memoize(store = "shared", cache_field = lookups)]
    fn lookup(&self, id: u32) -> String {
        id.to_string()
    }
}

fn main() {
    let client = Client::default();
    client.lookup(1);
    let _ = client.lookup_cache_info();
}
