//! Refresh-ahead and stale serving for `#[memoize(ttl = .., refresh = ..)]`,
//! `stale_while_revalidate = ..` and `stale_if_error = ..` (Caffeine's `refreshAfterWrite`,
//! RFC 5861's `Cache-Control` extensions).
//!
//! - **Stamps, not a new core**: a function with these options caches its values as
//!   [`Stamped`] (the value and its write time, from the system's monotonic clock), in a
//!   cache whose ttl is the function's ttl plus its longest stale window. Whether a hit is fresh,
//!   due for a refresh, stale or past every window is decided here ([`Fresh::age`]); functions
//!   without the options keep their plain values and their hit path.
//! - **A refresh never makes a caller wait**: the caller that finds an entry due for a refresh
//!   (or stale within `stale_while_revalidate`) returns it and hands the recomputation to the
//!   background. At most one runs per key: it is a single-flight leader taken with
//!   [`Flights::try_lead`](crate::flight::Flights::try_lead), which gives up when the key is
//!   being computed already. Nobody joins it: it may wait in the queue, and callers (or other
//!   refreshes' bodies) waiting for it there could wait for each other for good; a caller that
//!   finds the entry past every serving window computes it itself, as after a miss (at worst
//!   once more than needed, when the windows end while a refresh is still running). Its value
//!   replaces the entry unless the key was invalidated or the
//!   cache cleared meanwhile (issue 10's rule: the flight was marked stale). A refresh that
//!   fails (an `Err`, a `None`, a panic) leaves the old value until it expires.
//! - **Where refreshes run**: a sync function's on a small pool of threads started on first use
//!   (at most [`MAX_THREADS`]), fed by a bounded queue of [`QUEUE`] tasks: when it is full the
//!   refresh is skipped and a later call schedules it again, so neither memory nor a caller
//!   waits on a slow body. An async function's on the caller's tokio runtime (feature `tokio`),
//!   and called off a runtime on the same pool, each thread with a tokio runtime of its own;
//!   without the feature on the same pool, each future driven to completion on its thread (a
//!   body that needs a tokio reactor then needs the feature).
//! - **With a store** ([`StampedCache`]): the stamp is stored with the value, versioned
//!   (`["memo-stamped-1", written, value]`: anything else does not decode, a miss), on the wall
//!   clock (nanoseconds since the Unix epoch: every process reads the age of an entry another
//!   wrote, as far as their clocks agree); the store's ttl is `ttl` plus the longest window. A
//!   caller's value replaces the stored one; a refresh's is the flight's tracked write (an
//!   invalidation waits for it or cancels it) and is made only over the value it refreshed
//!   (the stored stamp is read first), else the stored, newer value goes to the near cache.
//!   An async refresh's write (a blocking store call) is made on a refresh thread.
//! - **In a field** (`cache_field`, [`FieldMemo`]): the memo is shared (an `Arc`) with its
//!   refreshes, which take their leader when they run; a set of scheduled keys keeps it to one
//!   queued or running refresh per key.

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::flight::{FunctionCache, WriteEnd};
use crate::memo::Memo;
use crate::{Cache, CacheInfo};

/// The most refresh tasks waiting for a thread; more are skipped (a later call retries).
pub const QUEUE: usize = 1024;

/// The most threads that run sync refreshes (fewer on a machine with fewer cores, at least 2).
pub const MAX_THREADS: usize = 4;

/// How far the coarse clock may lag (its thread starved) before a fresh entry is taken for
/// one a little too long: the cache's ttl makes the same assumption.
const MARGIN: u64 = 1_000_000_000;

/// A cached value with the time it was written: what a function with `refresh`,
/// `stale_while_revalidate` or `stale_if_error` keeps in its cache.
#[derive(Clone, Debug)]
pub struct Stamped<V> {
    value: V,
    /// Nanoseconds since the clock's origin.
    written: u64,
}

impl<V> Stamped<V> {
    /// The value.
    #[inline]
    pub fn into_value(self) -> V {
        self.value
    }

    /// The value, borrowed (what `maxweight` weighs).
    #[inline]
    pub(crate) fn get(&self) -> &V {
        &self.value
    }
}

/// How long a function's entries are fresh and how long they may be served stale, as its
/// attribute gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// `ttl`: how long an entry is fresh.
    pub ttl: Duration,
    /// `refresh`: the age from which a hit schedules a recomputation (shorter than `ttl`).
    pub refresh: Option<Duration>,
    /// `stale_while_revalidate`: how long after `ttl` a hit returns the stale value and
    /// schedules a recomputation.
    pub stale_while_revalidate: Option<Duration>,
    /// `stale_if_error`: how long after `ttl` a call whose body fails returns the stale value.
    pub stale_if_error: Option<Duration>,
}

impl Freshness {
    /// How long the cache keeps an entry: `ttl` and the longest stale window.
    pub fn retention(&self) -> Duration {
        let window = self
            .stale_while_revalidate
            .unwrap_or_default()
            .max(self.stale_if_error.unwrap_or_default());
        self.ttl.saturating_add(window)
    }

