//! Single-flight through the facade: concurrent misses of one key run the body once, recursion on
//! the same key panics with the function's name, a panicking body releases its waiters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

use memo::memoize;

const THREADS: usize = 6;

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Returns once every caller has missed: the others are waiting for this one (or will find its
/// value in the cache), so any second run of the body would show in `SLOW_RUNS`.
#[memoize]
fn slow(n: u32) -> String {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    while slow::cache_info().misses < THREADS as u64 {
        std::thread::yield_now();
    }
    format!("value {n}")
}

#[test]
fn concurrent_misses_of_one_key_run_the_body_once() {
    let start = Barrier::new(THREADS);
    let values: Vec<String> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    slow(7)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(values.iter().all(|v| v == "value 7"));
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1);
    // One run of the body; every other caller waited for it (or, having missed just as it
    // finished, found its value: a hit).
    let info = slow::cache_info();
    assert_eq!(info.misses, 1);
    assert_eq!(info.hits + info.misses + info.waits, THREADS as u64);
    assert!(info.waits >= 1, "{info:?}");
    assert!(info.load_time > std::time::Duration::ZERO);
}

static UNSHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The same, without single-flight: every caller that missed runs the body.
#[memoize(single_flight = false)]
fn unshared(n: u32) -> u32 {
    UNSHARED_RUNS.fetch_add(1, Ordering::SeqCst);
    while unshared::cache_info().misses < THREADS as u64 {
        std::thread::yield_now();
    }
    n
}

#[test]
fn without_single_flight_every_miss_runs_the_body() {
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| unshared(1));
        }
    });
    assert_eq!(UNSHARED_RUNS.load(Ordering::SeqCst), THREADS);
}

#[memoize]
fn looping(n: u32) -> u32 {
    if n == 3 {
        looping(3) // the same key, on the same thread
    } else {
        n
    }
}

#[test]
fn recursion_on_the_same_key_panics_naming_the_function() {
    let panic = std::panic::catch_unwind(|| looping(3)).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.starts_with(
            "`macro_single_flight::looping` called itself with the arguments it is computing"
        ),
        "{message}"
    );
    // Nothing was cached or left in flight: other keys, and the same key, still work.
    assert_eq!(looping(4), 4);
    assert!(std::panic::catch_unwind(|| looping(3)).is_err());
    assert_eq!(looping::cache_info().currsize, 1);
}

#[memoize(maxsize = None)]
fn fib(n: u64) -> u128 {
    if n < 2 {
        n.into()
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[test]
fn recursion_on_other_keys_is_fine_from_many_threads() {
    let values: Vec<u128> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4).map(|_| s.spawn(|| fib(120))).collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(values
        .iter()
        .all(|v| *v == 5_358_359_254_990_966_640_871_840));
    assert_eq!(fib::cache_info().currsize, 121);
}

static FLAKY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// The first run waits until every caller missed, then panics; the waiters retry.
#[memoize]
fn flaky(n: u32) -> u32 {
    if FLAKY_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        while flaky::cache_info().misses < 3 {
            std::thread::yield_now();
        }
        panic!("the first run fails");
    }
    n * 10
}

#[test]
fn a_panicking_body_reaches_its_caller_and_releases_the_waiters() {
    let results: Vec<std::thread::Result<u32>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..3).map(|_| s.spawn(|| flaky(4))).collect();
        threads.into_iter().map(|t| t.join()).collect()
    });
    let panicked = results.iter().filter(|r| r.is_err()).count();
    let values: Vec<u32> = results.into_iter().filter_map(Result::ok).collect();
    assert_eq!(panicked, 1);
    assert_eq!(values, [40, 40]);
    // The panicking run, then one run shared by the two waiters.
    assert_eq!(FLAKY_RUNS.load(Ordering::SeqCst), 2);
}

/// `gate` is no key: a `&Barrier` is not `Hash`, so it is ignored.
#[memoize(ignore = [gate])]
fn blocked(n: u32, gate: &Barrier) -> u32 {
    gate.wait(); // until the other thread computed another key of this function
    n
}

#[test]
fn other_keys_proceed_while_one_is_computed() {
    let gate = Barrier::new(2);
    std::thread::scope(|s| {
        let waiting = s.spawn(|| blocked(1, &gate));
        // Key 2 of the same function completes while key 1 is being computed.
        while blocked::cache_info().misses < 1 {
            std::thread::yield_now();
        }
        assert_eq!(blocked(2, &Barrier::new(1)), 2);
        gate.wait();
        assert_eq!(waiting.join().unwrap(), 1);
    });
}

/// How many times `instant`'s body ran for each key.
static INSTANT_RUNS: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];

