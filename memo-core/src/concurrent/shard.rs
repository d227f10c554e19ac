//! One shard: readers find entries without a lock; writers take the shard's lock.
//!
//! The shared side is a lock-free index ([`Table`]) of slot ids into storage that never moves
//! ([`Segments`]), an optional deadline per slot, and the read [`Stripes`]. A reader holds its
//! thread's stripe while it probes the index, compares keys and clones the value, then counts
//! the hit or miss in that stripe and records a hit in its buffer: it writes no memory that
//! another thread uses. (A policy that hears of misses hears of one at the key's insert.)
//!
//! The writer side, behind the lock, owns everything else: the policy's metadata, the expiry
//! order, the statistics, and the slot allocator. A slot taken out of the index is *retired*:
//! its entry stays in place while a stripe announces it (or its hash), then it is dropped
//! (outside the lock) and the slot reused. A stalled reader therefore holds back only the slot
//! it reads, and the retired slots stay fewer than the stripes plus [`RESERVE`]. Every writer
//! operation first replays the stripes' buffers, so the policy sees hits in the order they
//! happened.

use std::cell::UnsafeCell;
use std::hash::{BuildHasher, Hash};
use std::mem::MaybeUninit;

use super::expiry::Expiry;
use super::pins::{Pin, PinCount, PinWords, PINS};
use super::segments::Segments;
use super::stripe::{Announced, Event, Held, Snapshot, Stripes};
use super::sync::{AtomicPtr, AtomicU64, Mutex, Ordering};
use super::table::{Probe, Table, Visit};
use crate::listener::{Listener, RemovalCause};
use crate::policy::{EvictionPolicy, Policy, PolicyState};
use crate::stats::Counters;

pub(crate) use crate::listener::Dropped;

type Slot<K, V> = UnsafeCell<MaybeUninit<(K, V)>>;

/// Slot ids a shard may hand out beyond its capacity before it must reuse retired ones: writers
/// look for retired slots no reader announces once per this many retirements.
pub(crate) const RESERVE: usize = 16;

/// Entries the index of a new or cleared shard has room for; it grows from there.
const INITIAL_TABLE: usize = 48;

/// Capacities from which a shard's last index table is sized for its capacity (a load just
/// under 3/4) rather than a power of two (a load down to 3/8): an index over 512 KiB, where the
/// bytes matter more than the few more probes (which mostly stay in one cache line). Smaller
/// shards keep their sparser tables, faster to probe.
const EXACT_TABLE: usize = 1 << 16;

/// Lock-free probes that find a removal shifting the index before the reader gives up and
/// takes the lock.
const RETRIES: usize = 16;

/// How close to its deadline (by the coarse clock) an entry is confirmed alive by a real clock
/// read before it is returned: 1 s, so that a cache with a ttl of 1 s or less reads the clock on
/// every hit, and one with a ttl of an hour in the last second of an entry's life only.
pub(crate) const CONFIRM_WITHIN: u64 = 1_000_000_000;

/// Keeps what it holds on cache lines of its own.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// What an insert should do when the key is already present and alive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnPresent {
    /// Replace the value and count the write as a use (a cache's `insert`).
    Replace,
    /// Keep the stored entry untouched (functools: a recursive call stored it meanwhile).
    Keep,
}

/// Everything behind the shard's lock.
pub(crate) struct Writer {
    /// The cache has a listener: removed entries are read out (and reported) when reclaimed.
    notify: bool,
    /// The weight bound, in a weighted cache only.
    weights: Option<Weights>,
    len: usize,
    capacity: usize,
    policy: PolicyState,
    /// The expiry order, present only when the cache has a ttl.
    expiry: Option<Expiry>,
    pub(crate) counters: Counters,
    /// Per slot id handed out, the index bucket that holds it, or [`NOT_INDEXED`] (the slot
    /// holds no live entry): an eviction or removal finds its bucket without hashing the key
    /// or probing the index.
    at: Vec<u32>,
    /// Slot ids handed out so far: `0..next_id`.
    next_id: u32,
    /// The current index's `limit()`: an insert that would take `len` past it grows the index
    /// first (kept here: one compare on every insert instead of the table's length read).
    grow_at: usize,
    /// Empty slots (as they were retired: a batch of reclaimed slots moves here by a swap of
    /// the two vectors; only the ids are used).
    free: Vec<Retired>,
    /// Slots taken out of the index that still hold their entries.
    retired: Vec<Retired>,
    /// Replaced index tables waiting likewise.
    old_tables: Vec<(Snapshot, Box<Table>)>,
    /// Slots that lookups without a stripe are cloning outside the lock ([`super::pins`]).
    pins: PinWords,
    /// Retired slots that were pinned at the last reclaim (set aside from `retired`).
    pinned_retired: Vec<Retired>,
    /// Per stripe, the hits and misses its holders had counted when last added to `counters`.
    seen: Vec<(u64, u64)>,
}

/// A weighted shard's bound and the weight of each live entry (writer-only: the lookup path
/// never reads it, and an unweighted cache has none).
struct Weights {
    max: u64,
    total: u64,
    per_slot: Vec<u64>,
}

impl Weights {
    fn add(&mut self, id: u32, weight: u64) {
        let at = id as usize;
        if self.per_slot.len() <= at {
            self.per_slot.resize(at + 1, 0);
        }
        self.per_slot[at] = weight;
        self.total += weight;
    }

    fn remove(&mut self, id: u32) -> u64 {
        let weight = std::mem::take(&mut self.per_slot[id as usize]);
        self.total -= weight;
        weight
    }
}

/// A slot taken out of the index, and the low bits of its key's hash (what a reader that has
/// not named its slot yet announces).
#[derive(Clone, Copy)]
struct Retired {
    id: u32,
    tag: u32,
    /// Why it left: what the eviction listener is told once it is reclaimed.
    cause: RemovalCause,
}

/// The most slot ids a shard of `capacity` hands out (what its storage is sized for): a new id
/// is handed out only when no slot is free after a reclaim, which from `capacity + RESERVE`
/// ids on frees all but the slots held stripes announce (at most one per stripe, once every
/// reader that announced a hash has named its slot: `reclaim` waits for that); and at most
/// `capacity` are live (an insert evicts before it allocates); and at most [`PINS`] more are
/// pinned by lookups that clone outside the lock without a stripe.
pub(crate) fn most_slots(capacity: usize, stripes: usize) -> usize {
    capacity.saturating_add(RESERVE.max(stripes + 1) + PINS)
}

/// What [`Writer::at`] holds for a slot that is not in the index (no bucket has this
/// position: `Table` has fewer than 2^32 buckets).
const NOT_INDEXED: u32 = u32::MAX;

/// Whether slot `id` holds a live, indexed entry, by the buckets `at` (an id past them is not
/// live).
#[inline]
fn live_in(at: &[u32], id: u32) -> bool {
    at.get(id as usize).is_some_and(|&b| b != NOT_INDEXED)
}

impl Writer {
    #[inline]
    fn retire(&mut self, id: u32, hash: u64, cause: RemovalCause) {
        self.retired.push(Retired {
            id,
            tag: hash as u32,
            cause,
        });
    }