    /// `params` as the memo's cache is made with them: entries kept for
    /// [`retention`](Freshness::retention) (a store is given that ttl), their deadlines not
    /// jittered (`ttl_jitter` is in their stamps, see [`Fresh`]).
    pub fn kept(&self, params: crate::memo::Params) -> crate::memo::Params {
        crate::memo::Params {
            ttl: Some(self.retention()),
            ttl_jitter: 0.0,
            ..params
        }
    }
}

/// The wall-clock time (nanoseconds since the Unix epoch) at the clock's origin.
fn wall_offset() -> u64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        });
    wall.saturating_sub(Clock::system().now_nanos())
}

/// The tag that starts a stamped value in a store: its format's version. A value without it
/// (written by a build of the function without these options, or by a later format) does not
/// decode, which the store treats as a miss.
#[cfg(feature = "stores")]
const STAMP_FORMAT: &str = "memo-stamped-1";

/// In a store, `[STAMP_FORMAT, written, value]`, `written` in nanoseconds since the Unix epoch.
#[cfg(feature = "stores")]
impl<V: serde::Serialize> serde::Serialize for Stamped<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&(STAMP_FORMAT, self.written, &self.value), serializer)
    }
}

#[cfg(feature = "stores")]
impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for Stamped<V> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (format, written, value): (std::borrow::Cow<'de, str>, u64, V) =
            serde::Deserialize::deserialize(deserializer)?;
        if format != STAMP_FORMAT {
            return Err(serde::de::Error::custom(format_args!(
                "not a value stamped as `{STAMP_FORMAT}`"
            )));
        }
        Ok(Stamped { value, written })
    }
}

/// What a hit of a stamped entry does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Age {
    /// Younger than `refresh` (or `ttl`): return it.
    Fresh,
    /// Older than `refresh`, or stale within `stale_while_revalidate`: return it and schedule a
    /// recomputation.
    Refresh,
    /// Past `ttl` and every window that serves it at once: compute, as after a miss; when
    /// `usable_on_error`, the entry is within `stale_if_error` and answers a failure.
    Expired {
        /// Within `stale_if_error`.
        usable_on_error: bool,
    },
}

/// What a memo whose function has these options keeps beside its cache.
pub struct Fresh {
    freshness: Freshness,
    /// The coarse clock, whose time may lag under load: an entry is taken for fresh from it
    /// only more than [`MARGIN`] before its deadline, and confirmed through the kernel's coarse
    /// clock nearer to it ([`crate::clock::is_past`]), as the cache's own ttl is; stamps and
    /// ages past the deadline read the system's clock. Or a test's manual clock.
    clock: Clock,
    /// `refresh`, or `ttl` without it, in nanoseconds: the age up to which a hit is fresh.
    fresh_for: u64,
    /// What a stamp adds to the clock's time: 0 in memory; for a store, the wall-clock time of
    /// the clock's origin (nanoseconds since the Unix epoch), so that every process reads the
    /// age of an entry another one wrote (as far as their clocks agree).
    offset: u64,
    counts: Counts,
    /// `ttl_jitter`: each stamp is its write time less an offset in `[0, fresh_for * jitter)`,
    /// so the entry is due for a refresh and expires that much earlier, and `ttl` stays the
    /// bound on a value's age. Stamps are then kept `bias` (`fresh_for`, more than any offset)
    /// ahead of the clock, so that none is cut short near the clock's origin.
    jitter: crate::concurrent::expiry::Jitter,
    bias: u64,
}

#[derive(Default)]
struct Counts {
    refreshes: AtomicU64,
    stale_hits: AtomicU64,
    stale_errors: AtomicU64,
    /// Hits of the cache past `ttl` that went on to compute: misses of the function.
    expired_hits: AtomicU64,
}

