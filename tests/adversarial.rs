//! Adversarial cases where refresh-ahead / stale windows, the near cache (`local = N`) and the
//! async store write gap meet each other and issue 10's rules: invalidation wins over work in
//! flight, failing keys never queue callers, counters add up.
//!
//! Nothing is timed: bodies block on a gate the test opens only after the call under test
//! returned (a call that waited would hang the test); sleeps only move ages past short bounds.
#![cfg(all(feature = "persistent", feature = "tokio"))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// An upstream: a version, a count of runs, a gate, and whether it fails or panics.
pub(crate) struct Upstream {
    version: AtomicU64,
    runs: AtomicU64,
    shut: Mutex<bool>,
    opened: Condvar,
    failing: AtomicBool,
    panicking: AtomicBool,
}

impl Upstream {
    pub(crate) const fn new() -> Self {
        Upstream {
            version: AtomicU64::new(1),
            runs: AtomicU64::new(0),
            shut: Mutex::new(false),
            opened: Condvar::new(),
            failing: AtomicBool::new(false),
            panicking: AtomicBool::new(false),
        }
    }

    /// Reads the version and counts a run, then waits while the gate is shut.
    pub(crate) fn read(&self) -> Result<u64, String> {
        let version = self.version.load(Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        let mut shut = self.shut.lock().unwrap();
        while *shut {
            shut = self.opened.wait(shut).unwrap();
        }
        drop(shut);
        if self.panicking.load(Ordering::SeqCst) {
            panic!("upstream panicked");
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err("upstream down".to_owned());
        }
        Ok(version)
    }

    /// [`read`](Upstream::read) for a task: waits for the gate without blocking its thread.
    pub(crate) async fn read_async(&self) -> Result<u64, String> {
        let version = self.version.load(Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        while *self.shut.lock().unwrap() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err("upstream down".to_owned());
        }
        Ok(version)
    }

    pub(crate) fn set_version(&self, version: u64) {
        self.version.store(version, Ordering::SeqCst);
    }

    pub(crate) fn shut(&self) {
        *self.shut.lock().unwrap() = true;
    }

    pub(crate) fn open(&self) {
        *self.shut.lock().unwrap() = false;
        self.opened.notify_all();
    }

    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }

    pub(crate) fn until_runs(&self, n: u64) {
        while self.runs() < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

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
