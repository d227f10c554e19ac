//! Read stripes: how lock-free readers announce what they read and record what they did.
//!
//! A shard has a few stripes; a reader takes the one of its thread (one CAS on a cache line that
//! thread alone uses, in the common case) for the duration of a lookup. While held, a stripe
//! (1) announces what the reader may read: first the low 32 bits of the hash it looks up (it may
//! read any slot indexed under them), then, once it found a candidate, that slot's id alone (a
//! plain store: the set it protects only shrinks), so a writer reuses every retired slot that no
//! stripe announces and a stalled reader holds back one slot; (2) keeps replaced index tables
//! alive until released; (3) owns a small buffer of events (hits and misses) that the reader
//! appends to without any shared write. Writers, under the shard's lock, replay the buffers in
//! order before they evict or report statistics: so in single-threaded use the policy sees every
//! hit, in order, before every eviction, and is exact; with several threads, each thread's hits
//! stay in order.
//!
//! A stripe's word is `value << 32 | seq << 2 | SLOT | HELD`: taken with a CAS from free to held
//! (SeqCst), given back by storing free with the next `seq`, so a snapshot of the words tells a
//! writer which holdings were under way at one moment.

use std::cell::UnsafeCell;

use super::sync::{fence, AtomicU32, AtomicU64, Ordering};

/// The stripe is held.
const HELD: u64 = 1;
/// The announced value is a slot id (else the low 32 bits of the hash being looked up).
const SLOT: u64 = 2;
/// The holding's sequence number, bits 2..32.
const SEQ: u64 = 0xFFFF_FFFC;

/// A slot id that names no slot: announced by holders that read no slot.
pub(crate) const NO_SLOT: u32 = u32::MAX;

/// Events a stripe buffers before its reader must replay them under the lock (a few under
/// shuttle, so that its short tests fill buffers and take the replay paths). 64, the most the
/// kind masks hold: a replay's lock round trip (two locked instructions) is paid once per 63
/// hits.
pub(crate) const CAPACITY: usize = if cfg!(memo_shuttle) { 4 } else { 64 };

/// A recorded lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A hit on the slot with this id.
    Hit(u32),
    /// A miss (or an expired entry) for a key with this hash.
    Miss(u64),
    /// The entry in the slot with this id was found expired (and counted as a `Miss`).
    Expired(u32),
}

struct Buffer {
    /// Bit `i` set: event `i` is a hit (its low 32 bits are a slot id).
    hits: u64,
    /// Bit `i` set: event `i` is an expired entry (its low 32 bits are a slot id). Events with
    /// neither bit are misses (the key's hash).
    expired: u64,
    events: [u64; CAPACITY],
}

/// Keeps what it holds on cache lines of its own.
#[repr(align(128))]
struct Line<T>(T);

/// Hits and misses counted by a stripe's holders. Only a holder writes them, so an increment is
/// a plain load and store; `info` adds up what changed since it last looked.
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The event buffer, on lines of its own so that a writer checking `len` of a stripe whose
/// reader only counts (misses under LRU) reads a line nobody is writing.
struct Events {
    /// Buffered events; written by the holder only, read by anyone as a hint.
    len: AtomicU32,
    buffer: UnsafeCell<Buffer>,
}

pub(crate) struct Stripe {
    /// The holder's announcement (see the module doc); only `seq` bits while free.
    word: Line<AtomicU64>,
    counts: Line<Counts>,
    events: Line<Events>,
}

// SAFETY: `buffer` is only accessed by whoever holds the stripe (the CAS in `try_hold` is the
// lock), so sharing `&Stripe` between threads never gives two threads access to it at once.
unsafe impl Sync for Stripe {}