impl Counts {
    fn zero(&self) {
        for counter in [
            &self.refreshes,
            &self.stale_hits,
            &self.stale_errors,
            &self.expired_hits,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Fresh {
    /// Stamps on the process's clock (`shared` false), or on the wall clock for a store that
    /// other processes read (`shared`).
    pub(crate) fn new(freshness: Freshness, clock: Clock, shared: bool) -> Self {
        let fresh_for = freshness.refresh.unwrap_or(freshness.ttl).as_nanos();
        let offset = match shared {
            true => wall_offset(),
            false => 0,
        };
        Fresh {
            freshness,
            clock,
            fresh_for: u64::try_from(fresh_for).unwrap_or(u64::MAX),
            offset,
            counts: Counts::default(),
            jitter: crate::concurrent::expiry::Jitter::new(0.0),
            bias: 0,
        }
    }

    /// This state, its entries' ages shifted by `jitter` (a fraction of `refresh`, or of `ttl`).
    pub(crate) fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = crate::concurrent::expiry::Jitter::new(jitter);
        // A store's stamps are on the wall clock (an `offset` from the epoch), far from any
        // origin, and are read by other processes: no bias there, which a process without the
        // jitter would read as that much younger.
        if self.jitter.window(self.fresh_for) > 0 && self.offset == 0 {
            self.bias = self.fresh_for;
        }
        self
    }

    /// The age of `entry` now, with its jitter's offset.
    fn age_of<V>(&self, entry: &Stamped<V>) -> Duration {
        // On the stamps' time (the wall clock's, for a store): an entry another process wrote
        // before this one's clock began is as old as it is, not as old as the clock.
        let now = self
            .now()
            .saturating_add(self.bias)
            .saturating_add(self.offset);
        Duration::from_nanos(now.saturating_sub(entry.written))
    }

    /// The options.
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }

    /// The precise time.
    fn now(&self) -> u64 {
        if self.clock.is_coarse() {
            Clock::system().now_nanos()
        } else {
            self.clock.now_nanos()
        }
    }

    /// Whether the time `deadline` (nanoseconds since the clock's origin) has come: one atomic
    /// load when it is more than [`MARGIN`] away, else the kernel's coarse clock, and the
    /// system's within a kernel tick of it.
    #[inline]
    fn is_past(&self, deadline: u64) -> bool {
        let now = self.clock.now_nanos();
        if !self.clock.is_coarse() {
            return now >= deadline;
        }
        now.saturating_add(MARGIN) >= deadline && crate::clock::is_past(deadline)
    }

    /// `value` stamped now (with jitter, less its offset, ahead by the bias).
    pub(crate) fn stamp<V>(&self, value: V) -> Stamped<V> {
        let written = self.now().saturating_add(self.bias);
        Stamped {
            value,
            // The offset first: a store's stamp is then far above any jitter's offset.
            written: written
                .saturating_add(self.offset)
                .saturating_sub(self.jitter.offset(self.fresh_for)),
        }
    }

    /// What a hit of `entry` does, counted: a stale hit, or a hit that is a miss.
    #[inline]
    pub(crate) fn age<V>(&self, entry: &Stamped<V>) -> Age {
        // The common case, without reading the precise clock.
        // When it is due, on the clock's time: at the clock's origin (past) for an entry due
        // before it, such as one a store kept from before this process started.
        let due = (entry.written.saturating_add(self.fresh_for))
            .saturating_sub(self.offset.saturating_add(self.bias));
        if !self.is_past(due) {
            return Age::Fresh;
        }
        self.age_past_fresh(entry)
    }

    /// [`Fresh::age`] of an entry at least as old as `refresh` (or `ttl`).
    #[cold]
    fn age_past_fresh<V>(&self, entry: &Stamped<V>) -> Age {
        let f = &self.freshness;
        let age = self.age_of(entry);
        if age < f.refresh.unwrap_or(f.ttl) {
            return Age::Fresh;
        }
        if age < f.ttl {
            return Age::Refresh;
        }
        let past = age - f.ttl;
        if f.stale_while_revalidate.is_some_and(|window| past < window) {
            bump(&self.counts.stale_hits);
            return Age::Refresh;
        }
        bump(&self.counts.expired_hits);
        Age::Expired {
            usable_on_error: f.stale_if_error.is_some_and(|window| past < window),
        }
    }

    /// Whether `entry` is younger than `limit`.
    fn younger<V>(&self, entry: &Stamped<V>, limit: Duration) -> bool {
        self.age_of(entry) < limit
    }

    /// `info` as the function's statistics: its ttl, the hits past it counted as misses, and
    /// the counters of this module.
    pub(crate) fn adjust(&self, info: &mut CacheInfo) {
        let expired = self.counts.expired_hits.load(Ordering::Relaxed);
        let moved = expired.min(info.hits);
        info.hits -= moved;
        info.misses += moved;
        info.ttl = Some(self.freshness.ttl);
        info.refreshes += self.counts.refreshes.load(Ordering::Relaxed);
        info.stale_hits += self.counts.stale_hits.load(Ordering::Relaxed);
        info.stale_errors += self.counts.stale_errors.load(Ordering::Relaxed);
    }

    pub(crate) fn zero(&self) {
        self.counts.zero();
    }
}

/// The cache of a memo with stamped values: single-flight's needs, and a write that replaces
/// what is stored (an entry past `ttl` stays for the stale windows, so a computed value must
/// replace it, never give way to it). The in-memory [`Cache`] and, with a store, `StoreCache`
/// (and the write-behind of an `async fn`) implement it.
pub trait StampedCache<K, V>: FunctionCache<K, Stamped<V>> {
    /// Stores `value` for `key`, replacing what is stored; with `over = Some(written)`, only
    /// over the entry written at `written` (or none): a refresh's write, which a newer write
    /// overtook when the stored stamp differs (with a near cache, the stored value is then kept
    /// in this process instead). `end` tracks the write for the invalidations of `key`
    /// ([`FunctionCache::insert_tracked`]): dropped once it has ended.
    fn replace(
        &self,
        key: K,
        value: Stamped<V>,
        over: Option<u64>,
        end: Option<WriteEnd<K, Stamped<V>>>,
    );
}

/// Whether a write of a refresh of the entry written at `over` may replace `current`.
fn replaces<V>(over: Option<u64>, current: Option<&Stamped<V>>) -> bool {
    match (over, current) {
        (Some(over), Some(current)) => current.written == over,
        _ => true,
    }
}

impl<K: Hash + Eq, V: Clone> StampedCache<K, V> for Cache<K, Stamped<V>> {
    fn replace(
        &self,
        key: K,
        value: Stamped<V>,
        over: Option<u64>,
        end: Option<WriteEnd<K, Stamped<V>>>,
    ) {
        // In memory, under the flights' lock of the key, where every computation of it stores.
        if over.is_none() || replaces(over, self.peek(&key).as_ref()) {
            self.insert(key, value);
        }
        drop(end);
    }
}

#[cfg(feature = "stores")]
impl<K, V> StampedCache<K, V> for crate::stores::StoreCache<K, Stamped<V>>
where
    K: serde::Serialize + Hash + Eq,
    V: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    fn replace(
        &self,
        key: K,
        value: Stamped<V>,
        over: Option<u64>,
        end: Option<WriteEnd<K, Stamped<V>>>,
    ) {
        let accept = |current: Option<&Stamped<V>>| replaces(over, current);
        // Without `over`, nothing is read: a caller's value replaces whatever is stored.
        self.replace_if(key, value, over.map(|_| accept), end);
    }
}

