//! A failing key never queues its callers: the callers that joined a failing computation get
//! its `Err` when the error is `Clone`, and are otherwise released at once to run the body
//! concurrently, never one after another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use memo::memoize;

const CALLERS: usize = 50;
const BODY: Duration = Duration::from_millis(200);

/// Generous for a loaded 2-core machine, far below the serial 50 x 200 ms = 10 s.
const BOUND: Duration = Duration::from_millis(2 * 200 + 600);

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "30s")]
fn failing_shared(id: u32) -> Result<u32, String> {
    SHARED_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(BODY);
    Err(format!("upstream down for {id}"))
}

/// An error that is not `Clone`: the joined callers are released to run the body themselves.
#[derive(Debug)]
struct Opaque;

static OPAQUE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[memoize(ttl = "30s")]
fn failing_opaque(id: u32) -> Result<u32, Opaque> {
    OPAQUE_RUNS.fetch_add(1, Ordering::SeqCst);
    let _ = id;
    std::thread::sleep(BODY);
    Err(Opaque)
}

#[memoize]
fn missing_row(id: u32) -> Option<u32> {
    let _ = id;
    std::thread::sleep(BODY);
    None
}

/// Runs `call` from `CALLERS` threads at once; the slowest caller's latency.
fn from_threads<R: Send>(call: impl Fn() -> R + Sync) -> (Duration, Vec<R>) {
    let start = Barrier::new(CALLERS);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..CALLERS)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let began = Instant::now();
                    let result = call();
                    (began.elapsed(), result)
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        let mut results = Vec::new();
        for thread in threads {
            let (took, result) = thread.join().unwrap();
            slowest = slowest.max(took);
            results.push(result);
        }
        (slowest, results)
    })
}

#[test]
fn joined_callers_of_a_failing_key_share_its_clone_error() {
    let (slowest, results) = from_threads(|| failing_shared(1));
    assert!(
        slowest < BOUND,
        "the slowest of {CALLERS} callers took {slowest:?}"
    );
    assert!(results
        .iter()
        .all(|r| r.as_ref().map_err(String::as_str) == Err("upstream down for 1")));
    // Every caller that joined the first run got its error; a few may have missed it.
    assert!(SHARED_RUNS.load(Ordering::SeqCst) < CALLERS / 2);
    let info = failing_shared::cache_info();
    assert_eq!(info.currsize, 0, "an error is not cached");
    assert_eq!(info.hits + info.misses + info.waits, CALLERS as u64);
}

#[test]
fn joined_callers_of_an_error_that_is_not_clone_run_at_once() {
    let (slowest, results) = from_threads(|| failing_opaque(1));
    assert!(
        slowest < BOUND,
        "the slowest of {CALLERS} callers took {slowest:?}"
    );
    assert!(results.iter().all(Result::is_err));
    assert_eq!(failing_opaque::cache_info().currsize, 0);
}

#[test]
fn joined_callers_of_a_none_run_at_once() {
    let (slowest, results) = from_threads(|| missing_row(1));
    assert!(
        slowest < BOUND,
        "the slowest of {CALLERS} callers took {slowest:?}"
    );
    assert!(results.iter().all(Option::is_none));
}

#[memoize(ttl = "30s")]
async fn failing_async(id: u32) -> Result<u32, String> {
    sleep(BODY).await;
    Err(format!("upstream down for {id}"))
}

#[memoize]
async fn failing_async_opaque(id: u32) -> Result<u32, Opaque> {
    let _ = id;
    sleep(BODY).await;
    Err(Opaque)
}

/// Sleeps without blocking the task's thread (the tests' tokio has no timer).
async fn sleep(duration: Duration) {
    let (done, wait) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(duration);
        let _ = done.send(());
    });
    let _ = wait.await;
}

/// Runs `CALLERS` tasks of `call` at once; the slowest one's latency.
async fn from_tasks<F, R>(call: impl Fn() -> F) -> (Duration, Vec<R>)
where
    F: std::future::Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let future = call();
            tokio::spawn(async move {
                let began = Instant::now();
                let result = future.await;
                (began.elapsed(), result)
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    let mut results = Vec::new();
    for task in tasks {
        let (took, result) = task.await.unwrap();
        slowest = slowest.max(took);
        results.push(result);
    }
    (slowest, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_tasks_of_a_failing_key_share_its_error() {
    let (slowest, results) = from_tasks(|| failing_async(1)).await;
    assert!(
        slowest < BOUND,
        "the slowest of {CALLERS} tasks took {slowest:?}"
    );
    assert!(results
        .iter()
        .all(|r| r.as_ref().map_err(String::as_str) == Err("upstream down for 1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_tasks_of_an_error_that_is_not_clone_run_at_once() {
    let (slowest, results) = from_tasks(|| failing_async_opaque(1)).await;
    assert!(
        slowest < BOUND,
        "the slowest of {CALLERS} tasks took {slowest:?}"
    );
    assert!(results.iter().all(Result::is_err));
}

/// A generic error type (generic functions need `'static` type parameters for their caches):
/// compiles; a type parameter's error is never shared (its waiters are released).
#[memoize]
fn generic_error<E: Clone + Send + Sync + Default + 'static>(id: u32) -> Result<u32, E> {
    let _ = id;
    Err(E::default())
}

#[test]
fn a_generic_error_type_compiles() {
    assert_eq!(generic_error::<String>(1), Err(String::new()));
}
