//! Stale-while-revalidate and stale-if-error (HTTP's `Cache-Control` extensions, RFC 5861).
//!
//! ```text
//! cargo run --release --example stale
//! ```
//!
//! `profile` may serve an entry up to a minute past its 1 s ttl while one recomputation runs
//! in the background (`stale_while_revalidate`): callers never wait for the slow upstream once
//! the entry exists. `balance` recomputes after its ttl as usual, but when the upstream fails it
//! answers with the value it had, up to ten minutes old (`stale_if_error`), instead of the
//! error. `cache_info()` counts both: `stale_hits` and `stale_errors`.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use memo::memoize;

const UPSTREAM_LATENCY: Duration = Duration::from_millis(200);

static VERSION: AtomicU64 = AtomicU64::new(1);
static DOWN: AtomicBool = AtomicBool::new(false);

fn upstream(what: &str, user: u32) -> Result<String, String> {
    thread::sleep(UPSTREAM_LATENCY);
    if DOWN.load(Ordering::SeqCst) {
        return Err("upstream unavailable (HTTP 503)".to_owned());
    }
    Ok(format!(
        "{what} of user {user}, v{}",
        VERSION.load(Ordering::SeqCst)
    ))
}

#[memoize(ttl = "1s", stale_while_revalidate = "1m")]
fn profile(user: u32) -> Result<String, String> {
    upstream("profile", user)
}

#[memoize(ttl = "1s", stale_if_error = "10m")]
fn balance(user: u32) -> Result<String, String> {
    upstream("balance", user)
}

fn ask(call: &str, f: impl FnOnce() -> Result<String, String>, note: &str) {
    let start = Instant::now();
    let answer = f();
    let took = start.elapsed().as_secs_f64() * 1e3;
    let shown = match answer {
        Ok(value) => value,
        Err(error) => format!("error: {error}"),
    };
    println!("  {call:<11} {shown:<40} {took:>7.2} ms  {note}");
}

fn main() {
    let past_ttl = Duration::from_millis(1100);
    println!("stale_while_revalidate:");
    ask("profile(7)", || profile(7), "miss");
    VERSION.store(2, Ordering::SeqCst);
    thread::sleep(past_ttl);
    ask(
        "profile(7)",
        || profile(7),
        "stale: served at once, recomputed behind",
    );
    thread::sleep(UPSTREAM_LATENCY + Duration::from_millis(100));
    ask("profile(7)", || profile(7), "the recomputed value");
    println!("  {}\n", profile::cache_info());

    println!("stale_if_error:");
    ask("balance(7)", || balance(7), "miss");
    DOWN.store(true, Ordering::SeqCst);
    thread::sleep(past_ttl);
    ask(
        "balance(7)",
        || balance(7),
        "expired, upstream down: the stale value",
    );
    ask(
        "balance(8)",
        || balance(8),
        "nothing stale to fall back on: the error",
    );
    DOWN.store(false, Ordering::SeqCst);
    VERSION.store(3, Ordering::SeqCst);
    ask("balance(7)", || balance(7), "upstream back: fresh again");
    let info = balance::cache_info();
    println!("  {info}");
    assert_eq!(
        (profile::cache_info().stale_hits, info.stale_errors),
        (1, 1)
    );
}
