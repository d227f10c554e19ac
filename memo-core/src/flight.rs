//! Single-flight: when several callers miss the same key at once, one of them (the leader) runs
//! the function and the others wait for its value instead of computing it again.
//!
//! - **One table per memoized function**: the keys being computed, each with its [`Flight`],
//!   behind one lock that is taken on a miss only (the hit path never sees it) and never held
//!   while user code other than `Hash` and `Eq` runs.
//! - **Sync and async**: threads wait on the flight's `Condvar`; tasks wait on a list of wakers
//!   kept under the flight's own mutex, so a completion cannot slip between a waiter's check and
//!   its registration. No runtime is named: it works on tokio and on any plain executor.
//! - **Recursion**: each thread knows which flights it is leading right now (a sync leader for
//!   the whole call, an async leader while its body is being polled). A caller that would wait
//!   for one of them is waiting for itself: it panics with the function's name instead of hanging.
//! - **Failure**: a leader that panics, returns a value that is not cached (`Err`, `None`) or is
//!   dropped (a cancelled future) abandons its flight: nothing is cached, nothing is poisoned
//!   (`parking_lot` locks), and the waiters wake up and try again, one of them as the new leader.
//!
//! A cycle across threads (thread 1 computes `a`, which needs `b`, which thread 2 computes and
//! which needs `a`) would wait forever, as it does with every single-flight implementation. Such a
//! cycle is infinite recursion in the plain function too, so it only arises in programs that
//! already never return.

use std::cell::RefCell;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use hashbrown::{DefaultHashBuilder, HashTable};
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::memo::FunctionCache;
#[cfg(test)]
use crate::Cache;

