//! Single-flight: when several callers miss the same key at once, one of them (the leader) runs
//! the function and the others wait for its outcome instead of computing it again.
//!
//! - **One table per memoized function**: the computations running right now, each with its
//!   [`Flight`], in shards chosen by the key's hash (a few per core), each behind a lock that is
//!   taken on a miss only (the hit path never sees it) and never held while user code other than
//!   `Hash` and `Eq` runs (or an in-memory cache's insert). A leader's miss allocates nothing:
//!   the [`Flight`] its waiters share is made by the first of them.
//! - **Sync and async**: threads wait on the flight's `Condvar`; tasks wait on a list of wakers
//!   kept under the flight's own mutex, so a completion cannot slip between a waiter's check and
//!   its registration. No runtime is named: it works on tokio and on any plain executor.
//! - **Invalidation wins** (Caffeine's and moka's rule): [`Flights::invalidate`] and
//!   [`Flights::clear`] mark the computations running for the key (or all of them) stale, under
//!   their shard's lock. A stale computation still hands its value to the callers that joined it,
//!   but later callers do not join it and its value is not stored. A leader stores its value
//!   under the same lock (in memory) or while its entry says it is storing (a store outside the
//!   process, written without the lock): an invalidation waits for such writes of its key before
//!   it removes the key, so once it returns no value computed before it is stored or returned.
//!   The entry stays until the cache drops the write's [`WriteEnd`]: at once for a write made on
//!   the caller's thread, on the store's I/O thread (or memo's tokio runtime) for an `async fn`'s,
//!   so the wait never needs the caller's executor (a sync wait from a task of a current_thread
//!   runtime does not deadlock). The wait is bounded ([`REMOTE_WRITE_WAIT`]); a write still under
//!   way then is cancelled: not made, or removed again once made.
//!   Without single-flight an epoch plays the same part ([`Flights::store_since`]): an
//!   invalidation bumps it before it removes the key, and a caller checks it under the lock it
//!   inserts under (the in-memory cache shard's own, or else the table's).
//! - **Failure never queues callers**: a leader whose function returned an error or `None` ends
//!   its flight with [`Flights::fail`]. An error that is `Clone + Send + Sync + 'static` is handed
//!   to every caller that joined ([`Joined::Failed`], as Go's singleflight and moka's
//!   `try_get_with` share it); otherwise the joined callers are released at once, each to run the
//!   body alone (a computation nobody can join, stored if it succeeds). A leader that panics or is
//!   dropped (a cancelled future) abandons its flight: its waiters try again, one of them as the
//!   new leader. Nothing is poisoned (`parking_lot` locks).
//! - **Recursion and cycles**: each thread knows which flights it is leading right now (a sync
//!   leader for the whole call, an async leader while its body is being polled). A caller that
//!   leads flights and is about to wait records, in one process-wide list, that those flights
//!   wait for the one it joins, after walking that list from the joined flight: reaching one of
//!   its own flights means the wait would never end (thread 1 computes `a`, which needs `b`,
//!   which thread 2 computes and which needs `a`), so it panics with the functions' names
//!   instead, and its flight's waiters proceed. A caller that leads nothing cannot close a cycle
//!   and skips all this, and hits never see it.
//! - **Counters**: the calls that waited for another caller's outcome, the calls that found the
//!   value stored just before they would have led, and the time the leaders spent computing
//!   (read from the CPU's time-stamp counter where it is invariant, see [`ticks`]; every
//!   leader is timed while the bodies take over a microsecond or so, about one in 16 once they
//!   are faster, weighted by the leaders it stands for, so that the two clock reads never cost
//!   a cheap miss much: see [`Table::timing`]): kept per shard, beside the cache's own counters
//!   (see [`FlightCounts`]).
//! - **A leader's miss**: one lock round trip on its shard to register (an entry pushed to a
//!   short list; the shard indexes its entries by hash only when it holds many) and one to
//!   complete (the entry removed, the value stored under the lock), one more look at the cache
//!   in between, and a few thread-local stores for the recursion check.
//! - **Kept in the cache's own shards** when the function's cache is in memory, unweighted,
//!   and hashes as the table does (every `#[memoize]` without a store, `refresh` or a stale
//!   window: see [`FunctionCache::local`]): the entries then live in a list in each shard of
//!   the cache, under the shard's writer lock, and the table's shards keep only the counters.
//!   Registering (join an entry, or find the value stored since the miss by a look under the
//!   lock, or push an entry) and completing (remove the entry and insert the value) are then
//!   each one round trip on the lock the cache's insert takes anyway, and the second look
//!   needs no read stripe. A lookup never sees these entries: a hit reads and writes nothing
//!   new. Invalidations and `clear` mark them stale under the same lock (and the table's,
//!   which other leaders, `try_lead`'s and callers without single-flight into any other cache
//!   use). A failure cached by `fail_into` is written into the negative cache under the main
//!   cache shard's lock (that order only). An eviction listener runs after the lock is
//!   released, as for any insert.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashTable};
use parking_lot::{Condvar, Mutex};

use crate::CacheInfo;

/// What single-flight needs of a memoized function's cache besides lookups, which the generated
/// code calls on the concrete type (a hit never goes through this trait). Implemented by the
/// in-memory [`Cache`](crate::Cache) and by `stores::StoreCache`; every use is monomorphized.
pub trait FunctionCache<K, V> {
    /// Whether the values live outside the process. Single-flight then neither reads the cache
    /// again nor writes it while it holds its table's lock (a round trip there would stall every
    /// other miss of the function), at the price of a rare second computation when a caller
    /// misses just as a leader finishes.
    const REMOTE: bool = false;
    /// The value stored for `key`, without counting a hit or a miss.
    fn peek(&self, key: &K) -> Option<V>;
    /// Stores `value` for `key` after a miss.
    fn insert_if_absent(&self, key: K, value: V);
    /// [`peek`](FunctionCache::peek) of a key whose hash is `hash`, by a hasher whose stamp
    /// (its hash of a fixed value) is `stamp`: a cache that hashes with that same hasher uses
    /// `hash` instead of hashing the key again (single-flight hashes a miss's key once). By
    /// default `hash` is ignored.
    #[inline]
    fn peek_hashed(&self, stamp: u64, hash: u64, key: &K) -> Option<V> {
        let _ = (stamp, hash);
        self.peek(key)
    }
    /// Whether a value is stored for `key` (hashed as for
    /// [`peek_hashed`](FunctionCache::peek_hashed)), without cloning it: what single-flight
    /// asks under its lock before it leads, the value then cloned with the lock released (a
    /// `Clone` may call the function). By default `peek_hashed(..).is_some()`: a cache whose
    /// values live in the process overrides it with a look that runs no `Clone`.
    #[inline]
    fn contains_hashed(&self, stamp: u64, hash: u64, key: &K) -> bool {
        self.peek_hashed(stamp, hash, key).is_some()
    }
    /// [`insert_if_absent`](FunctionCache::insert_if_absent) of a key whose hash is `hash`, as
    /// for [`peek_hashed`](FunctionCache::peek_hashed).
    #[inline]
    fn insert_if_absent_hashed(&self, stamp: u64, hash: u64, key: K, value: V) {
        let _ = (stamp, hash);
        self.insert_if_absent(key, value);
    }
    /// Stores `value` for `key` after a miss, in a cache outside the process: `end` lives
    /// until the write has ended (invalidations of the key wait for it meanwhile) and says
    /// whether the write was cancelled ([`WriteEnd::cancelled`]). By default written at once,
    /// as [`insert_if_absent`](FunctionCache::insert_if_absent), then ended.
    fn insert_tracked(&self, key: K, value: V, end: WriteEnd<K, V>) {
        self.insert_if_absent(key, value);
        drop(end);
    }
    /// Removes `key`; whether it was stored.
    fn remove(&self, key: &K) -> bool;
    /// The in-memory cache whose shards keep this function's pending computations beside its
    /// entries, when it hashes with the hasher of stamp `stamp` (see
    /// [`peek_hashed`](FunctionCache::peek_hashed)): a leader then registers, looks at the
    /// cache again and stores its value under the cache shard's own lock, with no table of
    /// its own to lock. `None` (the default): the computations are kept in the function's
    /// table of flights.
    #[doc(hidden)]
    #[inline]
    fn local(&self, stamp: u64) -> Option<&crate::Cache<K, V>> {
        let _ = stamp;
        None
    }
    /// The statistics.
    fn info(&self) -> CacheInfo;
    /// Empties the cache and zeroes the statistics.
    fn reset(&self);
}

/// One flight, named in a process-wide way: the address of its table and its number there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FlightId {
    table: usize,
    id: u64,
}

/// How many of the flights a thread leads at once its record keeps in cells; more nested ones
/// go to a `Vec`.
const LEADING_CELLS: usize = 8;

/// The flights a thread is leading right now, innermost last: the first [`LEADING_CELLS`] in
/// cells (a type without `Drop`, so that a leader's entry and exit are a few plain loads and
/// stores, with no check that a destructor is registered), the deeper ones in `DEEPER`. Entered
/// and left in nested scopes ([`Leading`]), so always in stack order.
struct LeadingRecord {
    depth: Cell<usize>,
    cells: [Cell<FlightId>; LEADING_CELLS],
}

thread_local! {
    static LEADING: LeadingRecord = const {
        LeadingRecord {
            depth: Cell::new(0),
            cells: [const { Cell::new(FlightId { table: 0, id: 0 }) }; LEADING_CELLS],
        }
    };
    static DEEPER: RefCell<Vec<FlightId>> = const { RefCell::new(Vec::new()) };
}

/// The flights this thread leads right now, innermost last.
fn leading() -> Vec<FlightId> {
    LEADING.with(|record| {
        let depth = record.depth.get();
        let mut leading: Vec<FlightId> = record.cells[..depth.min(LEADING_CELLS)]
            .iter()
            .map(Cell::get)
            .collect();
        if depth > LEADING_CELLS {
            DEEPER.with(|deeper| leading.extend_from_slice(&deeper.borrow()));
        }
        leading
    })
}

/// That the flight `waiter`'s leader is blocked until the flight `on` (of the function
/// `on_name`) ends.
struct Edge {
    waiter: FlightId,
    on: FlightId,
    on_name: Arc<str>,
}

/// Every blocked leader's wait, process-wide: what the cycle check walks. Touched only by a
/// caller that leads flights and must wait, so it stays short and uncontended.
static WAITS: Mutex<Vec<Edge>> = Mutex::new(Vec::new());

/// The keys of one memoized function that are being computed right now, in shards chosen by
/// the key's hash, so that misses of different keys on different threads rarely meet on a lock.
pub struct Flights<K, V> {
    /// The function's name, for the recursion and cycle panics.
    name: Arc<str>,
    /// Shared with the [`WriteEnd`]s of the writes to a store outside the process, which end
    /// on the store's I/O threads.
    shards: Arc<[Shard<K, V>]>,
    /// Bumped by every invalidation (under the key's shard lock; by `clear` before it visits the
    /// shards), read without a lock by the callers that compute without single-flight.
    epoch: AtomicU64,
    hasher: DefaultHashBuilder,
    /// [`stamp`] of `hasher`: what tells a cache that hashes alike to use the hashes it gets.
    stamp: u64,
    /// What a miss accounts for; everything but in `benches/single_flight.rs`.
    accounting: Accounting,
}

/// The bookkeeping of a miss that [`Flights::measured_with`] can turn off, so that a benchmark
/// measures its cost: always on in a memoized function.
#[derive(Clone, Copy, Debug)]
struct Accounting {
    /// The two clock reads of each leader for `load_time`.
    load_time: bool,
    /// The waits counter, and the thread's record of the flights it leads that the recursion
    /// and cycle checks read (sync leaders).
    waits_and_cycles: bool,
}

/// One shard of the table, with its own counters: a miss writes only its shard's cache line.
#[repr(align(128))]
struct Shard<K, V> {
    table: Mutex<Table<K, V>>,
    /// Notified when a write to a cache outside the process ends: what an invalidation of the
    /// key being written waits for.
    stored: Condvar,
    waits: AtomicU64,
    late_hits: AtomicU64,
    /// The leaders' time in the body, in [`ticks`], weighted (see [`Table::timing`]): added
    /// to atomically (by leaders whose entries are in this table, or in any shard of an
    /// in-memory cache for keys of this shard), read without a lock, so that the statistics
    /// never wait for one (an eviction listener that reads them may run inside a leader's
    /// insert, under the table's lock).
    load_ticks: AtomicU64,
}

/// The computations of one shard, with what times their leaders: in a shard of the table of
/// flights, or in a shard of the function's in-memory cache ([`FunctionCache::local`]).
pub(crate) struct Table<K, V> {
    entries: Entries<K, V>,
    next_id: u64,
    /// The leaders to start untimed before the next timed one (see [`Table::timing`]).
    untimed: u32,
    /// The leaders started untimed since the last timed one: the weight of the next.
    skipped: u64,
}

/// A timed leader's body shorter than this many [`ticks`] (about 1.5 µs at 3 GHz; 4 µs where
/// ticks are `Instant` nanoseconds) makes its shard time only a sample of the next leaders.
const CHEAP_LOAD: u64 = 4096;

/// The mean gap between two timed leaders of a shard whose bodies are cheap: the two clock
/// reads (about 36 ns on the team's VM) are then paid by one leader in this many.
const SAMPLE_EVERY: u64 = 16;

/// A shard of an in-memory cache, where a function's pending computations may live.
type CacheShard<K, V> = crate::concurrent::Shard<K, V>;

/// Such a shard's writer side, locked ([`CacheShard::with_pending`]).
type Locked<'s, 'l, K, V> = crate::concurrent::shard::Locked<'s, 'l, K, V>;

/// The process-wide name of the pending computation `id` kept in the cache shard `shard`.
#[inline]
fn local_flight_id<K, V>(shard: &CacheShard<K, V>, id: u64) -> FlightId {
    FlightId {
        table: std::ptr::from_ref(shard) as *const () as usize,
        id,
    }
}