    #[inline]
    fn is_live(&self, id: u32) -> bool {
        live_in(&self.at, id)
    }
}

pub(crate) struct Shard<K, V> {
    /// Whether the policy needs to see each hit (all but FIFO) and each miss (adaptive). A
    /// miss reaches the policy with the insert of its key that follows it (as in Caffeine,
    /// whose sketch counts a key at its lookups' hits and at its insert): under the lock the
    /// insert takes anyway, with nothing buffered by the lookup nor replayed.
    hit_events: bool,
    miss_events: bool,
    table: AtomicPtr<Table>,
    slots: Segments<Slot<K, V>>,
    deadlines: Option<Segments<AtomicU64>>,
    /// Entries whose deadline is nearer than this (by the time passed in) are confirmed
    /// expired or not by a real clock read; 0 when the time passed in is exact.
    confirm_within: u64,
    stripes: Stripes,
    writer: Padded<Mutex<Writer>>,
    /// How many of the writer's pins are taken: a reclaim looks at them only when some are.
    pinned: PinCount,
    /// Told of every entry that leaves (outside the lock).
    listener: Option<Listener<K, V>>,
    /// The computations of this shard's keys that single-flight is running now, for a
    /// memoized function whose cache this is: read and written only under the writer lock
    /// (see [`Shard::with_pending`]), so that registering a computation, looking at the cache
    /// again, and storing its value are each one lock round trip. Never touched by a lookup.
    pending: UnsafeCell<crate::flight::Table<K, V>>,
}

/// The settings every shard of a cache shares.
pub(crate) struct ShardConfig<K, V> {
    pub(crate) policy: Policy,
    pub(crate) ttl_nanos: Option<u64>,
    /// The fraction of the ttl over which deadlines are spread (0: none).
    pub(crate) jitter: f64,
    /// The times callers pass may lag the real clock (the coarse clock), so entries near their
    /// deadline are confirmed by a clock read.
    pub(crate) coarse_now: bool,
    pub(crate) listener: Option<Listener<K, V>>,
    /// This shard's share of the weight bound (weighted caches only).
    pub(crate) max_weight: Option<u64>,
}

// SAFETY: readers on any thread get `&K` and `&V` out of the slots (so both must be `Sync`), and
// entries are dropped or moved out on whichever thread holds the lock (so both must be `Send`).
// Everything else shared is atomics, or behind the mutex, or the stripes (which are `Sync`).
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Shard<K, V> {}
// SAFETY: as above, a shard owns its entries.
unsafe impl<K: Send, V: Send> Send for Shard<K, V> {}

/// What a lock-free lookup concluded.
enum Lookup<'a, K, V> {
    /// The slot and its entry.
    Found(u32, &'a (K, V)),
    Absent,
    /// Found, but past its deadline.
    Expired(u32),
    /// Removals kept shifting the index: take the lock instead.
    Busy,
}

/// An entry found under the lock, to read once it is released (see [`Shard::pin_or_read`]).
pub(crate) enum Found<'a, R> {
    /// Its slot, pinned.
    Pinned(Pin<'a>),
    /// Every pin was taken: read under the lock.
    Read(R),
}

impl<K, V> Shard<K, V> {
    /// A shard of `capacity` entries (see [`ShardConfig`] for the rest).
    pub(crate) fn new(capacity: usize, config: ShardConfig<K, V>) -> Self {
        let ShardConfig {
            policy,
            ttl_nanos,
            jitter,
            coarse_now,
            listener,
            max_weight,
        } = config;
        let first = capacity.saturating_add(RESERVE).min(64);
        let stripes = Stripes::new();
        let stripe_count = stripes.len();
        let most = most_slots(capacity, stripe_count);
        let table = Table::with_capacity(capacity.min(INITIAL_TABLE));
        let grow_at = table.limit();
        Shard {
            hit_events: policy != Policy::Fifo,
            miss_events: policy == Policy::Adaptive,
            table: AtomicPtr::new(Box::into_raw(Box::new(table))),
            slots: Segments::new(first, most),
            deadlines: ttl_nanos.map(|_| Segments::new(first, most)),
            confirm_within: match ttl_nanos {
                Some(_) if coarse_now => CONFIRM_WITHIN,
                _ => 0,
            },
            stripes,
            writer: Padded(Mutex::new(Writer {
                notify: listener.is_some(),
                weights: max_weight.map(|max| Weights {
                    max,
                    total: 0,
                    per_slot: Vec::new(),
                }),
                seen: vec![(0, 0); stripe_count],
                len: 0,
                capacity,
                policy: PolicyState::new(policy),
                expiry: ttl_nanos.map(|ttl| Expiry::new(ttl, jitter)),
                counters: Counters::default(),
                at: Vec::new(),
                next_id: 0,
                grow_at,
                free: Vec::new(),
                retired: Vec::new(),
                old_tables: Vec::new(),
                pins: PinWords::default(),
                pinned_retired: Vec::new(),
            })),
            pinned: PinCount::new(),
            listener,
            pending: UnsafeCell::new(crate::flight::Table::new()),
        }
    }

    /// Drops what a writer pushed out, after the lock is released, reporting each entry that
    /// left the cache to the listener.
    #[inline]
    pub(crate) fn release(&self, dropped: Dropped<K, V>) {
        if !dropped.is_empty() {
            crate::listener::notify(self.listener.as_ref(), dropped);
        }
    }

    /// The removed entries still held back, to report when the cache is dropped: no reader can
    /// hold them any more.
    pub(crate) fn take_retired(&mut self) -> Dropped<K, V> {
        let mut dropped = Vec::new();
        let w = self.writer.0.get_mut();
        let mut retired = std::mem::take(&mut w.retired);
        retired.append(&mut w.pinned_retired);
        for &Retired { id, cause, .. } in &retired {
            // SAFETY: `id` was retired, so it holds an entry, and `&mut self` means no reader
            // can see it; it is moved out once, and its slot is freed so `drop` skips it.
            let (key, value) = unsafe { (*self.slots.get(id).get()).assume_init_read() };
            dropped.push((key, value, Some(cause)));
        }
        w.free.extend(retired);
        dropped
    }

    /// The current index.
    #[inline]
    fn table(&self) -> &Table {
        // SAFETY: the pointer is always a live `Box<Table>`: a replaced table is freed only
        // after every stripe held at the replacement has been released, and callers are either
        // inside a stripe or hold the lock (under which no table is freed but by themselves).
        unsafe { &*self.table.load(Ordering::SeqCst) }
    }

    /// The entry in slot `id`.
    ///
    /// # Safety
    /// `id` was found in the index by a reader whose stripe announces it (or its hash, having
    /// announced no slot yet), or the caller holds the lock and `id` is live or retired.
    #[inline]
    unsafe fn entry(&self, id: u32) -> &(K, V) {
        // SAFETY: the slot was allocated before its id entered the index (or under the lock),
        // and it holds an initialized entry until reclaimed, which skips announced slots.
        unsafe { (*self.slots.get(id).get()).assume_init_ref() }
    }

