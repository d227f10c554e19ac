//! `#[memoize]` beyond free functions: a method keyed by `self`, a per-instance cache, an
//! `async fn` whose concurrent callers share one computation, a generic function, and the typed
//! companions.
//!
//! `cargo run --example methods_and_async`
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use memo::memoize;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Polynomial(Vec<i64>);

impl Polynomial {
    /// `self` is part of the key: equal polynomials share entries.
    #[memoize(maxsize = 1024)]
    fn at(&self, x: i64) -> i64 {
        self.0.iter().rev().fold(0, |acc, c| acc * x + c)
    }
}

/// A client that is not `Hash`: its lookups live in its own cache, dropped with it.
struct Geocoder {
    requests: AtomicUsize,
    lookups: memo::InstanceCache,
}

impl Geocoder {
    #[memoize(cache_field = lookups, key = city.to_lowercase())]
    fn locate(&self, city: &str) -> (f64, f64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20)); // a slow service
        (city.len() as f64, 0.0)
    }
}

static FETCHES: AtomicUsize = AtomicUsize::new(0);

/// Ten concurrent awaits of one id run the body once (single-flight).
#[memoize(ttl = "30s")]
async fn fetch(id: u32) -> Result<String, String> {
    FETCHES.fetch_add(1, Ordering::Relaxed);
    Ok(format!("record {id}"))
}

/// One cache per instantiation.
#[memoize]
fn describe<T: std::fmt::Debug + std::hash::Hash + Eq + Clone + Send + Sync + 'static>(
    value: T,
) -> String {
    format!("{value:?}")
}

fn main() {
    let square = Polynomial(vec![0, 0, 1]);
    println!(
        "square(12) = {}, again = {}",
        square.at(12),
        square.clone().at(12)
    );
    println!(
        "Polynomial::at_cache_info() = {}",
        Polynomial::at_cache_info()
    );

    let geocoder = Geocoder {
        requests: AtomicUsize::new(0),
        lookups: memo::InstanceCache::new(),
    };
    for city in ["Paris", "PARIS", "paris"] {
        let start = Instant::now();
        let place = geocoder.locate(city);
        println!("locate({city:?}) = {place:?} in {:?}", start.elapsed());
    }
    println!(
        "requests sent: {}",
        geocoder.requests.load(Ordering::Relaxed)
    );

    let records = futures::executor::block_on(futures::future::join_all((0..10).map(|_| fetch(7))));
    println!(
        "10 awaits of fetch(7): {} bodies run, {:?}",
        FETCHES.load(Ordering::Relaxed),
        records[0]
    );

    println!("{} {} {}", describe(1u8), describe("one"), describe(1u8));
    println!("describe::cache_info() = {}", describe::cache_info());

    fetch::cache_prime(8, "warmed at start-up".to_owned());
    println!("fetch(8) = {:?}", futures::executor::block_on(fetch(8)));
    println!(
        "fetch::cache_invalidate(8) = {}",
        fetch::cache_invalidate(8)
    );
}
