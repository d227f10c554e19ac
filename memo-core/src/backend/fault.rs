//! Graceful failure: a circuit breaker per registered store.
//!
//! After an outage error the store is skipped (lookups are misses, inserts are dropped) for
//! `retry_after`; then one call probes it, while the others keep skipping. A failed probe doubles
//! the wait, up to `max_retry_after`; a success ends the outage. One warning is logged when an
//! outage starts and one message when it ends.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::StoreError;

/// The health of a registered store, as [`health`](super::health) reports it.
///
/// ```
/// use memo_core::stores::{self, StoreCache};
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
    /// Failed calls (those that began outages, failed probes, rejected requests).
    pub errors: u64,
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
    skipped: AtomicU64,
    last_error: Mutex<Option<String>>,
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
            skipped: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Whether this call may use the store; during an outage, one call per backoff period does.
    pub fn allow(&self) -> bool {
        let until = self.closed_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
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
                return true;
            }
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        false
    }

    pub fn on_success(&self, store: &str) {
        if !self.in_outage.load(Ordering::Acquire) || !self.in_outage.swap(false, Ordering::AcqRel)
        {
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

    pub fn on_error(&self, store: &str, error: &StoreError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(error.to_string());
        if !error.is_outage() {
            tracing::debug!(store, %error, "store `{store}` refused a request");
            return;
        }
        if self.in_outage.swap(true, Ordering::AcqRel) {
            // A failed probe (or a call that was under way when the outage began): wait longer.
            self.failed_probes.fetch_add(1, Ordering::Relaxed);
            let next = now_nanos().saturating_add(nanos(self.backoff()));
            self.closed_until.fetch_max(next, Ordering::AcqRel);
            return;
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

    #[test]
    fn first_error_opens_an_outage_and_skips_the_store() {
        let breaker = Breaker::new(Duration::from_secs(3600), Duration::from_secs(3600));
        assert!(breaker.allow());
        breaker.on_error("s", &down());
        assert!(!breaker.allow());
        assert!(!breaker.allow());
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
        breaker.on_error("s", &down());
        assert!(breaker.allow(), "the backoff of zero has passed: probe");
        breaker.on_success("s");
        assert!(breaker.health().up);
        breaker.on_error("s", &down());
        assert_eq!(breaker.health().outages, 2);
    }

    #[test]
    fn failed_probes_double_the_wait_up_to_the_cap() {
        let breaker = Breaker::new(Duration::from_millis(100), Duration::from_millis(350));
        breaker.on_error("s", &down());
        assert_eq!(breaker.backoff(), Duration::from_millis(100));
        breaker.on_error("s", &down());
        assert_eq!(breaker.backoff(), Duration::from_millis(200));
        breaker.on_error("s", &down());
        assert_eq!(breaker.backoff(), Duration::from_millis(350));
        assert_eq!(breaker.health().outages, 1);
    }

    #[test]
    fn rejected_requests_do_not_open_an_outage() {
        let breaker = Breaker::new(Duration::from_secs(3600), Duration::from_secs(3600));
        breaker.on_error("s", &StoreError::new(ErrorKind::Rejected, "too large"));
        assert!(breaker.allow());
        assert_eq!((breaker.health().outages, breaker.health().errors), (0, 1));
    }
}