    /// Whether the entry in slot `id` is expired: past its deadline at `now`, or, if `now` may
    /// be stale (the coarse clock) and the deadline is less than [`CONFIRM_WITHIN`] away, at a
    /// real clock read. So a coarse tick that fell behind (its thread starved under load) can
    /// make an entry look younger only outside its last second of life: returning an expired
    /// entry takes the whole process stalled for longer than that.
    #[inline]
    fn is_expired(&self, id: u32, now: u64) -> bool {
        if self.deadlines.is_none() {
            return false;
        }
        let deadline = self.deadline(id);
        if deadline <= now {
            return true;
        }
        deadline - now < self.confirm_within && Self::expired_now(deadline)
    }

    #[cold]
    #[inline(never)]
    fn expired_now(deadline: u64) -> bool {
        crate::clock::is_past(deadline)
    }

    /// Whether the entry in slot `id` is past its deadline at `now`, without a clock read (the
    /// sweep: an entry swept a tick late is never returned meanwhile, lookups confirm).
    #[inline]
    fn past_deadline(&self, id: u32, now: u64) -> bool {
        self.deadline(id) <= now
    }

    /// When the entry in slot `id` expires (`u64::MAX` without a ttl).
    #[inline]
    fn deadline(&self, id: u32) -> u64 {
        match &self.deadlines {
            // SAFETY: deadlines are allocated alongside slots, and callers only pass ids of
            // allocated slots (found in the index, or handed out under the lock).
            Some(d) => unsafe { d.get(id) }.load(Ordering::Relaxed),
            None => u64::MAX,
        }
    }

    fn set_deadline(&self, id: u32, deadline: u64) {
        if let Some(d) = &self.deadlines {
            // SAFETY: deadlines are allocated alongside slots, under the lock.
            unsafe { d.get(id) }.store(deadline, Ordering::Relaxed);
        }
    }

    /// A slot for a new entry: a free one, else a reclaimed one, else a new one.
    #[inline]
    fn alloc(&self, w: &mut Writer, dropped: &mut Dropped<K, V>) -> u32 {
        match w.free.pop() {
            Some(free) => free.id,
            None => self.alloc_slow(w, dropped),
        }
    }

    /// [`alloc`](Shard::alloc) with no free slot at hand: reclaims a batch of retired slots, or
    /// hands out a new one (once every [`RESERVE`] allocations in steady state).
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, w: &mut Writer, dropped: &mut Dropped<K, V>) -> u32 {
        if w.next_id as usize >= w.capacity.saturating_add(RESERVE) || w.retired.len() >= RESERVE {
            self.reclaim(w, dropped);
        }
        if let Some(free) = w.free.pop() {
            return free.id;
        }
        let id = w.next_id;
        assert!(id < u32::MAX - 1, "a shard holds at most 2^32 - 2 slots");
        w.next_id += 1;
        if w.at.len() == w.at.capacity() {
            // Doubling, but not past the slots a shard can hand out: a full shard's `at` has
            // no spare room.
            let most = most_slots(w.capacity, self.stripes.len());
            let more =
                w.at.len()
                    .max(8)
                    .min(most.saturating_sub(w.at.len()))
                    .max(1);
            w.at.reserve_exact(more);
        }
        w.at.push(NOT_INDEXED);
        self.slots
            .ensure(id, || UnsafeCell::new(MaybeUninit::uninit()));
        if let Some(d) = &self.deadlines {
            d.ensure(id, || AtomicU64::new(0));
        }
        id
    }

    /// Frees the retired slots that no stripe announces, and the old tables no reader can be in.
    /// More retired slots held back than there are stripes means readers that announced a hash
    /// have not named their slot yet (a few instructions of ours, no user code): wait for them.
    fn reclaim(&self, w: &mut Writer, dropped: &mut Dropped<K, V>) {
        if !w.pinned_retired.is_empty() || (!w.retired.is_empty() && self.pinned.any()) {
            self.reclaim_around_pins(w, dropped);
        } else if !w.retired.is_empty() {
            self.reclaim_retired(w, dropped);
        }
        self.free_old_tables(w);
    }

    /// The retired slots' part of [`reclaim`](Shard::reclaim), none of them pinned.
    #[inline(always)]
    fn reclaim_retired(&self, w: &mut Writer, dropped: &mut Dropped<K, V>) {
        if self.stripes.none_held() {
            // No reader inside (single-threaded use, or readers between lookups): all go.
            return self.free_all_retired(w, dropped);
        }
        let mut announced = self.stripes.announced();
        self.free_unannounced(w, &announced, dropped);
        while w.retired.len() > self.stripes.len() && announced.any_hash() {
            super::sync::yield_now();
            announced.refresh(&self.stripes);
            self.free_unannounced(w, &announced, dropped);
        }
    }

    /// [`reclaim`](Shard::reclaim)'s retired slots while lookups without a stripe hold pins,
    /// or held them at the last reclaim: the slots pinned now are set aside in
    /// `pinned_retired` (so that they are not looked at again by every allocation), those
    /// unpinned since go back, and the rest are reclaimed as usual.
    #[cold]
    #[inline(never)]
    fn reclaim_around_pins(&self, w: &mut Writer, dropped: &mut Dropped<K, V>) {
        let Writer {
            pins,
            pinned_retired,
            retired,
            ..
        } = w;
        let (pinned, changed) = pins.pinned(&self.pinned);
        let is_pinned = |r: &mut Retired| pinned.binary_search(&r.id).is_ok();
        if changed {
            retired.extend(pinned_retired.extract_if(.., |r| !is_pinned(r)));
        }
        pinned_retired.extend(retired.extract_if(.., is_pinned));
        if !w.retired.is_empty() {
            self.reclaim_retired(w, dropped);
        }
    }

    /// Pins slot `id` (live, or retired and not yet freed) for [`read_found`] to read after
    /// the lock is released; if every pin is taken, reads it now with `read`. The caller holds
    /// the lock.
    ///
    /// [`read_found`]: Shard::read_found
    #[inline]
    fn pin_or_read<R>(&self, w: &mut Writer, id: u32, read: impl FnOnce(&V) -> R) -> Found<'_, R> {
        match w.pins.pin(&self.pinned, id) {
            Some(pin) => Found::Pinned(pin),
            // SAFETY: the caller holds the lock, and `id` holds an entry.
            None => Found::Read(read(unsafe { &self.entry(id).1 })),
        }
    }

    /// What [`pin_or_read`](Shard::pin_or_read) found, read: a pinned slot with `read` (the
    /// lock released), then unpinned.
    #[inline]
    pub(crate) fn read_found<R>(&self, found: Found<'_, R>, read: impl FnOnce(&V) -> R) -> R {
        match found {
            // SAFETY: the pin keeps the slot's entry from being freed or moved out until it is
            // dropped, after the read (also when `read` panics): `reclaim` sets pinned slots
            // aside, and nothing else writes a slot that holds an entry.
            Found::Pinned(pin) => read(unsafe { &self.entry(pin.id()).1 }),
            Found::Read(value) => value,
        }
    }

    /// Frees the replaced index tables that no reader can be in any more.
    fn free_old_tables(&self, w: &mut Writer) {
        if w.old_tables.is_empty() {
            return;
        }
        for (_, table) in w
            .old_tables
            .extract_if(.., |(snapshot, _)| self.stripes.passed(snapshot))
        {
            // Tests keep a freed table, its buckets poisoned, so that a reader still probing
            // it fails instead of reading freed memory unnoticed.
            #[cfg(test)]
            Box::leak(table).poison();
            #[cfg(not(test))]
            drop(table);
        }
    }

    fn free_unannounced(&self, w: &mut Writer, announced: &Announced, dropped: &mut Dropped<K, V>) {
        if announced.is_empty() {
            return self.free_all_retired(w, dropped);
        }
        let mut i = 0;
        while i < w.retired.len() {
            let Retired { id, tag, .. } = w.retired[i];
            if announced.protects(id, tag) {
                i += 1;
                continue;
            }
            let retired = w.retired.swap_remove(i);
            self.free_slot(w, retired, dropped);
        }
    }

    /// Frees every retired slot: the caller saw no stripe held after a fence.
    #[inline]
    fn free_all_retired(&self, w: &mut Writer, dropped: &mut Dropped<K, V>) {
        if !w.notify && !std::mem::needs_drop::<(K, V)>() {
            // Nothing to read out: the slots alone move, all at once if none is free (as when
            // `alloc` runs out).
            let Writer { retired, free, .. } = w;
            if free.is_empty() {
                std::mem::swap(free, retired);
            } else {
                free.append(retired);
            }
            return;
        }
        while let Some(retired) = w.retired.pop() {
            self.free_slot(w, retired, dropped);
        }
    }

    fn free_slot(&self, w: &mut Writer, retired: Retired, dropped: &mut Dropped<K, V>) {
        let Retired { id, cause, .. } = retired;
        if w.notify || std::mem::needs_drop::<(K, V)>() {
            // SAFETY: `id` was retired, so it holds an entry that no reader announces or can
            // find any more (checked by the caller), and the lock gives us the only access to it.
            let (key, value) = unsafe { (*self.slots.get(id).get()).assume_init_read() };
            dropped.push((key, value, Some(cause)));
        }
        // (An entry without drop glue, in a cache without a listener, is simply overwritten.)
        w.free.push(retired);
    }

    /// Takes the live entry `id` out of the index and the expiry order and marks it retired
    /// (not the policy). Runs no user code (its bucket is known: no `Hash`, no `Eq`), so it
    /// cannot leave an entry half removed. Always inlined: the eviction's call of it cost ~19
    /// instructions of register saves.
    #[inline(always)]
    fn unindex(&self, w: &mut Writer, id: u32, cause: RemovalCause) {
        let at = std::mem::replace(&mut w.at[id as usize], NOT_INDEXED);
        let buckets = &mut w.at;
        let hash = self
            .table()
            .remove(at, id, |moved, to| buckets[moved as usize] = to);
        let hash = u64::from(hash);
        w.len -= 1;
        if let Some(weights) = &mut w.weights {
            weights.remove(id);
        }
        w.retire(id, hash, cause);
        if let Some(e) = &mut w.expiry {
            e.unlink(id);
        }
    }

    /// Publishes `table` as the index; the old one is freed once no reader can be in it.
    fn swap_table(&self, w: &mut Writer, table: Table) {
        w.grow_at = table.limit();
        let old = self
            .table
            .swap(Box::into_raw(Box::new(table)), Ordering::SeqCst);
        // SAFETY: `old` came from `Box::into_raw` (in `new` or here) and is no longer reachable
        // from the shard; readers that loaded it before the swap are covered by the snapshot.
        let old = unsafe { Box::from_raw(old) };
        w.old_tables.push((self.stripes.snapshot(), old));
        // Freed at once unless a reader was inside at the swap (else every table a growing
        // shard replaced stayed until its next reclaim: 5.6 of 47.7 bytes per entry at 1M).
        self.free_old_tables(w);
    }
}

