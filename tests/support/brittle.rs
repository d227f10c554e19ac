//! A value whose `Clone` panics once, at a clone chosen by the test: for the single-flight
//! hand-over tests of `macro_single_flight.rs` and `macro_async.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Clones of `Brittle` values made so far, and the number of the one that panics (none: MAX).
static CLONES: AtomicUsize = AtomicUsize::new(0);
static PANICS_AT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// A value whose `Clone` panics once, at the clone armed by [`arm`].
#[derive(Debug, PartialEq)]
pub struct Brittle(pub u32);

impl Clone for Brittle {
    fn clone(&self) -> Self {
        let n = CLONES.fetch_add(1, Ordering::SeqCst);
        if n == PANICS_AT.load(Ordering::SeqCst) {
            panic!("clone {n} of a brittle value");
        }
        Brittle(self.0)
    }
}

/// The `nth` clone from now (0: the next) panics.
pub fn arm(nth: usize) {
    PANICS_AT.store(CLONES.load(Ordering::SeqCst) + nth, Ordering::SeqCst);
}

/// No clone panics.
pub fn disarm() {
    PANICS_AT.store(usize::MAX, Ordering::SeqCst);
}
