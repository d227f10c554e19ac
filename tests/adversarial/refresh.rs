//! Refresh-ahead and the stale windows, adversarially.

use super::{until, Upstream, PAST};
use memo::memoize;
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::Duration;

static CLEARED: Upstream = Upstream::new();

#[memoize(ttl = "1h", refresh = "50ms")]
fn cleared(n: u64) -> u64 {
    CLEARED.read().unwrap() + n
}

#[test]
fn a_cache_clear_during_a_background_refresh_wins() {
    assert_eq!(cleared(0), 1);
    std::thread::sleep(PAST);
    CLEARED.set_version(2);
    CLEARED.shut();
    assert_eq!(cleared(0), 1, "due: the old value at once");
    CLEARED.until_runs(2);
    // The refresh read version 2; version 3 is written, and the cache cleared.
    CLEARED.set_version(3);
    cleared::cache_clear();
    CLEARED.open();
    until(|| cleared::cache_info().refreshes >= 1 || cleared::cache_info().currsize > 0);
    std::thread::sleep(PAST);
    assert_eq!(
        cleared(0),
        3,
        "the refresh begun before cache_clear was stored after it"
    );
}

static PANICS: Upstream = Upstream::new();

#[memoize(ttl = "1h", refresh = "50ms")]
fn panics(n: u64) -> u64 {
    PANICS.read().unwrap() + n
}

#[test]
fn a_panicking_refresh_keeps_the_value_and_a_later_one_runs() {
    assert_eq!(panics(0), 1);
    std::thread::sleep(PAST);
    PANICS.panicking.store(true, Ordering::SeqCst);
    PANICS.set_version(2);
    assert_eq!(panics(0), 1);
    PANICS.until_runs(2);
    std::thread::sleep(PAST);
    PANICS.panicking.store(false, Ordering::SeqCst);
    assert_eq!(panics(0), 1, "the panic kept the old value");
    // The panicked refresh's flight is abandoned (once its unwinding ended, which printing a
    // backtrace can make slow): a later call schedules another one.
    until(|| panics(0) == 2);
}

static COUNTED: Upstream = Upstream::new();

#[memoize(
    ttl = "100ms",
    refresh = "50ms",
    stale_while_revalidate = "1h",
    stale_if_error = "1h"
)]
fn counted(n: u64) -> Result<u64, String> {
    COUNTED.read().map(|v| v + n)
}

#[test]
fn counters_add_up_across_refreshes_stale_hits_and_stale_errors() {
    let calls = Cell::new(0);
    let call = |n| {
        calls.set(calls.get() + 1);
        counted(n)
    };
    assert_eq!(call(0), Ok(1));
    std::thread::sleep(PAST);
    // Due: old value, refresh behind.
    assert_eq!(call(0), Ok(1));
    until(|| counted::cache_info().refreshes == 1);
    std::thread::sleep(Duration::from_millis(150));
    // Past ttl, within the stale window: a stale hit, a refresh behind that fails.
    COUNTED.failing.store(true, Ordering::SeqCst);
    assert_eq!(call(0), Ok(1));
    until(|| counted::cache_info().refreshes == 2);
    let info = counted::cache_info();
    assert_eq!(info.hits + info.misses + info.waits, calls.get(), "{info}");
    assert_eq!(info.stale_hits, 1, "{info}");
    assert_eq!(info.refreshes, 2, "{info}");
}

static MANY: Upstream = Upstream::new();

#[memoize(ttl = "1h", refresh = "50ms", maxsize = 10000)]
fn many(n: u64) -> u64 {
    MANY.read().unwrap() * 10000 + n
}

#[test]
fn thousands_of_keys_due_at_once_never_make_a_caller_wait() {
    const KEYS: u64 = 3000;
    for n in 0..KEYS {
        assert_eq!(many(n), 10000 + n);
    }
    std::thread::sleep(PAST);
    MANY.set_version(2);
    MANY.shut();
    // Every key is due; the refresh threads are all held by the gate, the queue fills:
    // every call still returns the old value at once.
    for n in 0..KEYS {
        assert_eq!(many(n), 10000 + n);
    }
    let started = MANY.runs() - KEYS;
    assert!(
        started <= 4,
        "at most one refresh per refresh thread runs: {started}"
    );
    MANY.open();
    // The skipped ones are scheduled again by a later call.
    until(|| (0..KEYS).all(|n| many(n) == 20000 + n));
    let info = many::cache_info();
    assert!(info.refreshes >= KEYS, "{info}");
    assert_eq!(info.misses, KEYS, "no call past the first computed: {info}");
}