thread_local! {
    /// The flights this thread is leading right now, innermost last, by id.
    static LEADING: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// The id of the next flight, unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The keys of one memoized function that are being computed right now.
pub struct Flights<K, V> {
    /// The function's name, for the recursion panic.
    name: Box<str>,
    table: Mutex<HashTable<Entry<K, V>>>,
    hasher: DefaultHashBuilder,
}

struct Entry<K, V> {
    hash: u64,
    key: K,
    id: u64,
    /// Made by the first waiter: a flight nobody waits for allocates nothing.
    flight: Option<Arc<Flight<V>>>,
}

/// One computation in progress, shared by its leader and its waiters.
struct Flight<V> {
    state: Mutex<State<V>>,
    /// Notified, with every waker, when the outcome leaves `Running`.
    done: Condvar,
}

struct State<V> {
    outcome: Outcome<V>,
    wakers: Vec<Waker>,
}

enum Outcome<V> {
    Running,
    /// The leader's value, for the waiters to clone.
    Ready(V),
    /// The leader panicked, was cancelled or computed nothing to cache: try again.
    Abandoned,
}

/// What [`Flights::join`] found: the value, or the duty to compute it.
pub enum Joined<'a, K, V> {
    /// Another caller computed the value while this one waited (or it was cached meanwhile).
    Ready(V),
    /// This caller computes the value: run the body with [`Leader::call`] or [`Leader::run`],
    /// then [`Flights::complete`]; dropping the leader instead releases the waiters empty-handed.
    Lead(Leader<'a, K, V>),
}

/// How a caller's key is compared and, when it leads, stored.
trait Probe<K> {
    fn matches(&mut self, key: &K) -> bool;
    fn into_key(self) -> K;
}

/// A borrowed form of the key (`(&str, &u32)` for a `(String, u32)` key) and how to own it.
struct Borrowed<F, M> {
    is_match: F,
    make_key: M,
}

impl<K, F: FnMut(&K) -> bool, M: FnOnce() -> K> Probe<K> for Borrowed<F, M> {
    fn matches(&mut self, key: &K) -> bool {
        (self.is_match)(key)
    }
    fn into_key(self) -> K {
        (self.make_key)()
    }
}

/// An owned key, as a `key = ...` expression computes it.
struct Owned<K>(K);

impl<K: Eq> Probe<K> for Owned<K> {
    fn matches(&mut self, key: &K) -> bool {
        *key == self.0
    }
    fn into_key(self) -> K {
        self.0
    }
}

/// One step of joining: done, or a flight to wait for.
enum Step<'a, K, V> {
    Joined(Joined<'a, K, V>),
    Wait(Arc<Flight<V>>),
}

impl<K, V> Flights<K, V> {
    /// An empty table for the function called `name` (named in the recursion panic).
    pub fn new(name: impl Into<Box<str>>) -> Self {
        Flights {
            name: name.into(),
            table: Mutex::new(HashTable::new()),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// How many keys are being computed right now.
    pub fn in_flight(&self) -> usize {
        self.table.lock().len()
    }

    /// Removes the flight `id`: its key and its waiters' flight, if any waited.
    #[allow(clippy::type_complexity)]
    fn remove(
        &self,
        hash: u64,
        id: u64,
    ) -> (
        MutexGuard<'_, HashTable<Entry<K, V>>>,
        Option<(K, Option<Arc<Flight<V>>>)>,
    ) {
        let mut table = self.table.lock();
        let removed = table
            .find_entry(hash, |entry| entry.id == id)
            .ok()
            .map(|entry| {
                let entry = entry.remove().0;
                (entry.key, entry.flight)
            });
        (table, removed)
    }
}

impl<K: Hash + Eq, V: Clone> Flights<K, V> {
    /// Waits for the caller computing the key that `probe` borrows, or becomes that caller.
    /// `probe` must hash as the key does; `is_match` compares it with a stored key; `make_key`
    /// owns it. Call it after a cache miss: it checks the cache again before leading.
    pub fn join<Q: Hash + ?Sized, C: FunctionCache<K, V>>(
        &self,
        cache: &C,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
        make_key: impl FnOnce() -> K,
    ) -> Joined<'_, K, V> {
        let hash = self.hasher.hash_one(probe);
        self.join_blocking(cache, hash, Borrowed { is_match, make_key })
    }

    /// [`join`](Flights::join) for an owned key.
    pub fn join_owned<C: FunctionCache<K, V>>(&self, cache: &C, key: K) -> Joined<'_, K, V> {
        let hash = self.hasher.hash_one(&key);
        self.join_blocking(cache, hash, Owned(key))
    }

    /// [`join`](Flights::join) for an `async fn`: waits without blocking the thread.
    pub async fn join_async<Q: Hash + ?Sized, C: FunctionCache<K, V>>(
        &self,
        cache: &C,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
        make_key: impl FnOnce() -> K,
    ) -> Joined<'_, K, V> {
        let hash = self.hasher.hash_one(probe);
        self.join_waiting(cache, hash, Borrowed { is_match, make_key })
            .await
    }

    /// [`join_owned`](Flights::join_owned) for an `async fn`.
    pub async fn join_owned_async<C: FunctionCache<K, V>>(
        &self,
        cache: &C,
        key: K,
    ) -> Joined<'_, K, V> {
        let hash = self.hasher.hash_one(&key);
        self.join_waiting(cache, hash, Owned(key)).await
    }

    fn join_blocking<C: FunctionCache<K, V>>(
        &self,
        cache: &C,
        hash: u64,
        probe: impl Probe<K>,
    ) -> Joined<'_, K, V> {
        let mut probe = Some(probe);
        loop {
            match self.step(cache, hash, &mut probe) {
                Step::Joined(joined) => return joined,
                Step::Wait(flight) => {
                    if let Some(value) = flight.wait() {
                        return Joined::Ready(value);
                    }
                }
            }
        }
    }

    async fn join_waiting<C: FunctionCache<K, V>>(
        &self,
        cache: &C,
        hash: u64,
        probe: impl Probe<K>,
    ) -> Joined<'_, K, V> {
        let mut probe = Some(probe);
        loop {
            match self.step(cache, hash, &mut probe) {
                Step::Joined(joined) => return joined,
                Step::Wait(flight) => {
                    let waiting = Waiting {
                        flight: &flight,
                        slot: None,
                    };
                    if let Some(value) = waiting.await {
                        return Joined::Ready(value);
                    }
                }
            }
        }
    }

    /// Under the table's lock: the flight to wait for, or a new one that this caller leads.
    fn step<P: Probe<K>, C: FunctionCache<K, V>>(
        &self,
        cache: &C,
        hash: u64,
        probe: &mut Option<P>,
    ) -> Step<'_, K, V> {
        let mut table = self.table.lock();
        let found = match probe {
            Some(probe) => table.find_mut(hash, |entry| probe.matches(&entry.key)),
            None => None,
        };
        if let Some(entry) = found {
            let id = entry.id;
            let flight = Arc::clone(entry.flight.get_or_insert_with(|| Arc::new(Flight::new())));
            drop(table);
            self.check_not_leading(id);
            return Step::Wait(flight);
        }
        let Some(probe) = probe.take() else {
            unreachable!("a caller stops joining once it leads");
        };
        let key = probe.into_key();
        // A leader that finished between this caller's miss and now stored its value first.
        if !C::REMOTE {
            if let Some(value) = cache.peek(&key) {
                return Step::Joined(Joined::Ready(value));
            }
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            hash,
            key,
            id,
            flight: None,
        };
        table.insert_unique(hash, entry, |entry| entry.hash);
        Step::Joined(Joined::Lead(Leader {
            flights: self,
            hash,
            id,
            finished: false,
        }))
    }

    /// Stores the leader's `value` in `cache` and hands it to the waiters.
    pub fn complete<C: FunctionCache<K, V>>(
        &self,
        mut leader: Leader<'_, K, V>,
        cache: &C,
        value: V,
    ) {
        leader.finished = true;
        let (table, removed) = self.remove(leader.hash, leader.id);
        let Some((key, flight)) = removed else {
            return;
        };
        let shared = flight.map(|flight| (flight, value.clone()));
        if C::REMOTE {
            // The waiters take the value from the flight; the store is written without the lock.
            drop(table);
            if let Some((flight, value)) = shared {
                flight.finish(Outcome::Ready(value));
            }
            cache.insert_if_absent(key, value);
            return;
        }
        // Stored before the table's lock is released: a caller that misses the cache now and
        // finds no flight finds the value when it checks the cache again.
        cache.insert_if_absent(key, value);
        drop(table);
        if let Some((flight, value)) = shared {
            flight.finish(Outcome::Ready(value));
        }
    }

    /// Panics if this thread leads the flight `id`: waiting for it would wait for itself.
    fn check_not_leading(&self, id: u64) {
        if LEADING.with(|leading| leading.borrow().contains(&id)) {
            panic!(
                "`{}` called itself with the arguments it is computing: with single-flight the \
                 call would wait for its own result forever; a memoized function must not recurse \
                 on the same arguments",
                self.name
            );
        }
    }
}

