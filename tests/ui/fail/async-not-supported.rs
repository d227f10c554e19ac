use memo::memoize;

#[memoize]
async fn fetch(id: u32) -> u32 {
    id
}

fn main() {
    let _future = fetch(1);
    let _ = fetch::cache_info();
}
