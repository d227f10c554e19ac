//! Methods, associated functions, `async fn`, generic functions, `key`, `ignore`, `policy`,
//! per-instance caches and every companion, in a crate that denies warnings: the generated code
//! adds none, and doc comments stay on the function.
#![deny(warnings, missing_docs, unused_qualifications, unused_results, unreachable_pub)]
#![forbid(unsafe_code)]

use memo::memoize;
use std::hash::Hash;

/// A keyable type.
#[derive(Clone, Hash, PartialEq, Eq)]
pub struct Grid {
    /// The side.
    pub side: u32,
}

impl Grid {
    /// Cells of the grid, plus `extra`.
    #[memoize(maxsize = 16, policy = "lfu")]
    pub fn cells(&self, extra: u32) -> u32 {
        self.side * self.side + extra
    }

    /// A grid of `side`.
    #[memoize]
    pub fn new(side: u32) -> Self {
        Grid { side }
    }

    /// Asynchronously, `self` left out of the key.
    #[memoize(ignore = [self], single_flight = false)]
    pub async fn describe(&self, label: &str) -> String {
        format!("{label}{}", self.side)
    }
}

/// Not keyable: a per-instance cache.
pub struct Client {
    /// The cache of `fetch`.
    pub fetches: memo::InstanceCache,
}

impl Client {
    /// Fetches `path`.
    #[memoize(cache_field = fetches, key = path.to_ascii_lowercase())]
    pub fn fetch(&self, path: &str) -> Result<String, String> {
        Ok(path.to_owned())
    }
}

/// Generic, with a `where` clause.
#[memoize(ttl = "1m")]
pub fn pair<T>(value: T) -> (T, T)
where
    T: Hash + Eq + Clone + Send + Sync + 'static,
{
    (value.clone(), value)
}

/// Async and private.
#[memoize]
async fn double(n: u64) -> u64 {
    n * 2
}

#[memoize]
fn r#in(r#type: &str) -> usize {
    r#type.len()
}

fn main() {
    let grid = Grid::new(2);
    let _ = grid.cells(1) + Grid::cells_cache_info().hits as u32;
    let _ = grid.cells_cache_invalidate(1);
    grid.cells_cache_prime(2, 6);
    let _ = grid.cells_uncached(3);
    Grid::new_cache_clear();
    let _ = futures_lite(grid.describe("a"));
    let client = Client {
        fetches: memo::InstanceCache::new(),
    };
    let _ = client.fetch("A");
    let _ = client.fetch_cache_info();
    let _ = pair(1u8);
    let _ = pair::cache_invalidate("a");
    let _ = futures_lite(double(2));
    let _ = r#in("abc") + r#in::uncached("x");
}

/// Polls a future that never waits to completion.
fn futures_lite<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the futures here never wait"),
    }
}