impl<V> Flight<V> {
    fn new() -> Self {
        Flight {
            state: Mutex::new(State {
                outcome: Outcome::Running,
                wakers: Vec::new(),
            }),
            done: Condvar::new(),
        }
    }

    fn finish(&self, outcome: Outcome<V>) {
        let wakers = {
            let mut state = self.state.lock();
            state.outcome = outcome;
            std::mem::take(&mut state.wakers)
        };
        self.done.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }
}

impl<V: Clone> Flight<V> {
    /// Blocks until the leader is done: its value, or `None` when it abandoned the flight.
    fn wait(&self) -> Option<V> {
        let mut state = self.state.lock();
        loop {
            match &state.outcome {
                Outcome::Running => self.done.wait(&mut state),
                Outcome::Ready(value) => return Some(value.clone()),
                Outcome::Abandoned => return None,
            }
        }
    }
}

/// Waits for a flight without blocking the thread.
struct Waiting<'f, V> {
    flight: &'f Flight<V>,
    /// Where this waiter's waker sits in the flight's list.
    slot: Option<usize>,
}

impl<V: Clone> Future for Waiting<'_, V> {
    type Output = Option<V>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<V>> {
        let flight = self.flight;
        let mut state = flight.state.lock();
        match &state.outcome {
            Outcome::Ready(value) => return Poll::Ready(Some(value.clone())),
            Outcome::Abandoned => return Poll::Ready(None),
            Outcome::Running => {}
        }
        match self.slot {
            Some(slot) if state.wakers[slot].will_wake(cx.waker()) => {}
            Some(slot) => state.wakers[slot] = cx.waker().clone(),
            None => {
                state.wakers.push(cx.waker().clone());
                self.slot = Some(state.wakers.len() - 1);
            }
        }
        Poll::Pending
    }
}