impl<K, V> Table<K, V> {
    /// No computation.
    pub(crate) fn new() -> Self {
        Table {
            entries: Entries {
                one: None,
                many: Many::List(Vec::new()),
            },
            next_id: 0,
            untimed: 0,
            skipped: 0,
        }
    }

    /// A new entry, not yet joinable by anyone when `joinable` is false; its id.
    fn insert(&mut self, hash: u64, key: Option<K>, joinable: bool) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(Entry {
            hash,
            key,
            id,
            joinable,
            stale: false,
            flight: None,
        });
        id
    }

    /// Removes the entry `id` and returns it.
    fn take(&mut self, hash: u64, id: u64) -> Option<Entry<K, V>> {
        self.entries.take(hash, id)
    }

    /// Whether the leader starting now times its body, and for how many leaders its time
    /// counts (itself and those started untimed since the last timed one); 0: untimed. Every
    /// leader is timed while the bodies take [`CHEAP_LOAD`] ticks or more; once a timed one
    /// took less, about one in [`SAMPLE_EVERY`] (at pseudo-random gaps, so that no periodic
    /// pattern of keys is always skipped), its time weighted by the leaders it stands for:
    /// `load_time` stays the sum of the bodies' times, estimated where they are too short for
    /// two clock reads to be negligible.
    #[inline]
    fn timing(&mut self) -> u64 {
        if self.untimed > 0 {
            self.untimed -= 1;
            self.skipped += 1;
            return 0;
        }
        std::mem::take(&mut self.skipped) + 1
    }

    /// Adds a timed leader's `spent` ticks, standing for `weight` leaders ([`Table::timing`]),
    /// to `load_ticks`, the counter of this table's shard.
    #[inline]
    fn add_load(&mut self, load_ticks: &AtomicU64, id: u64, spent: u64, weight: u64) {
        // Tables in several cache shards may add to one counter: an atomic addition (made by
        // one timed leader in 16 once the bodies are cheap).
        load_ticks.fetch_add(spent.saturating_mul(weight), Ordering::Relaxed);
        self.untimed = if spent < CHEAP_LOAD {
            // A gap in 0..2 * SAMPLE_EVERY - 1 from the entry's id (a Weyl sequence, mixed).
            let mixed = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
            (mixed % (2 * SAMPLE_EVERY - 1)) as u32
        } else {
            0
        };
    }
}

/// How many entries a shard keeps in a list before it indexes them by hash, and how few it
/// keeps when it goes back to the list (the gap keeps it from switching back and forth).
const LIST_MAX: usize = 32;
const LIST_AGAIN: usize = 8;

/// The entries of a shard: one in a slot of its own (a shard rarely holds more than one
/// computation at a time: a leader's miss then stores and takes its entry there, with no list
/// to search or grow), the others in [`Many`]. At most one entry of a key is joinable, and ids
/// are unique, so the order in which the two are searched does not matter.
struct Entries<K, V> {
    one: Option<Entry<K, V>>,
    many: Many<K, V>,
}

impl<K, V> Entries<K, V> {
    #[cfg(test)]
    fn len(&self) -> usize {
        usize::from(self.one.is_some()) + self.many.len()
    }

    #[inline]
    fn insert(&mut self, entry: Entry<K, V>) {
        match &mut self.one {
            one @ None => *one = Some(entry),
            Some(_) => self.many.insert(entry),
        }
    }

    /// Removes the entry `id` (of hash `hash`) and returns it.
    #[inline]
    fn take(&mut self, hash: u64, id: u64) -> Option<Entry<K, V>> {
        if self.one.as_ref().is_some_and(|entry| entry.id == id) {
            return self.one.take();
        }
        self.many.take(hash, id)
    }

    #[inline]
    fn find(&self, hash: u64, mut is: impl FnMut(&Entry<K, V>) -> bool) -> Option<&Entry<K, V>> {
        match &self.one {
            Some(entry) if entry.hash == hash && is(entry) => Some(entry),
            _ => self.many.find(hash, is),
        }
    }

    #[inline]
    fn find_mut(
        &mut self,
        hash: u64,
        mut is: impl FnMut(&Entry<K, V>) -> bool,
    ) -> Option<&mut Entry<K, V>> {
        match &mut self.one {
            Some(entry) if entry.hash == hash && is(entry) => Some(entry),
            _ => self.many.find_mut(hash, is),
        }
    }

    /// Calls `f` on every entry, or on those of hash `hash`.
    fn for_each_mut(&mut self, hash: Option<u64>, mut f: impl FnMut(&mut Entry<K, V>)) {
        if let Some(entry) = &mut self.one
            && hash.is_none_or(|hash| entry.hash == hash)
        {
            f(entry);
        }
        self.many.for_each_mut(hash, f);
    }

    fn iter(&self) -> impl Iterator<Item = &Entry<K, V>> + '_ {
        self.one.iter().chain(self.many.iter())
    }
}

/// The entries of a shard besides the one in its own slot ([`Entries`]): a short list
/// searched in order (a second or third computation of the shard at a time is pushed and
/// removed at the cost of a few compares), a hash table once it holds more than [`LIST_MAX`],
/// and a list again (the table freed) once it is down to [`LIST_AGAIN`].
enum Many<K, V> {
    List(Vec<Entry<K, V>>),
    Hashed(HashTable<Entry<K, V>>),
}

impl<K, V> Many<K, V> {
    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Many::List(list) => list.len(),
            Many::Hashed(table) => table.len(),
        }
    }

    #[inline]
    fn insert(&mut self, entry: Entry<K, V>) {
        match self {
            Many::List(list) if list.len() < LIST_MAX => list.push(entry),
            _ => self.insert_hashed(entry),
        }
    }

    #[cold]
    #[inline(never)]
    fn insert_hashed(&mut self, entry: Entry<K, V>) {
        match self {
            Many::List(list) => {
                let mut table = HashTable::with_capacity(2 * LIST_MAX);
                for old in list.drain(..).chain(std::iter::once(entry)) {
                    table.insert_unique(old.hash, old, |e| e.hash);
                }
                *self = Many::Hashed(table);
            }
            Many::Hashed(table) => {
                table.insert_unique(entry.hash, entry, |e| e.hash);
            }
        }
    }

    /// Removes the entry `id` (of hash `hash`) and returns it.
    #[inline]
    fn take(&mut self, hash: u64, id: u64) -> Option<Entry<K, V>> {
        match self {
            Many::List(list) => {
                let at = list.iter().rposition(|entry| entry.id == id)?;
                // Most often the last (a shard rarely holds two): moved out once.
                if at + 1 == list.len() {
                    list.pop()
                } else {
                    Some(list.swap_remove(at))
                }
            }
            Many::Hashed(_) => self.take_hashed(hash, id),
        }
    }

    #[cold]
    #[inline(never)]
    fn take_hashed(&mut self, hash: u64, id: u64) -> Option<Entry<K, V>> {
        let Many::Hashed(table) = self else {
            unreachable!("called on a hash table");
        };
        let taken = table
            .find_entry(hash, |entry| entry.id == id)
            .ok()
            .map(|entry| entry.remove().0);
        if table.len() <= LIST_AGAIN {
            let mut list = Vec::with_capacity(LIST_MAX);
            list.extend(table.drain());
            *self = Many::List(list);
        }
        taken
    }

    #[inline]
    fn find(&self, hash: u64, mut is: impl FnMut(&Entry<K, V>) -> bool) -> Option<&Entry<K, V>> {
        match self {
            Many::List(list) => list.iter().find(|entry| entry.hash == hash && is(entry)),
            Many::Hashed(table) => table.find(hash, is),
        }
    }

    #[inline]
    fn find_mut(
        &mut self,
        hash: u64,
        mut is: impl FnMut(&Entry<K, V>) -> bool,
    ) -> Option<&mut Entry<K, V>> {
        match self {
            Many::List(list) => list
                .iter_mut()
                .find(|entry| entry.hash == hash && is(entry)),
            Many::Hashed(table) => table.find_mut(hash, is),
        }
    }

    /// Calls `f` on every entry, or on those of hash `hash`.
    fn for_each_mut(&mut self, hash: Option<u64>, mut f: impl FnMut(&mut Entry<K, V>)) {
        match (self, hash) {
            (Many::List(list), hash) => list
                .iter_mut()
                .filter(|entry| hash.is_none_or(|hash| entry.hash == hash))
                .for_each(f),
            (Many::Hashed(table), Some(hash)) => table.iter_hash_mut(hash).for_each(f),
            (Many::Hashed(table), None) => table.iter_mut().for_each(&mut f),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = &Entry<K, V>> + '_> {
        match self {
            Many::List(list) => Box::new(list.iter()),
            Many::Hashed(table) => Box::new(table.iter()),
        }
    }
}

/// How long an invalidation waits at most for a write of its key to a store outside the process
/// (four times a store's default timeout of 250 ms); past it, see [`WriteEnd::cancelled`].
pub const REMOTE_WRITE_WAIT: Duration = Duration::from_secs(1);

/// What names a hasher in [`FunctionCache::peek_hashed`]: the hash of a fixed value, equal for
/// two hashers (with 2^-64 odds of a false match) exactly when they hash alike.
#[inline]
pub fn stamp<S: BuildHasher>(hasher: &S) -> u64 {
    hasher.hash_one(0x6d65_6d6f_5f73_7461_u64)
}

/// The shard among `shards` (a power of two) of the keys with hash `hash`: its high 32 bits
/// (hashbrown uses the low ones and the top seven), mixed first, as `Cache` picks its shards
/// (the default hasher's bits 32.. alone can put most small integer keys in one shard).
#[inline]
fn shard_of(hash: u64, shards: usize) -> usize {
    let mixed = (hash >> 32).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    mixed as usize & (shards - 1)
}

/// The number of shards of every table: a few per core, so that two threads rarely share one.
fn shard_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        (cores * 4).next_power_of_two().clamp(4, 64)
    })
}

struct Entry<K, V> {
    hash: u64,
    /// `None` once its leader is writing it to a store outside the process.
    key: Option<K>,
    id: u64,
    /// Later callers may wait for it: not stale, not a caller released to run alone.
    joinable: bool,
    /// Invalidated while running: its value is not stored.
    stale: bool,
    /// Made by the first waiter: a flight nobody waits for allocates nothing.
    flight: Option<Waited<V>>,
}

/// The entry's side of a flight that callers wait for: finished by its leader with an outcome,
/// or, if it is dropped unfinished (a `Clone` of the value for the waiters, a key's `Hash` or
/// `Eq` in the store, or anything else that panics between the leader's end and the hand-over),
/// finished as abandoned, so that its waiters try again instead of waiting for good.
struct Waited<V>(Option<Arc<Flight<V>>>);

impl<V> Waited<V> {
    fn new() -> Self {
        Waited(Some(Arc::new(Flight::new())))
    }

    /// The flight, for one more waiter.
    fn share(&self) -> Arc<Flight<V>> {
        Arc::clone(
            self.0
                .as_ref()
                .expect("only `finish` takes the flight, consuming this"),
        )
    }

    /// Hands `outcome` to the waiters.
    fn finish(mut self, outcome: Outcome<V>) {
        if let Some(flight) = self.0.take() {
            flight.finish(outcome);
        }
    }

    /// How many hold the flight: this entry and each waiter (tests only).
    #[cfg(test)]
    fn holders(&self) -> usize {
        self.0.as_ref().map_or(0, Arc::strong_count)
    }

    /// The flight's waker slots, and how many hold a waker (tests only).
    #[cfg(test)]
    fn waker_slots(&self) -> (usize, usize) {
        let state = self.0.as_ref().expect("unfinished").state.lock();
        let live = state.wakers.iter().filter(|w| w.is_some()).count();
        (state.wakers.len(), live)
    }
}

impl<V> Drop for Waited<V> {
    fn drop(&mut self) {
        if let Some(flight) = self.0.take() {
            flight.finish(Outcome::Abandoned);
        }
    }
}

/// `value.clone()` for the waiters, with a panic caught (to be resumed once the flight's
/// entry is gone and its store is written: see [`Waited`]).
fn clone_caught<V: Clone>(value: &V) -> std::thread::Result<V> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| value.clone()))
}

/// Hands the leader's value, cloned by [`clone_caught`], to the waiters; if that `Clone`
/// panicked, they try again (the value is stored: they find it) and the leader's caller gets the
/// panic.
fn hand_over<V>(flight: Waited<V>, cloned: std::thread::Result<V>) {
    match cloned {
        Ok(value) => flight.finish(Outcome::Ready(value)),
        Err(panic) => {
            drop(flight);
            std::panic::resume_unwind(panic);
        }
    }
}

/// A flight a caller would have waited for ([`Flights::join_or_watch`], tests only).
#[cfg(test)]
pub(crate) struct Watch<V>(Arc<Flight<V>>);

#[cfg(test)]
impl<V> Watch<V> {
    /// Whether the flight ended: a waiter would have been woken.
    pub(crate) fn ended(&self) -> bool {
        !matches!(self.0.state.lock().outcome, Outcome::Running)
    }

    /// The value the flight ended with, if it did.
    pub(crate) fn value(&self) -> Option<V>
    where
        V: Clone,
    {
        match &self.0.state.lock().outcome {
            Outcome::Ready(value) => Some(value.clone()),
            _ => None,
        }
    }
}

/// One computation in progress, shared by its leader and its waiters.
struct Flight<V> {
    state: Mutex<State<V>>,
    /// Notified, with every waker, when the outcome leaves `Running`.
    done: Condvar,
}

struct State<V> {
    outcome: Outcome<V>,
    /// The waiting tasks' wakers, by slot: a slot is emptied (and reused) when its waiter is
    /// dropped unwoken (a cancelled task), so that callers that time out again and again while
    /// one computation runs do not pile up wakers, nor keep their tasks alive.
    wakers: Vec<Option<Waker>>,
    /// The empty slots of `wakers`.
    free: Vec<usize>,
}

