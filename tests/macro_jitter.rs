//! `ttl_jitter` with `refresh`: 100 keys filled at one instant with `refresh = "1s"` and
//! `ttl_jitter = "50%"` are refreshed at times spread over (0.5 s, 1 s] (measured by when each
//! key's body runs again, the keys asked every 10 ms), never before the window; without jitter,
//! never before 1 s.

use std::time::Duration;

use memo::memoize;

#[path = "support/refresh_times.rs"]
mod refresh_times;
use refresh_times::{assert_spread_over_the_last_half_second, ran, refresh_times};

const KEYS: u32 = 100;

#[memoize(maxsize = None, ttl = "10s", refresh = "1s", ttl_jitter = "50%")]
fn jittered(id: u32) -> u64 {
    ran("jittered", id)
}

#[memoize(maxsize = None, ttl = "10s", refresh = "1s")]
fn exact(id: u32) -> u64 {
    ran("exact", id)
}

#[test]
fn entries_filled_together_are_refreshed_at_spread_times() {
    let times = refresh_times("jittered", KEYS, jittered);
    assert_spread_over_the_last_half_second(&times);
}

#[test]
fn without_jitter_entries_filled_together_are_refreshed_together() {
    let times = refresh_times("exact", KEYS, exact);
    let first = times.iter().min().unwrap();
    assert!(*first >= Duration::from_secs(1), "refreshed at {first:?}");
}
