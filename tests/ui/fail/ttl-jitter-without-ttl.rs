use memo::memoize;

#[memoize(maxsize = 10, ttl_jitter = "10%")]
fn price(id: u32) -> u32 {
    id
}

fn main() {
    price(1);
}