#[cfg(feature = "stores")]
impl<K, V> StampedCache<K, V> for crate::stores::WriteBehind<'_, K, Stamped<V>>
where
    K: serde::Serialize + Hash + Eq + Send + 'static,
    V: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + 'static,
{
    /// A caller's write (refreshes never write behind): kept for `flush`, which overwrites.
    fn replace(
        &self,
        key: K,
        value: Stamped<V>,
        over: Option<u64>,
        end: Option<WriteEnd<K, Stamped<V>>>,
    ) {
        debug_assert!(
            over.is_none(),
            "a refresh writes through its store directly"
        );
        match end {
            Some(end) => self.insert_tracked(key, value, end),
            None => self.insert_if_absent(key, value),
        }
    }
}

/// What an `async fn` with a store completes into when the `stores` feature is off (the only
/// error then is the facade's, asking for the feature): the in-memory cache.
#[cfg(not(feature = "stores"))]
impl<K: Hash + Eq, V: Clone> StampedCache<K, V> for crate::stored::DirectWrite<'_, K, Stamped<V>> {
    fn replace(
        &self,
        key: K,
        value: Stamped<V>,
        over: Option<u64>,
        end: Option<WriteEnd<K, Stamped<V>>>,
    ) {
        let _ = (over, end);
        self.insert_if_absent(key, value);
    }
}

/// The cache of a memo with stamped values as single-flight sees it after a hit past `ttl`
/// (or, for a refresh, whatever its age): an entry counts as present only while it is younger
/// than `limit`, and a computed value replaces the one stored.
pub struct Younger<'a, C> {
    cache: &'a C,
    fresh: &'a Fresh,
    limit: Duration,
}

impl<K, V: Clone, C: StampedCache<K, V>> FunctionCache<K, Stamped<V>> for Younger<'_, C> {
    const REMOTE: bool = C::REMOTE;
    fn peek(&self, key: &K) -> Option<Stamped<V>> {
        let entry = self.cache.peek(key)?;
        self.fresh.younger(&entry, self.limit).then_some(entry)
    }
    fn insert_if_absent(&self, key: K, value: Stamped<V>) {
        self.cache.replace(key, value, None, None);
    }
    fn insert_tracked(&self, key: K, value: Stamped<V>, end: WriteEnd<K, Stamped<V>>) {
        self.cache.replace(key, value, None, Some(end));
    }
    fn remove(&self, key: &K) -> bool {
        self.cache.remove(key)
    }
    fn info(&self) -> CacheInfo {
        self.cache.info()
    }
    fn reset(&self) {
        self.cache.reset();
    }
}

/// The cache as a refresh of the entry written at `written` stores into it: only over that
/// entry (or none). In memory under the flights' lock of the key, where every other
/// computation of the key stores too; in a store, the stored stamp is read first (a write of
/// another process between that read and the write can still be replaced: there is no
/// compare-and-set across the stores memo supports).
struct Replacing<'a, C> {
    cache: &'a C,
    written: u64,
}

impl<K, V: Clone, C: StampedCache<K, V>> FunctionCache<K, Stamped<V>> for Replacing<'_, C> {
    const REMOTE: bool = C::REMOTE;
    fn peek(&self, key: &K) -> Option<Stamped<V>> {
        self.cache.peek(key)
    }
    fn insert_if_absent(&self, key: K, value: Stamped<V>) {
        self.cache.replace(key, value, Some(self.written), None);
    }
    fn insert_tracked(&self, key: K, value: Stamped<V>, end: WriteEnd<K, Stamped<V>>) {
        self.cache
            .replace(key, value, Some(self.written), Some(end));
    }
    fn remove(&self, key: &K) -> bool {
        self.cache.remove(key)
    }
    fn info(&self) -> CacheInfo {
        self.cache.info()
    }
    fn reset(&self) {
        self.cache.reset();
    }
}

