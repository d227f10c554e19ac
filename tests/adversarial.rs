//! Adversarial cases where refresh-ahead / stale windows, the near cache (`local = N`) and the
//! async store write gap meet each other and issue 10's rules: invalidation wins over work in
//! flight, failing keys never queue callers, counters add up.
//!
//! Nothing is timed: bodies block on a gate the test opens only after the call under test
//! returned (a call that waited would hang the test); sleeps only move ages past short bounds.
#![cfg(all(feature = "persistent", feature = "tokio"))]

#[path = "support/upstream.rs"]
mod upstream;
pub(crate) use upstream::Upstream;

use std::time::Duration;

/// Spins until `done`, failing the test after 30 s.
pub(crate) fn until(done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "never happened");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Longer than the short bounds below (50 ms).
pub(crate) const PAST: Duration = Duration::from_millis(80);

/// A fresh SQLite file registered as `name`.
pub(crate) fn sqlite(name: &str) {
    let dir = std::env::temp_dir().join(format!("memo-adversarial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.sqlite"));
    let _ = std::fs::remove_file(&path);
    memo::stores::register(name, memo::stores::PersistentStore::open(&path).unwrap());
}

#[path = "adversarial/refresh.rs"]
mod refresh;

#[path = "adversarial/near.rs"]
mod near;

#[path = "support/held.rs"]
mod held;
