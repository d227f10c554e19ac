use memo::memoize;

#[memoize(cache_field = lookups)]
fn fetch(path: &str) -> String {
    path.to_owned()
}

fn main() {
    let _ = fetch("a");
    let _ = fetch::cache_info();
}