impl<K, V, C> Memo<K, Stamped<V>, C>
where
    C: FunctionCache<K, Stamped<V>>,
{
    /// This memo (made with [`Freshness::kept`] params), its values stamped: on the wall clock
    /// when its cache is outside the process, so that other processes read their ages.
    pub fn with_freshness(mut self, freshness: Freshness, ttl_jitter: f64) -> Self {
        self.fresh =
            Some(Fresh::new(freshness, Clock::coarse(), C::REMOTE).with_jitter(ttl_jitter));
        self
    }
}

impl<K: Hash + Eq, V: Clone, C: StampedCache<K, V>> Memo<K, Stamped<V>, C> {
    fn fresh_state(&self) -> &Fresh {
        match &self.fresh {
            Some(fresh) => fresh,
            None => unreachable!("a memo of stamped values is made with its freshness"),
        }
    }

    /// What a hit of `entry` does ([`Age`]), counted in the statistics.
    #[inline]
    pub fn age(&self, entry: &Stamped<V>) -> Age {
        self.fresh_state().age(entry)
    }

    /// `value` stamped with the time now, to store.
    #[inline]
    pub fn stamp(&self, value: V) -> Stamped<V> {
        self.fresh_state().stamp(value)
    }

    /// The cache for [`Flights::join`](crate::flight::Flights::join) and
    /// [`Flights::complete`](crate::flight::Flights::complete) after a hit past `ttl` or a miss:
    /// an entry past `ttl` is not a late hit, and a computed value replaces it.
    #[inline]
    pub fn unexpired(&self) -> Younger<'_, C> {
        self.unexpired_in(&self.cache)
    }

    /// [`Memo::unexpired`] over `cache`, this memo's cache as an `async fn` with a store
    /// completes into it (its write-behind).
    #[inline]
    pub fn unexpired_in<'a, W: StampedCache<K, V>>(&'a self, cache: &'a W) -> Younger<'a, W> {
        let fresh = self.fresh_state();
        Younger {
            cache,
            fresh,
            limit: fresh.freshness.ttl,
        }
    }

    /// Counts a call that got the stale value instead of the body's `Err` or `None`.
    #[inline]
    pub fn stale_error(&self) {
        bump(&self.fresh_state().counts.stale_errors);
    }

    /// The leader of a background recomputation of `key`, unless one is running; counted.
    fn refresh_leader(&self, key: K) -> Option<crate::flight::Leader<'_, K, Stamped<V>>> {
        self.flights.try_lead(key)
    }

    /// Ends a background recomputation of the entry written at `written`: its value replaces
    /// that entry unless the key was invalidated meanwhile or the entry was replaced (by a
    /// caller's computation, newer than this one: Caffeine's rule); a failure leaves it. With
    /// a store, the write is the flight's tracked write (an invalidation waits for it).
    fn refreshed(
        &self,
        leader: crate::flight::Leader<'_, K, Stamped<V>>,
        written: u64,
        value: Option<V>,
    ) {
        let fresh = self.fresh_state();
        match value {
            Some(value) => {
                let replacing = Replacing {
                    cache: &self.cache,
                    written,
                };
                self.flights
                    .complete(leader, &replacing, fresh.stamp(value));
            }
            None => self.flights.fail(leader, None),
        }
        // Counted once it is over: a reader that sees the count sees its value stored.
        bump(&fresh.counts.refreshes);
    }
}

impl<K, V, C> Memo<K, Stamped<V>, C>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: StampedCache<K, V> + Send + Sync + 'static,
{
    /// Schedules `body` (the function's body, `None` for an `Err` or a `None`) to recompute
    /// `key` on the refresh threads, unless a computation of `key` is running; never waits.
    pub fn refresh(
        &'static self,
        key: K,
        of: &Stamped<V>,
        body: impl FnOnce() -> Option<V> + Send + 'static,
    ) {
        let written = of.written;
        let Some(leader) = self.refresh_leader(key) else {
            return;
        };
        // Dropped unrun when the queue is full: the leader is dropped with it, which abandons
        // the flight (its waiters, if any, try again).
        submit(Box::new(move || {
            let value = leader.call(body);
            self.refreshed(leader, written, value);
        }));
    }

