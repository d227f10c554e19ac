use memo::memoize;

#[memoize(ttl = "5m", err_ttl = "5s")]
fn find(id: u32) -> Option<u32> {
    Some(id)
}

fn main() {
    find(1);
}
