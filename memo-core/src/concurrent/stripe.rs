//! Read stripes: how lock-free readers announce themselves and record what they did.
//!
//! A shard has a few stripes; a reader takes the one of its thread (one CAS on a cache line that
//! thread alone uses, in the common case) for the duration of a lookup. While held, a stripe
//! (1) tells writers that a reader may be looking at slots, so a slot taken out of the table is
//! not reused until every stripe that was held at that moment has been released, and (2) owns a
//! small buffer of events (hits and misses) that the reader appends to without any shared write.
//! Writers, under the shard's lock, replay the buffers in order before they evict or report
//! statistics: so in single-threaded use the policy sees every hit, in order, before every
//! eviction, and is exact; with several threads, each thread's hits stay in order.
//!
//! A stripe is taken with a CAS from even to odd and given back by storing the next even value,
//! so a snapshot of the counters tells a writer which readers were inside at that moment.

use std::cell::UnsafeCell;

use super::sync::{fence, AtomicU32, AtomicU64, Ordering};

/// Events a stripe buffers before its reader must replay them under the lock (a few under
/// shuttle, so that its short tests fill buffers and take the replay paths).
pub(crate) const CAPACITY: usize = if cfg!(memo_shuttle) { 4 } else { 32 };

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
    /// Odd while someone holds the stripe.
    seq: Line<AtomicU64>,
    counts: Line<Counts>,
    events: Line<Events>,
}

// SAFETY: `buffer` is only accessed by whoever holds the stripe (the CAS in `try_hold` is the
// lock), so sharing `&Stripe` between threads never gives two threads access to it at once.
unsafe impl Sync for Stripe {}

impl Stripe {
    fn new() -> Self {
        Stripe {
            seq: Line(AtomicU64::new(0)),
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

    /// Takes the stripe if nobody holds it. SeqCst: a writer's fence-then-snapshot either sees
    /// this reader inside, or this reader sees every bucket the writer unlinked before.
    #[inline]
    fn try_hold(&self) -> Option<Held<'_>> {
        let seq = self.seq.0.load(Ordering::Relaxed);
        if seq & 1 == 1 {
            return None;
        }
        self.seq
            .0
            .compare_exchange(seq, seq + 1, Ordering::SeqCst, Ordering::Relaxed)
            .ok()?;
        Some(Held { stripe: self, seq })
    }
}

/// A held stripe; given back on drop (also when user code panics while it is held).
pub(crate) struct Held<'a> {
    stripe: &'a Stripe,
    seq: u64,
}

impl Held<'_> {
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

    /// Whether the buffer lacks room for the two events one lookup may record.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.stripe.events.0.len.load(Ordering::Relaxed) as usize >= CAPACITY - 1
    }

    /// Appends an event; the caller checked `is_full` (a full buffer drops nothing: it panics in
    /// debug builds and overwrites the last event in release builds, which `Shards` never lets
    /// happen).
    #[inline]
    pub(crate) fn push(&mut self, event: Event) {
        let len = self.stripe.events.0.len.load(Ordering::Relaxed) as usize;
        debug_assert!(len < CAPACITY, "push into a full stripe");
        let i = len.min(CAPACITY - 1);
        // SAFETY: we hold the stripe, so nobody else accesses the buffer.
        let buffer = unsafe { &mut *self.stripe.events.0.buffer.get() };
        let bit = 1 << i;
        buffer.hits &= !bit;
        buffer.expired &= !bit;
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
    }

    /// Replays the buffered events, oldest first, and empties the buffer.
    pub(crate) fn drain(&mut self, mut apply: impl FnMut(Event)) {
        let len = self.stripe.events.0.len.load(Ordering::Relaxed) as usize;
        if len == 0 {
            return;
        }
        // SAFETY: we hold the stripe, so nobody else accesses the buffer.
        let buffer = unsafe { &mut *self.stripe.events.0.buffer.get() };
        for i in 0..len {
            let event = buffer.events[i];
            apply(if buffer.hits & (1 << i) != 0 {
                Event::Hit(event as u32)
            } else if buffer.expired & (1 << i) != 0 {
                Event::Expired(event as u32)
            } else {
                Event::Miss(event)
            });
        }
        buffer.hits = 0;
        buffer.expired = 0;
        self.stripe.events.0.len.store(0, Ordering::Relaxed);
    }
}

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        self.stripe.seq.0.store(self.seq + 2, Ordering::Release);
    }
}

/// The stripes of one shard.
pub(crate) struct Stripes {
    stripes: Box<[Stripe]>,
}

