//! The near cache (`local = N`) with invalidations in flight, tricky keys, maxsize, and the
//! async write gap.

use super::held::{Held, Hold};
use super::{sqlite, until, Upstream};
use memo::memoize;
use memo::stores::{self, PersistentStore, StoreCache};
use std::sync::{Condvar, Mutex, Once};
use std::time::Duration;

static SETUP: Once = Once::new();

/// Registers the stores of this module once.
fn setup() {
    SETUP.call_once(|| {
        sqlite("qa-near");
        sqlite("qa-keys");
        let dir = std::env::temp_dir().join(format!("memo-adversarial-{}", std::process::id()));
        let path = dir.join("qa-held.sqlite");
        let _ = std::fs::remove_file(&path);
        stores::register(
            "qa-held",
            Held {
                inner: PersistentStore::open(&path).unwrap(),
                hold: &GATE,
            },
        );
    });
}

static ROWS: Upstream = Upstream::new();

#[memoize(store = "qa-near", ttl = "1h", local = 100, local_ttl = "1h")]
fn row(n: u64) -> u64 {
    ROWS.read().unwrap() * 100 + n
}

#[test]
fn an_invalidation_during_the_body_wins_in_the_store_and_the_local_layer() {
    setup();
    ROWS.shut();
    let first = std::thread::spawn(|| row(1));
    ROWS.until_runs(1);
    ROWS.set_version(2);
    let _ = row::cache_invalidate(1);
    ROWS.open();
    assert_eq!(
        first.join().unwrap(),
        101,
        "the caller that computed gets its value"
    );
    assert_eq!(
        row(1),
        201,
        "the value begun before the invalidation was kept"
    );
    assert_eq!(row(1), 201, "the local layer");
    assert_eq!(ROWS.runs(), 2);
}

/// `Option<Option<u8>>` and `Option<()>`: `None` and `Some(None)` have the same JSON.
#[memoize(store = "qa-keys", local = 10)]
fn tri(x: Option<Option<u8>>) -> String {
    format!("{x:?}")
}

#[memoize(store = "qa-keys", local = 10)]
fn unit(x: Option<()>) -> String {
    format!("{x:?}")
}

#[test]
fn tricky_keys_never_share_an_entry_locally_or_in_the_store() {
    setup();
    for _ in 0..2 {
        assert_eq!(tri(None), "None");
        assert_eq!(tri(Some(None)), "Some(None)");
        assert_eq!(tri(Some(Some(0))), "Some(Some(0))");
        assert_eq!(unit(None), "None");
        assert_eq!(unit(Some(())), "Some(())");
    }
    assert!(tri::cache_invalidate(Some(None)));
    assert_eq!(tri(None), "None");
    assert_eq!(tri(Some(None)), "Some(None)");
    tri::cache_clear();
    assert_eq!(tri(Some(None)), "Some(None)");
    assert_eq!(tri(None), "None");
}

/// Holds one armed `set` (or, with `GATE_GETS`, one `get`) until released: a slow server or
/// a busy I/O thread.
struct Gate {
    /// (armed, entered, released)
    state: Mutex<(bool, bool, bool)>,
    changed: Condvar,
}

static GATE: Gate = Gate {
    state: Mutex::new((false, false, false)),
    changed: Condvar::new(),
};

impl Gate {
    fn arm(&self) {
        *self.state.lock().unwrap() = (true, false, false);
    }
    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        if !state.0 {
            return;
        }
        state.0 = false;
        state.1 = true;
        self.changed.notify_all();
        while !state.2 {
            state = self.changed.wait(state).unwrap();
        }
    }
    fn until_entered(&self) {
        let mut state = self.state.lock().unwrap();
        while !state.1 {
            state = self.changed.wait(state).unwrap();
        }
    }
    fn entered(&self) -> bool {
        self.state.lock().unwrap().1
    }
    fn release(&self) {
        self.state.lock().unwrap().2 = true;
        self.changed.notify_all();
    }
}

impl Hold for Gate {
    fn before_set(&self) {
        if !GATE_GETS.load(std::sync::atomic::Ordering::SeqCst) {
            self.pass();
        }
    }
    fn after_get(&self) {
        if GATE_GETS.load(std::sync::atomic::Ordering::SeqCst) {
            self.pass();
        }
    }
}

/// Whether `GATE` holds reads (after they read) instead of writes.
static GATE_GETS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Serialises the tests that use `GATE`.
static HELD: Mutex<()> = Mutex::new(());

static HELD_ROWS: Upstream = Upstream::new();

#[memoize(store = "qa-held", ttl = "1h", local = 100, local_ttl = "1h")]
fn held_row(n: u64) -> u64 {
    HELD_ROWS.read().unwrap() * 100 + n
}

#[memoize(store = "qa-held", ttl = "1h", local = 100, local_ttl = "1h")]
async fn held_async(n: u64) -> u64 {
    HELD_ROWS.read().unwrap() * 100 + n
}

#[test]
fn an_invalidation_during_the_store_write_wins_in_the_local_layer_too() {
    setup();
    let _serial = HELD.lock().unwrap_or_else(|e| e.into_inner());
    HELD_ROWS.set_version(1);
    GATE.arm();
    let first = std::thread::spawn(|| held_row(7));
    GATE.until_entered();
    HELD_ROWS.set_version(2);
    let invalidation = std::thread::spawn(|| held_row::cache_invalidate(7));
    std::thread::sleep(Duration::from_millis(100));
    GATE.release();
    invalidation.join().unwrap();
    assert_eq!(first.join().unwrap(), 107);
    assert_eq!(held_row(7), 207, "stale value after the invalidation");
    assert_eq!(held_row(7), 207, "stale value in the local layer");
}