impl<K: Hash + Eq, V> Shard<K, V> {
    /// Locks the writer side, replays the stripes, and runs `f`.
    #[inline]
    fn write<S: BuildHasher, R>(
        &self,
        hasher: &S,
        now: u64,
        f: impl FnOnce(&Self, &mut Writer) -> R,
    ) -> R {
        let mut w = self.writer.0.lock();
        self.drain(&mut w, hasher, now);
        f(self, &mut w)
    }

    /// Replays the stripes' buffers into the statistics and the policy. Usually there is
    /// nothing to replay: only the buffers' lengths are read then (the replay's closures, set
    /// up out of line, cost a dozen stores on every write).
    #[inline]
    fn drain<S: BuildHasher>(&self, w: &mut Writer, hasher: &S, now: u64) {
        if self.stripes.any_events() {
            self.drain_buffers(w, hasher, now);
        }
    }

    #[cold]
    #[inline(never)]
    fn drain_buffers<S: BuildHasher>(&self, w: &mut Writer, hasher: &S, now: u64) {
        self.stripes.drain_every_in(
            w,
            |w, ids| Self::apply_hits(w, ids),
            |w, event| self.apply(w, hasher, now, event),
        );
    }

    /// Applies a buffer of hits alone (slot ids, oldest first) to the policy: the replay's
    /// usual case, with the policy's dispatch out of the loop.
    #[inline]
    fn apply_hits(w: &mut Writer, ids: &[u64]) -> bool {
        let Writer { policy, at, .. } = w;
        let is_live = |id: u32| live_in(at, id);
        match policy {
            // The list skips slots retired since the hit by itself (an unlinked slot reads as
            // the front): no liveness read. One reused since gets the credit, as below.
            PolicyState::List(list) => list.on_hits(ids),
            PolicyState::Adaptive(adaptive) => adaptive.on_hits(ids, is_live),
            other => {
                for &id in ids {
                    if is_live(id as u32) {
                        other.on_hit(id as u32);
                    }
                }
            }
        }
        true
    }

    /// Applies one buffered lookup to the statistics and the policy.
    /// (The hasher goes unused: a removal finds its slot's bucket without hashing; the replay
    /// keeps the signature `write` and the other writers' paths share.)
    #[inline]
    fn apply<S: BuildHasher>(&self, w: &mut Writer, _hasher: &S, now: u64, event: Event) {
        match event {
            // Counted by the stripe: only the policy needs to hear of it.
            Event::Hit(id) => {
                // A slot retired (or even reused) since the hit gets no credit.
                if w.is_live(id) {
                    w.policy.on_hit(id);
                }
            }
            Event::Miss(hash) => w.policy.on_miss(hash),
            Event::Expired(id) => {
                // Still the expired entry the reader saw, unless replaced or reused since.
                if w.is_live(id) && self.is_expired(id, now) {
                    self.remove_id(w, id, RemovalCause::Expired);
                    w.counters.expirations += 1;
                }
            }
        }
    }

