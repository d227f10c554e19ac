use memo::memoize;

#[memoize(none_ttl = "5s")]
fn load(id: u32) -> Result<u32, String> {
    Ok(id)
}

fn main() {
    let _ = load(1);
}