enum Outcome<V> {
    Running,
    /// The leader's value, for the waiters to clone.
    Ready(V),
    /// The leader's error, for the waiters to clone.
    Failed(Failure),
    /// The leader failed with an outcome it cannot share: each waiter runs the body alone.
    Released,
    /// The leader panicked or was cancelled: try again.
    Abandoned,
}

/// What a waiter takes from a flight that ended.
enum Done<V> {
    Value(V),
    Failed(Failure),
    Released,
    Abandoned,
}

/// An error that a leader shares with the callers that joined its computation: an
/// `E: Clone + Send + Sync + 'static`, cloned for each of them.
#[derive(Clone)]
pub struct Failure {
    error: Arc<dyn Any + Send + Sync>,
    clone: fn(&(dyn Any + Send + Sync)) -> Box<dyn Any>,
}

impl Failure {
    /// A failure sharing clones of `error`.
    pub fn new<E: Clone + Send + Sync + 'static>(error: &E) -> Self {
        fn clone_as<E: Clone + 'static>(error: &(dyn Any + Send + Sync)) -> Box<dyn Any> {
            match error.downcast_ref::<E>() {
                Some(error) => Box::new(error.clone()),
                None => unreachable!("a failure holds the type it was made with"),
            }
        }
        Failure {
            error: Arc::new(error.clone()),
            clone: clone_as::<E>,
        }
    }

    /// A clone of the error, of the function's own error type.
    pub fn error<E: 'static>(&self) -> E {
        match (self.clone)(&*self.error).downcast::<E>() {
            Ok(error) => *error,
            Err(_) => unreachable!("a flight's failure has its function's error type"),
        }
    }
}

/// The failure a function with `err_ttl` caches for its `Err(error)`: the error must be
/// `Clone + Send + Sync + 'static`, as it is cloned for every call it answers.
pub fn negative_error<E: Clone + Send + Sync + 'static>(error: &E) -> Failure {
    Failure::new(error)
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Failure(..)")
    }
}

/// The error of a failed call, as the generated code offers it to its waiters:
/// `(&ShareError(&e)).failure()` is `Some` when `E: Clone + Send + Sync + 'static`
/// ([`ShareClone`]) and `None` otherwise ([`ShareNothing`]), chosen at compile time.
pub struct ShareError<'a, E>(pub &'a E);

/// The impl of [`ShareError`] for an error that can be shared.
pub trait ShareClone {
    /// The failure to hand to the waiters.
    fn failure(&self) -> Option<Failure>;
}

impl<E: Clone + Send + Sync + 'static> ShareClone for ShareError<'_, E> {
    #[inline]
    fn failure(&self) -> Option<Failure> {
        Some(Failure::new(self.0))
    }
}

/// The impl of [`ShareError`] for an error that cannot be shared: the waiters are released.
pub trait ShareNothing {
    /// Nothing to hand to the waiters.
    fn failure(&self) -> Option<Failure>;
}

impl<E> ShareNothing for &ShareError<'_, E> {
    #[inline]
    fn failure(&self) -> Option<Failure> {
        None
    }
}

/// The return of a waiter whose leader shared its error: `(&SharedReturn::<R>::new(f)).ret()`
/// is `Err` of the error for `R = Result<T, E>` with `E: Clone + Send + Sync + 'static`
/// ([`ShareReturn`]); for any other `R` ([`ShareNoReturn`]) no leader shares a failure.
pub struct SharedReturn<R>(Failure, core::marker::PhantomData<fn() -> R>);

impl<R> SharedReturn<R> {
    /// The failure, to return as `R`.
    #[inline]
    pub fn new(failure: Failure) -> Self {
        SharedReturn(failure, core::marker::PhantomData)
    }
}

/// The impl of [`SharedReturn`] for a `Result` whose error is shared.
pub trait ShareReturn<R> {
    /// The waiter's return.
    fn ret(&self) -> R;
}

impl<T, E: Clone + Send + Sync + 'static> ShareReturn<Result<T, E>> for SharedReturn<Result<T, E>> {
    #[inline]
    fn ret(&self) -> Result<T, E> {
        Err(self.0.error())
    }
}

/// The impl of [`SharedReturn`] for a return whose failures are never shared.
pub trait ShareNoReturn<R> {
    /// Never called: no leader shares a failure of this type.
    fn ret(&self) -> R;
}

impl<R> ShareNoReturn<R> for &SharedReturn<R> {
    fn ret(&self) -> R {
        unreachable!("a leader shares only an error of type `E: Clone + Send + Sync + 'static`")
    }
}

/// What [`Flights::join`] found: the outcome, or the duty to compute it.
pub enum Joined<'a, K, V> {
    /// Another caller computed the value while this one waited (or it was cached meanwhile).
    Ready(V),
    /// The computation this caller waited for failed with an error it shares: return it.
    Failed(Failure),
    /// This caller computes the value: run the body with [`Leader::call`] or [`Leader::run`],
    /// then [`Flights::complete`] or [`Flights::fail`]; dropping the leader instead releases the
    /// waiters empty-handed, to try again.
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

/// One step of joining: done, or a flight to wait for (and this caller's recorded wait).
enum Step<'a, K, V> {
    Joined(Joined<'a, K, V>),
    Wait(Arc<Flight<V>>, Option<Blocked>),
}

/// The counters single-flight keeps beside its cache's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlightCounts {
    /// Calls that took another caller's outcome (its value or its shared error).
    pub waits: u64,
    /// Calls that missed, then found the value stored just before they would have led.
    pub late_hits: u64,
    /// The time leaders spent running the body.
    pub load_time: Duration,
}

impl FlightCounts {
    /// `info` with these counts folded in: a wait or a late hit was counted a miss by the cache
    /// (a miss is a run of the body), a late hit is a hit.
    pub fn apply(self, mut info: CacheInfo) -> CacheInfo {
        info.misses = info.misses.saturating_sub(self.waits + self.late_hits);
        info.hits += self.late_hits;
        info.waits += self.waits;
        info.load_time += self.load_time;
        info
    }
}

impl<K, V> Flights<K, V> {
    /// An empty table for the function called `name` (named in the recursion panic).
    pub fn new(name: impl Into<Box<str>>) -> Self {
        Self::with_hasher(name, DefaultHashBuilder::default())
    }

    /// [`Flights::new`] hashing keys with `hasher`: given the hasher of the function's cache, a
    /// miss hashes its key once for the table, the cache's second look and its insert.
    pub fn with_hasher(name: impl Into<Box<str>>, hasher: DefaultHashBuilder) -> Self {
        let name: Box<str> = name.into();
        let shards = (0..shard_count())
            .map(|_| Shard {
                table: Mutex::new(Table::new()),
                stored: Condvar::new(),
                waits: AtomicU64::new(0),
                late_hits: AtomicU64::new(0),
                load_ticks: AtomicU64::new(0),
            })
            .collect();
        Flights {
            name: name.into(),
            shards,
            epoch: AtomicU64::new(0),
            stamp: stamp(&hasher),
            hasher,
            accounting: Accounting {
                load_time: true,
                waits_and_cycles: true,
            },
        }
    }

    /// The hasher of the keys (the function's cache's, from [`Flights::with_hasher`]).
    pub(crate) fn hasher(&self) -> &DefaultHashBuilder {
        &self.hasher
    }

    /// This table with some of a miss's bookkeeping off: `load_time`'s two clock reads per
    /// leader, or the waits counter and the record of the flights a sync leader leads (what the
    /// recursion and cycle checks read). For `benches/single_flight.rs` only, which measures
    /// what each costs; a memoized function never calls it.
    #[doc(hidden)]
    pub fn measured_with(mut self, load_time: bool, waits_and_cycles: bool) -> Self {
        self.accounting = Accounting {
            load_time,
            waits_and_cycles,
        };
        self
    }

    /// The shard of the keys with hash `hash` ([`shard_of`]).
    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K, V> {
        &self.shards[self.shard_index(hash)]
    }

    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        shard_of(hash, self.shards.len())
    }

    /// How many keys are being computed right now, among those whose computations this table
    /// keeps (not those kept in the shards of an in-memory cache: [`FunctionCache::local`]).
    pub fn in_flight(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let table = shard.table.lock();
                table.entries.iter().filter(|e| e.key.is_some()).count()
            })
            .sum()
    }

    /// The counters to fold into the cache's statistics.
    pub fn counts(&self) -> FlightCounts {
        let sum = |counter: fn(&Shard<K, V>) -> &AtomicU64| {
            self.shards
                .iter()
                .map(|shard| counter(shard).load(Ordering::Relaxed))
                .fold(0u64, u64::saturating_add)
        };
        FlightCounts {
            waits: sum(|shard| &shard.waits),
            late_hits: sum(|shard| &shard.late_hits),
            load_time: ticks::duration(sum(|shard| &shard.load_ticks)),
        }
    }

    fn zero_counts(&self) {
        for shard in &*self.shards {
            shard.waits.store(0, Ordering::Relaxed);
            shard.late_hits.store(0, Ordering::Relaxed);
            // Under the lock, so that no leader's addition lands on the old total.
            let mut table = shard.table.lock();
            shard.load_ticks.store(0, Ordering::Relaxed);
            (table.untimed, table.skipped) = (0, 0);
        }
    }

    /// [`Table::timing`] of a new leader in `table`; 0 (untimed) without `load_time`.
    #[inline]
    fn timing(&self, table: &mut Table<K, V>) -> u64 {
        if self.accounting.load_time {
            table.timing()
        } else {
            0
        }
    }

    /// The process-wide name of the entry `id` of the shard of `hash`.
    fn flight_id(&self, hash: u64, id: u64) -> FlightId {
        self.flight_id_at(self.shard_index(hash), id)
    }

    /// The process-wide name of the entry `id` of the shard `index`.
    #[inline]
    fn flight_id_at(&self, index: usize, id: u64) -> FlightId {
        FlightId {
            table: std::ptr::from_ref(self) as *const () as usize,
            id: (id << 8) | index as u64,
        }
    }

    /// The epoch a caller without single-flight reads before it runs the body, for
    /// [`Flights::store_since`].
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Marks stale every computation in `table` of the keys that `is_key` accepts (with hash
    /// `hash`, or any) and returns the ids of the writes in progress among them. Under the
    /// shard's lock.
    fn mark_stale(
        table: &mut Table<K, V>,
        hash: Option<u64>,
        mut is_key: impl FnMut(&K) -> bool,
    ) -> Vec<(u64, u64)> {
        let mut writing = Vec::new();
        let mut mark = |entry: &mut Entry<K, V>| match &entry.key {
            Some(key) if is_key(key) => {
                entry.stale = true;
                entry.joinable = false;
            }
            Some(_) => {}
            None => writing.push((entry.hash, entry.id)),
        };
        table.entries.for_each_mut(hash, &mut mark);
        writing
    }

    /// Waits, releasing the shard's lock meanwhile, until the writes `writing` have ended, until
    /// `deadline` at most ([`REMOTE_WRITE_WAIT`] from the first wait of the invalidation: one
    /// bound for all the shards a clear visits): a write still under way then is cancelled (its
    /// [`WriteEnd::cancelled`] says so: not made if it has not started, removed again once made
    /// if it has), so that a dead store never hangs an invalidation.
    fn wait_for_writes(
        shard: &Shard<K, V>,
        table: &mut parking_lot::MutexGuard<'_, Table<K, V>>,
        writing: &[(u64, u64)],
        deadline: &mut Option<std::time::Instant>,
    ) {
        let pending = |table: &Table<K, V>| {
            writing.iter().any(|&(hash, id)| {
                table
                    .entries
                    .find(hash, |entry| entry.id == id && entry.key.is_none())
                    .is_some()
            })
        };
        if !pending(table) {
            return;
        }
        let deadline =
            *deadline.get_or_insert_with(|| std::time::Instant::now() + REMOTE_WRITE_WAIT);
        while pending(table) {
            if shard.stored.wait_until(table, deadline).timed_out() {
                for &(hash, id) in writing {
                    if let Some(entry) = table.entries.find_mut(hash, |entry| entry.id == id) {
                        entry.stale = true;
                    }
                }
                #[cfg(feature = "stores")]
                {
                    static WARNED: std::sync::atomic::AtomicBool =
                        std::sync::atomic::AtomicBool::new(false);
                    if !WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "a store write of a value computed before an invalidation took \
                             longer than {REMOTE_WRITE_WAIT:?}: the invalidation proceeds and \
                             the write is cancelled (removed again once made); warned once"
                        );
                    }
                }
                return;
            }
        }
    }

    /// Panics if this thread leads the flight `on`, or if waiting for it would close a cycle of
    /// waits; else records that this thread's flights wait for it. Nothing for a caller that
    /// leads nothing.
    fn block_on(&self, on: FlightId) -> Option<Blocked> {
        let leading = leading();
        if leading.is_empty() {
            return None;
        }
        if leading.contains(&on) {
            panic!(
                "`{}` called itself with the arguments it is computing: with single-flight the \
                 call would wait for its own result forever; a memoized function must not recurse \
                 on the same arguments",
                self.name
            );
        }
        let mut waits = WAITS.lock();
        let mut chain = vec![Arc::clone(&self.name)];
        let mut at = on;
        // Each step follows one blocked leader; the list holds no cycle, so it ends.
        for _ in 0..=waits.len() {
            let Some(edge) = waits.iter().find(|edge| edge.waiter == at) else {
                break;
            };
            if leading.contains(&edge.on) {
                let closing = Arc::clone(&edge.on_name);
                drop(waits);
                panic!("{}", cycle_message(&self.name, &chain, &closing));
            }
            chain.push(Arc::clone(&edge.on_name));
            at = edge.on;
        }
        waits.extend(leading.iter().map(|&waiter| Edge {
            waiter,
            on,
            on_name: Arc::clone(&self.name),
        }));
        Some(Blocked { leading, on })
    }
}