    /// Adds what the stripes counted since the last call to the statistics. Only for reports:
    /// reading other threads' counters on every write would pull their cache lines over.
    fn collect_counts(&self, w: &mut Writer) {
        for (seen, (hits, misses)) in w.seen.iter_mut().zip(self.stripes.counts()) {
            w.counters.hits += hits - seen.0;
            w.counters.misses += misses - seen.1;
            *seen = (hits, misses);
        }
    }

    /// Replays the caller's own full buffer (only: the other threads' buffers are left to
    /// them, so two readers never take each other's stripes). If another thread holds the lock,
    /// the buffered events are dropped instead of waited for, as Caffeine's read buffers do: a
    /// reader never blocks, and under contention the policy hears of most hits rather than all.
    /// The statistics lose nothing (the stripe counts hits and misses itself), and a single
    /// thread always gets the lock, so single-threaded use stays exact.
    #[cold]
    fn drain_own<S: BuildHasher>(&self, mut own: Held<'_>, hasher: &S, now: u64) {
        // The holder reads no slot any more.
        own.announce_nothing();
        match self.writer.0.try_lock() {
            Some(mut w) => {
                own.drain_runs_in(
                    &mut *w,
                    |w, ids| Self::apply_hits(w, ids),
                    |w, event| self.apply(w, hasher, now, event),
                );
            }
            None => own.discard(),
        }
    }

    /// How many entries are stored.
    pub(crate) fn len<S: BuildHasher>(&self, hasher: &S, now: u64) -> usize {
        let mut dropped = Vec::new();
        let len = self.write(hasher, now, |shard, w| {
            shard.reclaim(w, &mut dropped);
            w.len
        });
        self.release(dropped);
        len
    }

    /// The total weight of the entries (0 unweighted).
    pub(crate) fn weight<S: BuildHasher>(&self, hasher: &S, now: u64) -> u64 {
        self.write(hasher, now, |_, w| {
            w.weights.as_ref().map_or(0, |ws| ws.total)
        })
    }

    /// Empties the shard, optionally zeroing its statistics; returns what to drop.
    pub(crate) fn clear<S: BuildHasher>(
        &self,
        hasher: &S,
        now: u64,
        reset_counters: bool,
    ) -> Dropped<K, V> {
        self.write(hasher, now, |shard, w| {
            if reset_counters {
                shard.collect_counts(w);
                w.counters = Counters::default();
            }
            shard.take_all(w)
        })
    }

    /// Drops every entry, keeping the counters. Returns the entries that could be taken out
    /// right away (no reader announces them), for the caller to drop after releasing the lock.
    /// A large index is given back for a small one, unless readers still hold an older one.
    fn take_all(&self, w: &mut Writer) -> Dropped<K, V> {
        let mut dropped = Vec::new();
        let table = self.table();
        for (hash32, id) in table.entries() {
            w.retire(id, hash32, RemovalCause::Cleared);
        }
        w.at.fill(NOT_INDEXED);
        self.free_old_tables(w);
        let small = Table::with_capacity(w.capacity.min(INITIAL_TABLE));
        if w.old_tables.is_empty() && small.buckets() < table.buckets() {
            self.swap_table(w, small);
        } else {
            table.clear();
        }
        w.len = 0;
        if let Some(weights) = &mut w.weights {
            weights.total = 0;
            weights.per_slot.clear();
        }
        w.policy.clear();
        if let Some(e) = &mut w.expiry {
            e.clear();
        }
        self.reclaim(w, &mut dropped);
        dropped
    }

