//! Refresh-ahead and the stale windows on every shape they support: sync and async, `&str`,
//! by-value and ignored arguments, generic functions, `key = ...`, `Result` and `Option`.
#![deny(warnings)]

use std::sync::Arc;

use memo::memoize;

#[derive(Clone)]
struct Client;

#[memoize(ttl = "30s", refresh = "25s", ignore = [client])]
fn rate(client: &Client, city: &str, day: u32) -> f64 {
    let _ = client;
    (city.len() as u32 + day) as f64
}

#[memoize(ttl = "30s", stale_while_revalidate = "1m", stale_if_error = "10m")]
fn quote(symbol: String) -> Result<u64, String> {
    Ok(symbol.len() as u64)
}

#[memoize(ttl = "1m", stale_if_error = "1h", key = path.to_lowercase())]
fn page(path: &str) -> Option<Arc<str>> {
    Some(path.into())
}

#[memoize(ttl = "30s", refresh = "10s")]
fn twice<T: Clone + std::hash::Hash + Eq + Send + Sync + 'static>(x: T) -> (T, T) {
    (x.clone(), x)
}

#[memoize(ttl = "30s", refresh = "25s", stale_if_error = "5m")]
async fn fetch(url: &str) -> Result<String, String> {
    Ok(url.to_owned())
}

fn main() {
    assert_eq!(rate(&Client, "oslo", 1), 5.0);
    assert_eq!(quote("abc".into()), Ok(3));
    assert_eq!(page("/A").as_deref(), Some("/A"));
    assert_eq!(twice(1u8), (1, 1));
    let _ = fetch("x");
    assert_eq!(rate::cache_info().refreshes, 0);
}