pub(crate) mod asynchronous {
    use super::super::{until, Upstream, PAST};
    use memo::memoize;
    use std::sync::atomic::Ordering;

    static ON_DROPPED: Upstream = Upstream::new();

    #[memoize(ttl = "1h", refresh = "50ms")]
    async fn on_dropped(n: u64) -> u64 {
        ON_DROPPED.read().unwrap() + n
    }

    fn on_a_fresh_runtime<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// A sync program that calls an async memoized function through a runtime per call (a
    /// common bridge): the refresh must still happen.
    #[test]
    fn an_async_refresh_from_a_runtime_that_ends_right_after_the_call_still_runs() {
        assert_eq!(on_a_fresh_runtime(on_dropped(0)), 1);
        std::thread::sleep(PAST);
        ON_DROPPED.set_version(2);
        assert_eq!(on_a_fresh_runtime(on_dropped(0)), 1);
        // Each call's runtime ends before it polls the refresh it spawned: the refresh must
        // not be lost with it (it was, every time, until the entry expired).
        let start = std::time::Instant::now();
        while ON_DROPPED.runs() < 2 && start.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(ON_DROPPED.runs(), 2, "the refresh never ran");
        until(|| on_a_fresh_runtime(on_dropped(0)) == 2);
    }

    static TIMED: Upstream = Upstream::new();

    /// A body that needs a tokio reactor (a timer, as any HTTP client has).
    #[memoize(ttl = "1h", refresh = "50ms")]
    async fn timed(n: u64) -> u64 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        TIMED.read().unwrap() + n
    }

    #[test]
    fn an_async_refresh_needing_tokio_from_a_runtime_that_ends_right_after_the_call_still_runs() {
        assert_eq!(on_a_fresh_runtime(timed(0)), 1);
        std::thread::sleep(PAST);
        TIMED.set_version(2);
        let start = std::time::Instant::now();
        while on_a_fresh_runtime(timed(0)) != 2 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "never refreshed: runs {}, {}",
                TIMED.runs(),
                timed::cache_info()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    static OFF_RUNTIME: Upstream = Upstream::new();

    #[memoize(ttl = "1h", refresh = "50ms")]
    async fn off_runtime(n: u64) -> u64 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        OFF_RUNTIME.read().unwrap() + n
    }

    /// A body written for tokio, whose due hit comes from a plain executor (no runtime): its
    /// refresh runs on a refresh thread's own tokio runtime, not on a plain executor where the
    /// timer would panic for want of a reactor.
    #[test]
    fn an_async_refresh_needing_tokio_called_off_any_runtime_still_runs() {
        assert_eq!(on_a_fresh_runtime(off_runtime(0)), 1);
        std::thread::sleep(PAST);
        OFF_RUNTIME.set_version(2);
        let start = std::time::Instant::now();
        while futures::executor::block_on(off_runtime(0)) != 2 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "never refreshed: runs {}, {}",
                OFF_RUNTIME.runs(),
                off_runtime::cache_info()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    static ASYNC_PANICS: Upstream = Upstream::new();

    #[memoize(ttl = "1h", refresh = "50ms")]
    async fn async_panics(n: u64) -> u64 {
        tokio::task::yield_now().await;
        ASYNC_PANICS.read().unwrap() + n
    }

    #[test]
    fn a_panicking_async_refresh_on_tokio_keeps_the_value_and_a_later_one_runs() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert_eq!(async_panics(0).await, 1);
            tokio::time::sleep(PAST).await;
            ASYNC_PANICS.panicking.store(true, Ordering::SeqCst);
            ASYNC_PANICS.set_version(2);
            assert_eq!(async_panics(0).await, 1);
            while ASYNC_PANICS.runs() < 2 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            tokio::time::sleep(PAST).await;
            ASYNC_PANICS.panicking.store(false, Ordering::SeqCst);
            loop {
                if async_panics(0).await == 2 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
    }
}