    /// Finds `hash`/`is_match` without a lock; the caller holds `held`, entered for `hash`.
    /// Each candidate slot is announced before its key is compared: the first by a plain store
    /// (the hash announced it already), any later one fenced and checked to be still indexed.
    #[inline]
    fn lookup(
        &self,
        held: &mut Held<'_>,
        hash: u64,
        is_match: &mut impl FnMut(&K) -> bool,
        now: u64,
    ) -> Lookup<'_, K, V> {
        for _ in 0..RETRIES {
            let table = self.table();
            let probe = table.probe(hash, |id, bucket, seen| {
                if held.announce(id)
                    && (!std::ptr::eq(self.table(), table) || bucket.load(Ordering::SeqCst) != seen)
                {
                    return Visit::Moved;
                }
                // SAFETY: `id` was found in the index, and our stripe announces it: either the
                // writer that retires it sees the announcement, or the check above (after a
                // fence) found it still indexed in the current table.
                let entry = unsafe { self.entry(id) };
                if is_match(&entry.0) {
                    Visit::Match(entry)
                } else {
                    Visit::Next
                }
            });
            match probe {
                Probe::Found(id, _) if self.is_expired(id, now) => return Lookup::Expired(id),
                Probe::Found(id, entry) => return Lookup::Found(id, entry),
                Probe::Absent => return Lookup::Absent,
                Probe::Retry => std::hint::spin_loop(),
            }
        }
        Lookup::Busy
    }

    /// Looks up the entry for `hash` matching `is_match` and clones its value; counts a hit or
    /// a miss. Lock-free unless this thread's stripe is busy or its buffer full.
    #[inline]
    pub(crate) fn get<S: BuildHasher>(
        &self,
        hasher: &S,
        hash: u64,
        mut is_match: impl FnMut(&K) -> bool,
        now: u64,
    ) -> Option<V>
    where
        V: Clone,
    {
        let Some(mut held) = self.stripes.enter(hash) else {
            return self.get_locked(hasher, hash, is_match, now);
        };
        // Whether the buffer is left without room for the next lookup's two events.
        let (value, full) = match self.lookup(&mut held, hash, &mut is_match, now) {
            Lookup::Found(id, entry) => {
                // Found in the index, and announced by our stripe.
                let value = entry.1.clone();
                held.count_hit();
                (Some(value), self.hit_events && held.push(Event::Hit(id)))
            }
            Lookup::Absent => (None, self.miss(&mut held)),
            Lookup::Expired(id) => {
                let full = self.miss(&mut held);
                (None, held.push(Event::Expired(id)) | full)
            }
            Lookup::Busy => {
                drop(held);
                return self.get_locked(hasher, hash, is_match, now);
            }
        };
        if full {
            self.drain_own(held, hasher, now);
        }
        value
    }

    /// Counts a miss: returns whether the buffer is now full (see [`Held::push`]); never, as
    /// nothing is buffered (the policy hears of the miss at the key's insert).
    #[inline]
    fn miss(&self, held: &mut Held<'_>) -> bool {
        held.count_miss();
        false
    }

    /// `get` under the lock: for re-entrant calls and readers that lost their stripe. The
    /// value is cloned after the lock is released, its slot pinned meanwhile (see
    /// [`super::pins`]): a slow `Clone` stalls no writer, and a `Clone` that looks the cache up
    /// again does not deadlock.
    #[cold]
    fn get_locked<S: BuildHasher>(
        &self,
        hasher: &S,
        hash: u64,
        mut is_match: impl FnMut(&K) -> bool,
        now: u64,
    ) -> Option<V>
    where
        V: Clone,
    {
        let mut dropped = Vec::new();
        let found = self.write(hasher, now, |shard, w| {
            // SAFETY: under the lock, indexed ids hold entries.
            let found = shard
                .table()
                .find(hash, |id| is_match(unsafe { &shard.entry(id).0 }));
            match found {
                Some(id) if !shard.is_expired(id, now) => {
                    w.counters.hits += 1;
                    w.policy.on_hit(id);
                    Some(self.pin_or_read(w, id, V::clone))
                }
                found => {
                    if let Some(id) = found {
                        shard.remove_id(w, id, RemovalCause::Expired);
                        w.counters.expirations += 1;
                        shard.reclaim(w, &mut dropped);
                    }
                    w.counters.misses += 1;
                    None
                }
            }
        });
        self.release(dropped);
        Some(self.read_found(found?, V::clone))
    }

    /// Looks up without counting or reordering; expired entries are not returned.
    pub(crate) fn peek<R>(
        &self,
        hash: u64,
        mut is_match: impl FnMut(&K) -> bool,
        now: u64,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        if let Some(mut held) = self.stripes.enter(hash) {
            match self.lookup(&mut held, hash, &mut is_match, now) {
                // Found in the index, and announced by our stripe.
                Lookup::Found(_, entry) => return Some(read(&entry.1)),
                Lookup::Absent | Lookup::Expired(_) => return None,
                Lookup::Busy => drop(held),
            }
        }
        let mut read = Some(read);
        let found = {
            let mut w = self.writer.0.lock();
            // SAFETY: under the lock, indexed ids hold entries.
            let id = self
                .table()
                .find(hash, |id| is_match(unsafe { &self.entry(id).0 }))?;
            if self.is_expired(id, now) {
                return None;
            }
            self.pin_or_read(&mut w, id, |v| read.take().map(|read| read(v)))
        };
        self.read_found(found, |v| read.take().map(|read| read(v)))
    }

    /// Removes the live entry `id` from the index, the policy and the expiry order; it is
    /// retired, to be dropped once no reader can see it.
    /// Out of line: the eviction calls `unindex` itself, and the replay of hits stays small.
    #[inline(never)]
    fn remove_id(&self, w: &mut Writer, id: u32, cause: RemovalCause) {
        self.unindex(w, id, cause);
        w.policy.on_remove(id);
    }

    /// Stores `key -> value`. Returns what was pushed out (evicted, expired or replaced
    /// entries whose readers have left, or the rejected input), to drop outside the lock.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert<S: BuildHasher>(
        &self,
        hasher: &S,
        hash: u64,
        key: K,
        value: V,
        weight: u64,
        now: u64,
        on_present: OnPresent,
    ) -> Dropped<K, V> {
        let mut dropped = Vec::new();
        self.write(hasher, now, |shard, w| {
            let entry = (key, value, weight);
            shard.insert_locked(w, hash, entry, now, on_present, &mut dropped);
            if w.notify {
                // Report what left now rather than when its slot is next needed.
                shard.reclaim(w, &mut dropped);
            }
        });
        dropped
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_locked(
        &self,
        w: &mut Writer,
        hash: u64,
        (key, value, weight): (K, V, u64),
        now: u64,
        on_present: OnPresent,
        dropped: &mut Dropped<K, V>,
    ) -> Option<u32> {
        let now = match &mut w.expiry {
            Some(e) => {
                e.high_water = e.high_water.max(now);
                e.high_water
            }
            None => now,
        };
        if w.capacity == 0 {
            dropped.push((key, value, Some(RemovalCause::Size)));
            return None;
        }
        // SAFETY: under the lock, indexed ids hold entries.
        let found = self
            .table()
            .find(hash, |id| unsafe { self.entry(id) }.0 == key);
        if let Some(old) = found {
            if self.is_expired(old, now) {
                self.remove_id(w, old, RemovalCause::Expired);
                w.counters.expirations += 1;
            } else if on_present == OnPresent::Replace && !Self::fits_in_place(w, old, weight) {
                // The new value needs room the old one does not give: it is stored as a new
                // entry (which may evict others, or not be kept at all), the old one replaced.
                self.remove_id(w, old, RemovalCause::Replaced);
            } else {
                if on_present == OnPresent::Replace {
                    // Readers may be cloning the old value: the new one goes to a new slot.
                    let id = self.alloc(w, dropped);
                    self.write_slot(id, key, value);
                    let bucket = std::mem::replace(&mut w.at[old as usize], NOT_INDEXED);
                    self.table().replace(bucket, old, id);
                    w.at[id as usize] = bucket;
                    w.retire(old, hash, RemovalCause::Replaced);
                    if let Some(weights) = &mut w.weights {
                        weights.remove(old);
                        weights.add(id, weight);
                    }
                    w.policy.on_move(old, id);
                    w.policy.on_hit(id);
                    if let Some(e) = &mut w.expiry {
                        e.relocate(old, id);
                        e.unlink(id);
                        let (deadline, lane) = e.deadline(now);
                        self.set_deadline(id, deadline);
                        e.push(id, lane);
                    }
                    return Some(id);
                }
                dropped.push((key, value, None));
                return Some(old);
            }
        }
        if self.miss_events {
            // The key is new (or its entry expired): the request that missed it, as the policy
            // hears of it (see `miss_events`).
            w.policy.on_miss(hash);
        }
        self.sweep_locked(w, now);
        if w.weights.as_ref().is_some_and(|ws| weight > ws.max) {
            // Heavier than the whole bound: never kept (as Caffeine and moka do, reported).
            dropped.push((key, value, Some(RemovalCause::Size)));
            return None;
        }
        while w.len >= w.capacity || Self::over_weight(w, weight) {
            let victim = w.policy.evict(hash);
            // The policy has let go of the victim: `unindex` runs no user code.
            self.unindex(w, victim, RemovalCause::Size);
            w.counters.evictions += 1;
        }

        let id = self.alloc(w, dropped);
        self.write_slot(id, key, value);
        if let Some(e) = &mut w.expiry {
            let (deadline, lane) = e.deadline(now);
            self.set_deadline(id, deadline);
            e.push(id, lane);
        }
        if w.len >= w.grow_at {
            // Doubling, until a large shard's next table would hold more than its capacity
            // takes: then just that.
            let wanted = (w.len + 1) * 2;
            let exact = w.capacity >= EXACT_TABLE
                && Table::sparse_buckets(wanted) > Table::exact_buckets(w.capacity);
            let entries = if exact { w.capacity } else { wanted };
            let at = &mut w.at;
            let grown = self
                .table()
                .grown(entries, exact, |id, to| at[id as usize] = to);
            self.swap_table(w, grown);
        }
        w.at[id as usize] = self.table().insert(hash, id);
        w.len += 1;
        if let Some(weights) = &mut w.weights {
            weights.add(id, weight);
        }
        w.policy.on_insert(id, hash);
        Some(id)
    }

    /// Whether replacing the live entry `old` by a value of `weight` keeps the shard within its
    /// weight bound (always, unweighted).
    #[inline]
    fn fits_in_place(w: &Writer, old: u32, weight: u64) -> bool {
        w.weights
            .as_ref()
            // As subtractions: with a bound near `u64::MAX` the sum could wrap (the total
            // never passes the bound, and the old entry's weight is part of it).
            .is_none_or(|ws| weight <= ws.max - (ws.total - ws.per_slot[old as usize]))
    }

    /// Whether an entry of `weight` would take the shard over its weight bound.
    #[inline]
    fn over_weight(w: &Writer, weight: u64) -> bool {
        w.weights
            .as_ref()
            .is_some_and(|ws| weight > ws.max - ws.total)
    }

    /// Moves `key, value` into the free slot `id` (not yet reachable by readers).
    fn write_slot(&self, id: u32, key: K, value: V) {
        // SAFETY: `id` is free (just allocated) and we hold the lock: nobody else accesses it.
        unsafe { (*self.slots.get(id).get()).write((key, value)) };
    }

    /// Removes the entry matching `is_match`, returning a clone of its value if it was alive
    /// (an expired one counts as an expiration).
    pub(crate) fn remove<S: BuildHasher>(
        &self,
        hasher: &S,
        hash: u64,
        mut is_match: impl FnMut(&K) -> bool,
        now: u64,
    ) -> (Option<V>, Dropped<K, V>)
    where
        V: Clone,
    {
        let mut dropped = Vec::new();
        let found = self.write(hasher, now, |shard, w| {
            // SAFETY: under the lock, indexed ids hold entries.
            let id = shard
                .table()
                .find(hash, |id| is_match(unsafe { &shard.entry(id).0 }))?;
            let alive = !shard.is_expired(id, now);
            // The value is cloned once the lock is released, its slot pinned meanwhile (see
            // `get_locked`): a slow `Clone` stalls no writer, one that writes to the cache does
            // not deadlock.
            let found = alive.then(|| self.pin_or_read(w, id, V::clone));
            if !alive {
                w.counters.expirations += 1;
            }
            let cause = if alive {
                RemovalCause::Explicit
            } else {
                RemovalCause::Expired
            };
            shard.remove_id(w, id, cause);
            shard.reclaim(w, &mut dropped);
            found
        });
        let Some(found) = found else {
            return (None, dropped);
        };
        let pinned = matches!(found, Found::Pinned(_));
        // What the removal freed is reported first: a `Clone` that panics loses no report.
        self.release(std::mem::take(&mut dropped));
        let value = self.read_found(found, V::clone);
        if pinned {
            // Unpinned: the removed entry goes now (and is reported), as without the pin.
            self.write(hasher, now, |shard, w| shard.reclaim(w, &mut dropped));
        }
        (Some(value), dropped)
    }

    /// Removes every expired entry and reports the statistics and the size.
    pub(crate) fn info<S: BuildHasher>(&self, hasher: &S, now: u64) -> (Counters, usize) {
        let mut dropped = Vec::new();
        let info = self.write(hasher, now, |shard, w| {
            shard.collect_counts(w);
            shard.sweep_exact(w, now);
            shard.reclaim(w, &mut dropped);
            (w.counters, w.len)
        });
        self.release(dropped);
        info
    }

    /// Removes the expired entries at the back of the expiry order, touching only expired
    /// entries: every expired entry without jitter; with jitter, an entry may wait behind a
    /// younger one of its lane for up to a lane's width past its deadline (see [`Expiry`]).
    fn sweep_locked(&self, w: &mut Writer, now: u64) {
        while let Some(id) = w
            .expiry
            .as_ref()
            .and_then(|e| e.next_past(|id| self.past_deadline(id, now)))
        {
            self.remove_id(w, id, RemovalCause::Expired);
            w.counters.expirations += 1;
        }
    }

    /// Removes every expired entry (for reports: with jitter, walks each lane's last lane's
    /// width of deadlines).
    fn sweep_exact(&self, w: &mut Writer, now: u64) {
        self.sweep_locked(w, now);
        let Some(e) = &w.expiry else { return };
        for id in e.all_past(now, |id| self.deadline(id)) {
            self.remove_id(w, id, RemovalCause::Expired);
            w.counters.expirations += 1;
        }
    }

    /// How many buckets the index has (tests only).
    #[cfg(test)]
    pub(crate) fn index_buckets(&self) -> usize {
        let _w = self.writer.0.lock();
        self.table().buckets()
    }

    /// How many slot ids were handed out (tests only).
    #[cfg(test)]
    pub(crate) fn slots_handed_out(&self) -> usize {
        self.writer.0.lock().next_id as usize
    }

    /// Recounts everything and checks the invariants (tests and fuzzing only).
    #[cfg(test)]
    pub(crate) fn validate<S: BuildHasher>(&self, hasher: &S) {
        let w = self.writer.0.lock();
        assert!(
            w.len <= w.capacity,
            "{} entries over capacity {}",
            w.len,
            w.capacity
        );
        let table = self.table();
        assert_eq!(w.grow_at, table.limit(), "the index's limit as kept");
        let indexed: Vec<u32> = table.entries().map(|(_, id)| id).collect();
        assert_eq!(indexed.len(), w.len, "index and size disagree");
        for (hash32, id) in table.entries() {
            assert!(w.is_live(id), "indexed slot {id} is not live");
            // SAFETY: live ids hold entries.
            let hash = hasher.hash_one(&unsafe { self.entry(id) }.0);
            assert_eq!(
                hash32,
                hash & 0xFFFF_FFFF,
                "slot {id} indexed under another hash"
            );
        }
        assert_eq!(w.at.len(), w.next_id as usize, "a bucket entry per slot");
        let mut live = 0;
        for (id, &at) in w.at.iter().enumerate() {
            if at != NOT_INDEXED {
                live += 1;
                assert_eq!(
                    table.id_at(at),
                    Some(id as u32),
                    "slot {id} is not in bucket {at}"
                );
            }
        }
        assert_eq!(live, w.len, "live slots and size disagree");
        let mut seen = vec![false; w.next_id as usize];
        for &Retired { id, .. } in w.free.iter().chain(&w.retired).chain(&w.pinned_retired) {
            assert!(!w.is_live(id), "free or retired slot {id} is live");
            assert!(
                !std::mem::replace(&mut seen[id as usize], true),
                "slot {id} twice"
            );
        }
        w.policy.validate(w.len);
        if let Some(ws) = &w.weights {
            assert!(ws.total <= ws.max, "weight {} over {}", ws.total, ws.max);
            let mut total = 0;
            for (id, &weight) in ws.per_slot.iter().enumerate() {
                assert!(
                    weight == 0 || w.is_live(id as u32),
                    "slot {id} weighs, not live"
                );
                total += weight;
            }
            assert_eq!(total, ws.total, "weights add up");
        }
        if let Some(e) = &w.expiry {
            let held = e.validate(|id| self.deadline(id));
            assert_eq!(held, w.len, "expiry order holds every entry");
        }
    }
}