    /// [`Memo::refresh`] for an `async fn`: `body` runs on the caller's tokio runtime (feature
    /// `tokio`), else on a refresh thread. With a store, the write of its value (a blocking
    /// store call) is then made on a refresh thread, never on the runtime's.
    pub fn refresh_async<F>(&'static self, key: K, of: &Stamped<V>, body: F)
    where
        F: Future<Output = Option<V>> + Send + 'static,
    {
        let written = of.written;
        let Some(leader) = self.refresh_leader(key) else {
            return;
        };
        let task = async move {
            let value = leader.run(Box::pin(body)).await;
            if C::REMOTE && value.is_some() {
                // Dropped unrun when the queue is full: a failed refresh.
                submit(Box::new(move || self.refreshed(leader, written, value)));
            } else {
                self.refreshed(leader, written, value);
            }
        };
        spawn(task);
    }
}

/// The memo of a method with these options that keeps its cache in a field of each instance
/// (`cache_field`): shared with its background refreshes, which may outlive the call and the
/// instance (their value then goes with the memo). What it is otherwise, it is through `Deref`.
pub struct FieldMemo<K, V> {
    shared: Arc<Shared<K, V>>,
}

struct Shared<K, V> {
    memo: Memo<K, Stamped<V>>,
    /// The hashes of the keys whose refresh is queued or running, so that the callers of a
    /// due entry schedule one (the leader is taken when it runs: a task cannot hold a leader
    /// borrowed from the memo it owns). A collision only delays the other key's refresh.
    scheduled: Mutex<std::collections::HashSet<u64>>,
    hasher: std::collections::hash_map::RandomState,
}

/// A key's mark in [`Shared::scheduled`], removed when the refresh ends (or is dropped unrun).
struct Scheduled<K, V> {
    shared: Arc<Shared<K, V>>,
    hash: u64,
}

impl<K, V> Drop for Scheduled<K, V> {
    fn drop(&mut self) {
        self.shared.scheduled.lock().remove(&self.hash);
    }
}

impl<K: Hash + Eq, V: Clone> FieldMemo<K, V> {
    /// The memo of the method called `name` (see [`Memo::fresh`]).
    pub fn new(
        name: impl Into<Box<str>>,
        params: crate::memo::Params,
        freshness: Freshness,
    ) -> Self {
        FieldMemo {
            shared: Arc::new(Shared {
                memo: Memo::fresh(name, params, freshness),
                scheduled: Mutex::new(std::collections::HashSet::new()),
                hasher: std::collections::hash_map::RandomState::new(),
            }),
        }
    }

    /// The mark of `key`, unless its refresh is scheduled already.
    fn schedule(&self, key: &K) -> Option<Scheduled<K, V>> {
        use std::hash::BuildHasher;
        let hash = self.shared.hasher.hash_one(key);
        if !self.shared.scheduled.lock().insert(hash) {
            return None;
        }
        Some(Scheduled {
            shared: Arc::clone(&self.shared),
            hash,
        })
    }
}

impl<K: Hash + Eq, V: Clone + 'static> crate::weigh::Weighed<V> for FieldMemo<K, V> {
    fn weighed(self, params: crate::memo::Params, weigher: crate::weigh::Weigher<V>) -> Self {
        let Ok(shared) = Arc::try_unwrap(self.shared) else {
            unreachable!("a field's memo is bounded when it is made, before it is shared")
        };
        FieldMemo {
            shared: Arc::new(Shared {
                memo: shared.memo.weighed(params, weigher),
                scheduled: shared.scheduled,
                hasher: shared.hasher,
            }),
        }
    }
}

impl<K, V> std::ops::Deref for FieldMemo<K, V> {
    type Target = Memo<K, Stamped<V>>;
    fn deref(&self) -> &Self::Target {
        &self.shared.memo
    }
}

impl<K, V> crate::memo::ErasedMemo for FieldMemo<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn info(&self) -> CacheInfo {
        self.shared.memo.info()
    }
    fn reset(&self) {
        self.shared.memo.clear();
    }
}

impl<K, V> FieldMemo<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// [`Memo::refresh`] for a memo in a field.
    pub fn refresh(
        &self,
        key: K,
        of: &Stamped<V>,
        body: impl FnOnce() -> Option<V> + Send + 'static,
    ) {
        let written = of.written;
        let Some(mark) = self.schedule(&key) else {
            return;
        };
        submit(Box::new(move || {
            let memo = &mark.shared.memo;
            let Some(leader) = memo.refresh_leader(key) else {
                return;
            };
            let value = leader.call(body);
            memo.refreshed(leader, written, value);
        }));
    }

    /// [`Memo::refresh_async`] for a memo in a field.
    pub fn refresh_async<F>(&self, key: K, of: &Stamped<V>, body: F)
    where
        F: Future<Output = Option<V>> + Send + 'static,
    {
        let written = of.written;
        let Some(mark) = self.schedule(&key) else {
            return;
        };
        spawn(async move {
            let memo = &mark.shared.memo;
            let Some(leader) = memo.refresh_leader(key) else {
                return;
            };
            let value = leader.run(Box::pin(body)).await;
            memo.refreshed(leader, written, value);
        });
    }
}

/// Runs `task` on the caller's tokio runtime, else on a refresh thread (with the `tokio`
/// feature, on that thread's own tokio runtime, so that a body written for tokio works when it
/// was called off a runtime, e.g. through `futures::executor::block_on`).
fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
    #[cfg(feature = "tokio")]
    {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            drop(handle.spawn(Unpolled {
                task: Some(Box::pin(task)),
                polled: false,
            }));
        } else {
            submit(Box::new(move || on_own_runtime(task)));
        }
    }
    #[cfg(not(feature = "tokio"))]
    submit(Box::new(move || block_on(task)));
}

/// A refresh spawned on the caller's runtime; if the runtime drops it before its first poll
/// (it ended right after the call, as a runtime made for one `block_on` does), the refresh
/// goes to the refresh threads (on a runtime of theirs) instead of being lost every time.
#[cfg(feature = "tokio")]
struct Unpolled<F: Future<Output = ()> + Send + 'static> {
    task: Option<Pin<Box<F>>>,
    polled: bool,
}