// A body that costs nothing: a caller that missed the cache meets a leader that has just stored
// its value as often as it meets one still computing.
#[memoize(maxsize = 1000)]
fn instant(n: u32) -> u32 {
    INSTANT_RUNS[n as usize].fetch_add(1, Ordering::Relaxed);
    n + 1
}

#[test]
fn callers_that_miss_as_the_leader_stores_find_its_value_instead_of_computing_again() {
    // Rounds of two threads racing through the same fresh keys: each key's body runs once, so
    // every caller that missed before the leader stored either waited for it or found its
    // value when it looked at the cache again before leading.
    let (threads, rounds, keys) = (2, 200, 64u32);
    for _ in 0..rounds {
        instant::cache_clear();
        INSTANT_RUNS
            .iter()
            .for_each(|runs| runs.store(0, Ordering::Relaxed));
        let gate = Barrier::new(threads);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    gate.wait();
                    for n in 0..keys {
                        assert_eq!(instant(n), n + 1);
                    }
                });
            }
        });
        let runs: Vec<usize> = INSTANT_RUNS
            .iter()
            .map(|runs| runs.load(Ordering::Relaxed))
            .collect();
        assert!(runs.iter().all(|&r| r == 1), "body runs per key: {runs:?}");
    }
    let info = instant::cache_info();
    // Every call is a hit, a miss or a wait.
    assert_eq!(
        info.hits + info.misses + info.waits,
        2 * u64::from(keys),
        "{info}"
    );
}

#[path = "support/brittle.rs"]
mod brittle_value;
use brittle_value::Brittle;

static BRITTLE_RUNS: AtomicUsize = AtomicUsize::new(0);
/// Which clone after the first run's body panics: 0 is the leader's first.
static BRITTLE_NTH: AtomicUsize = AtomicUsize::new(0);
/// The function's misses before the round.
static BRITTLE_MISSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Calls `call` from three threads at once and returns what each returned (or its panic);
/// fails, instead of hanging, if one is still running after 20 s (`what`: the case).
fn three_callers<T: Send + 'static>(
    call: impl Fn() -> T + Send + Copy + 'static,
    what: &str,
) -> Vec<std::thread::Result<T>> {
    let callers: Vec<_> = (0..3).map(|_| std::thread::spawn(call)).collect();
    join_within_20s(callers, what)
}

/// Joins `callers`, returning what each returned (or its panic); fails, instead of hanging, if
/// one is still running after 20 s (`what`: the case).
fn join_within_20s<T>(
    callers: Vec<std::thread::JoinHandle<T>>,
    what: &str,
) -> Vec<std::thread::Result<T>> {
    let start = std::time::Instant::now();
    while !callers.iter().all(|c| c.is_finished()) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{what}: a caller still waits after 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    callers.into_iter().map(|c| c.join()).collect()
}

