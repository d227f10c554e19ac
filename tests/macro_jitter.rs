//! `ttl_jitter` with `refresh`: 100 keys filled at one instant with `refresh = "1s"` and
//! `ttl_jitter = "50%"` are refreshed at times spread over (0.5 s, 1 s] (measured by when each
//! key's body runs again, the keys asked every 10 ms), never before the window; without jitter,
//! never before 1 s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use memo::memoize;

const KEYS: u32 = 100;

/// When each function's body ran, per function and key.
type Runs = HashMap<(&'static str, u32), Vec<Instant>>;
static RUNS: Mutex<Option<Runs>> = Mutex::new(None);

fn ran(function: &'static str, id: u32) -> u64 {
    let mut runs = RUNS.lock().unwrap();
    let runs = runs.get_or_insert_with(HashMap::new);
    let times = runs.entry((function, id)).or_default();
    times.push(Instant::now());
    times.len() as u64
}

#[memoize(maxsize = None, ttl = "10s", refresh = "1s", ttl_jitter = "50%")]
fn jittered(id: u32) -> u64 {
    ran("jittered", id)
}

#[memoize(maxsize = None, ttl = "10s", refresh = "1s")]
fn exact(id: u32) -> u64 {
    ran("exact", id)
}

/// Fills every key at once through `call`, asks every key every 10 ms for 1.6 s, and returns
/// when each key's body ran the second time (its refresh), since the fill.
fn refresh_times(name: &'static str, call: fn(u32) -> u64) -> Vec<Duration> {
    let start = Instant::now();
    for id in 0..KEYS {
        assert_eq!(call(id), 1);
    }
    while start.elapsed() < Duration::from_millis(1600) {
        for id in 0..KEYS {
            call(id);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let runs = RUNS.lock().unwrap();
    let runs = runs.as_ref().unwrap();
    (0..KEYS)
        .map(|id| {
            let times = &runs[&(name, id)];
            assert!(times.len() >= 2, "{name}({id}) was never refreshed");
            times[1] - start
        })
        .collect()
}

#[test]
fn entries_filled_together_are_refreshed_at_spread_times() {
    let times = refresh_times("jittered", jittered);
    let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    assert!(
        *first > Duration::from_millis(500),
        "refreshed at {first:?}"
    );
    // Uniform over (0.5 s, 1 s]: 80% before 0.9 s, spread over half a second (a loaded machine
    // may only delay a refresh).
    let early = times
        .iter()
        .filter(|t| **t < Duration::from_millis(900))
        .count();
    assert!(early >= KEYS as usize / 2, "{early} of {KEYS} before 0.9 s");
    assert!(
        *last - *first > Duration::from_millis(300),
        "{first:?}..{last:?}"
    );
}

#[test]
fn without_jitter_entries_filled_together_are_refreshed_together() {
    let times = refresh_times("exact", exact);
    let first = times.iter().min().unwrap();
    assert!(*first >= Duration::from_secs(1), "refreshed at {first:?}");
}
