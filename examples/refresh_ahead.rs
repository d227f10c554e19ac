//! Refresh-ahead: entries are recomputed in the background before they expire, so no caller
//! waits for the upstream once the cache is warm.
//!
//! ```text
//! cargo run --release --example refresh_ahead
//! ```
//!
//! `rate` asks a (simulated) upstream that takes 200 ms. With `ttl = "2s"` alone, the first
//! call after each expiry waits those 200 ms (and, with single-flight, so does every caller
//! that arrives meanwhile). With `refresh = "1s"` as well, a call that finds an entry older
//! than a second returns it at once and one recomputation starts in the background; its value
//! replaces the entry when it is ready. The end of the example runs 16 threads against both
//! for 5 s and prints the slowest calls they saw.
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use memo::memoize;

const UPSTREAM_LATENCY: Duration = Duration::from_millis(200);

/// Requests the upstream has answered: its answer changes with each one.
static ASKED: AtomicU64 = AtomicU64::new(0);

fn upstream(pair: &str) -> f64 {
    thread::sleep(UPSTREAM_LATENCY);
    let n = ASKED.fetch_add(1, Ordering::SeqCst);
    pair.len() as f64 + n as f64 / 100.0
}

/// Recomputed in the background once older than 1 s; expires after 2 s if nobody asks.
#[memoize(ttl = "2s", refresh = "1s")]
fn rate(pair: &str) -> f64 {
    upstream(pair)
}

/// The same with a ttl only, for comparison.
#[memoize(ttl = "2s")]
fn rate_ttl_only(pair: &str) -> f64 {
    upstream(pair)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn show(note: &str, (value, took): (f64, Duration)) {
    println!(
        "  rate(\"EURUSD\") = {value:.2}  {:>9.1} µs  {note}",
        took.as_secs_f64() * 1e6
    );
}

/// 16 threads calling `f` for 5 s: the slowest call, and the 99th and 99.99th percentiles.
fn under_load(f: fn(&str) -> f64) -> (Duration, Duration, Duration) {
    let until = Instant::now() + Duration::from_secs(5);
    let mut all: Vec<Duration> = thread::scope(|s| {
        let threads: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(move || {
                    let mut seen = Vec::new();
                    while Instant::now() < until {
                        seen.push(timed(|| f("GBPJPY")).1);
                        thread::sleep(Duration::from_micros(200));
                    }
                    seen
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    all.sort();
    let at = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    (all[all.len() - 1], at(0.99), at(0.9999))
}

fn main() {
    println!(
        "upstream: {} ms per request\n",
        UPSTREAM_LATENCY.as_millis()
    );
    show("miss: asks the upstream", timed(|| rate("EURUSD")));
    show("hit", timed(|| rate("EURUSD")));
    thread::sleep(Duration::from_millis(1100));
    show(
        "older than `refresh`: old value at once, refresh started",
        timed(|| rate("EURUSD")),
    );
    thread::sleep(UPSTREAM_LATENCY + Duration::from_millis(100));
    show("the refreshed value", timed(|| rate("EURUSD")));
    println!("\n{}\n", rate::cache_info());

    // Warm both, then load them across several ttls.
    rate("GBPJPY");
    rate_ttl_only("GBPJPY");
    for (name, f) in [
        ("ttl = \"2s\", refresh = \"1s\"", rate as fn(&str) -> f64),
        ("ttl = \"2s\"", rate_ttl_only),
    ] {
        let (max, p99, p9999) = under_load(f);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "  {name:<28} slowest call {:>7.2} ms, p99.99 {:>7.3} ms, p99 {:>7.3} ms",
            ms(max),
            ms(p9999),
            ms(p99)
        );
    }
    let info = rate::cache_info();
    println!("\n{info}");
    assert_eq!(
        info.misses, 2,
        "after warming up, refresh-ahead never misses"
    );
}