/// The writer side of a shard, locked, as [`Shard::with_pending`] lends it: the lookups and
/// writes a single-flight leader makes under the same lock as its pending computations.
pub(crate) struct Locked<'s, 'l, K, V> {
    shard: &'s Shard<K, V>,
    w: &'l mut Writer,
    now: u64,
    dropped: &'l mut Dropped<K, V>,
}

impl<'s, K: Hash + Eq, V> Locked<'s, '_, K, V> {
    /// Stores `key -> value` unless a live entry of `key` is there (an unweighted cache's
    /// `insert_if_absent`); what it pushes out is dropped once the lock is released.
    #[inline]
    pub(crate) fn insert_if_absent(&mut self, hash: u64, key: K, value: V) {
        let Locked {
            shard,
            w,
            now,
            dropped,
        } = self;
        let entry = (key, value, 0);
        shard.insert_locked(w, hash, entry, *now, OnPresent::Keep, dropped);
        if w.notify {
            // Report what left now rather than when its slot is next needed (as `insert`).
            shard.reclaim(w, dropped);
        }
    }

    /// [`insert_if_absent`](Locked::insert_if_absent), and the live entry of the key after it
    /// (the one stored, or the one that was there), pinned to be read once the lock is released
    /// ([`Shard::read_found`]; read now if every pin is taken); `None` if nothing holds it
    /// (capacity 0, or a value heavier than the weight bound: `value` is dropped).
    pub(crate) fn insert_if_absent_found(
        &mut self,
        hash: u64,
        key: K,
        value: V,
    ) -> Option<Found<'s, V>>
    where
        V: Clone,
    {
        let shard: &'s Shard<K, V> = self.shard;
        let (w, dropped) = (&mut *self.w, &mut *self.dropped);
        let entry = (key, value, 0);
        let id = shard.insert_locked(w, hash, entry, self.now, OnPresent::Keep, dropped)?;
        let found = shard.pin_or_read(w, id, V::clone);
        if w.notify {
            shard.reclaim(w, dropped);
        }
        Some(found)
    }

    /// Whether the shard keeps no entry (capacity 0): what it is given is dropped.
    pub(crate) fn keeps_nothing(&self) -> bool {
        self.w.capacity == 0
    }

    /// Removes the entry of hash `hash` that `is_match` accepts; whether it was alive.
    pub(crate) fn remove(&mut self, hash: u64, mut is_match: impl FnMut(&K) -> bool) -> bool {
        let Locked {
            shard,
            w,
            now,
            dropped,
        } = self;
        // SAFETY: under the lock, indexed ids hold entries.
        let Some(id) = shard
            .table()
            .find(hash, |id| is_match(unsafe { &shard.entry(id).0 }))
        else {
            return false;
        };
        let alive = !shard.is_expired(id, *now);
        let cause = if alive {
            RemovalCause::Explicit
        } else {
            w.counters.expirations += 1;
            RemovalCause::Expired
        };
        shard.remove_id(w, id, cause);
        shard.reclaim(w, dropped);
        alive
    }
}

