//! `async fn` under `#[memoize]`: on a plain executor and on tokio, single-flight included.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use memo::memoize;

/// Pending once, then ready: lets another future run in between.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

static FETCHES: AtomicUsize = AtomicUsize::new(0);

#[memoize(maxsize = 16)]
async fn fetch(id: u32) -> Result<String, String> {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    YieldOnce(false).await;
    if id == 0 {
        Err("no such id".to_owned())
    } else {
        Ok(format!("item {id}"))
    }
}

#[test]
fn async_fn_is_memoized_on_a_plain_executor() {
    futures::executor::block_on(async {
        assert_eq!(fetch(1).await.unwrap(), "item 1");
        assert_eq!(fetch(1).await.unwrap(), "item 1");
        assert!(fetch(0).await.is_err());
        assert!(fetch(0).await.is_err()); // errors are not cached
        assert_eq!(FETCHES.load(Ordering::SeqCst), 3);
        // Concurrent awaits of one key in one task: the body runs once.
        let (a, b, c) = futures::join!(fetch(2), fetch(2), fetch(3));
        assert_eq!(
            (a.unwrap(), b.unwrap(), c.unwrap()),
            ("item 2".into(), "item 2".into(), "item 3".into())
        );
        assert_eq!(FETCHES.load(Ordering::SeqCst), 5);
        assert_eq!(fetch::uncached(2).await.unwrap(), "item 2");
        assert!(fetch::cache_invalidate(2));
    });
}

static TOKIO_RUNS: AtomicUsize = AtomicUsize::new(0);
const TASKS: u64 = 8;

#[memoize]
async fn shared(key: u32) -> u64 {
    TOKIO_RUNS.fetch_add(1, Ordering::SeqCst);
    // Until every task missed: the others are waiting for this one.
    while shared::cache_info().misses < TASKS {
        tokio::task::yield_now().await;
    }
    u64::from(key) * 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tasks_on_tokio_run_the_body_once() {
    let tasks: Vec<_> = (0..TASKS).map(|_| tokio::spawn(shared(21))).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 42);
    }
    assert_eq!(TOKIO_RUNS.load(Ordering::SeqCst), 1);
}

#[memoize]
async fn loops(n: u32) -> u32 {
    if n == 1 {
        Box::pin(loops(1)).await
    } else {
        n
    }
}

#[test]
fn async_recursion_on_the_same_key_panics_naming_the_function() {
    let panic = std::panic::catch_unwind(|| futures::executor::block_on(loops(1))).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.starts_with("`macro_async::loops` called itself"),
        "{message}"
    );
    assert_eq!(futures::executor::block_on(loops(2)), 2);
}

struct Service {
    calls: AtomicUsize,
}

impl Service {
    #[memoize(ignore = [self])]
    async fn lookup(&self, name: &str) -> usize {
        self.calls.fetch_add(1, Ordering::SeqCst);
        name.len()
    }
}

#[test]
fn async_methods() {
    let service = Service {
        calls: AtomicUsize::new(0),
    };
    futures::executor::block_on(async {
        assert_eq!(service.lookup("abc").await, 3);
        assert_eq!(service.lookup("abc").await, 3);
    });
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
    assert_eq!(Service::lookup_cache_info().hits, 1);
}

#[test]
fn memoized_futures_are_send_when_their_arguments_are() {
    fn assert_send<F: Future + Send>(future: F) -> F {
        future
    }
    drop(assert_send(fetch(5)));
    drop(assert_send(shared(5)));
}

#[path = "support/brittle.rs"]
mod brittle_value;
use brittle_value::Brittle;

static BRITTLE_RUNS: AtomicUsize = AtomicUsize::new(0);
static BRITTLE_NTH: AtomicUsize = AtomicUsize::new(0);
static BRITTLE_MISSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The first run waits until the two other tasks missed, then arms the panic of the
/// `BRITTLE_NTH`-th clone from now.
#[memoize]
async fn brittle(n: u32) -> Brittle {
    if BRITTLE_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        while brittle::cache_info().misses < BRITTLE_MISSES.load(Ordering::SeqCst) + 3 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        brittle_value::arm(BRITTLE_NTH.load(Ordering::SeqCst));
    }
    Brittle(n)
}

/// As the sync test in `macro_single_flight.rs`: waiting tasks are woken whichever clone of the
/// hand-over panics (a waker left unwoken would hang them for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clone_that_panics_in_the_hand_over_leaves_no_task_waiting() {
    for nth in 0..5 {
        brittle::cache_clear();
        BRITTLE_MISSES.store(brittle::cache_info().misses, Ordering::SeqCst);
        BRITTLE_RUNS.store(0, Ordering::SeqCst);
        BRITTLE_NTH.store(nth, Ordering::SeqCst);
        brittle_value::disarm();
        let key = 10 + nth as u32;
        let tasks: Vec<_> = (0..3).map(|_| tokio::spawn(brittle(key))).collect();
        let mut panicked = 0;
        for task in tasks {
            let joined = tokio::time::timeout(std::time::Duration::from_secs(20), task)
                .await
                .unwrap_or_else(|_| panic!("clone {nth} after the body: a task still waits"));
            match joined {
                Ok(value) => assert_eq!(value, Brittle(key)),
                Err(error) => {
                    assert!(error.is_panic());
                    panicked += 1;
                }
            }
        }
        assert!(
            panicked <= 1,
            "clone {nth}: only the panicking clone's task panics"
        );
        brittle_value::disarm();
        assert_eq!(brittle(key).await, Brittle(key));
    }
}