/// The panic of a caller that would close a cycle of waits.
fn cycle_message(name: &str, chain: &[Arc<str>], closing: &str) -> String {
    let mut message = format!(
        "cycle of memoized calls: this call of `{name}` would wait for the computation of \
         `{name}` for other arguments, run by another thread or task"
    );
    for next in &chain[1..] {
        let _ = write!(message, ", which waits for a computation of `{next}`");
    }
    let _ = write!(
        message,
        ", which waits for this caller's own computation of `{closing}`: with single-flight \
         they would wait for each other forever; this call panics so that the others proceed"
    );
    message
}

/// A blocked caller's recorded wait, removed when it stops waiting (also when unwinding or
/// dropped, as a cancelled future is).
struct Blocked {
    leading: Vec<FlightId>,
    on: FlightId,
}

impl Drop for Blocked {
    fn drop(&mut self) {
        WAITS
            .lock()
            .retain(|edge| !(edge.on == self.on && self.leading.contains(&edge.waiter)));
    }
}

impl<K: Hash + Eq, V: Clone> Flights<K, V> {
    /// Waits for the caller computing the key that `probe` borrows, or becomes that caller.
    /// `probe` must hash as the key does; `is_match` compares it with a stored key; `make_key`
    /// owns it. Call it after a cache miss: it checks the cache again before leading.
    #[inline]
    pub fn join<'a, Q: Hash + ?Sized, C: FunctionCache<K, V>>(
        &'a self,
        cache: &'a C,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
        make_key: impl FnOnce() -> K,
    ) -> Joined<'a, K, V> {
        let hash = self.hasher.hash_one(probe);
        let local = cache.local(self.stamp);
        self.join_blocking(cache, local, hash, Borrowed { is_match, make_key })
    }

    /// [`join`](Flights::join) for an owned key.
    pub fn join_owned<'a, C: FunctionCache<K, V>>(
        &'a self,
        cache: &'a C,
        key: K,
    ) -> Joined<'a, K, V> {
        let hash = self.hasher.hash_one(&key);
        let local = cache.local(self.stamp);
        self.join_blocking(cache, local, hash, Owned(key))
    }

    /// [`join`](Flights::join) for an `async fn`: waits without blocking the thread.
    pub async fn join_async<'a, Q: Hash + ?Sized, C: FunctionCache<K, V>>(
        &'a self,
        cache: &'a C,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
        make_key: impl FnOnce() -> K,
    ) -> Joined<'a, K, V> {
        let hash = self.hasher.hash_one(probe);
        let local = cache.local(self.stamp);
        self.join_waiting(cache, local, hash, Borrowed { is_match, make_key })
            .await
    }

    /// [`join_owned`](Flights::join_owned) for an `async fn`.
    pub async fn join_owned_async<'a, C: FunctionCache<K, V>>(
        &'a self,
        cache: &'a C,
        key: K,
    ) -> Joined<'a, K, V> {
        let hash = self.hasher.hash_one(&key);
        let local = cache.local(self.stamp);
        self.join_waiting(cache, local, hash, Owned(key)).await
    }

    #[inline]
    fn join_blocking<'a, C: FunctionCache<K, V>>(
        &'a self,
        cache: &'a C,
        local: Option<&'a crate::Cache<K, V>>,
        hash: u64,
        probe: impl Probe<K>,
    ) -> Joined<'a, K, V> {
        let (mut probe, mut alone) = (Some(probe), false);
        loop {
            let (flight, blocked) = match self.step(cache, local, hash, &mut probe, alone) {
                Step::Joined(joined) => return joined,
                Step::Wait(flight, blocked) => (flight, blocked),
            };
            let done = flight.wait();
            drop(blocked);
            if let Some(joined) = self.ended(hash, done, &mut alone) {
                return joined;
            }
        }
    }

    async fn join_waiting<'a, C: FunctionCache<K, V>>(
        &'a self,
        cache: &'a C,
        local: Option<&'a crate::Cache<K, V>>,
        hash: u64,
        probe: impl Probe<K>,
    ) -> Joined<'a, K, V> {
        let (mut probe, mut alone) = (Some(probe), false);
        loop {
            let (flight, blocked) = match self.step(cache, local, hash, &mut probe, alone) {
                Step::Joined(joined) => return joined,
                Step::Wait(flight, blocked) => (flight, blocked),
            };
            let done = Waiting {
                flight: &flight,
                slot: None,
            }
            .await;
            drop(blocked);
            if let Some(joined) = self.ended(hash, done, &mut alone) {
                return joined;
            }
        }
    }

    /// What a waiter returns once its flight ended; `None` when it tries again, leading a
    /// computation nobody can join (`alone`) when its leader released it.
    fn ended(&self, hash: u64, done: Done<V>, alone: &mut bool) -> Option<Joined<'_, K, V>> {
        let joined = match done {
            Done::Value(value) => Joined::Ready(value),
            Done::Failed(failure) => Joined::Failed(failure),
            Done::Released | Done::Abandoned => {
                *alone = matches!(done, Done::Released);
                return None;
            }
        };
        if self.accounting.waits_and_cycles {
            self.shard(hash).waits.fetch_add(1, Ordering::Relaxed);
        }
        Some(joined)
    }

    /// Under the shard's lock: the flight to wait for, or a new one that this caller leads (one
    /// that nobody can join when it was released to run `alone`). `local` is
    /// `cache.local(stamp)`.
    #[inline]
    fn step<'a, P: Probe<K>, C: FunctionCache<K, V>>(
        &'a self,
        cache: &'a C,
        local: Option<&'a crate::Cache<K, V>>,
        hash: u64,
        probe: &mut Option<P>,
        alone: bool,
    ) -> Step<'a, K, V> {
        if let Some(local) = local
            && let Some((shard, _, now)) = local.local_shard(hash)
        {
            return self.step_local(local, shard, now, hash, probe, alone);
        }
        let index = self.shard_index(hash);
        let shard = &self.shards[index];
        let mut table = shard.table.lock();
        if !alone {
            let found = match probe {
                Some(probe) => table.entries.find_mut(hash, |entry| match &entry.key {
                    Some(key) if entry.joinable => probe.matches(key),
                    _ => false,
                }),
                None => None,
            };
            if let Some(entry) = found {
                let id = entry.id;
                let flight = entry.flight.get_or_insert_with(Waited::new).share();
                drop(table);
                return self.wait_step(hash, id, flight);
            }
        }
        let Some(probe) = probe.take() else {
            unreachable!("a caller stops joining once it leads");
        };
        let key = probe.into_key();
        // A leader that finished between this caller's miss and now stored its value first.
        // Under the lock only whether it is there (a caller that finds neither the entry nor
        // the value leads); the value is cloned with the lock released, since a `Clone` may
        // call the function (it deadlocked on this lock when cloned under it).
        while !C::REMOTE && cache.contains_hashed(self.stamp, hash, &key) {
            drop(table);
            if let Some(value) = cache.peek_hashed(self.stamp, hash, &key) {
                shard.late_hits.fetch_add(1, Ordering::Relaxed);
                return Step::Joined(Joined::Ready(value));
            }
            // Removed meanwhile (evicted, invalidated): look again, as at first.
            table = shard.table.lock();
            if !alone
                && let Some(entry) = table.entries.find_mut(hash, |entry| {
                    entry.joinable && entry.key.as_ref() == Some(&key)
                })
            {
                let id = entry.id;
                let flight = entry.flight.get_or_insert_with(Waited::new).share();
                drop(table);
                return self.wait_step(hash, id, flight);
            }
        }
        let id = table.insert(hash, Some(key), !alone);
        let weight = self.timing(&mut table);
        drop(table);
        Step::Joined(Joined::Lead(Leader::new(
            self,
            hash,
            Place::Table(index),
            id,
            weight,
        )))
    }

    /// Waits for the flight of entry `id` (of hash `hash`), joined with the lock released.
    fn wait_step<'a>(&self, hash: u64, id: u64, flight: Arc<Flight<V>>) -> Step<'a, K, V> {
        let blocked = self.block_on(self.flight_id(hash, id));
        Step::Wait(flight, blocked)
    }

    /// [`step`](Flights::step) with the pending computations kept in `shard`, the shard of
    /// `hash` of the in-memory cache `local`: one lock round trip, the cache's own, to join a
    /// computation of the key, or find its value (stored since the caller's miss), or register
    /// a new one. `Hash`, `Eq` and `Clone` (of the key, and of a value found) run under the
    /// lock, as in any write of the cache; a key made for nothing is dropped after it.
    #[inline]
    fn step_local<'a, P: Probe<K>>(
        &'a self,
        local: &'a crate::Cache<K, V>,
        shard: &'a CacheShard<K, V>,
        now: u64,
        hash: u64,
        probe: &mut Option<P>,
        alone: bool,
    ) -> Step<'a, K, V> {
        enum Found<'s, K, V> {
            Wait(Arc<Flight<V>>, u64),
            Stored(crate::concurrent::shard::Found<'s, V>, K),
            Lead(u64, u64),
        }
        let found = shard.with_pending_peek(now, |pending, mut locked| {
            if !alone
                && let Some(probe) = probe
                && let Some(entry) = pending.entries.find_mut(hash, |entry| match &entry.key {
                    Some(key) if entry.joinable => probe.matches(key),
                    _ => false,
                })
            {
                let flight = entry.flight.get_or_insert_with(Waited::new).share();
                return Found::Wait(flight, entry.id);
            }
            let Some(probe) = probe.take() else {
                unreachable!("a caller stops joining once it leads");
            };
            let key = probe.into_key();
            // A leader that finished between this caller's miss and now stored its value
            // under this lock, as it removed its entry: found here, never computed twice.
            if let Some(value) = locked.find(hash, |stored| *stored == key) {
                return Found::Stored(value, key);
            }
            let id = pending.insert(hash, Some(key), !alone);
            Found::Lead(id, self.timing(pending))
        });
        match found {
            Found::Wait(flight, id) => {
                let blocked = self.block_on(local_flight_id(shard, id));
                Step::Wait(flight, blocked)
            }
            Found::Stored(value, key) => {
                // Cloned now that the lock is released (its slot pinned meanwhile).
                let value = shard.read_found(value, V::clone);
                drop(key);
                self.shard(hash).late_hits.fetch_add(1, Ordering::Relaxed);
                Step::Joined(Joined::Ready(value))
            }
            Found::Lead(id, weight) => {
                let place = Place::Local(Local {
                    cache: local,
                    shard,
                    abandon: Self::abandon_local,
                });
                Step::Joined(Joined::Lead(Leader::new(self, hash, place, id, weight)))
            }
        }
    }

    /// One step of [`join_owned`](Flights::join_owned) that never waits: `None` where it would
    /// wait for another caller's computation (for the shuttle tests, whose threads must not
    /// block outside the scheduler).
    #[cfg(test)]
    pub(crate) fn join_or_busy<'a, C: FunctionCache<K, V>>(
        &'a self,
        cache: &'a C,
        key: K,
    ) -> Option<Joined<'a, K, V>> {
        self.join_or_watch(cache, key).ok()
    }

    /// [`join_or_busy`](Flights::join_or_busy), with the flight it would wait for where it
    /// would wait: whether that flight has ended, a waiter would know ([`Watch::ended`]).
    #[cfg(test)]
    pub(crate) fn join_or_watch<'a, C: FunctionCache<K, V>>(
        &'a self,
        cache: &'a C,
        key: K,
    ) -> Result<Joined<'a, K, V>, Watch<V>> {
        let hash = self.hasher.hash_one(&key);
        let local = cache.local(self.stamp);
        match self.step(cache, local, hash, &mut Some(Owned(key)), false) {
            Step::Joined(joined) => Ok(joined),
            Step::Wait(flight, blocked) => {
                drop(blocked);
                Err(Watch(flight))
            }
        }
    }

    /// Stores the leader's `value` in `cache`, unless its key was invalidated meanwhile, and
    /// hands it to the waiters.
    #[inline]
    pub fn complete<C: FunctionCache<K, V>>(&self, leader: Leader<'_, K, V>, cache: &C, value: V) {
        match leader.place {
            Place::Local(local) => self.complete_local(leader, local, value),
            Place::Table(index) => self.complete_in_table(leader, index, cache, value),
        }
    }

    /// [`complete`](Flights::complete) of a leader whose entry is in this table's shard
    /// `index`.
    #[inline(never)]
    fn complete_in_table<C: FunctionCache<K, V>>(
        &self,
        leader: Leader<'_, K, V>,
        index: usize,
        cache: &C,
        value: V,
    ) {
        let ended = leader.end();
        let (hash, id) = (ended.hash, ended.id);
        let shard = &self.shards[index];
        let mut table = shard.table.lock();
        ended.account(shard, &mut table);
        if C::REMOTE {
            let Some(entry) = table.entries.find_mut(hash, |entry| entry.id == id) else {
                unreachable!("a leader's entry stays until it finishes");
            };
            let flight = entry.flight.take();
            // A fresh value is written without the lock, the entry saying so meanwhile.
            let key = if entry.stale { None } else { entry.key.take() };
            if key.is_none() {
                table.take(hash, id);
            }
            drop(table);
            // The waiters first; a `Clone` that panicked releases them (see `Waited`), and the
            // write still ends the entry (its `WriteEnd`) before the leader's caller gets the
            // panic.
            let panic = flight.and_then(|flight| match clone_caught(&value) {
                Ok(value) => {
                    flight.finish(Outcome::Ready(value));
                    None
                }
                Err(panic) => Some(panic),
            });
            if let Some(key) = key {
                self.write_remote(cache, hash, id, key, value);
            }
            if let Some(panic) = panic {
                std::panic::resume_unwind(panic);
            }
            return;
        }
        let waited = table
            .entries
            .find(hash, |entry| entry.id == id)
            .is_some_and(|entry| entry.flight.is_some());
        let cloned = if waited {
            // The waiters' copy is made with the table's lock released (a slow `Clone` stalls
            // no other key of this table shard, and one that calls the function does not
            // deadlock on it): the entry stays meanwhile, joinable (a caller that comes now
            // joins the same flight), and is taken once the lock is taken again.
            drop(table);
            let cloned = clone_caught(&value);
            table = shard.table.lock();
            Some(cloned)
        } else {
            None
        };
        let Some(entry) = table.take(hash, id) else {
            unreachable!("a leader's entry stays until it finishes");
        };
        // Stored before the shard's lock is released: a caller that misses the cache now and
        // finds no flight finds the value when it checks the cache again; an invalidation either
        // marked the entry stale first or removes the value after.
        if let (false, Some(key)) = (entry.stale, entry.key) {
            cache.insert_if_absent_hashed(self.stamp, hash, key, value);
        }
        drop(table);
        // A flight only where there was one at the first look: nobody joins while the lock is
        // held, and the entry was joinable only while it was.
        if let (Some(flight), Some(cloned)) = (entry.flight, cloned) {
            hand_over(flight, cloned);
        }
    }

    /// [`complete`](Flights::complete) of a leader whose entry is kept in the shard of its key
    /// of the in-memory cache `local`: one lock round trip, the cache's, removes the entry and
    /// stores the value (unless the key was invalidated meanwhile). A caller that misses now
    /// finds the entry or the value when it registers (under that lock), never neither; an
    /// invalidation either marked the entry stale first or removes the value after.
    #[inline]
    fn complete_local(&self, leader: Leader<'_, K, V>, local: Local<'_, K, V>, value: V) {
        let ended = leader.end();
        let hash = ended.hash;
        /// What the waiters get.
        enum Waiters<'s, V> {
            /// None waits.
            None,
            /// The value stored, read from its slot (pinned) once the lock is released: the
            /// `Clone` runs without the lock (a slow one stalls no writer, one that writes to
            /// the cache does not deadlock).
            /// (Boxed, as the other: a leader that nobody waits for, the usual one, moves a
            /// word out of the lock.)
            Stored(Box<(Waited<V>, crate::concurrent::shard::Found<'s, V>)>),
            /// The value itself, which the cache does not keep.
            Unstored(Box<(Waited<V>, V)>),
        }
        let shard = local.shard;
        let (waiters, unstored) = self.take_local(local, &ended, move |entry, locked| {
            match (entry.stale, entry.key, entry.flight) {
                (false, Some(key), None) => {
                    locked.insert_if_absent(hash, key, value);
                    (Waiters::None, None)
                }
                (false, Some(key), Some(flight)) if !locked.keeps_nothing() => {
                    // Stored: only a weighted cache refuses a value it can keep (one heavier
                    // than its bound), and it keeps its computations in the table of flights.
                    match locked.insert_if_absent_found(hash, key, value) {
                        Some(found) => (Waiters::Stored(Box::new((flight, found))), None),
                        None => (Waiters::None, None),
                    }
                }
                // Invalidated meanwhile, or a cache that keeps nothing: nothing stored, the key
                // dropped without the lock (and not in this closure: a `Drop` that panicked
                // after the return value was made would leak it, and with it the flight
                // unfinished).
                (_, key, Some(flight)) => (Waiters::Unstored(Box::new((flight, value))), Some(key)),
                (_, key, None) => (Waiters::None, Some(key)),
            }
        });
        // Dropped first: if a `Drop` panics, the flight (a local) still wakes its waiters.
        drop(unstored);
        match waiters {
            Waiters::None => {}
            Waiters::Stored(stored) => {
                let (flight, found) = *stored;
                let cloned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    shard.read_found(found, V::clone)
                }));
                hand_over(flight, cloned);
            }
            Waiters::Unstored(unstored) => {
                let (flight, value) = *unstored;
                flight.finish(Outcome::Ready(value));
            }
        }
    }

    /// What dropping a leader whose entry is kept in the in-memory cache `local` does: its
    /// waiters try again.
    fn abandon_local(&self, local: Local<'_, K, V>, ended: &Ended) {
        let taken = self.take_local(local, ended, |entry, _| entry);
        if let Some(flight) = taken.flight {
            flight.finish(Outcome::Abandoned);
        }
    }

    /// Under the lock of the shard of `ended`'s key of the in-memory cache (both in `local`):
    /// adds the leader's time, removes its entry (only ever removed by its leader) and hands it
    /// to `then` with the locked shard; what `then` returns (what is left of the entry among
    /// it: a key not stored, the flight) is dropped after the lock is released.
    #[inline]
    fn take_local<'a, R>(
        &self,
        local: Local<'a, K, V>,
        ended: &Ended,
        then: impl FnOnce(Entry<K, V>, &mut Locked<'a, '_, K, V>) -> R,
    ) -> R {
        let Local { cache, shard, .. } = local;
        let (hasher, now) = cache.write_context();
        // The counters are those of the table's shard of the key.
        let (taken, dropped) = shard.with_pending(hasher, now, |pending, locked| {
            if ended.weight > 0 {
                // Found only for a timed leader (one in 16 once the bodies are cheap).
                ended.account(self.shard(ended.hash), pending);
            }
            let Some(entry) = pending.take(ended.hash, ended.id) else {
                unreachable!("a leader's entry stays until it finishes");
            };
            then(entry, locked)
        });
        shard.release(dropped);
        taken
    }

    /// Writes `key` to a cache outside the process without the shard's lock, while the entry
    /// `id` (its key taken out) says so; the entry is removed and the invalidations waiting for
    /// the write are woken when the cache ends the write (drops its [`WriteEnd`]: at once for a
    /// write made on this thread, on the store's I/O thread for an `async fn`'s).
    fn write_remote<C: FunctionCache<K, V>>(
        &self,
        cache: &C,
        hash: u64,
        id: u64,
        key: K,
        value: V,
    ) {
        let end = WriteEnd {
            shards: Arc::clone(&self.shards),
            index: self.shard_index(hash),
            hash,
            id,
        };
        cache.insert_tracked(key, value, end);
    }

    /// Ends the leader's flight without a value: hands `failure` to the waiters, or with `None`
    /// releases them at once to run the body each alone.
    pub fn fail(&self, leader: Leader<'_, K, V>, failure: Option<Failure>) {
        let place = leader.place;
        let ended = leader.end();
        let index = match place {
            Place::Local(local) => {
                let taken = self.take_local(local, &ended, |entry, _| entry);
                if let Some(flight) = taken.flight {
                    flight.finish(match failure {
                        Some(failure) => Outcome::Failed(failure),
                        None => Outcome::Released,
                    });
                }
                return;
            }
            Place::Table(index) => index,
        };
        let shard = &self.shards[index];
        let mut table = shard.table.lock();
        ended.account(shard, &mut table);
        let entry = table.take(ended.hash, ended.id);
        drop(table);
        if let Some(flight) = entry.and_then(|entry| entry.flight) {
            flight.finish(match failure {
                Some(failure) => Outcome::Failed(failure),
                None => Outcome::Released,
            });
        }
    }

    /// Ends the leader's flight with a `failure` that is also cached: hands it to the waiters and
    /// stores `negative` for the key in `cache` (an in-memory cache), unless the key was
    /// invalidated while the leader ran.
    pub fn fail_into<N, C: FunctionCache<K, N>>(
        &self,
        leader: Leader<'_, K, V>,
        failure: Failure,
        cache: &C,
        negative: N,
    ) {
        let place = leader.place;
        let ended = leader.end();
        let index = match place {
            Place::Local(local) => {
                // Stored under the lock of the key's shard of the function's cache, as
                // `complete_local` stores a value: an invalidation either marked the entry stale
                // first or removes the failure after (the negative cache's lock is taken inside
                // the main cache's, never the other way).
                let taken = self.take_local(local, &ended, |mut entry, _| {
                    if let (false, Some(key)) = (entry.stale, entry.key.take()) {
                        cache.insert_if_absent(key, negative);
                    }
                    entry
                });
                if let Some(flight) = taken.flight {
                    flight.finish(Outcome::Failed(failure));
                }
                return;
            }
            Place::Table(index) => index,
        };
        let shard = &self.shards[index];
        let mut table = shard.table.lock();
        ended.account(shard, &mut table);
        let Some(entry) = table.take(ended.hash, ended.id) else {
            unreachable!("a leader's entry stays until it finishes");
        };
        // Stored under the shard's lock, as `complete` stores a value: an invalidation either
        // marked the entry stale first or removes the entry after.
        if let (false, Some(key)) = (entry.stale, entry.key) {
            cache.insert_if_absent(key, negative);
        }
        drop(table);
        if let Some(flight) = entry.flight {
            flight.finish(Outcome::Failed(failure));
        }
    }

    /// Stores `value` for `key` in `cache`, an in-memory cache beside the function's own, as
    /// [`Flights::store_since`] does: unless an invalidation came since the epoch `since`.
    pub fn store_aside_since<N, C: FunctionCache<K, N>>(
        &self,
        cache: &C,
        since: u64,
        key: K,
        value: N,
    ) {
        let hash = self.hasher.hash_one(&key);
        let _table = self.shard(hash).table.lock();
        if self.epoch.load(Ordering::Acquire) == since {
            cache.insert_if_absent(key, value);
        }
    }

    /// Removes `key` from `cache`; no computation of it that is running now stores its value
    /// or is joined after this returns (its waiters still get it). Whether it was stored.
    pub fn invalidate<C: FunctionCache<K, V>>(&self, cache: &C, key: &K) -> bool {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        let mut table = shard.table.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let writing = Self::mark_stale(&mut table, Some(hash), |stored| stored == key);
        if C::REMOTE {
            Self::wait_for_writes(shard, &mut table, &writing, &mut None);
            drop(table);
            return cache.remove(key);
        }
        // The computations kept in the cache's shard of the key are marked under that shard's
        // lock, with the removal: a leader there either stored its value before (removed
        // here) or finds its entry stale and stores nothing.
        if let Some(local) = cache.local(self.stamp)
            && let Some((cache_shard, hasher, now)) = local.local_shard(hash)
        {
            let (removed, dropped) = cache_shard.with_pending(hasher, now, |pending, locked| {
                Self::mark_stale(pending, Some(hash), |stored| stored == key);
                locked.remove(hash, |stored| stored == key)
            });
            drop(table);
            cache_shard.release(dropped);
            return removed;
        }
        let removed = cache.remove(key);
        drop(table);
        removed
    }

    /// Empties `cache` and zeroes the statistics; no computation running now stores its value
    /// or is joined after this returns (its waiters still get it).
    pub fn clear<C: FunctionCache<K, V>>(&self, cache: &C) {
        // First the epoch: a caller without single-flight that read it before stores nothing,
        // one that read it after started its body after this call began.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        // Then each shard in turn: a leader marked stale stores nothing; one that stored before
        // its shard was visited is removed by the reset below, as is one that started since.
        let mut deadline = None;
        for shard in &*self.shards {
            let mut table = shard.table.lock();
            let writing = Self::mark_stale(&mut table, None, |_| true);
            if C::REMOTE {
                Self::wait_for_writes(shard, &mut table, &writing, &mut deadline);
            }
        }
        // Likewise the computations kept in the cache's own shards.
        if let Some(local) = cache.local(self.stamp) {
            let (shards, hasher, now) = local.local_shards();
            for cache_shard in shards {
                let ((), dropped) = cache_shard.with_pending(hasher, now, |pending, _| {
                    Self::mark_stale(pending, None, |_| true);
                });
                cache_shard.release(dropped);
            }
        }
        cache.reset();
        self.zero_counts();
    }

    /// Stores `value` for `key`, computed by a caller without single-flight that read
    /// [`Flights::epoch`] as `since` before it ran the body, unless an invalidation came since.
    pub fn store_since<C: FunctionCache<K, V>>(&self, cache: &C, since: u64, key: K, value: V) {
        let hash = self.hasher.hash_one(&key);
        if !C::REMOTE
            && let Some(local) = cache.local(self.stamp)
            && let Some(shard) = local.local_shard(hash)
        {
            return self.store_local(shard, hash, since, key, value);
        }
        self.store_in_table(cache, hash, since, key, value);
    }

    /// [`store_since`](Flights::store_since) into the in-memory `cache`, of a key whose hash by
    /// the cache's hasher is `cache_hash` (found by its lookup: not hashed again when the cache
    /// hashes as this table does).
    #[inline]
    pub(crate) fn store_since_hashed(
        &self,
        cache: &crate::Cache<K, V>,
        cache_hash: u64,
        since: u64,
        key: K,
        value: V,
    ) {
        if cache.hashes_like(self.stamp)
            && let Some(shard) = cache.local_shard(cache_hash)
        {
            return self.store_local(shard, cache_hash, since, key, value);
        }
        self.store_since(cache, since, key, value);
    }

    /// Stores `key` (of hash `hash`) in its in-memory cache shard unless the epoch moved since
    /// `since`: the epoch is checked under that shard's lock, with the insert. An invalidation
    /// bumps the epoch before it takes that lock to remove the key (`invalidate`, `clear`), so
    /// either this insert comes first and is removed, or it comes after and sees the new epoch.
    #[inline]
    fn store_local(
        &self,
        (cache_shard, hasher, now): (&CacheShard<K, V>, &DefaultHashBuilder, u64),
        hash: u64,
        since: u64,
        key: K,
        value: V,
    ) {
        let (stale, dropped) = cache_shard.with_pending(hasher, now, |_, locked| {
            if self.epoch.load(Ordering::Acquire) != since {
                return Some((key, value));
            }
            locked.insert_if_absent(hash, key, value);
            None
        });
        cache_shard.release(dropped);
        drop(stale); // user code (Drop) without the lock
    }

    /// [`store_since`](Flights::store_since) through this table's shard of `hash`.
    fn store_in_table<C: FunctionCache<K, V>>(
        &self,
        cache: &C,
        hash: u64,
        since: u64,
        key: K,
        value: V,
    ) {
        let shard = self.shard(hash);
        let mut table = shard.table.lock();
        if self.epoch.load(Ordering::Acquire) != since {
            return;
        }
        if !C::REMOTE {
            cache.insert_if_absent_hashed(self.stamp, hash, key, value);
            return;
        }
        // Written without the lock, as a leader's value, an entry saying so meanwhile.
        let id = table.insert(hash, None, false);
        drop(table);
        self.write_remote(cache, hash, id, key, value);
    }
}