impl Stripe {
    fn new() -> Self {
        Stripe {
            word: Line(AtomicU64::new(0)),
            counts: Line(Counts {
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
            events: Line(Events {
                len: AtomicU32::new(0),
                buffer: UnsafeCell::new(Buffer {
                    hits: 0,
                    expired: 0,
                    events: [0; CAPACITY],
                }),
            }),
        }
    }

    /// Takes the stripe if nobody holds it, announcing `announce` (a hash's or a slot's
    /// part of the word). SeqCst: a writer's fence-then-read either sees this announcement, or
    /// this reader sees every bucket the writer unlinked before.
    #[inline]
    fn try_hold(&self, announce: u64) -> Option<Held<'_>> {
        let free = self.word.0.load(Ordering::Relaxed);
        if free & HELD != 0 {
            return None;
        }
        self.word
            .0
            .compare_exchange(
                free,
                free | HELD | announce,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .ok()?;
        Some(Held {
            stripe: self,
            free,
            narrowed: announce & SLOT != 0,
        })
    }
}

/// A held stripe; given back on drop (also when user code panics while it is held).
pub(crate) struct Held<'a> {
    stripe: &'a Stripe,
    /// The word before it was taken.
    free: u64,
    /// Whether the announcement names one slot (widening it again needs a fence).
    narrowed: bool,
}

impl Held<'_> {
    /// Announces that the holder reads slot `id` and no other from now on. The first slot named
    /// after the hash is a plain store (the hash covered it already); any later one is fenced,
    /// and returns `true`: the caller must then check that `id` is still indexed where it was
    /// found before reading it, since a writer may have missed the announcement.
    #[inline]
    pub(crate) fn announce(&mut self, id: u32) -> bool {
        let word = self.free | HELD | SLOT | (u64::from(id) << 32);
        if self.narrowed {
            self.stripe.word.0.swap(word, Ordering::SeqCst);
            true
        } else {
            self.stripe.word.0.store(word, Ordering::Relaxed);
            self.narrowed = true;
            false
        }
    }

    /// Announces that the holder reads no slot any more (it only records and drains events).
    #[inline]
    pub(crate) fn announce_nothing(&mut self) {
        let word = self.free | HELD | SLOT | (u64::from(NO_SLOT) << 32);
        self.stripe.word.0.store(word, Ordering::Relaxed);
        self.narrowed = true;
    }

