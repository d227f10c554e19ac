//! Graceful failure: a circuit breaker per registered store.
//!
//! Only a fault of the connection (cannot connect, a timeout, a broken connection, garbage) opens
//! an outage; a request the server refused (a full or read-only server, a key of another type)
//! fails that call only. During an outage the store is skipped (lookups are misses, inserts are
//! dropped) for `retry_after`; then one call probes it, while the others keep skipping. A failed
//! probe doubles the wait, up to `max_retry_after`; an answer to the probe ends the outage, and
//! nothing else does: a call that was already under way when the outage began, succeeding late,
//! says nothing about the server now. One warning is logged when an outage starts and one message
//! when it ends.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::StoreError;

/// The health of a registered store, as [`health`](super::health) reports it.
///
/// ```
/// use memo::stores::{self, StoreCache};
/// # #[cfg(feature = "memcached")] {
/// stores::register("doc-health", stores::MemcachedStore::connect("127.0.0.1:1")?);
/// let cache: StoreCache<u8, u8> = StoreCache::new("doc-health", "doc::f");
/// assert_eq!(cache.get(&1), None); // the store is down: a miss, no error
/// let health = stores::health("doc-health").unwrap();
/// assert!(!health.up);
/// assert_eq!((health.outages, health.errors), (1, 1));
/// # }
/// # Ok::<(), stores::StoreError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreHealth {
    /// Whether the store is in use (no outage under way).
    pub up: bool,
    /// Outages so far: each began with one warning.
    pub outages: u64,
    /// Failed calls (those that began outages, failed probes, refused requests).
    pub errors: u64,
    /// Requests the server refused (each failed alone; no outage).
    pub refused: u64,
    /// Calls that skipped the store because of an outage.
    pub skipped: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// Nanoseconds since the first breaker was made; 0 is never a deadline.
fn now_nanos() -> u64 {
    static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);
    (ORIGIN.elapsed().as_nanos() as u64).max(1)
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128 / 2) as u64
}