/// In the first run of a body (counted by `runs`), waits until `misses()` reaches `at_least`
/// (the two other callers missed: they wait for this one), then gives them time to register;
/// whether this was the first run.
fn first_run_waits(runs: &AtomicUsize, misses: impl Fn() -> u64, at_least: u64) -> bool {
    if runs.fetch_add(1, Ordering::SeqCst) != 0 {
        return false;
    }
    while misses() < at_least {
        std::thread::yield_now();
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    true
}

/// The first run waits until the two other callers missed (they wait for it), then arms the
/// panic of the `BRITTLE_NTH`-th clone from now: the leader's, its hand-over to the waiters, or
/// a waiter's.
#[memoize]
fn brittle(n: u32) -> Brittle {
    let misses = || brittle::cache_info().misses;
    if first_run_waits(
        &BRITTLE_RUNS,
        misses,
        BRITTLE_MISSES.load(Ordering::SeqCst) + 3,
    ) {
        brittle_value::arm(BRITTLE_NTH.load(Ordering::SeqCst));
    }
    Brittle(n)
}

#[test]
fn a_clone_that_panics_anywhere_in_the_hand_over_leaves_no_caller_waiting() {
    for nth in 0..5 {
        brittle::cache_clear();
        BRITTLE_MISSES.store(brittle::cache_info().misses, Ordering::SeqCst);
        BRITTLE_RUNS.store(0, Ordering::SeqCst);
        BRITTLE_NTH.store(nth, Ordering::SeqCst);
        brittle_value::disarm();
        let key = 10 + nth as u32;
        let results = three_callers(move || brittle(key), &format!("clone {nth} after the body"));
        let panicked = results.iter().filter(|r| r.is_err()).count();
        assert!(
            panicked <= 1,
            "clone {nth}: only the panicking clone's caller panics"
        );
        for value in results.into_iter().flatten() {
            assert_eq!(value, Brittle(key));
        }
        brittle_value::disarm();
        // The function works on: the value stored, or computed again.
        assert_eq!(brittle(key), Brittle(key));
        assert!(BRITTLE_RUNS.load(Ordering::SeqCst) <= 3, "clone {nth}");
    }
}

static CHATTY_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Keys not used yet (from 100 on).
static CHATTY_KEYS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(100);

/// A value whose `Clone` calls the memoized function it comes from, for 64 keys not used yet
/// (some in the shard of its own): each a miss that computes and stores into the same cache.
#[derive(Debug, PartialEq)]
struct Chatty(u32);

impl Clone for Chatty {
    fn clone(&self) -> Self {
        if self.0 < 100 {
            call_new_keys(&CHATTY_KEYS, chatty, Chatty);
        }
        Chatty(self.0)
    }
}

/// Calls `f` for 64 keys not used yet (taken from `keys`), each returning `made(key)`.
fn call_new_keys<T: PartialEq + std::fmt::Debug>(
    keys: &std::sync::atomic::AtomicU32,
    f: fn(u32) -> T,
    made: fn(u32) -> T,
) {
    for _ in 0..64 {
        let key = keys.fetch_add(1, Ordering::SeqCst);
        assert_eq!(f(key), made(key));
    }
}

/// The first run waits until the two other callers missed (they wait for it).
#[memoize]
fn chatty(n: u32) -> Chatty {
    if n < 100 {
        first_run_waits(&CHATTY_RUNS, || chatty::cache_info().misses, 3);
    }
    Chatty(n)
}

/// The leader hands its value to its waiters with the cache's lock released: a `Clone` that
/// writes to the cache (here by calling the function for another key) returns. It deadlocked
/// when the hand-over cloned under the lock.
#[test]
fn a_clone_that_writes_to_the_cache_in_the_hand_over_returns() {
    for value in three_callers(|| chatty(1), "a deadlock") {
        assert_eq!(value.unwrap(), Chatty(1));
    }
    assert_eq!(
        CHATTY_RUNS.load(Ordering::SeqCst),
        1,
        "one run, two waiters"
    );
}

static HEAVY_RUNS: AtomicUsize = AtomicUsize::new(0);
static HEAVY_KEYS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(100);

/// [`Chatty`] for a weighted cache (whose computations live in the table of flights, not in the
/// cache's shards): its `Clone` calls `heavy` for 64 keys not used yet.
#[derive(Debug, PartialEq)]
struct HeavyChatty(u32);

impl Clone for HeavyChatty {
    fn clone(&self) -> Self {
        if self.0 < 100 {
            call_new_keys(&HEAVY_KEYS, heavy, HeavyChatty);
        }
        HeavyChatty(self.0)
    }
}

impl memo::Weigh for HeavyChatty {
    fn weight(&self) -> u64 {
        8
    }
}

#[memoize(maxweight = 4096)]
fn heavy(n: u32) -> HeavyChatty {
    if n < 100 {
        first_run_waits(&HEAVY_RUNS, || heavy::cache_info().misses, 3);
    }
    HeavyChatty(n)
}

/// As above, for a weighted cache: the hand-over's clone runs with the table of flights'
/// lock released. It deadlocked on that lock before.
#[test]
fn a_clone_that_calls_the_function_in_a_weighted_hand_over_returns() {
    for value in three_callers(|| heavy(1), "a deadlock") {
        assert_eq!(value.unwrap(), HeavyChatty(1));
    }
    assert_eq!(HEAVY_RUNS.load(Ordering::SeqCst), 1, "one run, two waiters");
}

static RACY_KEYS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1 << 20);

/// [`HeavyChatty`] for [`racy`]: its `Clone` calls `racy` for 64 keys not used yet.
#[derive(Debug, PartialEq)]
struct RacyChatty(u32);

impl Clone for RacyChatty {
    fn clone(&self) -> Self {
        if self.0 < 1 << 20 {
            call_new_keys(&RACY_KEYS, racy, RacyChatty);
        }
        RacyChatty(self.0)
    }
}

impl memo::Weigh for RacyChatty {
    fn weight(&self) -> u64 {
        8
    }
}

#[memoize(maxweight = "1GiB")]
fn racy(n: u32) -> RacyChatty {
    RacyChatty(n)
}

/// A caller that missed the cache, then finds the value a leader stored just before it would
/// have led (a late hit), clones it with the table of flights' lock released: a `Clone` that
/// calls the function returns. Two callers race for each of many new keys.
#[test]
fn a_clone_that_calls_the_function_in_a_late_hit_returns() {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let racers: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                for key in 0..5_000 {
                    barrier.wait();
                    assert_eq!(racy(key), RacyChatty(key));
                }
            })
        })
        .collect();
    for racer in join_within_20s(racers, "a deadlock") {
        racer.unwrap();
    }
}
