use memo::memoize;

#[memoize(err_ttl = "5 parsecs")]
fn load(id: u32) -> Result<u32, String> {
    Ok(id)
}

fn main() {
    let _ = load(1);
}