impl<K, V> Shard<K, V> {
    /// Runs `f` under the writer lock with this shard's pending computations and a view of
    /// its entries that only reads ([`Peek`]): what a single-flight caller that registers
    /// needs. The stripes are not replayed (nothing is written but the pending list).
    #[inline]
    pub(crate) fn with_pending_peek<'s, R>(
        &'s self,
        now: u64,
        f: impl FnOnce(&mut crate::flight::Table<K, V>, Peek<'s, '_, K, V>) -> R,
    ) -> R {
        let mut w = self.writer.0.lock();
        // SAFETY: as in `with_pending`: only ever reached under the writer lock, held here
        // until `f` returns.
        let pending = unsafe { &mut *self.pending.get() };
        f(
            pending,
            Peek {
                shard: self,
                w: &mut w,
                now,
            },
        )
    }
}

/// A read-only view of a shard's entries under its writer lock ([`Shard::with_pending_peek`]).
pub(crate) struct Peek<'s, 'w, K, V> {
    shard: &'s Shard<K, V>,
    /// The locked writer side, for its pins only.
    w: &'w mut Writer,
    now: u64,
}

impl<'s, K, V> Peek<'s, '_, K, V> {
    /// The live entry of the key of hash `hash` that `is_match` accepts, pinned for
    /// [`Shard::read_found`] to clone once the lock is released (see [`super::pins`]); counts
    /// nothing and touches no policy.
    #[inline]
    pub(crate) fn find(
        &mut self,
        hash: u64,
        mut is_match: impl FnMut(&K) -> bool,
    ) -> Option<Found<'s, V>>
    where
        V: Clone,
    {
        let shard = self.shard;
        // SAFETY: the writer lock is held (a `Peek` lives inside `with_pending_peek`), and
        // under it indexed ids hold entries.
        let id = shard
            .table()
            .find(hash, |id| is_match(unsafe { &shard.entry(id).0 }))?;
        (!shard.is_expired(id, self.now)).then(|| shard.pin_or_read(self.w, id, V::clone))
    }
}

impl<K: Hash + Eq, V> Shard<K, V> {
    /// Runs `f` under the writer lock (the stripes replayed first, as every write does) with
    /// this shard's pending computations and its locked writer side; returns what `f` returned
    /// and what the writes pushed out, for the caller to [`release`](Shard::release) once the
    /// lock is gone. `f` may run `Hash`, `Eq` and `Clone` of keys and values, as any write
    /// does, and nothing else of the user's.
    #[inline]
    pub(crate) fn with_pending<'s, S: BuildHasher, R>(
        &'s self,
        hasher: &S,
        now: u64,
        f: impl FnOnce(&mut crate::flight::Table<K, V>, &mut Locked<'s, '_, K, V>) -> R,
    ) -> (R, Dropped<K, V>) {
        let mut dropped = Vec::new();
        let ret = self.write(hasher, now, |_, w| {
            // SAFETY: `pending` is only ever reached here, under the writer lock that `write`
            // holds for the whole call, and `f` cannot take that lock again (it is not
            // re-entrant: a nested write would deadlock before it could alias this borrow).
            let pending = unsafe { &mut *self.pending.get() };
            let mut locked = Locked {
                shard: self,
                w,
                now,
                dropped: &mut dropped,
            };
            f(pending, &mut locked)
        });
        (ret, dropped)
    }
}

impl<K, V> Drop for Shard<K, V> {
    fn drop(&mut self) {
        let w = self.writer.0.get_mut();
        let mut held: Vec<u32> = (w.retired.drain(..))
            .chain(w.pinned_retired.drain(..))
            .map(|r| r.id)
            .collect();
        held.extend((0..w.at.len() as u32).filter(|&id| live_in(&w.at, id)));
        for id in held {
            // SAFETY: live and retired slots hold initialized entries, each listed once, and
            // `&mut self` means no reader can see them.
            unsafe { (*self.slots.get(id).get()).assume_init_drop() };
        }
        // SAFETY: the table pointer always comes from `Box::into_raw`, and nothing can reach it
        // after the shard is gone.
        drop(unsafe { Box::from_raw(self.table.load(Ordering::Relaxed)) });
    }
}
