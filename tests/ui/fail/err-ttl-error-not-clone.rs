use memo::memoize;

#[derive(Debug)]
struct Down;

#[memoize(ttl = "5m", err_ttl = "5s")]
fn load(id: u32) -> Result<u32, Down> {
    Ok(id)
}

fn main() {
    let _ = load(1);
}