    /// Counts a hit (no event: for policies that ignore hits).
    #[inline]
    pub(crate) fn count_hit(&mut self) {
        let hits = &self.stripe.counts.0.hits;
        hits.store(hits.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Counts a miss (no event: for policies that ignore misses).
    #[inline]
    pub(crate) fn count_miss(&mut self) {
        let misses = &self.stripe.counts.0.misses;
        misses.store(misses.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Whether the buffer lacks room for the two events one lookup may record (tests: a
    /// lookup learns it from `push`).
    #[cfg(all(test, not(memo_shuttle)))]
    pub(crate) fn is_full(&self) -> bool {
        self.stripe.events.0.len.load(Ordering::Relaxed) as usize >= CAPACITY - 1
    }

    /// Appends an event, and returns whether the buffer now lacks room for the two events one
    /// lookup may record: then the caller replays or discards it before it gives the stripe
    /// back, so every holding starts with room for two. (A push into a full buffer panics in
    /// debug builds and overwrites the first event in release builds, which `Shard` never lets
    /// happen.)
    #[inline]
    pub(crate) fn push(&mut self, event: Event) -> bool {
        let len = self.stripe.events.0.len.load(Ordering::Relaxed) as usize;
        debug_assert!(len < CAPACITY, "push into a full stripe");
        let i = len % CAPACITY;
        // SAFETY: we hold the stripe, so nobody else accesses the buffer.
        let buffer = unsafe { &mut *self.stripe.events.0.buffer.get() };
        // `drain` clears both kind masks, and a slot is written once between drains.
        let bit = 1 << i;
        match event {
            Event::Hit(id) => {
                buffer.hits |= bit;
                buffer.events[i] = u64::from(id);
            }
            Event::Expired(id) => {
                buffer.expired |= bit;
                buffer.events[i] = u64::from(id);
            }
            Event::Miss(hash) => buffer.events[i] = hash,
        }
        self.stripe
            .events
            .0
            .len
            .store(i as u32 + 1, Ordering::Relaxed);
        i + 1 >= CAPACITY - 1
    }

    /// Replays the buffered events, oldest first, and empties the buffer (tests).
    #[cfg(all(test, not(memo_shuttle)))]
    pub(crate) fn drain(&mut self, mut apply: impl FnMut(Event)) {
        self.drain_runs(|_| false, &mut apply);
    }

    /// Empties the buffer without replaying it (a reader that could not get the lock).
    #[inline]
    pub(crate) fn discard(&mut self) {
        // SAFETY: we hold the stripe, so nobody else accesses the buffer.
        let buffer = unsafe { &mut *self.stripe.events.0.buffer.get() };
        buffer.hits = 0;
        buffer.expired = 0;
        self.stripe.events.0.len.store(0, Ordering::Relaxed);
    }

    /// [`drain_runs_in`](Held::drain_runs_in) with closures that need no context (tests).
    #[cfg(all(test, not(memo_shuttle)))]
    pub(crate) fn drain_runs(
        &mut self,
        hits: impl FnOnce(&[u64]) -> bool,
        mut apply: impl FnMut(Event),
    ) {
        self.drain_runs_in(&mut (), |(), ids| hits(ids), |(), event| apply(event));
    }

    /// Replays the buffered events, oldest first, and empties the buffer; a buffer of hits
    /// alone (the usual one) is passed whole to `hits` (the slot ids, oldest first), which
    /// returns whether it applied them; if not, the events go one by one to `apply`. Both are
    /// lent the context `cx` in turn (a writer's state, which both update: no `RefCell`).
    #[inline]
    pub(crate) fn drain_runs_in<C: ?Sized>(
        &mut self,
        cx: &mut C,
        hits: impl FnOnce(&mut C, &[u64]) -> bool,
        mut apply: impl FnMut(&mut C, Event),
    ) {
        let len = self.stripe.events.0.len.load(Ordering::Relaxed) as usize;
        if len == 0 {
            return;
        }
        // SAFETY: we hold the stripe, so nobody else accesses the buffer.
        let buffer = unsafe { &mut *self.stripe.events.0.buffer.get() };
        let len = len.min(CAPACITY);
        let all = u64::MAX >> (64 - len);
        if buffer.expired == 0 && buffer.hits & all == all && hits(cx, &buffer.events[..len]) {
            buffer.hits = 0;
            self.stripe.events.0.len.store(0, Ordering::Relaxed);
            return;
        }
        for i in 0..len {
            let event = buffer.events[i];
            apply(
                cx,
                if buffer.hits & (1 << i) != 0 {
                    Event::Hit(event as u32)
                } else if buffer.expired & (1 << i) != 0 {
                    Event::Expired(event as u32)
                } else {
                    Event::Miss(event)
                },
            );
        }
        buffer.hits = 0;
        buffer.expired = 0;
        self.stripe.events.0.len.store(0, Ordering::Relaxed);
    }
}

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        let next = (self.free + 4) & SEQ;
        self.stripe.word.0.store(next, Ordering::Release);
    }
}

/// The stripes of one shard.
pub(crate) struct Stripes {
    stripes: Box<[Stripe]>,
}

/// Which stripes were held at one moment, and by which holding (their words).
pub(crate) struct Snapshot(Box<[u64]>);

/// What the stripes announced at one moment, after a fence: the slots retired before it that a
/// reader may still read. [`Announced::refresh`] follows the same holdings as they narrow.
pub(crate) struct Announced {
    words: [u64; MAX_STRIPES],
    len: usize,
}

/// At most this many stripes per shard.
const MAX_STRIPES: usize = 64;

impl Announced {
    /// Whether a reader may read the retired slot `id`, whose key's hash has low bits `tag`.
    #[inline]
    pub(crate) fn protects(&self, id: u32, tag: u32) -> bool {
        self.words[..self.len]
            .iter()
            .any(|&w| w & HELD != 0 && (w >> 32) as u32 == if w & SLOT != 0 { id } else { tag })
    }

    /// Whether no stripe was held (nothing is protected).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.words[..self.len].iter().all(|&w| w & HELD == 0)
    }

    /// Whether some holder announced a hash rather than a slot (it holds back every retired
    /// slot of that hash, for the few instructions until it names its slot).
    pub(crate) fn any_hash(&self) -> bool {
        self.words[..self.len]
            .iter()
            .any(|&w| w & HELD != 0 && w & SLOT == 0)
    }

    /// Re-reads the stripes, keeping only the holdings seen before (a new holding entered
    /// after the slots in question were unlinked, so it cannot reach them).
    pub(crate) fn refresh(&mut self, stripes: &Stripes) {
        for (then, s) in self.words[..self.len]
            .iter_mut()
            .zip(stripes.stripes.iter())
        {
            if *then & HELD != 0 {
                let now = s.word.0.load(Ordering::SeqCst);
                *then = if now & HELD != 0 && now & SEQ == *then & SEQ {
                    now
                } else {
                    0
                };
            }
        }
    }
}

impl Stripes {
    /// Twice as many stripes as cores (a power of two, at most 64): threads created one after
    /// the other take distinct stripes.
    pub(crate) fn new() -> Self {
        static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let n = *COUNT.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores * 2).next_power_of_two().clamp(2, MAX_STRIPES)
        });
        Stripes {
            stripes: (0..n).map(|_| Stripe::new()).collect(),
        }
    }

    /// The calling thread's stripe, if nobody (not even this thread, re-entering) holds it,
    /// announcing a lookup of `hash`: until the holder names a slot, it may read any slot
    /// indexed under the hash's low 32 bits.
    #[inline]
    pub(crate) fn enter(&self, hash: u64) -> Option<Held<'_>> {
        let i = super::sync::thread_index() & (self.stripes.len() - 1);
        // SAFETY: `new` makes at least two stripes, so `i`, masked by `len - 1`, is below `len`
        // (the checked index cost a compare and a branch on every lookup).
        unsafe { self.stripes.get_unchecked(i) }.try_hold(u64::from(hash as u32) << 32)
    }

    /// [`drain_every_in`](Stripes::drain_every_in) with closures that need no context (tests).
    #[cfg(all(test, not(memo_shuttle)))]
    pub(crate) fn drain_every(
        &self,
        mut hits: impl FnMut(&[u64]) -> bool,
        mut apply: impl FnMut(Event),
    ) {
        self.drain_every_in(&mut (), |(), ids| hits(ids), |(), event| apply(event));
    }

    /// Replays every buffer that is not held right now, as [`Held::drain_runs_in`] does: the
    /// writers' path (the caller holds the shard's lock and no stripe). A buffer's length is
    /// read first, a plain load of a line its reader alone writes: an empty one costs that.
    /// Inlined whole into the writer's (out-of-line) replay: one call, not three, per replay
    /// of a buffered miss.
    #[inline]
    pub(crate) fn drain_every_in<C: ?Sized>(
        &self,
        cx: &mut C,
        mut hits: impl FnMut(&mut C, &[u64]) -> bool,
        mut apply: impl FnMut(&mut C, Event),
    ) {
        for stripe in self.stripes.iter() {
            if stripe.events.0.len.load(Ordering::Relaxed) != 0
                && let Some(mut held) = stripe.try_hold(SLOT | (u64::from(NO_SLOT) << 32))
            {
                held.drain_runs_in(cx, &mut hits, &mut apply);
            }
        }
    }

    /// Whether some buffer holds events (a plain load of each length, as `drain_every` reads).
    #[inline]
    pub(crate) fn any_events(&self) -> bool {
        self.stripes
            .iter()
            .any(|s| s.events.0.len.load(Ordering::Relaxed) != 0)
    }

    /// The hits and misses counted by each stripe's holders so far.
    pub(crate) fn counts(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.stripes.iter().map(|s| {
            (
                s.counts.0.hits.load(Ordering::Relaxed),
                s.counts.0.misses.load(Ordering::Relaxed),
            )
        })
    }

    /// How many stripes there are.
    pub(crate) fn len(&self) -> usize {
        self.stripes.len()
    }

    /// Which stripes are held now. The fence orders every table the caller replaced before
    /// against the readers' CAS: a reader not seen inside here loads the new table.
    pub(crate) fn snapshot(&self) -> Snapshot {
        fence(Ordering::SeqCst);
        Snapshot(
            self.stripes
                .iter()
                .map(|s| s.word.0.load(Ordering::SeqCst))
                .collect(),
        )
    }

    /// Whether every holding under way at `snapshot` has ended since.
    pub(crate) fn passed(&self, snapshot: &Snapshot) -> bool {
        self.stripes
            .iter()
            .zip(snapshot.0.iter())
            .all(|(s, &then)| {
                then & HELD == 0 || s.word.0.load(Ordering::Acquire) & SEQ != then & SEQ
            })
    }

    /// Whether no stripe is held now, after the fence of [`Stripes::announced`]: then no reader
    /// can read a slot unlinked before it (`announced().is_empty()`, without copying the words).
    #[inline]
    pub(crate) fn none_held(&self) -> bool {
        fence(Ordering::SeqCst);
        self.stripes
            .iter()
            .all(|s| s.word.0.load(Ordering::SeqCst) & HELD == 0)
    }

    /// What the stripes announce now. The fence orders every bucket the caller unlinked before
    /// against the readers' CAS and fenced announcements: a slot unlinked before it and not
    /// announced here is read by no reader, now or later.
    #[inline]
    pub(crate) fn announced(&self) -> Announced {
        fence(Ordering::SeqCst);
        let mut words = [0; MAX_STRIPES];
        for (w, s) in words.iter_mut().zip(self.stripes.iter()) {
            *w = s.word.0.load(Ordering::SeqCst);
        }
        Announced {
            words,
            len: self.stripes.len(),
        }
    }
}