#[cfg(feature = "tokio")]
impl<F: Future<Output = ()> + Send + 'static> Future for Unpolled<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polled = true;
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(());
        };
        let done = task.as_mut().poll(cx);
        if done.is_ready() {
            self.task = None;
        }
        done
    }
}

#[cfg(feature = "tokio")]
impl<F: Future<Output = ()> + Send + 'static> Drop for Unpolled<F> {
    fn drop(&mut self) {
        if let (false, Some(task)) = (self.polled, self.task.take()) {
            submit(Box::new(move || on_own_runtime(task)));
        }
    }
}

/// Drives `future` on a refresh thread's own tokio runtime (made on first use; the caller's
/// has ended, and a body written for tokio needs a reactor: its timers, its sockets), else as
/// [`block_on`] does.
#[cfg(feature = "tokio")]
fn on_own_runtime<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: Option<tokio::runtime::Runtime> =
            tokio::runtime::Builder::new_current_thread().enable_all().build().ok();
    }
    RUNTIME.with(|runtime| match runtime {
        Some(runtime) => runtime.block_on(future),
        None => block_on(future),
    })
}

/// Drives `future` to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future: Pin<&mut F> = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

type Task = Box<dyn FnOnce() + Send>;

/// Threads that run refresh tasks from a bounded queue.
struct Pool {
    queue: SyncSender<Task>,
}

impl Pool {
    /// `threads` threads (those that could be started; `None` if none) over a queue of
    /// `capacity` tasks.
    fn start(threads: usize, capacity: usize) -> Option<Pool> {
        let (queue, tasks) = sync_channel::<Task>(capacity);
        let tasks = Arc::new(Mutex::new(tasks));
        let mut started = 0;
        for _ in 0..threads {
            let tasks = Arc::clone(&tasks);
            let spawned = std::thread::Builder::new()
                .name("memo-refresh".into())
                .spawn(move || work(&tasks));
            started += usize::from(spawned.is_ok());
        }
        (started > 0).then_some(Pool { queue })
    }

    /// Queues `task`; whether it was queued (not when the queue is full: it is dropped).
    fn submit(&self, task: Task) -> bool {
        self.queue.try_send(task).is_ok()
    }
}

/// The process's refresh threads; `None` when no thread could be started (refreshes are then
/// skipped and entries simply expire).
static POOL: OnceLock<Option<Pool>> = OnceLock::new();

/// Queues `task` for a refresh thread, starting them on first use; whether it was queued.
fn submit(task: Task) -> bool {
    let pool = POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Pool::start(cores.clamp(2, MAX_THREADS), QUEUE)
    });
    pool.as_ref().is_some_and(|pool| pool.submit(task))
}