#[test]
fn an_async_write_under_way_and_an_invalidation_from_a_task_on_one_thread() {
    setup();
    let _serial = HELD.lock().unwrap_or_else(|e| e.into_inner());
    HELD_ROWS.set_version(1);
    GATE.arm();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let releaser = std::thread::spawn(|| {
        GATE.until_entered();
        std::thread::sleep(Duration::from_millis(100));
        GATE.release();
    });
    runtime.block_on(async {
        let first = tokio::spawn(held_async(8));
        // Runs while the first task's write is held at the store (or before it started).
        let invalidate = tokio::spawn(async {
            while !GATE.entered() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            HELD_ROWS.set_version(2);
            held_async::cache_invalidate(8)
        });
        invalidate.await.unwrap();
        assert_eq!(first.await.unwrap(), 108);
        assert_eq!(
            held_async(8).await,
            208,
            "stale value after the invalidation"
        );
        assert_eq!(held_async(8).await, 208, "stale value in the local layer");
    });
    releaser.join().unwrap();
}

static DROPPED: Upstream = Upstream::new();

#[memoize(store = "qa-near", ttl = "1h", local = 100, local_ttl = "1h")]
async fn dropped(n: u64) -> u64 {
    let version = DROPPED.read_async().await.unwrap();
    tokio::task::yield_now().await;
    version * 100 + n
}

#[test]
fn a_dropped_future_leaves_nothing_behind() {
    setup();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    DROPPED.shut();
    runtime.block_on(async {
        // The caller gives up while the body runs (its future is dropped).
        let call = tokio::spawn(dropped(3));
        while DROPPED.runs() < 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        call.abort();
        let _ = call.await;
    });
    DROPPED.set_version(2);
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(100));
        DROPPED.open();
    });
    dropped::cache_invalidate(3);
    runtime.block_on(async {
        let value = tokio::time::timeout(Duration::from_secs(10), dropped(3))
            .await
            .expect("a later caller waited for a dropped computation");
        assert_eq!(value, 203);
        assert_eq!(dropped(3).await, 203);
    });
    until(|| DROPPED.runs() >= 2);
}

static UNSHARED: Upstream = Upstream::new();

#[memoize(store = "qa-near", ttl = "1h", local = 100, single_flight = false)]
fn unshared(n: u64) -> u64 {
    UNSHARED.read().unwrap() * 100 + n
}

#[test]
fn without_single_flight_an_invalidation_during_the_body_wins_in_the_local_layer() {
    setup();
    UNSHARED.shut();
    let first = std::thread::spawn(|| unshared(1));
    UNSHARED.until_runs(1);
    UNSHARED.set_version(2);
    let _ = unshared::cache_invalidate(1);
    UNSHARED.open();
    assert_eq!(first.join().unwrap(), 101);
    assert_eq!(
        unshared(1),
        201,
        "the value begun before the invalidation was kept"
    );
    assert_eq!(unshared(1), 201, "the local layer");
    assert_eq!(UNSHARED.runs(), 2);
}

static COUNTS: Upstream = Upstream::new();

#[memoize(store = "qa-near", ttl = "1h", local = 100)]
fn counts(n: u64) -> u64 {
    COUNTS.read().unwrap() + n
}

#[test]
fn local_hits_store_hits_and_waits_add_up_to_the_calls() {
    setup();
    let mut calls = 0;
    for _ in 0..5 {
        assert_eq!(counts(1), 2);
        calls += 1;
    }
    let _ = counts::cache_invalidate(1);
    COUNTS.shut();
    let callers: Vec<_> = (0..8).map(|_| std::thread::spawn(|| counts(1))).collect();
    calls += 8;
    COUNTS.until_runs(2);
    std::thread::sleep(Duration::from_millis(100));
    COUNTS.open();
    for caller in callers {
        assert_eq!(caller.join().unwrap(), 2);
    }
    let info = counts::cache_info();
    assert_eq!(info.hits + info.misses + info.waits, calls, "{info}");
    assert_eq!(info.misses, 2, "{info}");
}

#[test]
fn a_read_under_way_during_an_invalidation_or_a_clear_is_not_kept_locally() {
    setup();
    let _serial = HELD.lock().unwrap_or_else(|e| e.into_inner());
    for clear in [false, true] {
        let path = if clear {
            "qa::read-clear"
        } else {
            "qa::read-remove"
        };
        let writer: StoreCache<u64, String> = StoreCache::new("qa-held", path);
        let reader: &'static StoreCache<u64, String> = Box::leak(Box::new(
            StoreCache::new("qa-held", path).with_local(10, Duration::from_secs(3600)),
        ));
        writer.insert(1, "v1".into());
        GATE_GETS.store(true, std::sync::atomic::Ordering::SeqCst);
        GATE.arm();
        let read = std::thread::spawn(|| reader.get_by_keeping(&1, |k| *k == 1, || 1));
        GATE.until_entered();
        if clear {
            reader.reset();
        } else {
            assert!(reader.remove(&1));
        }
        GATE.release();
        assert_eq!(read.join().unwrap().as_deref(), Some("v1"), "{path}");
        GATE_GETS.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            reader.local_len(),
            0,
            "{path}: the read begun before was kept"
        );
        assert_eq!(reader.get_by_keeping(&1, |k| *k == 1, || 1), None, "{path}");
    }
}
