use memo::memoize;

#[memoize(store = "shared", ttl = "30s", refresh = "25s", ttl_jitter = "10%")]
fn rate(pair: u32) -> u64 {
    u64::from(pair)
}

fn main() {
    rate(1);
}
