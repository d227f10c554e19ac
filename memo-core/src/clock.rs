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
/// use memo::{Cache, ManualClock};
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
    System,
    Coarse(Arc<coarse::Ticker>),
    Manual(ManualClock),
}

impl Clock {
    /// The system's monotonic clock, read with [`Instant::now`] at every use.
    ///
    /// ```
    /// let clock = memo::Clock::system();
    /// let _ = clock.clone();
    /// ```
    pub fn system() -> Self {
        Clock(ClockKind::System)
    }

    /// The system's monotonic clock, read from a time that a background thread refreshes every
    /// millisecond while a cache uses it (the default for caches with a ttl). Reading it costs
    /// one atomic load instead of a call to [`Instant::now`] (about 16 ns here). That thread may
    /// be starved when CPU-bound threads outnumber the cores, so its time may fall behind: a
    /// cache confirms with [`Instant::now`] an entry within a second of its deadline before
    /// returning it, and so never returns an entry past its ttl unless the whole process stalls
    /// for more than a second (a cache with a ttl of a second or less reads the clock on every
    /// hit). If no thread can be started, it reads the system clock.
    ///
    /// ```
    /// let clock = memo::Clock::coarse();
    /// let _ = clock.clone();
    /// ```
    pub fn coarse() -> Self {
        match coarse::Ticker::start() {
            Some(ticker) => Clock(ClockKind::Coarse(ticker)),
            None => Clock::system(),
        }
    }

    /// Nanoseconds since the process's first use of a clock.
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        match &self.0 {
            ClockKind::System => coarse::since_origin(Instant::now()),
            ClockKind::Coarse(ticker) => ticker.now_nanos(),
            ClockKind::Manual(manual) => manual.nanos.load(Ordering::Acquire),
        }
    }

    /// Whether [`now_nanos`](Self::now_nanos) may lag the real time (the coarse clock, whose
    /// thread may be starved under load): then entries near their deadline are confirmed by
    /// [`is_past`].
    pub(crate) fn is_coarse(&self) -> bool {
        matches!(self.0, ClockKind::Coarse(_))
    }
}

/// Whether the real time has reached `deadline` (nanoseconds since the origin): the kernel's
/// coarse clock decides unless it is within a kernel tick of the deadline, then `Instant::now`
/// does. A shared coarse time that fell more than two ticks behind is moved up, for the other
/// readers.
pub(crate) fn is_past(deadline: u64) -> bool {
    coarse::is_past(deadline)
}

impl Default for Clock {
    /// The coarse clock.
    fn default() -> Self {
        Clock::coarse()
    }
}

/// A clock that stands still until [`advance`](ManualClock::advance) moves it: for tests.
///
/// Clones share one time, so a test keeps a clone and hands another to the cache.
///
/// ```
/// use memo::ManualClock;
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
    /// assert_eq!(memo::ManualClock::new().elapsed(), std::time::Duration::ZERO);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    ///
    /// ```
    /// let clock = memo::ManualClock::new();
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
    /// assert!(memo::ManualClock::new().elapsed().is_zero());
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