/// A write of a value to a cache outside the process that is under way, made by
/// [`FunctionCache::insert_tracked`]: while it lives, invalidations of its key wait for it (up to
/// `REMOTE_WRITE_WAIT`, 1 s); dropping it (the write ended, failed, or will never be made: a
/// cancelled `async fn` dropped it unsent) ends the write for them. `Send` and `'static` with its
/// key and value, so that it can end on the store's I/O thread.
pub struct WriteEnd<K, V> {
    shards: Arc<[Shard<K, V>]>,
    index: usize,
    hash: u64,
    id: u64,
}

impl<K, V> WriteEnd<K, V> {
    /// Whether an invalidation gave up waiting for this write: it is then not made if it has not
    /// started, and the key is removed again if it was made.
    pub fn cancelled(&self) -> bool {
        let table = self.shards[self.index].table.lock();
        table
            .entries
            .find(self.hash, |entry| entry.id == self.id)
            .is_some_and(|entry| entry.stale)
    }
}

impl<K, V> Drop for WriteEnd<K, V> {
    fn drop(&mut self) {
        let shard = &self.shards[self.index];
        let entry = shard.table.lock().take(self.hash, self.id);
        shard.stored.notify_all();
        drop(entry);
    }
}

// Refresh-ahead (`refresh.rs`): a leader that never waits.
impl<K: Hash + Eq, V: Clone> Flights<K, V> {
    /// Leads a computation of `key` unless one is running (then `None`): what a background
    /// refresh takes, so that at most one runs per key and the caller that schedules it never
    /// waits. Nobody joins it: it may wait in a queue before it runs, and a caller (or another
    /// refresh's body) waiting for it there could wait for good; a caller that misses the key
    /// meanwhile computes it itself. An invalidation marks it stale as any other (its value is
    /// then not stored).
    pub fn try_lead(&self, key: K) -> Option<Leader<'_, K, V>> {
        let hash = self.hasher.hash_one(&key);
        let index = self.shard_index(hash);
        let mut table = self.shards[index].table.lock();
        let running = table
            .entries
            .find(hash, |entry| entry.key.as_ref() == Some(&key))
            .is_some();
        if running {
            return None;
        }
        let id = table.insert(hash, Some(key), false);
        let weight = self.timing(&mut table);
        drop(table);
        Some(Leader::new(self, hash, Place::Table(index), id, weight))
    }
}