/// Which stripes were held at one moment, and by which holding (their counters).
pub(crate) struct Snapshot(Box<[u64]>);

impl Stripes {
    /// Twice as many stripes as cores (a power of two, at most 64): threads created one after
    /// the other take distinct stripes.
    pub(crate) fn new() -> Self {
        static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let n = *COUNT.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores * 2).next_power_of_two().clamp(2, 64)
        });
        Stripes {
            stripes: (0..n).map(|_| Stripe::new()).collect(),
        }
    }

    /// The calling thread's stripe, if nobody (not even this thread, re-entering) holds it.
    #[inline]
    pub(crate) fn enter(&self) -> Option<Held<'_>> {
        let i = super::sync::thread_index() & (self.stripes.len() - 1);
        self.stripes[i].try_hold()
    }

    /// Replays every buffer that is not held right now (the caller, under the shard's lock,
    /// passes its own held stripe as `own` if it has one).
    pub(crate) fn drain_all(&self, own: Option<&mut Held<'_>>, mut apply: impl FnMut(Event)) {
        let own_ptr = own.as_ref().map(|h| h.stripe as *const Stripe);
        if let Some(own) = own {
            own.drain(&mut apply);
        }
        for stripe in self.stripes.iter() {
            if Some(stripe as *const Stripe) == own_ptr
                || stripe.events.0.len.load(Ordering::Relaxed) == 0
            {
                continue;
            }
            if let Some(mut held) = stripe.try_hold() {
                held.drain(&mut apply);
            }
        }
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

    /// Which stripes are held now. The fence orders every bucket the caller unlinked before
    /// against the readers' CAS: a reader not seen inside here cannot find those buckets.
    pub(crate) fn snapshot(&self) -> Snapshot {
        fence(Ordering::SeqCst);
        Snapshot(
            self.stripes
                .iter()
                .map(|s| s.seq.0.load(Ordering::SeqCst))
                .collect(),
        )
    }

    /// Whether no stripe is held now (after the same fence as `snapshot`).
    pub(crate) fn all_idle(&self) -> bool {
        fence(Ordering::SeqCst);
        self.stripes
            .iter()
            .all(|s| s.seq.0.load(Ordering::SeqCst) & 1 == 0)
    }

    /// Whether every reader that was inside at `snapshot` has left since.
    pub(crate) fn passed(&self, snapshot: &Snapshot) -> bool {
        self.stripes
            .iter()
            .zip(snapshot.0.iter())
            .all(|(s, &then)| then & 1 == 0 || s.seq.0.load(Ordering::Acquire) != then)
    }
}

#[cfg(all(test, not(memo_shuttle)))]
mod tests {
    use super::*;

    #[test]
    fn events_replay_in_order_and_the_buffer_empties() {
        let stripes = Stripes::new();
        {
            let mut held = stripes.enter().expect("free");
            held.push(Event::Hit(3));
            held.push(Event::Miss(u64::MAX));
            held.push(Event::Expired(9));
            held.push(Event::Hit(u32::MAX));
        }
        let mut seen = Vec::new();
        stripes.drain_all(None, |e| seen.push(e));
        let expected = [
            Event::Hit(3),
            Event::Miss(u64::MAX),
            Event::Expired(9),
            Event::Hit(u32::MAX),
        ];
        assert_eq!(seen, expected);
        {
            // Slots are reused: stale kind bits must not leak into later events.
            let mut held = stripes.enter().expect("free");
            held.push(Event::Miss(5));
            held.push(Event::Miss(6));
        }
        stripes.drain_all(None, |e| seen.push(e));
        assert_eq!(seen[4..], [Event::Miss(5), Event::Miss(6)], "drained once");
    }

    #[test]
    fn a_held_stripe_is_not_reentered_and_blocks_reuse_until_released() {
        let stripes = Stripes::new();
        let mut held = stripes.enter().expect("free");
        assert!(stripes.enter().is_none(), "re-entry is refused");
        assert!(!stripes.all_idle());
        let snapshot = stripes.snapshot();
        assert!(!stripes.passed(&snapshot));
        for _ in 0..CAPACITY - 1 {
            assert!(!held.is_full());
            held.push(Event::Miss(1));
        }
        assert!(held.is_full());
        let mut n = 0;
        stripes.drain_all(Some(&mut held), |_| n += 1);
        assert_eq!(n, CAPACITY - 1);
        drop(held);
        assert!(stripes.passed(&snapshot));
        assert!(stripes.all_idle());
        // A reader entering after the snapshot does not hold it back.
        let _again = stripes.enter().expect("free again");
        assert!(stripes.passed(&snapshot));
    }
}
