//! `memo::metrics`: every cache's counters through the `metrics` facade, scraped from a real
//! Prometheus endpoint (metrics-exporter-prometheus' HTTP listener on a loopback port).
//!
//! The example's own functions are the ones scraped: `examples/metrics.rs` is compiled here as a
//! module, so the test and the example cannot drift apart.
use std::net::TcpListener;

use metrics_exporter_prometheus::PrometheusBuilder;

#[path = "../examples/metrics.rs"]
#[allow(dead_code)] // its `main` runs as the example, not here
mod example;

use example::{price, scrape, Catalog};

/// The value of `metric{function="<function>"}` in a Prometheus text scrape.
fn value(scrape: &str, metric: &str, function: &str) -> Option<f64> {
    let prefix = format!("{metric}{{function=\"{function}\"}} ");
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|v| v.parse().expect("a number"))
}

#[test]
fn a_scrape_shows_every_cache_counters_after_known_calls() {
    let addr = {
        let probe = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        probe.local_addr().expect("its address")
    };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .expect("the exporter starts");

    // price: 4 misses, 5 hits, 2 evictions (maxsize 2, LRU); describe: 2 misses, 1 hit.
    for item in [1, 2, 1, 2, 1, 3, 1, 3, 2] {
        price(item);
    }
    for item in [7, 7, 8] {
        Catalog::describe(item);
    }
    memo::metrics::collect();
    let text = scrape(addr);
    let (p, d) = (
        "metrics::example::price",
        "metrics::example::Catalog::describe",
    );
    let of = |metric, function| value(&text, metric, function);
    assert_eq!(of("memo_cache_hits_total", p), Some(5.0), "{text}");
    assert_eq!(of("memo_cache_misses_total", p), Some(4.0), "{text}");
    assert_eq!(of("memo_cache_evictions_total", p), Some(2.0), "{text}");
    assert_eq!(of("memo_cache_expirations_total", p), Some(0.0), "{text}");
    assert_eq!(of("memo_cache_entries", p), Some(2.0), "{text}");
    assert_eq!(of("memo_cache_max_entries", p), Some(2.0), "{text}");
    assert_eq!(of("memo_cache_hits_total", d), Some(1.0), "{text}");
    assert_eq!(of("memo_cache_misses_total", d), Some(2.0), "{text}");
    assert_eq!(of("memo_cache_entries", d), Some(2.0), "{text}");
    assert!(
        text.contains("# TYPE memo_cache_hits_total counter"),
        "{text}"
    );
    assert!(text.contains("# TYPE memo_cache_entries gauge"), "{text}");

    // A second collection adds only what was counted since; a cleared cache (its statistics
    // zeroed) restarts from zero, so the counters never go down.
    price(2); // a hit (2 and 3 are cached)
    memo::metrics::collect();
    memo::metrics::collect();
    price::cache_clear();
    price(5); // a miss after the clear
    memo::metrics::collect();
    let text = scrape(addr);
    let of = |metric, function| value(&text, metric, function);
    assert_eq!(of("memo_cache_hits_total", p), Some(6.0), "{text}");
    assert_eq!(of("memo_cache_misses_total", p), Some(5.0), "{text}");
    assert_eq!(of("memo_cache_entries", p), Some(1.0), "{text}");
    assert_eq!(of("memo_cache_hits_total", d), Some(1.0), "{text}");
}
