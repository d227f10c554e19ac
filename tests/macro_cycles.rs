//! A cycle of waits across threads or tasks is detected: thread A computes `f(1)`, whose body
//! calls `f(2)`, while thread B computes `f(2)`, whose body calls `f(1)`. The plain functions
//! finish (the inner calls do not recurse further); with single-flight each would wait for the
//! other forever. The caller that would close the cycle panics naming the function, and the
//! other side proceeds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier};
use std::time::Duration;

use memo::memoize;

/// Far beyond any run here: a caller still blocked then is deadlocked.
const HANG: Duration = Duration::from_secs(20);

static PAIR: Barrier = Barrier::new(2);

/// The outer call (`nested == false`) waits until the other thread is inside its own outer call,
/// then needs the other key.
#[memoize(ignore = [nested])]
fn pair(n: u32, nested: bool) -> u32 {
    if nested {
        return n;
    }
    PAIR.wait();
    n * 10 + pair(3 - n, true)
}

static TRIO: Barrier = Barrier::new(3);

#[memoize(ignore = [nested])]
fn trio(n: u32, nested: bool) -> u32 {
    if nested {
        return n;
    }
    TRIO.wait();
    n * 10 + trio(n % 3 + 1, true)
}

/// Runs `call(n)` for each `n` on its own thread; each outcome, or the panic's message.
fn outcomes(keys: &[u32], call: fn(u32) -> u32) -> Vec<Result<u32, String>> {
    let (sent, received) = mpsc::channel();
    for &n in keys {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| call(n)).map_err(|panic| {
                panic
                    .downcast::<String>()
                    .map_or_else(|_| "a panic without a message".to_owned(), |m| *m)
            });
            sent.send(outcome).unwrap();
        });
    }
    (0..keys.len())
        .map(|_| received.recv_timeout(HANG).expect("a caller deadlocked"))
        .collect()
}

fn check_one_panic(outcomes: &[Result<u32, String>], function: &str) {
    let panics: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(panics.len(), 1, "{outcomes:?}");
    let message = panics[0];
    assert!(message.starts_with("cycle of memoized calls"), "{message}");
    assert!(message.contains(function), "{message}");
}

#[test]
fn a_two_thread_cycle_panics_in_one_caller_and_the_other_proceeds() {
    let outcomes = outcomes(&[1, 2], |n| pair(n, false));
    check_one_panic(&outcomes, "macro_cycles::pair");
    // The survivor computed the other key itself once its computation was abandoned.
    let values: Vec<u32> = outcomes.into_iter().filter_map(Result::ok).collect();
    assert!(values == [12] || values == [21], "{values:?}");
}

#[test]
fn a_three_thread_cycle_panics_in_one_caller_and_the_others_proceed() {
    let outcomes = outcomes(&[1, 2, 3], |n| trio(n, false));
    check_one_panic(&outcomes, "macro_cycles::trio");
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 2);
}

static ARRIVED: AtomicUsize = AtomicUsize::new(0);

#[memoize(ignore = [nested])]
async fn tasks(n: u32, nested: bool) -> u32 {
    if nested {
        return n;
    }
    ARRIVED.fetch_add(1, Ordering::SeqCst);
    while ARRIVED.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    n * 10 + Box::pin(tasks(3 - n, true)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_task_cycle_panics_in_one_task_and_the_other_proceeds() {
    let handles: Vec<_> = [1, 2]
        .into_iter()
        .map(|n| tokio::spawn(tasks(n, false)))
        .collect();
    // The tests' tokio has no timer: poll until both ended or the bound passed.
    let mut waited = Duration::ZERO;
    while !handles.iter().all(|h| h.is_finished()) && waited < HANG {
        std::thread::sleep(Duration::from_millis(5));
        waited += Duration::from_millis(5);
    }
    assert!(handles.iter().all(|h| h.is_finished()), "a task deadlocked");
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(match handle.await {
            Ok(value) => Ok(value),
            Err(error) => Err(error
                .into_panic()
                .downcast::<String>()
                .map_or_else(|_| String::new(), |m| *m)),
        });
    }
    check_one_panic(&outcomes, "macro_cycles::tasks");
}
