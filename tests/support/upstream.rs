//! An upstream for tests of memoized functions whose bodies must be held, counted or failed: a
//! version the body returns, a count of runs, a gate the body waits at while shut, and switches
//! that make it fail or panic.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// An upstream: a version, a count of runs, a gate, and whether it fails or panics.
pub struct Upstream {
    pub version: AtomicU64,
    pub runs: AtomicU64,
    shut: Mutex<bool>,
    opened: Condvar,
    pub failing: AtomicBool,
    pub panicking: AtomicBool,
}

impl Upstream {
    pub const fn new() -> Self {
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
    pub fn read(&self) -> Result<u64, String> {
        let version = self.version.load(Ordering::SeqCst);
        self.runs.fetch_add(1, Ordering::SeqCst);
        let mut shut = self.shut.lock().unwrap();
        while *shut {
            shut = self.opened.wait(shut).unwrap();
        }
        drop(shut);
        if self.panicking.load(Ordering::SeqCst) {
            panic!("upstream panicked (expected by the test)");
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err("upstream down".to_owned());
        }
        Ok(version)
    }

    /// [`read`](Upstream::read) for a task: waits for the gate without blocking its thread.
    pub async fn read_async(&self) -> Result<u64, String> {
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

    pub fn set_version(&self, version: u64) {
        self.version.store(version, Ordering::SeqCst);
    }

    pub fn shut(&self) {
        *self.shut.lock().unwrap() = true;
    }

    pub fn open(&self) {
        *self.shut.lock().unwrap() = false;
        self.opened.notify_all();
    }

    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::SeqCst)
    }

    /// Waits until the body has run `n` times.
    pub fn until_runs(&self, n: u64) {
        while self.runs() < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