#[cfg(all(test, not(memo_shuttle)))]
mod tests {
    use super::*;

    #[test]
    fn events_replay_in_order_and_the_buffer_empties() {
        let stripes = Stripes::new();
        {
            let mut held = stripes.enter(0).expect("free");
            held.push(Event::Hit(3));
            held.push(Event::Miss(u64::MAX));
            held.push(Event::Expired(9));
            held.push(Event::Hit(u32::MAX));
        }
        let mut seen = Vec::new();
        stripes.drain_every(|_| false, |e| seen.push(e));
        let expected = [
            Event::Hit(3),
            Event::Miss(u64::MAX),
            Event::Expired(9),
            Event::Hit(u32::MAX),
        ];
        assert_eq!(seen, expected);
        {
            // Slots are reused: stale kind bits must not leak into later events.
            let mut held = stripes.enter(0).expect("free");
            held.push(Event::Miss(5));
            held.push(Event::Miss(6));
        }
        stripes.drain_every(|_| false, |e| seen.push(e));
        assert_eq!(seen[4..], [Event::Miss(5), Event::Miss(6)], "drained once");
    }

    #[test]
    fn a_buffer_of_hits_alone_replays_as_one_run_and_a_mixed_one_event_by_event() {
        let stripes = Stripes::new();
        let fill = |events: &[Event]| {
            let mut held = stripes.enter(0).expect("free");
            for &e in events {
                held.push(e);
            }
        };
        let replay = || {
            let (mut runs, mut events) = (Vec::new(), Vec::new());
            stripes.drain_every(
                |ids| {
                    runs.push(ids.to_vec());
                    true
                },
                |e| events.push(e),
            );
            (runs, events)
        };
        fill(&[Event::Hit(4), Event::Hit(9), Event::Hit(4)]);
        assert_eq!(replay(), (vec![vec![4, 9, 4]], vec![]));
        // The run's kind bits are gone with it: a miss in the same place is a miss.
        fill(&[Event::Miss(7), Event::Hit(2)]);
        assert_eq!(replay(), (vec![], vec![Event::Miss(7), Event::Hit(2)]));
        fill(&[Event::Hit(1), Event::Expired(3)]);
        assert_eq!(replay(), (vec![], vec![Event::Hit(1), Event::Expired(3)]));
        assert_eq!(replay(), (vec![], vec![]), "drained once");
        // A run the caller declines is replayed event by event.
        fill(&[Event::Hit(5), Event::Hit(6)]);
        let mut events = Vec::new();
        stripes.drain_every(|_| false, |e| events.push(e));
        assert_eq!(events, [Event::Hit(5), Event::Hit(6)]);
        // A full buffer of hits is one run.
        let all: Vec<Event> = (0..CAPACITY as u32).map(Event::Hit).collect();
        fill(&all);
        let (runs, events) = replay();
        assert_eq!((runs.len(), runs[0].len(), events.len()), (1, CAPACITY, 0));
    }