pub(crate) struct Breaker {
    retry_after: Duration,
    max_retry_after: Duration,
    /// While an outage is under way, no call before this time (0: no outage).
    closed_until: AtomicU64,
    in_outage: AtomicBool,
    failed_probes: AtomicU32,
    outage_started: Mutex<Option<Instant>>,
    outages: AtomicU64,
    errors: AtomicU64,
    refused: AtomicU64,
    skipped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Leave to call the store, from [`Breaker::allow`]: whether the call is the probe of an outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Permit {
    probe: bool,
}

impl Breaker {
    pub fn new(retry_after: Duration, max_retry_after: Duration) -> Self {
        Breaker {
            retry_after,
            max_retry_after: max_retry_after.max(retry_after),
            closed_until: AtomicU64::new(0),
            in_outage: AtomicBool::new(false),
            failed_probes: AtomicU32::new(0),
            outage_started: Mutex::new(None),
            outages: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Whether this call may use the store; during an outage, one call per backoff period does:
    /// the probe.
    pub fn allow(&self) -> Option<Permit> {
        let until = self.closed_until.load(Ordering::Acquire);
        if until == 0 {
            return Some(Permit { probe: false });
        }
        let now = now_nanos();
        if now >= until {
            // Claim the probe: the winner calls the store, the others skip until it answers.
            let next = now.saturating_add(nanos(self.backoff()));
            if self
                .closed_until
                .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Some(Permit { probe: true });
            }
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// The store answered the call made under `permit`: a probe that is answered ends the outage.
    pub fn on_success(&self, store: &str, permit: Permit) {
        if !permit.probe || !self.in_outage.swap(false, Ordering::AcqRel) {
            return;
        }
        self.closed_until.store(0, Ordering::Release);
        self.failed_probes.store(0, Ordering::Relaxed);
        let lasted = self.outage_started.lock().take().map(|t| t.elapsed());
        tracing::info!(
            store,
            "store `{store}` recovered after {:.1?}; using it again",
            lasted.unwrap_or_default()
        );
    }

    /// The call made under `permit` failed with `error`. A refusal is an answer: it fails this
    /// call only (the caller warns about it), and as a probe's answer ends the outage.
    pub fn on_error(&self, store: &str, permit: Permit, error: &StoreError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(error.to_string());
        if !error.is_outage() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            self.on_success(store, permit);
            return;
        }
        if self.in_outage.load(Ordering::Acquire) {
            if permit.probe {
                // A failed probe: wait longer.
                self.failed_probes.fetch_add(1, Ordering::Relaxed);
                let next = now_nanos().saturating_add(nanos(self.backoff()));
                self.closed_until.fetch_max(next, Ordering::AcqRel);
            }
            // Else a call under way when the outage began: already accounted for.
            return;
        }
        if self.in_outage.swap(true, Ordering::AcqRel) {
            return; // another call opened it just now
        }
        self.outages.fetch_add(1, Ordering::Relaxed);
        *self.outage_started.lock() = Some(Instant::now());
        let next = now_nanos().saturating_add(nanos(self.retry_after));
        self.closed_until.store(next, Ordering::Release);
        tracing::warn!(
            store,
            %error,
            "store `{store}` unreachable: {error}; calling the function directly until it \
             recovers (next try in {:?})",
            self.retry_after
        );
    }

    /// The wait before the next probe: `retry_after`, doubled per failed probe, capped.
    fn backoff(&self) -> Duration {
        let doublings = self.failed_probes.load(Ordering::Relaxed).min(16);
        self.retry_after
            .saturating_mul(1 << doublings)
            .min(self.max_retry_after)
    }

    pub fn health(&self) -> StoreHealth {
        StoreHealth {
            up: !self.in_outage.load(Ordering::Acquire),
            outages: self.outages.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            last_error: self.last_error.lock().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::ErrorKind;

    fn down() -> StoreError {
        StoreError::new(ErrorKind::Connect, "refused")
    }

    const CALL: Permit = Permit { probe: false };

    #[test]
    fn first_error_opens_an_outage_and_skips_the_store() {
        let breaker = Breaker::new(Duration::from_secs(3600), Duration::from_secs(3600));
        assert_eq!(breaker.allow(), Some(CALL));
        breaker.on_error("s", CALL, &down());
        assert_eq!(breaker.allow(), None);
        assert_eq!(breaker.allow(), None);
        let health = breaker.health();
        assert!(!health.up);
        assert_eq!((health.outages, health.errors, health.skipped), (1, 1, 2));
        assert_eq!(
            health.last_error.as_deref(),
            Some("cannot connect: refused")
        );
    }

    #[test]
    fn after_the_backoff_one_call_probes_and_success_ends_the_outage() {
        let breaker = Breaker::new(Duration::ZERO, Duration::ZERO);
        breaker.on_error("s", CALL, &down());
        let probe = breaker
            .allow()
            .expect("the backoff of zero has passed: probe");
        assert_eq!(probe, Permit { probe: true });
        breaker.on_success("s", probe);
        assert!(breaker.health().up);
        breaker.on_error("s", CALL, &down());
        assert_eq!(breaker.health().outages, 2);
    }

    #[test]
    fn a_late_success_of_a_call_under_way_does_not_end_the_outage() {
        let breaker = Breaker::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let before = breaker.allow().unwrap();
        let also_before = breaker.allow().unwrap();
        breaker.on_error("s", CALL, &down());
        breaker.on_success("s", before);
        assert!(
            !breaker.health().up,
            "an unrelated success closed the outage"
        );
        assert_eq!(breaker.allow(), None);
        // A late failure of a call under way neither opens a second outage nor backs off more.
        breaker.on_error("s", also_before, &down());
        assert_eq!(breaker.health().outages, 1);
        assert_eq!(breaker.backoff(), Duration::from_secs(3600));
    }

    #[test]
    fn a_refusal_answering_the_probe_ends_the_outage() {
        let breaker = Breaker::new(Duration::ZERO, Duration::ZERO);
        breaker.on_error("s", CALL, &down());
        let probe = breaker.allow().unwrap();
        breaker.on_error("s", probe, &StoreError::new(ErrorKind::Rejected, "OOM"));
        let health = breaker.health();
        assert!(health.up);
        assert_eq!((health.outages, health.errors, health.refused), (1, 2, 1));
    }

    #[test]
    fn failed_probes_double_the_wait_up_to_the_cap() {
        let breaker = Breaker::new(Duration::from_millis(100), Duration::from_millis(350));
        breaker.on_error("s", CALL, &down());
        assert_eq!(breaker.backoff(), Duration::from_millis(100));
        let probe = Permit { probe: true };
        breaker.on_error("s", probe, &down());
        assert_eq!(breaker.backoff(), Duration::from_millis(200));
        breaker.on_error("s", probe, &down());
        assert_eq!(breaker.backoff(), Duration::from_millis(350));
        assert_eq!(breaker.health().outages, 1);
    }

    #[test]
    fn rejected_requests_do_not_open_an_outage() {
        let breaker = Breaker::new(Duration::from_secs(3600), Duration::from_secs(3600));
        breaker.on_error(
            "s",
            CALL,
            &StoreError::new(ErrorKind::Rejected, "too large"),
        );
        assert_eq!(breaker.allow(), Some(CALL));
        assert_eq!((breaker.health().outages, breaker.health().errors), (0, 1));
    }
}