/// The caller that computes a key while others wait. Dropping it without
/// [`Flights::complete`] abandons the flight: the waiters retry.
pub struct Leader<'a, K, V> {
    flights: &'a Flights<K, V>,
    hash: u64,
    id: u64,
    finished: bool,
}

impl<K, V> Leader<'_, K, V> {
    /// Runs a synchronous body as this flight's leader: a call of the same function with the
    /// same key from inside `body` panics instead of waiting for itself.
    pub fn call<R>(&self, body: impl FnOnce() -> R) -> R {
        let _leading = Leading::enter(self.id);
        body()
    }

    /// Runs an async body as this flight's leader: while it is being polled, a call of the same
    /// function with the same key from inside it panics instead of waiting for itself.
    pub fn run<F: Future + Unpin>(&self, body: F) -> Running<F> {
        Running { id: self.id, body }
    }
}

impl<K, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (table, removed) = self.flights.remove(self.hash, self.id);
        drop(table);
        if let Some((_, Some(flight))) = removed {
            flight.finish(Outcome::Abandoned);
        }
    }
}

/// Marks a flight as led by this thread until dropped (also when the body unwinds).
struct Leading {
    id: u64,
}

impl Leading {
    fn enter(id: u64) -> Self {
        LEADING.with(|leading| leading.borrow_mut().push(id));
        Leading { id }
    }
}

impl Drop for Leading {
    fn drop(&mut self) {
        LEADING.with(|leading| {
            let mut leading = leading.borrow_mut();
            if let Some(position) = leading.iter().rposition(|&id| id == self.id) {
                leading.remove(position);
            }
        });
    }
}

/// An async body run by [`Leader::run`].
pub struct Running<F> {
    id: u64,
    body: F,
}