static PRIMED: Upstream = Upstream::new();

#[memoize(ttl = "1h", refresh = "50ms")]
fn primed(n: u64) -> u64 {
    PRIMED.read().unwrap() + n
}

#[test]
fn a_prime_during_a_refresh_is_not_overwritten_by_it() {
    assert_eq!(primed(0), 1);
    std::thread::sleep(PAST);
    PRIMED.set_version(2);
    PRIMED.shut();
    assert_eq!(primed(0), 1);
    PRIMED.until_runs(2);
    primed::cache_prime(0, 30);
    PRIMED.open();
    until(|| primed::cache_info().refreshes == 1);
    assert_eq!(
        primed(0),
        30,
        "the refresh begun before the prime replaced it"
    );
}

pub(crate) mod failing_tasks {
    use super::super::{Upstream, PAST};
    use memo::memoize;
    use std::sync::atomic::Ordering;

    static FLAKY: Upstream = Upstream::new();

    #[memoize(ttl = "50ms", stale_if_error = "1h")]
    async fn flaky(n: u64) -> Result<u64, String> {
        FLAKY.read_async().await.map(|v| v + n)
    }

    #[test]
    fn many_tasks_of_a_failing_key_all_get_the_stale_value_at_once() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            assert_eq!(flaky(0).await, Ok(1));
            tokio::time::sleep(PAST).await;
            FLAKY.failing.store(true, Ordering::SeqCst);
            FLAKY.shut();
            let tasks: Vec<_> = (0..20).map(|_| tokio::spawn(flaky(0))).collect();
            while FLAKY.runs() < 2 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            FLAKY.open();
            for task in tasks {
                assert_eq!(task.await.unwrap(), Ok(1));
            }
            let info = flaky::cache_info();
            assert!(
                FLAKY.runs() <= 3,
                "the failing body ran {} times",
                FLAKY.runs()
            );
            assert_eq!(info.stale_errors, 20, "{info}");
            assert_eq!(info.hits + info.misses + info.waits, 21, "{info}");
        });
    }
}

pub(crate) mod cycles {
    use super::super::{until, PAST};
    use memo::memoize;
    use std::sync::atomic::{AtomicBool, Ordering};

    static VIA_K: AtomicBool = AtomicBool::new(false);
    static K_STARTED: AtomicBool = AtomicBool::new(false);
    static G_STARTED: AtomicBool = AtomicBool::new(false);

    #[memoize(ttl = "1h", refresh = "50ms")]
    fn top(n: u64) -> u64 {
        if VIA_K.load(Ordering::SeqCst) {
            return kay(3) + n;
        }
        n
    }

    #[memoize]
    fn kay(n: u64) -> u64 {
        K_STARTED.store(true, Ordering::SeqCst);
        until(|| G_STARTED.load(Ordering::SeqCst));
        gee(5) + n
    }

    #[memoize]
    fn gee(n: u64) -> u64 {
        G_STARTED.store(true, Ordering::SeqCst);
        until(|| K_STARTED.load(Ordering::SeqCst));
        kay(3) + n
    }

    /// A refresh thread and a caller's thread wait for each other's computations: the cycle
    /// is found (one side panics), never a hang of the refresh thread or the caller.
    #[test]
    fn a_cycle_through_a_refresh_thread_is_detected() {
        assert_eq!(top(0), 0);
        std::thread::sleep(PAST);
        VIA_K.store(true, Ordering::SeqCst);
        // The refresh (on a refresh thread) leads kay(3), which waits for gee(5) led here.
        assert_eq!(top(0), 0);
        let caller = std::thread::spawn(|| std::panic::catch_unwind(|| gee(5)).is_ok());
        until(|| caller.is_finished());
        // (Here both panic: the caller's gee(5) then computes kay(3) itself, whose body calls
        // gee(5) again on the same thread, a plain recursion.) The refresh thread is not hung:
        // with the cycle gone, a later refresh of top(0) runs and ends.
        let _ = caller.join();
        VIA_K.store(false, Ordering::SeqCst);
        until(|| {
            top(0);
            top::cache_info().refreshes >= 1
        });
    }
}