    #[test]
    fn a_held_stripe_is_not_reentered_and_keeps_tables_until_released() {
        let stripes = Stripes::new();
        let mut held = stripes.enter(7).expect("free");
        assert!(stripes.enter(7).is_none(), "re-entry is refused");
        let snapshot = stripes.snapshot();
        assert!(!stripes.passed(&snapshot));
        held.announce(3);
        assert!(!stripes.passed(&snapshot), "narrowing is the same holding");
        for k in 0..CAPACITY - 1 {
            assert!(!held.is_full());
            let full = held.push(Event::Miss(1));
            assert_eq!(
                full,
                k == CAPACITY - 2,
                "push tells when the buffer is full"
            );
        }
        assert!(held.is_full());
        let mut n = 0;
        held.drain(|_| n += 1);
        assert_eq!(n, CAPACITY - 1);
        // A discarded buffer replays nothing, and its kind bits do not leak into later events.
        held.push(Event::Hit(4));
        held.push(Event::Expired(8));
        held.discard();
        assert!(!held.is_full());
        held.push(Event::Miss(2));
        let mut after = Vec::new();
        held.drain(|e| after.push(e));
        assert_eq!(after, [Event::Miss(2)]);
        drop(held);
        assert!(stripes.passed(&snapshot));
        // A reader entering after the snapshot does not hold it back.
        let _again = stripes.enter(7).expect("free again");
        assert!(stripes.passed(&snapshot));
    }