impl<F: Future + Unpin> Future for Running<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _leading = Leading::enter(self.id);
        Pin::new(&mut self.body).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::task::Wake;

    use crate::CacheInfo;

    fn cache() -> Cache<u32, String> {
        Cache::new(16)
    }

    /// A caller's miss path, as the macro generates it.
    fn call(
        flights: &Flights<u32, String>,
        cache: &Cache<u32, String>,
        key: u32,
        body: impl FnOnce() -> String,
    ) -> String {
        if let Some(value) = cache.get(&key) {
            return value;
        }
        match flights.join(cache, &key, |k| *k == key, || key) {
            Joined::Ready(value) => value,
            Joined::Lead(leader) => {
                let value = leader.call(body);
                flights.complete(leader, cache, value.clone());
                value
            }
        }
    }

    /// Spins until `flights` has a flight that `waiters` callers wait for.
    fn until_waiting(flights: &Flights<u32, String>, waiters: usize) {
        loop {
            let held = {
                let table = flights.table.lock();
                table
                    .iter()
                    .filter_map(|e| e.flight.as_ref().map(Arc::strong_count))
                    .max()
            };
            // The table holds one reference; every waiter one more.
            if held == Some(waiters + 1) {
                return;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn concurrent_misses_of_one_key_run_the_body_once() {
        let (flights, cache) = (Flights::new("f"), cache());
        let runs = AtomicUsize::new(0);
        let results: Vec<String> = std::thread::scope(|s| {
            let leader = s.spawn(|| {
                call(&flights, &cache, 1, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    until_waiting(&flights, 3);
                    "one".to_owned()
                })
            });
            // The waiters start once the leader's flight exists.
            while flights.in_flight() == 0 {
                std::thread::yield_now();
            }
            let waiters: Vec<_> = (0..3)
                .map(|_| s.spawn(|| call(&flights, &cache, 1, || unreachable!("led by another"))))
                .collect();
            let mut all: Vec<String> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
            all.push(leader.join().unwrap());
            all
        });
        assert_eq!(results, ["one"; 4]);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
        assert_eq!(cache.peek(&1).as_deref(), Some("one"));
    }

    #[test]
    fn other_keys_proceed_while_one_is_computed() {
        let (flights, cache) = (Flights::new("f"), cache());
        let gate = Barrier::new(2);
        std::thread::scope(|s| {
            let slow = s.spawn(|| {
                call(&flights, &cache, 1, || {
                    gate.wait(); // until key 2 was computed on the other thread
                    "one".to_owned()
                })
            });
            while flights.in_flight() == 0 {
                std::thread::yield_now();
            }
            assert_eq!(call(&flights, &cache, 2, || "two".to_owned()), "two");
            gate.wait();
            assert_eq!(slow.join().unwrap(), "one");
        });
    }

    #[test]
    fn leader_panic_caches_nothing_and_waiters_retry() {
        let (flights, cache) = (Flights::new("f"), cache());
        let runs = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let leader = s.spawn(|| {
                call(&flights, &cache, 1, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    until_waiting(&flights, 2);
                    panic!("the body failed");
                })
            });
            while flights.in_flight() == 0 {
                std::thread::yield_now();
            }
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        call(&flights, &cache, 1, || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            "retried".to_owned()
                        })
                    })
                })
                .collect();
            let panic = leader.join().unwrap_err();
            assert_eq!(panic.downcast_ref::<&str>(), Some(&"the body failed"));
            for waiter in waiters {
                assert_eq!(waiter.join().unwrap(), "retried");
            }
        });
        // The panicking run, then one retry that the other waiter shared.
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(flights.in_flight(), 0);
        // Nothing is poisoned: the same key computes again.
        cache.clear();
        assert_eq!(call(&flights, &cache, 1, || "again".to_owned()), "again");
    }

    #[test]
    fn recursion_on_the_same_key_panics_with_the_name() {
        let (flights, cache) = (Flights::new("my_crate::fib"), cache());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            call(&flights, &cache, 7, || {
                call(&flights, &cache, 7, || unreachable!())
            })
        }));
        let panic = result.unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(
            message.starts_with("`my_crate::fib` called itself with the arguments it is computing"),
            "{message}"
        );
        // The outer leader unwound: its flight is gone and the thread leads nothing.
        assert_eq!(flights.in_flight(), 0);
        assert!(LEADING.with(|l| l.borrow().is_empty()));
        // Recursion on other keys is fine.
        let value = call(&flights, &cache, 7, || {
            call(&flights, &cache, 6, || "six".to_owned()) + "+1"
        });
        assert_eq!(value, "six+1");
    }

    /// A cache outside the process, as single-flight sees one: never read under the table's
    /// lock, written after the waiters are released.
    struct Remote<'f> {
        cache: Cache<u32, String>,
        /// The table whose flights are counted when a value is stored.
        flights: &'f Flights<u32, String>,
        in_flight_at_insert: AtomicUsize,
    }

    impl FunctionCache<u32, String> for Remote<'_> {
        const REMOTE: bool = true;
        fn peek(&self, _: &u32) -> Option<String> {
            unreachable!("a remote cache is not read again under the flights' lock")
        }
        fn insert_if_absent(&self, key: u32, value: String) {
            // `in_flight` takes the table's lock: it would deadlock if the caller held it.
            self.in_flight_at_insert
                .store(self.flights.in_flight(), Ordering::SeqCst);
            self.cache.insert_if_absent(key, value);
        }
        fn remove(&self, key: &u32) -> bool {
            FunctionCache::remove(&self.cache, key)
        }
        fn info(&self) -> CacheInfo {
            self.cache.info()
        }
        fn reset(&self) {
            self.cache.reset();
        }
    }

    #[test]
    fn a_remote_cache_is_written_after_the_flight_is_released_and_never_peeked() {
        let flights = Flights::new("f");
        let remote = Remote {
            cache: cache(),
            flights: &flights,
            in_flight_at_insert: AtomicUsize::new(usize::MAX),
        };
        let Joined::Lead(leader) = flights.join_owned(&remote, 3) else {
            panic!("the first caller leads");
        };
        flights.complete(leader, &remote, "three".to_owned());
        // The flight was gone when the store was written: no lock held across the round trip.
        assert_eq!(remote.in_flight_at_insert.load(Ordering::SeqCst), 0);
        assert_eq!(remote.cache.peek(&3).as_deref(), Some("three"));
        // Concurrent misses still run the body once, the waiters taking the leader's value.
        let runs = AtomicUsize::new(0);
        let results: Vec<String> = std::thread::scope(|s| {
            let callers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| match flights.join_owned(&remote, 9) {
                        Joined::Ready(value) => value,
                        Joined::Lead(leader) => {
                            runs.fetch_add(1, Ordering::SeqCst);
                            until_waiting(&flights, 3);
                            flights.complete(leader, &remote, "nine".to_owned());
                            "nine".to_owned()
                        }
                    })
                })
                .collect();
            callers.into_iter().map(|c| c.join().unwrap()).collect()
        });
        assert_eq!(results, ["nine"; 4]);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn owned_keys_join_like_borrowed_ones() {
        let (flights, cache) = (Flights::new("f"), cache());
        let Joined::Lead(leader) = flights.join_owned(&cache, 3) else {
            panic!("the first caller leads");
        };
        assert_eq!(flights.in_flight(), 1);
        flights.complete(leader, &cache, "three".to_owned());
        assert_eq!(cache.peek(&3).as_deref(), Some("three"));
        // A caller that missed before the value was stored finds it without leading.
        assert!(matches!(flights.join_owned(&cache, 3), Joined::Ready(v) if v == "three"));
        assert_eq!(flights.in_flight(), 0);
    }

    /// A waker that counts its wakes.
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn async_waiters_are_woken_with_the_value() {
        let (flights, cache) = (Flights::new("f"), cache());
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut leading = Box::pin(flights.join_async(&cache, &5, |k| *k == 5, || 5));
        let Poll::Ready(Joined::Lead(leader)) = poll_once(&mut leading, &waker) else {
            panic!("the first caller leads at once");
        };
        let mut waiting = Box::pin(flights.join_owned_async(&cache, 5));
        assert!(poll_once(&mut waiting, &waker).is_pending());
        assert!(poll_once(&mut waiting, &waker).is_pending()); // the same waker is kept once
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        flights.complete(leader, &cache, "five".to_owned());
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(
            matches!(poll_once(&mut waiting, &waker), Poll::Ready(Joined::Ready(v)) if v == "five")
        );
    }

    #[test]
    fn cancelled_async_leader_releases_its_waiters() {
        let (flights, cache) = (Flights::new("f"), cache());
        let waker = Waker::from(Arc::new(CountingWaker(AtomicUsize::new(0))));
        let mut leading = Box::pin(flights.join_owned_async(&cache, 5));
        let Poll::Ready(Joined::Lead(leader)) = poll_once(&mut leading, &waker) else {
            panic!("the first caller leads at once");
        };
        let mut waiting = Box::pin(flights.join_owned_async(&cache, 5));
        assert!(poll_once(&mut waiting, &waker).is_pending());
        drop(leader); // the leading future was dropped mid-body
                      // The waiter retries and leads in its turn.
        assert!(matches!(
            poll_once(&mut waiting, &waker),
            Poll::Ready(Joined::Lead(_))
        ));
    }

    #[test]
    fn async_recursion_on_the_same_key_panics_while_polled_by_the_leader() {
        let (flights, cache) = (Flights::new("g"), cache());
        let waker = Waker::from(Arc::new(CountingWaker(AtomicUsize::new(0))));
        let Poll::Ready(Joined::Lead(leader)) =
            poll_once(&mut Box::pin(flights.join_owned_async(&cache, 1)), &waker)
        else {
            panic!("the first caller leads at once");
        };
        // Polled outside the leader's body: an ordinary waiter.
        let mut outside = Box::pin(flights.join_owned_async(&cache, 1));
        assert!(poll_once(&mut outside, &waker).is_pending());
        // Polled inside it: the body waits for itself.
        let inner = Box::pin(async {
            let _ = flights.join_owned_async(&cache, 1).await;
        });
        let mut running = leader.run(inner);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll_once(&mut running, &waker)
        }));
        assert!(result.is_err());
        assert!(LEADING.with(|l| l.borrow().is_empty()));
    }
}
