use memo::memoize;

#[memoize(ttl = "30s", ttl_jitter = "150%")]
fn price(id: u32) -> u32 {
    id
}

fn main() {
    price(1);
}
