//! Negative caching, opt-in: `err_ttl` caches a `Result` function's `Err` and `none_ttl` an
//! `Option` function's `None`, each for its own (usually short) time; without them an `Err` or a
//! `None` is never cached.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Barrier};
use std::time::Duration;

use memo::memoize;

fn runs(counter: &AtomicU32) -> u32 {
    counter.load(Ordering::SeqCst)
}

static LOOKUPS: AtomicU32 = AtomicU32::new(0);

/// A row that exists only for even ids; the upstream fails for the others.
#[memoize(ttl = "1h", err_ttl = "300ms")]
fn lookup(id: u32) -> Result<String, String> {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    if id.is_multiple_of(2) {
        Ok(format!("row {id}"))
    } else {
        Err(format!("upstream down for {id}"))
    }
}

#[test]
fn an_err_is_cached_for_err_ttl_then_retried() {
    assert_eq!(lookup(1), Err("upstream down for 1".to_string()));
    assert_eq!(lookup(1), Err("upstream down for 1".to_string()));
    assert_eq!(runs(&LOOKUPS), 1, "the cached Err answers the second call");
    assert_eq!(lookup(2), Ok("row 2".to_string()));
    assert_eq!(lookup(2), Ok("row 2".to_string()));
    assert_eq!(runs(&LOOKUPS), 2);
    let info = lookup::cache_info();
    assert_eq!((info.hits, info.misses, info.waits), (2, 2, 0));
    // After err_ttl the error is retried; the Ok value lives for its own ttl.
    std::thread::sleep(Duration::from_millis(450));
    assert!(lookup(1).is_err());
    assert_eq!(lookup(2), Ok("row 2".to_string()));
    assert_eq!(runs(&LOOKUPS), 3);
    // Invalidation and clearing remove cached errors too.
    assert!(lookup::cache_invalidate(1));
    assert!(lookup(1).is_err());
    assert_eq!(runs(&LOOKUPS), 4);
    lookup::cache_clear();
    assert!(lookup(1).is_err());
    assert_eq!(runs(&LOOKUPS), 5);
    assert_eq!(lookup::cache_info().misses, 1);
}

static PLAIN_RUNS: AtomicU32 = AtomicU32::new(0);

/// Without `err_ttl`, today's rule: an `Err` is never cached.
#[memoize(ttl = "1h")]
fn uncached_errors(id: u32) -> Result<u32, String> {
    PLAIN_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(format!("no {id}"))
}

#[test]
fn without_the_option_errors_and_nones_are_not_cached() {
    assert!(uncached_errors(1).is_err());
    assert!(uncached_errors(1).is_err());
    assert_eq!(runs(&PLAIN_RUNS), 2);
    assert_eq!(uncached_errors::cache_info().currsize, 0);
}

static ROWS: AtomicU32 = AtomicU32::new(0);

/// A missing row: `None` is cached for `none_ttl`.
#[memoize(none_ttl = "5m")]
fn find_row(id: u32) -> Option<u32> {
    ROWS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(150));
    (id == 7).then_some(7)
}

#[test]
fn a_missing_row_is_looked_up_once_by_concurrent_and_later_callers() {
    const CALLERS: usize = 16;
    let start = Barrier::new(CALLERS);
    std::thread::scope(|s| {
        for _ in 0..CALLERS {
            s.spawn(|| {
                start.wait();
                assert_eq!(find_row(3), None);
            });
        }
    });
    assert_eq!(find_row(3), None);
    assert_eq!(find_row(7), Some(7));
    assert_eq!(find_row(7), Some(7));
    let info = find_row::cache_info();
    // One run for 3 (its joined callers waited, later calls hit the cached None), one for 7.
    assert_eq!(runs(&ROWS), 2);
    assert_eq!(info.misses, 2);
    assert_eq!(info.hits + info.misses + info.waits, CALLERS as u64 + 3);
    assert!(find_row::cache_invalidate(3));
    assert_eq!(find_row(3), None);
    assert_eq!(runs(&ROWS), 3);
}

