use memo::memoize;

/// Not `Clone`: a refresh in the background cannot own a copy of it.
struct Client;

#[memoize(ttl = "30s", refresh = "25s", ignore = [client])]
fn rate(client: &Client, city: &str) -> f64 {
    let _ = client;
    city.len() as f64
}

fn main() {
    rate(&Client, "oslo");
}
