//! Every memoized function's hits, misses, evictions, expirations and size, served to
//! Prometheus.
//!
//! ```text
//! cargo run --example metrics --features metrics              # prints one scrape and exits
//! cargo run --example metrics --features metrics -- --serve   # keeps serving until Ctrl-C
//! ```
//!
//! The example installs `metrics-exporter-prometheus` with its HTTP listener on a loopback port
//! (`MEMO_METRICS_ADDR`, default `127.0.0.1:9898`), has `memo::metrics` collect every cache's
//! statistics every second, calls two memoized functions, and scrapes its own endpoint with an
//! HTTP client, as Prometheus would. With `--serve` it stays up: `curl 127.0.0.1:9898/metrics`.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use memo::memoize;
use metrics_exporter_prometheus::PrometheusBuilder;

/// A price list: 3 items, asked for again and again.
#[memoize(maxsize = 2)]
pub fn price(item: u32) -> u64 {
    u64::from(item) * 125
}

/// A catalog whose descriptions are memoized.
pub struct Catalog;

#[memoize]
impl Catalog {
    /// A description, cached for a minute.
    #[memoize(ttl = "60s")]
    pub fn describe(item: u32) -> String {
        format!("item #{item}")
    }
}

fn main() {
    let addr: SocketAddr = std::env::var("MEMO_METRICS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:9898".into())
        .parse()
        .expect("MEMO_METRICS_ADDR is an address such as 127.0.0.1:9898");
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .expect("the Prometheus exporter starts");
    memo::metrics::collect_every(Duration::from_secs(1)).expect("a collector thread");

    // `price`: 4 misses, 5 hits, 2 evictions (maxsize 2, least recently used first out);
    // `Catalog::describe`: 2 misses, 1 hit.
    for item in [1, 2, 1, 2, 1, 3, 1, 3, 2] {
        price(item);
    }
    for item in [7, 7, 8] {
        Catalog::describe(item);
    }
    memo::metrics::collect(); // the scrape below sees every call above

    let scrape = scrape(addr);
    println!("GET http://{addr}/metrics (the memo_ lines):\n");
    for line in scrape.lines().filter(|line| line.contains("memo_cache")) {
        println!("{line}");
    }
    if std::env::args().any(|arg| arg == "--serve") {
        println!("\nserving on http://{addr}/metrics until Ctrl-C");
        loop {
            price(1);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The exporter's text, once its listener (started on a thread of its own) answers.
pub fn scrape(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ureq::get(format!("http://{addr}/metrics")).call() {
            Ok(mut response) => return response.body_mut().read_to_string().expect("a text body"),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("no answer from http://{addr}/metrics: {e}"),
        }
    }
}