static UNSHARED_RUNS: AtomicU32 = AtomicU32::new(0);

/// Without single-flight, with a `key` expression.
#[memoize(single_flight = false, key = name.to_lowercase(), none_ttl = "5m")]
fn unshared(name: &str) -> Option<u32> {
    UNSHARED_RUNS.fetch_add(1, Ordering::SeqCst);
    name.parse().ok()
}

#[test]
fn negative_caching_works_without_single_flight_and_with_a_key_expression() {
    assert_eq!(unshared("X"), None);
    assert_eq!(unshared("x"), None);
    assert_eq!(unshared("4"), Some(4));
    assert_eq!(unshared("4"), Some(4));
    assert_eq!(runs(&UNSHARED_RUNS), 2);
    let info = unshared::cache_info();
    assert_eq!((info.hits, info.misses), (2, 2));
    assert!(unshared::cache_invalidate("X"));
    assert_eq!(unshared("x"), None);
    assert_eq!(runs(&UNSHARED_RUNS), 3);
}

static RACED_RUNS: AtomicU32 = AtomicU32::new(0);
static RACED_GATE: std::sync::Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>> =
    std::sync::Mutex::new(None);

/// A failure whose computation is still running when the key is invalidated.
#[memoize(err_ttl = "5m")]
fn raced(id: u32) -> Result<u32, String> {
    if RACED_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        let gate = RACED_GATE.lock().unwrap().take().unwrap();
        gate.0.send(()).unwrap();
        gate.1.recv().unwrap();
    }
    Err(format!("down {id}"))
}

static RACED_PLAIN_RUNS: AtomicU32 = AtomicU32::new(0);
static RACED_PLAIN_GATE: std::sync::Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>> =
    std::sync::Mutex::new(None);

#[memoize(err_ttl = "5m", single_flight = false)]
fn raced_plain(id: u32) -> Result<u32, String> {
    if RACED_PLAIN_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        let gate = RACED_PLAIN_GATE.lock().unwrap().take().unwrap();
        gate.0.send(()).unwrap();
        gate.1.recv().unwrap();
    }
    Err(format!("down {id}"))
}

/// Runs `call` on a thread; once its body is running, `invalidate`s, lets the body finish with
/// its `Err`, and checks that the next call runs the body again.
fn invalidation_wins(
    gate: &std::sync::Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
    counter: &AtomicU32,
    call: fn() -> Result<u32, String>,
    invalidate: impl FnOnce(),
) {
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    *gate.lock().unwrap() = Some((started_tx, go_rx));
    let first = std::thread::spawn(call);
    started_rx.recv().unwrap();
    invalidate();
    go_tx.send(()).unwrap();
    assert!(first.join().unwrap().is_err());
    assert!(call().is_err());
    assert_eq!(
        runs(counter),
        2,
        "an Err computed before the invalidation was cached"
    );
    assert!(call().is_err());
    assert_eq!(runs(counter), 2, "the Err computed after it is cached");
}

#[test]
fn an_err_computed_before_an_invalidation_is_not_cached() {
    invalidation_wins(
        &RACED_GATE,
        &RACED_RUNS,
        || raced(1),
        || {
            raced::cache_invalidate(1);
        },
    );
    invalidation_wins(
        &RACED_PLAIN_GATE,
        &RACED_PLAIN_RUNS,
        || raced_plain(1),
        raced_plain::cache_clear,
    );
}

static ASYNC_RUNS: AtomicU32 = AtomicU32::new(0);

#[memoize(ttl = "1h", err_ttl = "300ms")]
async fn fetch(id: u32) -> Result<u32, String> {
    ASYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Err(format!("timeout {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn async_functions_cache_their_errors_for_err_ttl() {
    let calls: Vec<_> = (0..10).map(|_| tokio::spawn(fetch(1))).collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Err("timeout 1".to_string()));
    }
    assert_eq!(fetch(1).await, Err("timeout 1".to_string()));
    assert_eq!(runs(&ASYNC_RUNS), 1);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(fetch(1).await.is_err());
    assert_eq!(runs(&ASYNC_RUNS), 2);
    let info = fetch::cache_info();
    assert_eq!(info.hits + info.misses + info.waits, 12);
    assert_eq!(info.misses, 2);
}

