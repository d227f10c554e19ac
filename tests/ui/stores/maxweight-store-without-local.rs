use memo::memoize;

#[memoize(store = "shared", ttl = "1m", maxweight = "1MiB")]
fn page(id: u32) -> String {
    id.to_string()
}

fn main() {
    let _ = page(1);
}
