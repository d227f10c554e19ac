// With a store, a generic function's cached value needs its type parameters to be
// `DeserializeOwned`: one error at the return type, none at the call site or in the companions.
use memo::memoize;

#[memoize(store = "shared")]
fn parse<T: std::str::FromStr + Clone + Send + Sync + serde::Serialize + 'static>(
    text: &str,
) -> Option<T> {
    text.parse().ok()
}

fn main() {
    let _ = parse::<u8>("7");
    parse::cache_prime("7", 7u8);
    let _ = parse::cache_info();
}
