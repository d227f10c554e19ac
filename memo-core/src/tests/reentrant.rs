//! Lookups that cannot take their thread's read stripe (here: a value's `Clone` that looks the
//! cache up again, so its thread already holds the stripe) find the entry under the lock and
//! clone it after releasing it, the slot pinned meanwhile. Before, they cloned under the lock:
//! a `Clone` that re-entered twice deadlocked on it, and one that stalled stalled every writer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::Cache;

/// How long a test waits for what should happen at once before it fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

/// A stalled `Clone`: the first clone of a gated value says it has started and waits for `go`.
#[derive(Default)]
struct Gate {
    entered: AtomicBool,
    go: AtomicBool,
    /// The clone waited the whole [`PATIENCE`] without `go`.
    gave_up: AtomicBool,
}

enum Node {
    Plain(u32),
    /// Its clone looks `key` up in the cache.
    Reenter(Weak<Cache<u32, Node>>, u32),
    /// Its clone stalls at the gate; `alive` is cleared when the value is dropped.
    Gated(Arc<Gate>, Arc<AtomicBool>),
    /// Its clone stores `key` in the cache.
    Writing(Weak<Cache<u32, Node>>, u32),
}

impl Clone for Node {
    fn clone(&self) -> Self {
        match self {
            Node::Plain(n) => Node::Plain(*n),
            Node::Reenter(cache, key) => {
                if let Some(cache) = cache.upgrade() {
                    assert!(cache.get(key).is_some(), "key {key} is there");
                }
                Node::Reenter(cache.clone(), *key)
            }
            Node::Gated(gate, alive) => {
                if !gate.entered.swap(true, Ordering::SeqCst) {
                    let start = Instant::now();
                    while !gate.go.load(Ordering::SeqCst) {
                        if start.elapsed() > PATIENCE {
                            gate.gave_up.store(true, Ordering::SeqCst);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                assert!(alive.load(Ordering::SeqCst), "cloned after it was dropped");
                Node::Gated(gate.clone(), alive.clone())
            }
            Node::Writing(cache, key) => {
                if let Some(cache) = cache.upgrade() {
                    cache.insert(*key, Node::Plain(*key));
                }
                Node::Writing(cache.clone(), *key)
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Node::Gated(_, alive) = self {
            alive.store(false, Ordering::SeqCst);
        }
    }
}

/// Runs `f` on its own thread and fails if it has not returned within [`PATIENCE`].
fn within_patience(f: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    assert!(
        finished.recv_timeout(PATIENCE).is_ok(),
        "still running after {PATIENCE:?}: a deadlock"
    );
}

#[test]
fn a_clone_that_looks_the_cache_up_again_and_again_returns() {
    within_patience(|| {
        let cache: Arc<Cache<u32, Node>> = Arc::new(Cache::new(100));
        cache.insert(0, Node::Plain(0));
        for key in 1..=6 {
            cache.insert(key, Node::Reenter(Arc::downgrade(&cache), key - 1));
        }
        // Seven lookups, six of them nested in clones (which find the stripe held); `peek`
        // counts nothing itself, its clone's six lookups do.
        for _ in 0..3 {
            assert!(matches!(cache.get(&6), Some(Node::Reenter(_, 5))));
            assert!(cache.peek(&6).is_some());
        }
        let info = cache.info();
        assert_eq!(info.hits, 3 * 7 + 3 * 6, "every nested lookup counted once");
        cache.validate();
    });
}

/// A lookup without a stripe, stalled in its `Clone`, while the writer stores many keys: the
/// writer is not held up, the stalled clone's value stays alive although it was evicted, and
/// the storage stays within the capacity plus a bound.
#[test]
fn a_stalled_clone_without_a_stripe_holds_up_no_writer() {
    within_patience(|| {
        let maxsize = 100;
        let cache: Arc<Cache<u32, Node>> = Arc::new(Cache::new(maxsize));
        let gate = Arc::new(Gate::default());
        let alive = Arc::new(AtomicBool::new(true));
        cache.insert(1, Node::Gated(gate.clone(), alive.clone()));
        cache.insert(0, Node::Reenter(Arc::downgrade(&cache), 1));
        let reader = {
            let cache = cache.clone();
            std::thread::spawn(move || drop(cache.get(&0)))
        };
        while !gate.entered.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // The stalled clone's entry is evicted, and its slot retired, by the first inserts.
        for key in 10..20_010 {
            cache.insert(key, Node::Plain(key));
        }
        assert!(
            alive.load(Ordering::SeqCst),
            "the value being cloned was dropped"
        );
        let handed = cache.slots_handed_out();
        let stripes = crate::concurrent::stripe::Stripes::new().len();
        let most = crate::concurrent::shard::most_slots(maxsize, stripes);
        assert!(handed <= most, "{handed} slots for a storage of {most}");
        gate.go.store(true, Ordering::SeqCst);
        reader.join().expect("the reader's lookup");
        assert!(
            !gate.gave_up.load(Ordering::SeqCst),
            "the writer waited for the stalled clone"
        );
        // Unpinned, the evicted entry goes at the next reclaim (`len` reclaims).
        assert_eq!(cache.len(), maxsize);
        assert!(
            !alive.load(Ordering::SeqCst),
            "the evicted value is dropped once unpinned"
        );
        cache.validate();
    });
}

/// `remove` clones the value it returns with the lock released (the slot pinned meanwhile), as
/// a lookup without a stripe does: a `Clone` that writes to the cache returns (it deadlocked on
/// the lock before), and a stalled one holds up no writer; the removed entry is still dropped
/// (and reported) before `remove` returns.
#[test]
fn remove_clones_without_the_lock() {
    within_patience(|| {
        let cache: Arc<Cache<u32, Node>> = Arc::new(Cache::new(100));
        cache.insert(1, Node::Writing(Arc::downgrade(&cache), 2));
        assert!(matches!(cache.remove(&1), Some(Node::Writing(_, 2))));
        assert!(cache.peek(&1).is_none());
        assert!(
            matches!(cache.peek(&2), Some(Node::Plain(2))),
            "the clone's insert"
        );
        cache.validate();
    });
    within_patience(|| {
        let cache: Arc<Cache<u32, Node>> = Arc::new(Cache::new(100));
        let gate = Arc::new(Gate::default());
        let alive = Arc::new(AtomicBool::new(true));
        cache.insert(1, Node::Gated(gate.clone(), alive.clone()));
        let remover = {
            let cache = cache.clone();
            std::thread::spawn(move || cache.remove(&1))
        };
        while !gate.entered.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        for key in 10..2_010 {
            cache.insert(key, Node::Plain(key));
        }
        assert!(
            alive.load(Ordering::SeqCst),
            "the value being cloned was dropped"
        );
        gate.go.store(true, Ordering::SeqCst);
        // Kept: the clone shares `alive` with the value it was cloned from.
        let removed = remover.join().expect("the removal");
        assert!(
            matches!(removed, Some(Node::Gated(..))),
            "the value returned"
        );
        assert!(
            !gate.gave_up.load(Ordering::SeqCst),
            "the writer waited for the stalled clone"
        );
        assert!(
            !alive.load(Ordering::SeqCst),
            "the removed value is dropped by the time `remove` returns"
        );
        drop(removed);
        cache.validate();
    });
}