/// A refresh thread: runs tasks until the queue is dropped; a task that panics is a failed
/// refresh (its leader, dropped while unwinding, abandons its flight).
fn work(tasks: &Mutex<Receiver<Task>>) {
    loop {
        let task = tasks.lock().recv();
        match task {
            Ok(task) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memo::Params;
    use crate::{ManualClock, Policy};
    use std::sync::mpsc::channel;

    const PARAMS: Params = Params {
        maxsize: Some(16),
        ttl: Some(Duration::from_secs(10)),
        policy: Policy::Lru,
        negative_ttl: None,
        ttl_jitter: 0.0,
    };

    fn freshness() -> Freshness {
        Freshness {
            ttl: Duration::from_secs(10),
            refresh: Some(Duration::from_secs(5)),
            stale_while_revalidate: Some(Duration::from_secs(5)),
            stale_if_error: Some(Duration::from_secs(20)),
        }
    }

    fn memo(clock: &ManualClock) -> &'static Memo<u32, Stamped<u32>> {
        Box::leak(Box::new(Memo::fresh_with_clock(
            "refresh::tests",
            PARAMS,
            freshness(),
            Clock::from(clock.clone()),
        )))
    }

    #[test]
    fn ages_follow_refresh_ttl_and_the_stale_windows() {
        let clock = ManualClock::new();
        let memo = memo(&clock);
        let entry = memo.stamp(1);
        let at = |secs| {
            clock.advance(Duration::from_secs(secs));
            memo.age(&entry)
        };
        assert_eq!(at(4), Age::Fresh);
        assert_eq!(at(1), Age::Refresh); // 5s: refresh-ahead
        assert_eq!(at(5), Age::Refresh); // 10s: stale, revalidated
        assert_eq!(
            at(5),
            Age::Expired {
                usable_on_error: true
            }
        ); // 15s
        assert_eq!(
            at(15),
            Age::Expired {
                usable_on_error: false
            }
        ); // 30s
        assert_eq!(freshness().retention(), Duration::from_secs(30));
        let info = memo.info();
        assert_eq!(
            (info.stale_hits, info.ttl),
            (1, Some(Duration::from_secs(10)))
        );
    }

    /// A store's stamps are on the wall clock, and the process's clock starts at zero: an entry
    /// written (by another process, or by this program's last run) before this process's clock
    /// began is as old as it is. Before, it read as written at the clock's origin: fresh for a
    /// whole `refresh` after a restart, and never expired before `ttl` had passed again.
    #[test]
    fn a_stored_entry_written_before_the_process_started_has_its_age() {
        let clock = ManualClock::new();
        let fresh = Fresh::new(freshness(), Clock::from(clock.clone()), true);
        let wall_now = fresh.offset + Clock::from(clock.clone()).now_nanos();
        let written_ago = |secs: u64| Stamped {
            value: 1u32,
            written: wall_now - secs * 1_000_000_000,
        };
        assert_eq!(fresh.age(&written_ago(1)), Age::Fresh);
        assert_eq!(fresh.age(&written_ago(7)), Age::Refresh);
        assert_eq!(
            fresh.age(&written_ago(18)),
            Age::Expired {
                usable_on_error: true
            }
        );
        assert_eq!(
            fresh.age(&written_ago(40)),
            Age::Expired {
                usable_on_error: false
            }
        );
        // With a jitter the stamp is earlier than the clock's origin by up to the window.
        let jittered = Fresh::new(freshness(), Clock::from(clock.clone()), true).with_jitter(0.5);
        for _ in 0..100 {
            let entry = jittered.stamp(1u32);
            let age = jittered.age_of(&entry);
            assert!(age < Duration::from_millis(2_500), "{age:?}");
            assert_eq!(jittered.age(&entry), Age::Fresh);
        }
    }

    #[test]
    fn a_refresh_replaces_the_value_once_per_key_and_a_failure_keeps_it() {
        let clock = ManualClock::new();
        let memo = memo(&clock);
        let old = memo.stamp(10);
        memo.cache.insert(1, old.clone());
        let (release, gate) = channel::<Option<u32>>();
        let (started, running) = channel();
        memo.refresh(1, &old, move || {
            started.send(()).unwrap();
            gate.recv().unwrap()
        });
        running.recv().unwrap();
        // Running: a second refresh of the key is not scheduled.
        memo.refresh(1, &old, || unreachable!("one refresh per key at a time"));
        release.send(Some(11)).unwrap();
        while memo.flights.in_flight() > 0 {
            std::thread::yield_now();
        }
        assert_eq!(memo.cache.peek(&1).map(Stamped::into_value), Some(11));
        let (done, finished) = channel();
        let current = memo.cache.peek(&1).unwrap();
        memo.refresh(1, &current, move || {
            done.send(()).unwrap();
            None
        });
        finished.recv().unwrap();
        while memo.flights.in_flight() > 0 {
            std::thread::yield_now();
        }
        assert_eq!(memo.cache.peek(&1).map(Stamped::into_value), Some(11));
        assert_eq!(memo.info().refreshes, 2);
    }

    #[test]
    fn an_invalidation_during_a_refresh_wins() {
        let clock = ManualClock::new();
        let memo = memo(&clock);
        let old = memo.stamp(10);
        memo.cache.insert(1, old.clone());
        let (release, gate) = channel::<Option<u32>>();
        let (started, running) = channel();
        memo.refresh(1, &old, move || {
            started.send(()).unwrap();
            gate.recv().unwrap()
        });
        running.recv().unwrap();
        assert!(memo.invalidate(&1));
        release.send(Some(11)).unwrap();
        while memo.flights.in_flight() > 0 {
            std::thread::yield_now();
        }
        assert!(memo.cache.peek(&1).is_none());
    }

    #[test]
    fn a_full_queue_skips_refreshes_instead_of_growing() {
        let clock = ManualClock::new();
        let memo = memo(&clock);
        let pool = Pool::start(1, 2).unwrap();
        let (release, gate) = channel::<()>();
        let (started, running) = channel();
        assert!(pool.submit(Box::new(move || {
            started.send(()).unwrap();
            let _ = gate.recv();
        })));
        running.recv().unwrap();
        assert!(pool.submit(Box::new(|| {})));
        assert!(pool.submit(Box::new(|| {})));
        // Full: the task is dropped, and the leader it holds abandons its flight.
        let leader = memo.flights.try_lead(7).unwrap();
        assert_eq!(memo.flights.in_flight(), 1);
        assert!(!pool.submit(Box::new(move || drop(leader))));
        assert_eq!(memo.flights.in_flight(), 0);
        drop(release);
    }

    #[test]
    fn block_on_drives_a_future_woken_from_another_thread() {
        let (sender, receiver) = std::sync::mpsc::channel::<Waker>();
        struct Once {
            polled: bool,
            sender: std::sync::mpsc::Sender<Waker>,
        }
        impl Future for Once {
            type Output = u8;
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u8> {
                if self.polled {
                    return Poll::Ready(7);
                }
                self.polled = true;
                self.sender.send(cx.waker().clone()).unwrap();
                Poll::Pending
            }
        }
        let waker = std::thread::spawn(move || receiver.recv().unwrap().wake());
        assert_eq!(
            block_on(Once {
                polled: false,
                sender
            }),
            7
        );
        waker.join().unwrap();
    }
}