impl<V> Flight<V> {
    fn new() -> Self {
        Flight {
            state: Mutex::new(State {
                outcome: Outcome::Running,
                wakers: Vec::new(),
                free: Vec::new(),
            }),
            done: Condvar::new(),
        }
    }

    fn finish(&self, outcome: Outcome<V>) {
        let wakers = {
            let mut state = self.state.lock();
            state.outcome = outcome;
            state.free = Vec::new();
            std::mem::take(&mut state.wakers)
        };
        self.done.notify_all();
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }
}

impl<V: Clone> Outcome<V> {
    /// What a waiter takes, once the flight ended.
    fn done(&self) -> Option<Done<V>> {
        match self {
            Outcome::Running => None,
            Outcome::Ready(value) => Some(Done::Value(value.clone())),
            Outcome::Failed(failure) => Some(Done::Failed(failure.clone())),
            Outcome::Released => Some(Done::Released),
            Outcome::Abandoned => Some(Done::Abandoned),
        }
    }
}

impl<V: Clone> Flight<V> {
    /// Blocks until the leader is done.
    fn wait(&self) -> Done<V> {
        let mut state = self.state.lock();
        loop {
            match state.outcome.done() {
                Some(done) => return done,
                None => self.done.wait(&mut state),
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
    type Output = Done<V>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Done<V>> {
        let flight = self.flight;
        let mut state = flight.state.lock();
        if let Some(done) = state.outcome.done() {
            return Poll::Ready(done);
        }
        let waker = &mut state.wakers;
        match self.slot {
            Some(slot)
                if waker[slot]
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker())) => {}
            Some(slot) => waker[slot] = Some(cx.waker().clone()),
            None => {
                let slot = match state.free.pop() {
                    Some(slot) => {
                        state.wakers[slot] = Some(cx.waker().clone());
                        slot
                    }
                    None => {
                        state.wakers.push(Some(cx.waker().clone()));
                        state.wakers.len() - 1
                    }
                };
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl<V> Drop for Waiting<'_, V> {
    /// A waiter dropped before its flight ended (its task cancelled, e.g. by a timeout) gives
    /// its slot back.
    fn drop(&mut self) {
        let Some(slot) = self.slot else {
            return;
        };
        let mut state = self.flight.state.lock();
        // Once the flight ended, its wakers were taken (and woken): nothing to give back.
        if matches!(state.outcome, Outcome::Running) && slot < state.wakers.len() {
            state.wakers[slot] = None;
            state.free.push(slot);
        }
    }
}

/// The caller that computes a key while others wait. Dropping it without
/// [`Flights::complete`] or [`Flights::fail`] abandons the flight: the waiters retry.
pub struct Leader<'a, K, V> {
    flights: &'a Flights<K, V>,
    hash: u64,
    id: u64,
    /// When the body started, in [`ticks`], if timed.
    started: u64,
    /// For how many leaders its time counts, 0 if untimed ([`Table::timing`]).
    weight: u64,
    /// Where its entry is kept.
    place: Place<'a, K, V>,
}

/// Where a leader's entry is kept.
enum Place<'a, K, V> {
    /// In the table's shard of this index (the shard of the key's hash).
    Table(usize),
    /// In the in-memory cache's shard of the key.
    Local(Local<'a, K, V>),
}

impl<K, V> Clone for Place<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Place<'_, K, V> {}

/// A leader's entry kept in a shard of the function's in-memory cache (whose address is the
/// table part of its flight's name): the shard, found once when the leader registered.
struct Local<'a, K, V> {
    cache: &'a crate::Cache<K, V>,
    shard: &'a CacheShard<K, V>,
    /// [`Flights::abandon_local`], named where the key's bounds are known (a leader's `Drop`
    /// has none).
    abandon: fn(&Flights<K, V>, Local<'_, K, V>, &Ended),
}

impl<K, V> Clone for Local<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Local<'_, K, V> {}

/// A leader that finished: its entry, and its time to add under the shard's lock.
struct Ended {
    hash: u64,
    id: u64,
    spent: u64,
    weight: u64,
}

impl Ended {
    /// Adds the leader's time to its `shard`, whose `table` is locked.
    #[inline]
    fn account<K, V>(&self, shard: &Shard<K, V>, table: &mut Table<K, V>) {
        if self.weight > 0 {
            table.add_load(&shard.load_ticks, self.id, self.spent, self.weight);
        }
    }
}

impl<'a, K, V> Leader<'a, K, V> {
    /// The leader of the entry `id` (of hash `hash`, kept in `place`), timed when `weight` is
    /// not 0.
    #[inline]
    fn new(
        flights: &'a Flights<K, V>,
        hash: u64,
        place: Place<'a, K, V>,
        id: u64,
        weight: u64,
    ) -> Self {
        Leader {
            flights,
            hash,
            id,
            started: if weight > 0 { ticks::now() } else { 0 },
            weight,
            place,
        }
    }

    /// The process-wide name of this leader's flight.
    #[inline]
    fn flight_id(&self) -> FlightId {
        match self.place {
            Place::Local(local) => local_flight_id(local.shard, self.id),
            Place::Table(index) => self.flights.flight_id_at(index, self.id),
        }
    }

    /// [`finish`](Leader::finish) by a completion, which takes the leader: its `Drop`, which
    /// abandons the flight, is not run.
    #[inline]
    fn end(self) -> Ended {
        std::mem::ManuallyDrop::new(self).finish()
    }

    /// Ends the leader's run: its entry, and its time for the load time.
    #[inline]
    fn finish(&self) -> Ended {
        Ended {
            hash: self.hash,
            id: self.id,
            spent: if self.weight > 0 {
                ticks::now().saturating_sub(self.started)
            } else {
                0
            },
            weight: self.weight,
        }
    }

    /// Runs a synchronous body as this flight's leader: a call of the same function with the
    /// same key from inside `body` panics instead of waiting for itself.
    pub fn call<R>(&self, body: impl FnOnce() -> R) -> R {
        if !self.flights.accounting.waits_and_cycles {
            return body();
        }
        let _leading = Leading::enter(self.flight_id());
        body()
    }

    /// Runs an async body as this flight's leader: while it is being polled, a call of the same
    /// function with the same key from inside it panics instead of waiting for itself.
    pub fn run<F: Future + Unpin>(&self, body: F) -> Running<F> {
        Running {
            id: self.flight_id(),
            body,
        }
    }
}

impl<K, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        // A completion takes its leader without dropping it (`end`): this leader was abandoned.
        let ended = self.finish();
        let index = match self.place {
            Place::Local(local) => return (local.abandon)(self.flights, local, &ended),
            Place::Table(index) => index,
        };
        let shard = &self.flights.shards[index];
        let mut table = shard.table.lock();
        ended.account(shard, &mut table);
        let entry = table.take(ended.hash, ended.id);
        drop(table);
        if let Some(flight) = entry.and_then(|entry| entry.flight) {
            flight.finish(Outcome::Abandoned);
        }
    }
}

/// Marks a flight as led by this thread until dropped (also when the body unwinds). Only ever
/// a local of the scope that runs the body, so that records end in the order they began.
struct Leading;

impl Leading {
    #[inline]
    fn enter(id: FlightId) -> Self {
        LEADING.with(|record| {
            let depth = record.depth.get();
            match record.cells.get(depth) {
                Some(cell) => cell.set(id),
                None => Self::deeper(Some(id)),
            }
            record.depth.set(depth + 1);
        });
        Leading
    }

    /// Pushes `id` to the record's `Vec` of deeper flights, or pops its last with `None`.
    #[cold]
    #[inline(never)]
    fn deeper(id: Option<FlightId>) {
        DEEPER.with(|deeper| match id {
            Some(id) => deeper.borrow_mut().push(id),
            None => drop(deeper.borrow_mut().pop()),
        });
    }
}

impl Drop for Leading {
    #[inline]
    fn drop(&mut self) {
        LEADING.with(|record| {
            let depth = record.depth.get() - 1;
            if depth >= LEADING_CELLS {
                Self::deeper(None);
            }
            record.depth.set(depth);
        });
    }
}

/// An async body run by [`Leader::run`].
pub struct Running<F> {
    id: FlightId,
    body: F,
}

impl<F: Future + Unpin> Future for Running<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _leading = Leading::enter(self.id);
        Pin::new(&mut self.body).poll(cx)
    }
}

/// The clock of the load time, read twice by every timed leader: the CPU's time-stamp counter where it
/// ticks at a constant rate whatever the power state (x86_64 with an invariant TSC, as the kernel's
/// own `tsc` clocksource needs), converted to time only when the counters are read; elsewhere
/// `Instant`. On the team's VM a counter read costs 18-30 ns and `Instant::now` 45-280 ns: even
/// the counter's two reads were a third of single-flight's cost on a cheap miss
/// (`benches/single_flight.rs`), hence the sampling of [`Table::timing`].
mod ticks {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// The first read: the origin of `Instant`-based ticks, and the pair the counter's rate is
    /// measured from.
    struct Origin {
        instant: Instant,
        /// The counter at `instant`, when the counter is used.
        counter: Option<u64>,
    }

    static ORIGIN: OnceLock<Origin> = OnceLock::new();

