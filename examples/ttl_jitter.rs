//! ttl jitter: entries filled together do not expire together.
//!
//! ```text
//! cargo run --release --example ttl_jitter
//! ```
//!
//! Two copies of one lookup, both cached for 1 s, are filled with the same 200 keys at once;
//! then every key is asked again every 100 ms. Without jitter, all 200 entries expire in the
//! same tick and the backend gets 200 requests at once (the synchronized-expiry stampede). With
//! `ttl_jitter = "50%"`, each entry expires at a uniform random time between 0.5 s and 1 s after
//! it was stored, so the refills are spread over five ticks, and no entry lives past the ttl.
//! With `refresh = ...` the same jitter spreads the refreshes (and the ttl with them); with
//! `store = ...` it spreads the ttl of each write to the store.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use memo::memoize;

const KEYS: u32 = 200;
const TICK: Duration = Duration::from_millis(100);

/// Requests that reached the backend, per copy.
static PLAIN_CALLS: AtomicUsize = AtomicUsize::new(0);
static JITTERED_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A price lookup (the backend), cached for exactly 1 s.
#[memoize(maxsize = 1000, ttl = "1s")]
fn price(item: u32) -> u64 {
    PLAIN_CALLS.fetch_add(1, Ordering::Relaxed);
    u64::from(item) * 3
}

/// The same lookup, each entry cached for between 0.5 s and 1 s.
#[memoize(maxsize = 1000, ttl = "1s", ttl_jitter = "50%")]
fn price_jittered(item: u32) -> u64 {
    JITTERED_CALLS.fetch_add(1, Ordering::Relaxed);
    u64::from(item) * 3
}

fn main() {
    for item in 0..KEYS {
        price(item);
        price_jittered(item);
    }
    println!(
        "{KEYS} keys stored at t = 0, asked again every {TICK:?}; backend requests per tick:\n"
    );
    println!("  {:>6}  {:>10}  {:>14}", "t", "ttl = 1s", "+ jitter 50%");
    let start = Instant::now();
    let (mut plain_peak, mut jittered_peak) = (0, 0);
    for tick in 1..=12 {
        thread::sleep((TICK * tick).saturating_sub(start.elapsed()));
        let (plain_before, jittered_before) = (
            PLAIN_CALLS.load(Ordering::Relaxed),
            JITTERED_CALLS.load(Ordering::Relaxed),
        );
        for item in 0..KEYS {
            assert_eq!(price(item), u64::from(item) * 3);
            assert_eq!(price_jittered(item), u64::from(item) * 3);
        }
        let plain = PLAIN_CALLS.load(Ordering::Relaxed) - plain_before;
        let jittered = JITTERED_CALLS.load(Ordering::Relaxed) - jittered_before;
        (plain_peak, jittered_peak) = (plain_peak.max(plain), jittered_peak.max(jittered));
        let t = format!("{:.1} s", start.elapsed().as_secs_f64());
        println!(
            "  {t:>6}  {plain:>10}  {jittered:>14}  {}",
            "#".repeat(jittered / 4)
        );
    }
    println!("\npeak requests in one tick: {plain_peak} without jitter, {jittered_peak} with");
    println!("\n{}", price_jittered::cache_info());
    // Every entry was refilled once by 1.2 s either way; jitter only spread the refills.
    assert_eq!(PLAIN_CALLS.load(Ordering::Relaxed), 2 * KEYS as usize);
    assert!(JITTERED_CALLS.load(Ordering::Relaxed) >= 2 * KEYS as usize);
    assert!(jittered_peak < plain_peak, "jitter spreads the expiries");
}