#[cfg(feature = "persistent")]
mod stored {
    use super::*;
    use memo::stores::{self, PersistentStore};

    static STORED_RUNS: AtomicU32 = AtomicU32::new(0);

    #[memoize(store = "negative-sqlite", err_ttl = "300ms")]
    fn account(id: u32) -> Result<String, String> {
        STORED_RUNS.fetch_add(1, Ordering::SeqCst);
        if id == 0 {
            Err("no account 0".to_string())
        } else {
            Ok(format!("account {id}"))
        }
    }

    static STORED_ROWS: AtomicU32 = AtomicU32::new(0);

    #[memoize(store = "negative-sqlite", none_ttl = "5m")]
    fn user(id: u32) -> Option<String> {
        STORED_ROWS.fetch_add(1, Ordering::SeqCst);
        (id != 0).then(|| format!("user {id}"))
    }

    #[test]
    fn functions_with_a_store_cache_errors_and_nones_in_the_process() {
        let dir = std::env::temp_dir().join(format!("memo-negative-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        stores::register(
            "negative-sqlite",
            PersistentStore::open(dir.join("negative.sqlite")).unwrap(),
        );
        assert!(account(0).is_err());
        assert!(account(0).is_err());
        assert_eq!(account(1), Ok("account 1".to_string()));
        assert_eq!(account(1), Ok("account 1".to_string()));
        assert_eq!(runs(&STORED_RUNS), 2);
        let info = account::cache_info();
        assert_eq!((info.hits, info.misses), (2, 2));
        std::thread::sleep(Duration::from_millis(450));
        assert!(account(0).is_err());
        assert_eq!(runs(&STORED_RUNS), 3);
        assert!(account::cache_invalidate(0));
        assert!(account(0).is_err());
        assert_eq!(runs(&STORED_RUNS), 4);

        assert_eq!(user(0), None);
        assert_eq!(user(0), None);
        assert_eq!(user(2), Some("user 2".to_string()));
        assert_eq!(user(2), Some("user 2".to_string()));
        assert_eq!(runs(&STORED_ROWS), 2);
        user::cache_clear();
        assert_eq!(user(0), None);
        assert_eq!(runs(&STORED_ROWS), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

static GENERIC_RUNS: AtomicU32 = AtomicU32::new(0);

/// One memo per instantiation, each with its cached `None`s.
#[memoize(none_ttl = "5m")]
fn first_of<T: Clone + std::hash::Hash + Eq + Send + Sync + 'static>(items: Vec<T>) -> Option<T> {
    GENERIC_RUNS.fetch_add(1, Ordering::SeqCst);
    items.first().cloned()
}

#[derive(Default)]
struct Repo {
    finds: memo::InstanceCache,
    runs: AtomicU32,
}

impl Repo {
    #[memoize(cache_field = finds, err_ttl = "5m")]
    fn find(&self, id: u32) -> Result<u32, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Err(format!("no {id}"))
    }
}

#[test]
fn generic_functions_and_instance_caches_cache_failures_too() {
    assert_eq!(first_of::<u8>(vec![]), None);
    assert_eq!(first_of::<u8>(vec![]), None);
    assert_eq!(first_of::<u16>(vec![]), None);
    assert_eq!(first_of(vec![3u8]), Some(3));
    assert_eq!(runs(&GENERIC_RUNS), 3);
    assert_eq!(first_of::cache_info().hits, 1);

    let repo = Repo::default();
    assert!(repo.find(1).is_err());
    assert!(repo.find(1).is_err());
    assert_eq!(runs(&repo.runs), 1);
    assert_eq!(repo.finds.info().map(|i| (i.hits, i.misses)), Some((1, 1)));
    repo.finds.clear();
    assert!(repo.find(1).is_err());
    assert_eq!(runs(&repo.runs), 2);
}
