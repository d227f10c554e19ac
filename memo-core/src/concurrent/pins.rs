//! Slots read outside the lock by lookups that have no stripe.
//!
//! A lookup that cannot take its thread's stripe (another thread holds it, or this thread
//! does, looking the cache up again from inside a `Clone`) finds its entry under the writer
//! lock. Cloning the value there would run the user's code under the lock: a slow `Clone`
//! would stall every writer of the shard for as long as it runs, and a `Clone` that looks the
//! cache up again would deadlock on the lock its own thread holds. So the lookup *pins* the
//! slot under the lock, releases the lock, clones, and unpins; reclamation frees no pinned
//! slot (a pin is a hazard pointer that is set under the lock instead of by a fenced store).
//!
//! A shard has at most [`PINS`] pins at once, so the slots they hold back stay within a fixed
//! bound (its storage has room for them, see `shard::most_slots`); a lookup that finds them all
//! taken clones under the lock, as every lookup without a stripe did before.
//!
//! Ordering: a pin is taken under the lock (its word and the count written there), so the next
//! lock holder sees it. The reader releases it with Release stores (the word, then the count),
//! and a reclaim loads the count and the words with Acquire: a slot whose pin it sees released
//! was read before, and one it sees pinned stays.

use std::sync::Arc;

use super::sync::{AtomicU32, AtomicU64, Ordering};

/// The most pins a shard has at once.
pub(crate) const PINS: usize = 64;

/// Pin words are allocated in chunks of this many, the first on the first pin.
const CHUNK: usize = 16;

/// A free pin word.
const FREE: u32 = u32::MAX;

type Chunk = [AtomicU32; CHUNK];

/// A shard's pin words, kept by its writer side (taken only under the lock).
#[derive(Default)]
pub(crate) struct PinWords {
    chunks: Vec<Arc<Chunk>>,
    /// The slots pinned as of the last [`Self::pinned`], sorted ...
    seen: Vec<u32>,
    /// ... when the count read `seen_count`; `stale` if a pin was taken since.
    seen_count: u64,
    stale: bool,
}

/// How many pins are taken and not yet released (low 32 bits) and how many were released so
/// far (high 32 bits, wrapping), shared by a shard's writer and its readers.
pub(crate) struct PinCount(AtomicU64);

/// Released: one more release, one fewer taken (the low half is at least 1, so the borrow
/// carries into the high half).
const RELEASE: u64 = (1 << 32) - 1;

impl PinCount {
    pub(crate) fn new() -> Self {
        PinCount(AtomicU64::new(0))
    }

    /// Whether some pin may be held (a reclaim must then look at the words).
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.0.load(Ordering::Acquire) as u32 != 0
    }
}

impl PinWords {
    /// Pins slot `id` for a reader about to leave the lock, or `None` if [`PINS`] are taken.
    /// The caller holds the writer lock, and `id` holds an entry (live, or retired and not
    /// freed).
    pub(crate) fn pin<'a>(&mut self, count: &'a PinCount, id: u32) -> Option<Pin<'a>> {
        debug_assert_ne!(id, FREE);
        let free = self.chunks.iter().enumerate().find_map(|(c, chunk)| {
            // Acquire: the reader that released this word read its slot before; the pin
            // taken now is ordered after that read, and so is any reclaim it lets through.
            let at = chunk
                .iter()
                .position(|w| w.load(Ordering::Acquire) == FREE)?;
            Some((c, at))
        });
        let (c, at) = match free {
            Some(found) => found,
            None if self.chunks.len() * CHUNK < PINS => {
                self.chunks
                    .push(Arc::new(std::array::from_fn(|_| AtomicU32::new(FREE))));
                (self.chunks.len() - 1, 0)
            }
            None => return None,
        };
        let chunk = Arc::clone(&self.chunks[c]);
        chunk[at].store(id, Ordering::Relaxed);
        count.0.fetch_add(1, Ordering::Relaxed);
        self.stale = true;
        Some(Pin {
            chunk,
            at,
            count,
            id,
        })
    }

    /// The slots pinned now, sorted, for a reclaim under the lock, and whether they changed
    /// since the last call: read again only if a pin was taken or released since (a slot not
    /// listed was never pinned, or its release was seen with Acquire, by this call or an
    /// earlier one).
    pub(crate) fn pinned(&mut self, count: &PinCount) -> (&[u32], bool) {
        let now = count.0.load(Ordering::Acquire);
        let changed = self.stale || now != self.seen_count;
        if changed {
            self.seen.clear();
            self.seen.extend(
                self.chunks
                    .iter()
                    .flat_map(|chunk| chunk.iter())
                    .map(|w| w.load(Ordering::Acquire))
                    .filter(|&id| id != FREE),
            );
            self.seen.sort_unstable();
            self.seen_count = now;
            self.stale = false;
        }
        (&self.seen, changed)
    }
}

/// A pinned slot: its entry stays until the pin is dropped (also when the reader's `Clone`
/// panics).
pub(crate) struct Pin<'a> {
    chunk: Arc<Chunk>,
    at: usize,
    count: &'a PinCount,
    id: u32,
}

impl Pin<'_> {
    /// The pinned slot.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        self.chunk[self.at].store(FREE, Ordering::Release);
        self.count.0.fetch_add(RELEASE, Ordering::Release);
    }
}

#[cfg(all(test, not(memo_shuttle)))]
mod tests {
    use super::*;

    #[test]
    fn pins_are_listed_until_dropped_and_run_out_at_the_bound() {
        let count = PinCount::new();
        let mut words = PinWords::default();
        assert!(!count.any());
        let a = words.pin(&count, 7).expect("a free pin");
        let b = words.pin(&count, 9).expect("a free pin");
        assert!(count.any());
        assert_eq!(words.pinned(&count).0, vec![7, 9]);
        drop(a);
        assert_eq!(words.pinned(&count).0, vec![9]);
        let mut held: Vec<Pin<'_>> = (0..PINS as u32 - 1)
            .map(|i| words.pin(&count, i).unwrap())
            .collect();
        assert!(words.pin(&count, 1000).is_none(), "at most PINS at once");
        assert_eq!(words.pinned(&count).0.len(), PINS);
        held.pop();
        assert!(
            words.pin(&count, 1000).is_some(),
            "a released pin is taken again"
        );
        drop(held);
        drop(b);
        assert!(!count.any());
    }
}