/// The shared coarse time: one atomic, refreshed by one thread while any cache holds a ticker.
mod coarse {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, OnceLock};
    use std::time::{Duration, Instant};

    use parking_lot::Mutex;

    /// The origin, and on Linux the `CLOCK_MONOTONIC` reading taken just after it (the clock
    /// `Instant` reads there), to put the kernel's coarse clock on the same scale.
    static ORIGIN: OnceLock<(Instant, u64)> = OnceLock::new();
    static NOW: AtomicU64 = AtomicU64::new(0);
    static USERS: AtomicUsize = AtomicUsize::new(0);
    static RUNNING: Mutex<bool> = Mutex::new(false);

    const TICK: Duration = Duration::from_millis(1);

    /// Nanoseconds from the origin to `t`, saturating.
    pub(super) fn since_origin(t: Instant) -> u64 {
        t.saturating_duration_since(origin().0)
            .as_nanos()
            .min(u64::MAX as u128) as u64
    }

    fn origin() -> (Instant, u64) {
        *ORIGIN.get_or_init(|| {
            let instant = Instant::now();
            (instant, kernel(KernelClock::Monotonic).unwrap_or(0))
        })
    }

    #[derive(Clone, Copy)]
    enum KernelClock {
        Monotonic,
        #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
        Coarse,
    }

    /// A reading of the kernel's monotonic clock, or of its coarse variant (updated at each
    /// kernel tick, a few ms, whatever the load: about 10 ns against 35 for `Instant::now` on
    /// our VM), in nanoseconds since boot; `None` where it is not available.
    #[cfg(target_os = "linux")]
    fn kernel(clock: KernelClock) -> Option<u64> {
        let id = match clock {
            KernelClock::Monotonic => libc::CLOCK_MONOTONIC,
            KernelClock::Coarse => libc::CLOCK_MONOTONIC_COARSE,
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and `id`
        // is a clock id this kernel interface defines; nothing else is read or written.
        let ok = unsafe { libc::clock_gettime(id, &mut ts) } == 0;
        let nanos = u64::try_from(ts.tv_sec)
            .ok()?
            .checked_mul(1_000_000_000)?
            .checked_add(u64::try_from(ts.tv_nsec).ok()?)?;
        ok.then_some(nanos)
    }

    #[cfg(not(target_os = "linux"))]
    fn kernel(_: KernelClock) -> Option<u64> {
        None
    }

    /// The kernel's coarse time since the origin: never ahead of the real time, behind it by
    /// at most a kernel tick. `None` where there is none.
    pub(super) fn kernel_coarse() -> Option<u64> {
        let (_, mono) = origin();
        if mono == 0 {
            return None;
        }
        Some(kernel(KernelClock::Coarse)?.saturating_sub(mono))
    }

    /// A cache's hold on the ticking thread; the thread stops when the last one is dropped.
    #[derive(Debug)]
    pub(super) struct Ticker(());

    impl Ticker {
        pub(super) fn start() -> Option<Arc<Ticker>> {
            NOW.fetch_max(since_origin(Instant::now()), Ordering::Release);
            USERS.fetch_add(1, Ordering::AcqRel);
            let mut running = RUNNING.lock();
            if !*running {
                let spawned = std::thread::Builder::new()
                    .name("memo-clock".into())
                    .spawn(tick);
                if spawned.is_err() {
                    USERS.fetch_sub(1, Ordering::AcqRel);
                    return None;
                }
                *running = true;
            }
            Some(Arc::new(Ticker(())))
        }

        #[inline]
        pub(super) fn now_nanos(&self) -> u64 {
            NOW.load(Ordering::Acquire)
        }
    }

    impl Drop for Ticker {
        fn drop(&mut self) {
            USERS.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// See [`super::is_past`].
    pub(super) fn is_past(deadline: u64) -> bool {
        let now = match kernel_coarse() {
            Some(coarse) if deadline <= coarse => return publish(coarse),
            Some(coarse) if deadline - coarse > KERNEL_TICK_BOUND => {
                publish(coarse);
                return false;
            }
            // Within a kernel tick of the deadline, or no kernel clock: the exact time.
            _ => since_origin(Instant::now()),
        };
        publish(now);
        deadline <= now
    }

    /// A kernel tick is at most 10 ms (HZ = 100); further than this from its deadline by the
    /// kernel's coarse time, an entry is alive whatever the exact time.
    const KERNEL_TICK_BOUND: u64 = 20_000_000;

    /// Moves the shared coarse time up to `now` if it fell more than two ticks behind (a shared
    /// write, rare unless the ticking thread is starved). Returns `true`.
    fn publish(now: u64) -> bool {
        if NOW
            .load(Ordering::Relaxed)
            .saturating_add(2 * TICK.as_nanos() as u64)
            < now
        {
            NOW.fetch_max(now, Ordering::Release);
        }
        true
    }

    fn tick() {
        loop {
            std::thread::sleep(TICK);
            NOW.fetch_max(since_origin(Instant::now()), Ordering::Release);
            if USERS.load(Ordering::Acquire) == 0 {
                let mut running = RUNNING.lock();
                // A cache may have started using the clock since the check above.
                if USERS.load(Ordering::Acquire) == 0 {
                    *running = false;
                    return;
                }
            }
        }
    }
}

#[cfg(all(test, not(memo_shuttle)))]
mod tests {
    use std::time::Instant;

    use super::coarse::{is_past, kernel_coarse, since_origin};

    #[test]
    fn the_kernel_coarse_time_lags_the_real_time_by_at_most_a_tick() {
        let before = since_origin(Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(30));
        if let Some(coarse) = kernel_coarse() {
            let after = since_origin(Instant::now());
            assert!(coarse <= after, "never ahead: {coarse} > {after}");
            assert!(
                coarse > before,
                "at most a tick (10 ms) behind, we slept 30 ms"
            );
        }
    }

    #[test]
    fn a_deadline_is_past_exactly_when_the_real_time_reached_it() {
        let now = since_origin(Instant::now());
        assert!(is_past(0));
        assert!(is_past(now), "reached already");
        assert!(
            !is_past(now + 3_600_000_000_000),
            "an hour away (coarse decides)"
        );
        // A millisecond away: within a kernel tick, so the exact time decides.
        let soon = since_origin(Instant::now()) + 1_000_000;
        assert!(!is_past(soon));
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(is_past(soon));
    }
}
