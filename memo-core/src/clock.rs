//! Time sources for expiry: the system clock, or a manual clock that tests advance by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a cache reads the time for its `ttl` checks.
///
/// [`Clock::system`] (the default) reads [`Instant::now`]; a [`ManualClock`] only moves when it is
/// told to, so tests of expiry never sleep.
///
/// ```
/// use memo_core::{Cache, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let cache: Cache<u32, &str> = Cache::builder()
///     .ttl(Duration::from_secs(30))
///     .clock(clock.clone())
///     .build()
///     .unwrap();
/// cache.insert(1, "one");
/// clock.advance(Duration::from_secs(29));
/// assert_eq!(cache.get(&1), Some("one"));
/// clock.advance(Duration::from_secs(1));
/// assert_eq!(cache.get(&1), None);
/// ```
#[derive(Clone, Debug)]
pub struct Clock(ClockKind);

#[derive(Clone, Debug)]
enum ClockKind {
    System(Instant),
    Manual(ManualClock),
}

impl Clock {
    /// The system's monotonic clock.
    ///
    /// ```
    /// let clock = memo_core::Clock::system();
    /// let _ = clock.clone();
    /// ```
    pub fn system() -> Self {
        Clock(ClockKind::System(Instant::now()))
    }

    /// Nanoseconds since this clock's origin.
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        match &self.0 {
            ClockKind::System(origin) => {
                // Saturates after 584 years of uptime.
                origin.elapsed().as_nanos().min(u64::MAX as u128) as u64
            }
            ClockKind::Manual(manual) => manual.nanos.load(Ordering::Acquire),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// A clock that stands still until [`advance`](ManualClock::advance) moves it: for tests.
///
/// Clones share one time, so a test keeps a clone and hands another to the cache.
///
/// ```
/// use memo_core::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_millis(1500));
/// assert_eq!(clock.elapsed(), Duration::from_millis(1500));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock at time zero.
    ///
    /// ```
    /// assert_eq!(memo_core::ManualClock::new().elapsed(), std::time::Duration::ZERO);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    ///
    /// ```
    /// let clock = memo_core::ManualClock::new();
    /// clock.advance(std::time::Duration::from_secs(2));
    /// assert_eq!(clock.elapsed().as_secs(), 2);
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = by.as_nanos().min(u64::MAX as u128) as u64;
        self.nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            })
            .ok();
    }

    /// How far the clock has been advanced since it was made.
    ///
    /// ```
    /// assert!(memo_core::ManualClock::new().elapsed().is_zero());
    /// ```
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Clock(ClockKind::Manual(manual))
    }
}
