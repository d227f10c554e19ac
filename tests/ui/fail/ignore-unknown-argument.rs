use memo::memoize;

struct Client;

#[memoize(ignore = [clinet])]
fn temperature(client: &Client, city: &str) -> u64 {
    let _ = client;
    city.len() as u64
}

fn main() {
    let _ = temperature(&Client, "Paris");
    let _ = temperature::cache_info();
}