    fn origin() -> &'static Origin {
        ORIGIN.get_or_init(|| {
            if counter::invariant() {
                let (instant, counter) = pair();
                Origin {
                    instant,
                    counter: Some(counter),
                }
            } else {
                Origin {
                    instant: Instant::now(),
                    counter: None,
                }
            }
        })
    }

    /// An `Instant` and the counter at the same moment: of a few tries, the one whose two
    /// counter reads around `Instant::now` are closest (a thread preempted between the reads of
    /// one clock and of the other would skew the rate).
    fn pair() -> (Instant, u64) {
        let mut best: Option<(u64, Instant, u64)> = None;
        for _ in 0..8 {
            let before = counter::read();
            let instant = Instant::now();
            let after = counter::read();
            let gap = after.saturating_sub(before);
            if best.is_none_or(|(best_gap, _, _)| gap < best_gap) {
                best = Some((gap, instant, before + gap / 2));
            }
        }
        match best {
            Some((_, instant, counter)) => (instant, counter),
            None => unreachable!("eight tries"),
        }
    }

    /// Now, in ticks: only differences mean something.
    #[inline]
    pub(super) fn now() -> u64 {
        let origin = origin();
        match origin.counter {
            Some(_) => counter::read(),
            None => nanos(origin.instant.elapsed()),
        }
    }

    /// `ticks` (a sum of differences of [`now`]) as time.
    pub(super) fn duration(ticks: u64) -> Duration {
        let origin = origin();
        let Some(start) = origin.counter else {
            return Duration::from_nanos(ticks);
        };
        if ticks == 0 {
            return Duration::ZERO;
        }
        // The counter's rate, measured once over a millisecond at least from the first read
        // (spinning for the rest of it when the counters are read sooner), so that the same
        // ticks always give the same time.
        static RATE: OnceLock<(u128, u128)> = OnceLock::new();
        let &(elapsed, counted) = RATE.get_or_init(|| loop {
            let (instant, counter) = pair();
            let elapsed = instant.saturating_duration_since(origin.instant);
            let counted = counter.saturating_sub(start);
            if elapsed >= Duration::from_millis(1) && counted > 0 {
                break (elapsed.as_nanos(), u128::from(counted));
            }
            std::hint::spin_loop();
        });
        let scaled = u128::from(ticks) * elapsed / counted;
        Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
    }

    fn nanos(duration: Duration) -> u64 {
        u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
    }

    #[cfg(all(target_arch = "x86_64", not(target_env = "sgx")))]
    mod counter {
        use std::arch::x86_64::{__cpuid, _rdtsc};

        /// Whether the time-stamp counter is invariant (CPUID leaf 0x8000_0007, EDX bit 8).
        // `__cpuid` is a safe function from Rust 1.94 on, an unsafe one before (MSRV 1.89).
        #[allow(unused_unsafe)]
        pub(super) fn invariant() -> bool {
            // SAFETY: `cpuid` exists on every x86_64 processor (SGX enclaves, where it faults,
            // are excluded by the `cfg`), and leaf 0x8000_0000 is always valid.
            let highest = unsafe { __cpuid(0x8000_0000) }.eax;
            // SAFETY: as above; the leaf is asked for only when the processor has it.
            highest >= 0x8000_0007 && unsafe { __cpuid(0x8000_0007) }.edx & (1 << 8) != 0
        }

        #[inline]
        pub(super) fn read() -> u64 {
            // SAFETY: `rdtsc` exists on every x86_64 processor and reads a register: no memory
            // is touched. (A process that forbade it with `prctl(PR_SET_TSC)` would fault, as
            // every TSC clock does there.)
            unsafe { _rdtsc() }
        }
    }

    #[cfg(not(all(target_arch = "x86_64", not(target_env = "sgx"))))]
    mod counter {
        pub(super) fn invariant() -> bool {
            false
        }

        pub(super) fn read() -> u64 {
            unreachable!("the counter is read only where it is invariant")
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ticks_convert_to_the_time_that_passed() {
            let started = now();
            let wall = Instant::now();
            while wall.elapsed() < Duration::from_millis(20) {
                std::hint::spin_loop();
            }
            let measured = duration(now() - started);
            let wall = wall.elapsed();
            // Generous bounds: the two clocks are read a few instructions apart, but a preempted
            // thread may sit between the reads of one and of the other.
            assert!(
                measured >= wall / 2 && measured <= wall * 2,
                "{measured:?} vs {wall:?}"
            );
            assert_eq!(duration(0), Duration::ZERO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::task::Wake;

    use crate::{Cache, CacheInfo};

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
            Joined::Failed(_) => unreachable!("no body here fails"),
            Joined::Lead(leader) => {
                let value = leader.call(body);
                flights.complete(leader, cache, value.clone());
                value
            }
        }
    }

    /// Tasks that wait for a flight and are dropped before it ends (cancelled, e.g. by a
    /// timeout, and retried) give their waker slots back: 10,000 of them leave as many slots
    /// as there were waiters at once, and the waiters still waiting are woken with the value.
    #[test]
    fn cancelled_async_waiters_give_their_wakers_back() {
        let flights: Flights<u32, String> = Flights::new("cancelled");
        let cache: Cache<u32, String> = Cache::new(8);
        let Some(Joined::Lead(leader)) = flights.join_or_busy(&cache, 1) else {
            panic!("the first caller leads");
        };
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..10_000 {
            let mut cancelled = Box::pin(flights.join_owned_async(&cache, 1));
            assert!(cancelled.as_mut().poll(&mut cx).is_pending());
        }
        let mut waiting: Vec<_> = (0..3)
            .map(|_| Box::pin(flights.join_owned_async(&cache, 1)))
            .collect();
        for join in &mut waiting {
            assert!(join.as_mut().poll(&mut cx).is_pending());
        }
        let slots = flights
            .shards
            .iter()
            .find_map(|shard| {
                let table = shard.table.lock();
                let flight = table.entries.iter().find_map(|e| e.flight.as_ref())?;
                Some(flight.waker_slots())
            })
            .expect("a flight with waiters");
        assert_eq!(slots, (3, 3), "slots, and slots holding a waker");
        flights.complete(leader, &cache, "value".into());
        for join in &mut waiting {
            let joined = join.as_mut().poll(&mut cx);
            assert!(matches!(joined, Poll::Ready(Joined::Ready(ref v)) if v == "value"));
        }
    }

    /// Spins until `flights` has a flight that `waiters` callers wait for.
    fn until_waiting(flights: &Flights<u32, String>, waiters: usize) {
        loop {
            let held = flights
                .shards
                .iter()
                .filter_map(|shard| {
                    let table = shard.table.lock();
                    table
                        .entries
                        .iter()
                        .filter_map(|e| e.flight.as_ref().map(Waited::holders))
                        .max()
                })
                .max();
            // The table holds one reference; every waiter one more.
            if held == Some(waiters + 1) {
                return;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn cheap_bodies_are_timed_in_a_sample_weighted_by_the_leaders_it_stands_for() {
        let mut table = Table::<u32, String>::new();
        let load_ticks = AtomicU64::new(0);
        let (mut timed, mut weights) = (0u64, 0u64);
        for id in 0..10_000 {
            let weight = table.timing();
            if weight > 0 {
                timed += 1;
                weights += weight;
                table.add_load(&load_ticks, id, 100, weight);
            }
        }
        // About one in SAMPLE_EVERY, and every leader counted once (but those started since
        // the last timed one).
        assert!((10_000 / 32..10_000 / 8).contains(&timed), "{timed} timed");
        assert_eq!(weights + table.skipped, 10_000);
        assert_eq!(load_ticks.load(Ordering::Relaxed), 100 * weights);
        // A body that takes longer is timed every time from the next leader on.
        table.untimed = 0;
        for id in 0..100 {
            let weight = table.timing();
            assert!(weight > 0, "leader {id} untimed");
            table.add_load(&load_ticks, id, CHEAP_LOAD, weight);
        }
    }

    #[test]
    fn an_eviction_listener_reads_the_statistics_inside_a_leaders_insert() {
        static FLIGHTS: std::sync::OnceLock<Flights<u32, String>> = std::sync::OnceLock::new();
        let flights = FLIGHTS.get_or_init(|| Flights::new("listened"));
        let read = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&read);
        let cache: Cache<u32, String> = Cache::builder()
            .maxsize(1)
            .on_evict(move |_: &u32, _: &String, _| {
                // Under the flight shard's lock of the leader that stores the new value.
                let _ = FLIGHTS.get().map(Flights::counts);
                seen.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for key in 0..4 {
                call(flights, &cache, key, String::new);
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(20))
            .expect("the statistics waited for the lock their reader's insert holds");
        assert_eq!(read.load(Ordering::Relaxed), 3);
    }

    /// A memo made by `Memo::new` (one hasher for its flights and its cache) keeps its
    /// pending computations in the cache's shards: none in the table of flights; a second
    /// caller joins; an invalidation makes the entry unjoinable and its value unstored; an
    /// abandoned leader's entry goes; a failure is cached under the same rule.
    #[test]
    fn a_memos_computations_live_in_its_caches_shards() {
        let params = crate::memo::Params {
            maxsize: Some(8),
            ttl: None,
            ttl_jitter: 0.0,
            policy: crate::Policy::Lru,
            negative_ttl: Some(Duration::from_secs(60)),
        };
        let memo = crate::memo::Memo::<u32, String>::new("local", params);
        let (flights, cache) = (&memo.flights, &memo.cache);
        let Some(Joined::Lead(first)) = flights.join_or_busy(cache, 1) else {
            panic!("the first caller leads");
        };
        assert!(
            matches!(first.place, Place::Local(_)),
            "kept in the cache's shard"
        );
        assert_eq!(flights.in_flight(), 0, "nothing in the table of flights");
        assert!(
            flights.join_or_busy(cache, 1).is_none(),
            "a second caller joins"
        );
        assert!(!memo.invalidate(&1));
        let Some(Joined::Lead(second)) = flights.join_or_busy(cache, 1) else {
            panic!("a stale computation is not joined");
        };
        flights.complete(first, cache, "stale".into());
        assert_eq!(
            cache.peek(&1),
            None,
            "computed before the invalidation: not stored"
        );
        flights.complete(second, cache, "fresh".into());
        assert_eq!(cache.peek(&1).as_deref(), Some("fresh"));
        // A caller that missed before the completion finds the value (a late hit).
        let Some(Joined::Ready(found)) = flights.join_or_busy(cache, 1) else {
            panic!("the value stored is found");
        };
        assert_eq!((found.as_str(), flights.counts().late_hits), ("fresh", 1));
        // Abandoned: the entry goes, the key can be led again.
        let Some(Joined::Lead(dropped)) = flights.join_or_busy(cache, 2) else {
            panic!("leads 2");
        };
        drop(dropped);
        let Some(Joined::Lead(failing)) = flights.join_or_busy(cache, 2) else {
            panic!("an abandoned computation is gone");
        };
        memo.fail_cached(failing, Failure::new(&"no"));
        assert!(memo.negative_get(&2).is_some(), "the failure is cached");
        let Some(Joined::Lead(failing)) = flights.join_or_busy(cache, 3) else {
            panic!("leads 3");
        };
        assert!(!memo.invalidate(&3));
        memo.fail_cached(failing, Failure::new(&"no"));
        assert!(
            memo.negative_get(&3).is_none(),
            "failed before the invalidation: not cached"
        );
        let Some(Joined::Lead(cleared)) = flights.join_or_busy(cache, 4) else {
            panic!("leads 4");
        };
        memo.clear();
        flights.complete(cleared, cache, "before the clear".into());
        assert_eq!(
            cache.peek(&4),
            None,
            "computed before the clear: not stored"
        );
        cache.validate();
    }

    #[test]
    fn slow_bodies_are_all_timed() {
        let (flights, cache) = (Flights::new("slow"), Cache::new(0));
        for key in 0..20 {
            call(&flights, &cache, key, || {
                std::thread::sleep(Duration::from_millis(1));
                String::new()
            });
        }
        let spent = flights.counts().load_time;
        assert!(spent >= Duration::from_millis(20), "{spent:?}");
    }

    #[test]
    fn a_shards_first_entry_has_its_own_slot_and_the_others_a_list() {
        let mut table = Table::<u32, ()>::new();
        let a = table.insert(7, Some(1), true);
        assert!(table.entries.one.as_ref().is_some_and(|e| e.id == a));
        let b = table.insert(7, Some(2), true);
        let c = table.insert(9, Some(3), true);
        assert_eq!(table.entries.len(), 3);
        // Found by hash and key wherever it is kept.
        for (hash, key, id) in [(7, 1, a), (7, 2, b), (9, 3, c)] {
            let found = table.entries.find(hash, |e| e.key == Some(key));
            assert_eq!(found.map(|e| e.id), Some(id));
        }
        assert!(table.entries.find(9, |e| e.key == Some(1)).is_none());
        // The slot freed, the next entry takes it; the list keeps the others.
        assert_eq!(table.take(7, a).map(|e| e.id), Some(a));
        assert!(table.entries.one.is_none());
        let d = table.insert(9, Some(4), true);
        assert!(table.entries.one.as_ref().is_some_and(|e| e.id == d));
        let mut seen = Vec::new();
        table.entries.for_each_mut(Some(9), |e| seen.push(e.id));
        seen.sort_unstable();
        assert_eq!(seen, [c, d]);
        let mut all: Vec<u64> = table.entries.iter().map(|e| e.id).collect();
        all.sort_unstable();
        assert_eq!(all, [b, c, d]);
        assert!(table.take(7, a).is_none(), "taken once");
        for id in [c, b, d] {
            assert_eq!(table.take(0, id).map(|e| e.id), Some(id));
        }
        assert_eq!(table.entries.len(), 0);
    }

    #[test]
    fn a_shard_with_many_flights_indexes_them_then_lists_them_again() {
        let flights = Flights::<u32, String>::new("many");
        let leaders: Vec<_> = (0..2_000u32)
            .map(|key| flights.try_lead(key).expect("not running"))
            .collect();
        assert_eq!(flights.in_flight(), 2_000);
        for shard in &*flights.shards {
            assert!(matches!(shard.table.lock().entries.many, Many::Hashed(_)));
        }
        // Found in the hash table: no second computation of a running key.
        assert!((0..2_000).all(|key| flights.try_lead(key).is_none()));
        drop(leaders);
        assert_eq!(flights.in_flight(), 0);
        for shard in &*flights.shards {
            let table = shard.table.lock();
            assert!(table.entries.one.is_none());
            assert!(matches!(&table.entries.many, Many::List(l) if l.is_empty()));
        }
        // Back in lists, the keys are found again.
        let again: Vec<_> = (0..100u32)
            .filter_map(|key| flights.try_lead(key))
            .collect();
        assert_eq!(again.len(), 100);
        assert!((0..100).all(|key| flights.try_lead(key).is_none()));
    }

    #[test]
    fn the_shard_index_mixes_the_high_bits_of_the_hash() {
        // Bits 32..40 constant (what the default hasher's seed sometimes did to small integer
        // keys), the bits above them varying: the keys must still spread over the shards.
        let shards = 16;
        let mut used = vec![0usize; shards];
        for k in 0..64u64 {
            let hash = (k << 40) | 0x55_0000_0000 | k.wrapping_mul(0x9e37_79b9);
            used[shard_of(hash, shards)] += 1;
        }
        let busiest = used.iter().copied().max().unwrap_or(0);
        let empty = used.iter().filter(|&&n| n == 0).count();
        assert!(
            busiest <= 12 && empty <= 4,
            "64 keys over 16 shards: {used:?}"
        );
    }

    /// A key that counts how often it is hashed (on this thread).
    #[derive(Clone, PartialEq, Eq, Debug)]
    struct Counted(u32);

    thread_local! {
        static HASHED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    impl Hash for Counted {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            HASHED.with(|n| n.set(n.get() + 1));
            self.0.hash(state);
        }
    }

    #[test]
    fn a_memoized_miss_hashes_its_key_once_for_the_flights_and_the_cache() {
        let memo: crate::memo::Memo<Counted, u32> = crate::memo::Memo::new(
            "f",
            crate::memo::Params {
                maxsize: Some(8),
                ttl: None,
                ttl_jitter: 0.0,
                policy: crate::Policy::Lru,
                negative_ttl: None,
            },
        );
        for k in 0..20u32 {
            HASHED.with(|n| n.set(0));
            // The generated code: a lookup (one hash), then the flights (one more), whose
            // second look and insert reuse the flights' hash.
            assert_eq!(memo.cache.get(&Counted(k)), None);
            let Joined::Lead(leader) = memo.flights.join_owned(&memo.cache, Counted(k)) else {
                panic!("nobody else computes {k}");
            };
            memo.flights.complete(leader, &memo.cache, k * 2);
            // Eviction (from the 9th key on) hashes no key: the victim's slot knows its bucket.
            assert_eq!(HASHED.with(|n| n.get()), 2, "key {k}");
            assert_eq!(memo.cache.get(&Counted(k)), Some(k * 2));
            memo.cache.validate();
        }
    }

    #[test]
    fn a_hash_by_another_hasher_is_not_used() {
        // Flights with a hasher of their own (as `Memo::with_cache` makes them) and a cache
        // with another: the cache hashes the key itself, so every value is found again and
        // indexed under its own hash.
        let (flights, cache) = (Flights::new("f"), cache());
        for k in 0..40 {
            assert_eq!(
                call(&flights, &cache, k, || format!("v{k}")),
                format!("v{k}")
            );
            assert_eq!(cache.get(&k), Some(format!("v{k}")));
        }
        cache.validate();
        let hasher = hashbrown::DefaultHashBuilder::default();
        let flights = Flights::with_hasher("f", hasher.clone());
        let same: Cache<u32, String> = Cache::builder().maxsize(16).hasher(hasher).build().unwrap();
        assert!(same.hashes_like(flights.stamp) && !cache.hashes_like(flights.stamp));
        for k in 0..40 {
            assert_eq!(
                call(&flights, &same, k, || format!("w{k}")),
                format!("w{k}")
            );
            assert_eq!(same.get(&k), Some(format!("w{k}")));
        }
        same.validate();
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
        assert!(leading().is_empty());
        // Recursion on other keys is fine.
        let value = call(&flights, &cache, 7, || {
            call(&flights, &cache, 6, || "six".to_owned()) + "+1"
        });
        assert_eq!(value, "six+1");
    }

    /// Leads `key`, then `key + 1` inside it, ... up to `last`, where it calls `again`.
    fn nested(
        flights: &Flights<u32, String>,
        cache: &Cache<u32, String>,
        key: u32,
        last: u32,
        again: u32,
    ) -> String {
        call(flights, cache, key, || {
            if key == last {
                call(flights, cache, again, String::new)
            } else {
                nested(flights, cache, key + 1, last, again)
            }
        })
    }

    #[test]
    fn recursion_is_caught_however_deep_the_nesting() {
        let (flights, cache) = (Flights::new("deep"), Cache::new(64));
        // 20 nested leaders: past the record's cells. Each depth is checked against the first,
        // the last of the cells and the deepest.
        for again in [0, LEADING_CELLS as u32 - 1, LEADING_CELLS as u32, 19] {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                nested(&flights, &cache, 0, 19, again)
            }));
            let panic = result.unwrap_err();
            let message = panic.downcast_ref::<String>().unwrap();
            assert!(
                message.starts_with("`deep` called itself"),
                "{again}: {message}"
            );
            assert_eq!(flights.in_flight(), 0);
            assert!(leading().is_empty());
        }
        let value = nested(&flights, &cache, 0, 19, 20);
        assert!(value.is_empty());
        assert!(leading().is_empty());
    }

    /// A cache outside the process, as single-flight sees one: never read under the table's
    /// lock, written after the waiters are released; `before_write` runs at each write.
    struct Remote<F> {
        cache: Cache<u32, String>,
        before_write: F,
    }

    impl<F: Fn()> FunctionCache<u32, String> for Remote<F> {
        const REMOTE: bool = true;
        fn peek(&self, _: &u32) -> Option<String> {
            unreachable!("a remote cache is not read again under the flights' lock")
        }
        fn insert_if_absent(&self, key: u32, value: String) {
            (self.before_write)();
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
        let in_flight_at_insert = AtomicUsize::new(usize::MAX);
        let remote = Remote {
            cache: cache(),
            // `in_flight` takes the shards' locks: it would deadlock if the caller held one.
            before_write: || in_flight_at_insert.store(flights.in_flight(), Ordering::SeqCst),
        };
        let Joined::Lead(leader) = flights.join_owned(&remote, 3) else {
            panic!("the first caller leads");
        };
        flights.complete(leader, &remote, "three".to_owned());
        // The flight was gone when the store was written: no lock held across the round trip.
        assert_eq!(in_flight_at_insert.load(Ordering::SeqCst), 0);
        assert_eq!(remote.cache.peek(&3).as_deref(), Some("three"));
        // Concurrent misses still run the body once, the waiters taking the leader's value.
        let runs = AtomicUsize::new(0);
        let results: Vec<String> = std::thread::scope(|s| {
            let callers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| match flights.join_owned(&remote, 9) {
                        Joined::Ready(value) => value,
                        Joined::Failed(_) => unreachable!("no body here fails"),
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
    fn invalidation_wins_over_a_flight_whose_waiters_still_get_its_value() {
        let (flights, cache) = (Flights::new("f"), cache());
        std::thread::scope(|s| {
            let stale = s.spawn(|| {
                call(&flights, &cache, 1, || {
                    until_waiting(&flights, 1);
                    // The waiter joined; now the key is invalidated, then a caller computes it.
                    assert!(!flights.invalidate(&cache, &1));
                    let fresh = std::thread::scope(|inner| {
                        inner
                            .spawn(|| call(&flights, &cache, 1, || "fresh".to_owned()))
                            .join()
                            .unwrap()
                    });
                    assert_eq!(fresh, "fresh");
                    "stale".to_owned()
                })
            });
            while flights.in_flight() == 0 {
                std::thread::yield_now();
            }
            let waiter = s.spawn(|| call(&flights, &cache, 1, || unreachable!("joins")));
            assert_eq!(stale.join().unwrap(), "stale");
            assert_eq!(waiter.join().unwrap(), "stale");
        });
        // The stale value was handed to its waiter, not stored over the fresh one.
        assert_eq!(cache.peek(&1).as_deref(), Some("fresh"));
        assert_eq!(flights.counts().waits, 1);
    }

    #[test]
    fn clear_marks_every_flight_stale_and_zeroes_the_counts() {
        let (flights, cache) = (Flights::new("f"), cache());
        let Joined::Lead(one) = flights.join_owned(&cache, 1) else {
            panic!("the first caller leads");
        };
        let Joined::Lead(two) = flights.join_owned(&cache, 2) else {
            panic!("the first caller leads");
        };
        flights.clear(&cache);
        // Not joinable: a new caller leads a computation of its own.
        let Joined::Lead(again) = flights.join_owned(&cache, 1) else {
            panic!("a cleared flight is not joined");
        };
        flights.complete(one, &cache, "old one".to_owned());
        flights.complete(two, &cache, "old two".to_owned());
        assert_eq!(cache.len(), 0);
        flights.complete(again, &cache, "new one".to_owned());
        assert_eq!(cache.peek(&1).as_deref(), Some("new one"));
        assert_eq!(
            flights.counts(),
            FlightCounts {
                load_time: flights.counts().load_time,
                ..FlightCounts::default()
            }
        );
    }

    #[test]
    fn without_single_flight_a_value_computed_before_an_invalidation_is_not_stored() {
        let (flights, cache) = (Flights::<u32, String>::new("f"), cache());
        let before = flights.epoch();
        flights.invalidate(&cache, &1);
        flights.store_since(&cache, before, 1, "stale".to_owned());
        assert_eq!(cache.peek(&1), None);
        let now = flights.epoch();
        flights.store_since(&cache, now, 1, "fresh".to_owned());
        assert_eq!(cache.peek(&1).as_deref(), Some("fresh"));
    }

    #[test]
    fn an_invalidation_waits_for_a_remote_write_of_its_key_then_removes_it() {
        let flights = Flights::new("f");
        // A write blocks until the test lets it end.
        let (writing, written) = (Barrier::new(2), Barrier::new(2));
        let remote = Remote {
            cache: cache(),
            before_write: || {
                writing.wait();
                written.wait();
            },
        };
        let invalidated = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let Joined::Lead(leader) = flights.join_owned(&remote, 4) else {
                    panic!("the first caller leads");
                };
                flights.complete(leader, &remote, "four".to_owned());
            });
            writing.wait(); // the leader is writing, without the table's lock
            let invalidation = s.spawn(|| {
                flights.invalidate(&remote, &4);
                invalidated.store(1, Ordering::SeqCst);
            });
            // The invalidation cannot return while the write of its key is in progress. Watched
            // for 100 ms, far below its bound of `REMOTE_WRITE_WAIT` (past which it would
            // return and cancel the write): 1,000 yields took more than that on a loaded host.
            let until = std::time::Instant::now() + Duration::from_millis(100);
            while std::time::Instant::now() < until && invalidated.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            let early = invalidated.load(Ordering::SeqCst);
            written.wait();
            invalidation.join().unwrap();
            assert_eq!(early, 0, "the invalidation returned during the write");
        });
        assert_eq!(
            remote.cache.peek(&4),
            None,
            "the write landed after the invalidation"
        );
    }

    /// A cache whose writes end later, elsewhere (as an `async fn`'s on a store's I/O thread):
    /// it keeps each write's [`WriteEnd`] until the test drops it.
    struct Deferred {
        cache: Cache<u32, String>,
        ends: Mutex<Vec<WriteEnd<u32, String>>>,
    }

    impl FunctionCache<u32, String> for Deferred {
        const REMOTE: bool = true;
        fn peek(&self, _: &u32) -> Option<String> {
            unreachable!("a remote cache is not read again under the flights' lock")
        }
        fn insert_if_absent(&self, key: u32, value: String) {
            self.cache.insert_if_absent(key, value);
        }
        fn insert_tracked(&self, key: u32, value: String, end: WriteEnd<u32, String>) {
            self.cache.insert_if_absent(key, value);
            self.ends.lock().push(end);
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
    fn a_write_ended_elsewhere_holds_invalidations_until_its_end_then_a_bounded_time() {
        let flights = Flights::new("f");
        let remote = Deferred {
            cache: cache(),
            ends: Mutex::new(Vec::new()),
        };
        let Joined::Lead(leader) = flights.join_owned(&remote, 4) else {
            panic!("the first caller leads");
        };
        flights.complete(leader, &remote, "four".to_owned());
        assert_eq!(remote.ends.lock().len(), 1, "the write is still under way");
        let invalidated = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let invalidation = s.spawn(|| {
                flights.invalidate(&remote, &4);
                invalidated.store(1, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(50));
            let early = invalidated.load(Ordering::SeqCst);
            let end = remote.ends.lock().pop().unwrap();
            assert!(!end.cancelled());
            drop(end); // the write has ended, on another thread
            invalidation.join().unwrap();
            assert_eq!(early, 0, "the invalidation returned during the write");
        });
        assert_eq!(remote.cache.peek(&4), None, "removed after the write");
        // A write that never ends: the invalidation gives up after its bound and cancels it.
        let Joined::Lead(leader) = flights.join_owned(&remote, 4) else {
            panic!("the key is not cached");
        };
        flights.complete(leader, &remote, "four".to_owned());
        let started = std::time::Instant::now();
        flights.invalidate(&remote, &4);
        assert!(started.elapsed() >= REMOTE_WRITE_WAIT);
        let end = remote.ends.lock().pop().unwrap();
        assert!(
            end.cancelled(),
            "a write outlived by its invalidation is cancelled"
        );
        drop(end);
        assert_eq!(
            flights
                .shards
                .iter()
                .map(|s| s.table.lock().entries.len())
                .sum::<usize>(),
            0
        );
    }

    #[test]
    fn a_shared_failure_reaches_every_waiter_and_an_unshared_one_releases_them() {
        let (flights, cache) = (Flights::<u32, String>::new("f"), cache());
        for shared in [true, false] {
            let released = AtomicUsize::new(0);
            std::thread::scope(|s| {
                let Joined::Lead(leader) = flights.join_owned(&cache, 1) else {
                    panic!("the first caller leads");
                };
                let waiters: Vec<_> = (0..3)
                    .map(|_| {
                        s.spawn(|| match flights.join_owned(&cache, 1) {
                            Joined::Failed(failure) => failure.error::<String>(),
                            Joined::Lead(alone) => {
                                // Each released caller runs alone: nobody waits for it.
                                released.fetch_add(1, Ordering::SeqCst);
                                flights.fail(alone, None);
                                "ran alone".to_owned()
                            }
                            Joined::Ready(_) => unreachable!("nothing is stored"),
                        })
                    })
                    .collect();
                until_waiting(&flights, 3);
                let failure = shared.then(|| Failure::new(&"down".to_owned()));
                flights.fail(leader, failure);
                for waiter in waiters {
                    let expected = if shared { "down" } else { "ran alone" };
                    assert_eq!(waiter.join().unwrap(), expected);
                }
            });
            assert_eq!(released.load(Ordering::SeqCst), if shared { 0 } else { 3 });
        }
        assert_eq!(flights.counts().waits, 3);
        assert_eq!(flights.in_flight(), 0);
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
        assert!(leading().is_empty());
    }
}