    #[test]
    fn a_reader_protects_its_hash_then_only_its_slot() {
        let stripes = Stripes::new();
        let hash = 0xABCD_0000_0000_0042_u64;
        let mut held = stripes.enter(hash).expect("free");
        let announced = stripes.announced();
        assert!(announced.protects(5, 0x42), "any slot of the hash");
        assert!(announced.protects(9, 0x42));
        assert!(!announced.protects(5, 0x43), "not a slot of another hash");
        assert!(announced.any_hash());
        assert!(!held.announce(5), "the first slot needs no fence");
        let mut refreshed = stripes.announced();
        assert!(refreshed.protects(5, 0x43), "its slot, whatever the hash");
        assert!(!refreshed.protects(9, 0x42), "no other slot of the hash");
        assert!(!refreshed.any_hash());
        assert!(held.announce(6), "a second slot is fenced and checked");
        refreshed.refresh(&stripes);
        assert!(refreshed.protects(6, 0) && !refreshed.protects(5, 0));
        let mut old = announced;
        old.refresh(&stripes);
        assert!(old.protects(6, 0), "the same holding, narrowed");
        held.announce_nothing();
        old.refresh(&stripes);
        assert!(
            !old.protects(6, 0),
            "a holder reading nothing protects nothing"
        );
        drop(held);
        let _next = stripes.enter(hash).expect("free");
        let mut before = stripes.announced();
        drop(_next);
        let _later = stripes.enter(hash).expect("free");
        before.refresh(&stripes);
        assert!(
            !before.protects(1, 0x42),
            "a later holding is not one seen before"
        );
    }
}
