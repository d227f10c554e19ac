//! When a memoized function's body ran, per function and key: for tests of when entries filled
//! at one instant are refreshed (`ttl_jitter` with `refresh`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When each function's body ran, per function and key.
type Runs = HashMap<(&'static str, u32), Vec<Instant>>;
static RUNS: Mutex<Option<Runs>> = Mutex::new(None);

/// Records a run of `function`'s body for `id`; returns how many it has had (what the body
/// returns, so a refreshed value differs from the first).
pub fn ran(function: &'static str, id: u32) -> u64 {
    let mut runs = RUNS.lock().unwrap();
    let runs = runs.get_or_insert_with(HashMap::new);
    let times = runs.entry((function, id)).or_default();
    times.push(Instant::now());
    times.len() as u64
}

/// Fills keys `0..keys` at once through `call` (the body of function `name` records with
/// [`ran`]), asks every key every 10 ms for 1.6 s, and returns when each key's body ran the
/// second time (its refresh), since the fill.
pub fn refresh_times(name: &'static str, keys: u32, call: impl Fn(u32) -> u64) -> Vec<Duration> {
    let start = Instant::now();
    for id in 0..keys {
        assert_eq!(call(id), 1);
    }
    while start.elapsed() < Duration::from_millis(1600) {
        for id in 0..keys {
            call(id);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let runs = RUNS.lock().unwrap();
    let runs = runs.as_ref().unwrap();
    (0..keys)
        .map(|id| {
            let times = &runs[&(name, id)];
            assert!(times.len() >= 2, "{name}({id}) was never refreshed");
            times[1] - start
        })
        .collect()
}

/// That refresh times of `refresh = "1s", ttl_jitter = "50%"` are spread over (0.5 s, 1 s]:
/// none before the window, at least half before 0.9 s (uniform: 80%), over more than 0.3 s (a
/// loaded machine may only delay a refresh).
pub fn assert_spread_over_the_last_half_second(times: &[Duration]) {
    let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    assert!(
        *first > Duration::from_millis(500),
        "refreshed at {first:?}"
    );
    let early = times
        .iter()
        .filter(|t| **t < Duration::from_millis(900))
        .count();
    assert!(
        early >= times.len() / 2,
        "{early} of {} before 0.9 s",
        times.len()
    );
    assert!(
        *last - *first > Duration::from_millis(300),
        "{first:?}..{last:?}"
    );
}
