//! TinyLFU's frequency estimate: a count-min sketch of 4-bit counters, halved every time it has
//! counted sixty times the cache's capacity (at least `MIN_SAMPLE` events), so that it remembers
//! recent popularity only.
//!
//! Each key maps to one 64-byte block of eight words and to one counter in each of four pairs of
//! words there, so an estimate costs one cache line. Increments are conservative (only the
//! counters at the minimum grow), which keeps estimates of rare keys close to their true count.

/// Sixteen 4-bit counters per word; the counters of a key live in one block of this many words.
const BLOCK_WORDS: usize = 8;

/// The highest count a counter holds.
const MAX_COUNT: u64 = 15;

/// Every counter's high bit cleared after a shift: halves sixteen counters at once.
const HALVE_MASK: u64 = 0x7777_7777_7777_7777;

/// How many counted events per entry of capacity before the counts are halved. Caffeine halves
/// at 10; with sixteen counters per entry ([`ENTRIES_PER_WORD`]) a longer history tells apart
/// keys that a short one sees about once each: Zipf 0.99 over 1M keys at 10k goes from 65.41%
/// (10) to 65.84% (40), 65.96% (60) and 65.89% (80), and the traces' mean gap to OPT moves by
/// at most 0.05 points between 20 and 60. With eight counters per entry the longer history
/// gained nothing (65.15% to 65.37% from 5 to 40): the counters filled with collisions.
const SAMPLE_PER_ENTRY: usize = 60;

/// The fewest counted events between halvings: a small cache still needs a history long enough
/// to tell a key that comes back from a one-off (the loops and scans of the LIRS traces).
const MIN_SAMPLE: usize = 5_000;

/// The fewest words of counters (4 KiB), so that a small cache's long history does not collide
/// in a tiny table.
const MIN_WORDS: usize = 512;

/// Estimates how often each key was seen in the recent past (up to 15).
pub(crate) struct FrequencySketch {
    table: Vec<u64>,
    /// Number of blocks minus one (a power of two minus one).
    block_mask: u64,
    /// Increments since the last halving.
    additions: usize,
    /// Increments between halvings.
    sample_size: usize,
    /// Halvings so far (wrapping).
    halvings: u8,
    /// One bit per slot of the cache: the key in that slot had all four counters at
    /// [`MAX_COUNT`] (its estimate, as an increment returned it, was the maximum) and no
    /// counter has decreased since. Counters only grow between halvings, so an increment of
    /// that key would change nothing and return the maximum: a hit on a popular key skips the
    /// table ([`Self::increment_slot`]). Every bit is cleared at a halving and at a growth.
    saturated: Vec<u64>,
}

/// Entries of capacity per word of counters: sixteen 4-bit counters per entry (eight bytes per
/// entry, rounded up to a power of two), as in Caffeine. At eight counters per entry and the
/// longer history of [`SAMPLE_PER_ENTRY`], Zipf 0.99 at 10k lost 0.6 points (65.37% against
/// 65.96%) and the generated traces' mean gap to OPT 0.1; at 32 per entry it gained 0.1 on
/// Zipf for 8 more bytes an entry.
const ENTRIES_PER_WORD: usize = 1;

/// The words of counters and the events between halvings for `capacity` entries.
fn dimensions(capacity: usize) -> (usize, usize) {
    let words = (capacity / ENTRIES_PER_WORD)
        .max(MIN_WORDS)
        .next_power_of_two();
    let sample = capacity.saturating_mul(SAMPLE_PER_ENTRY).max(MIN_SAMPLE);
    (words, sample)
}

/// Spreads a 32-bit fingerprint over 64 bits (the splitmix64 finalizer).
#[inline]
fn spread(fingerprint: u32) -> u64 {
    let mut z = u64::from(fingerprint).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An estimate `count` read when the sketch had halved `then` times, as of `halvings`
/// halvings: halved once per halving since (a copy of an estimate ages as the counters do).
#[inline(always)]
pub(crate) fn aged(count: u8, then: u8, halvings: u8) -> u8 {
    count
        .checked_shr(u32::from(halvings.wrapping_sub(then)))
        .unwrap_or(0)
}

impl FrequencySketch {
    /// A sketch sized for a cache of `capacity` entries (it can grow later).
    pub(crate) fn new(capacity: usize) -> Self {
        let (words, sample_size) = dimensions(capacity);
        FrequencySketch {
            table: vec![0; words],
            block_mask: (words / BLOCK_WORDS - 1) as u64,
            additions: 0,
            sample_size,
            halvings: 0,
            saturated: Vec::new(),
        }
    }

    /// Grows the table to suit `capacity` entries. Doubling copies the table into both halves, so
    /// every key keeps at least the counts it had (a count-min sketch may overestimate).
    pub(crate) fn ensure_capacity(&mut self, capacity: usize) {
        let (words, sample_size) = dimensions(capacity);
        while self.table.len() < words {
            self.table.extend_from_within(..);
            self.block_mask = (self.table.len() / BLOCK_WORDS - 1) as u64;
            self.saturated.fill(0);
        }
        self.sample_size = sample_size;
    }

    /// `fingerprint`'s block, and the bits that pick its four counters (five per counter:
    /// which word of its pair, and which of the word's sixteen counters).
    #[inline(always)]
    fn locate(&self, fingerprint: u32) -> (usize, u32) {
        let h = spread(fingerprint);
        (
            (h & self.block_mask) as usize * BLOCK_WORDS,
            (h >> 32) as u32,
        )
    }

    /// The block at word `start`, from [`Self::locate`].
    #[inline(always)]
    fn block(&self, start: usize) -> &[u64; BLOCK_WORDS] {
        debug_assert!(start + BLOCK_WORDS <= self.table.len());
        // SAFETY: `locate` masks the block's number with `block_mask`, which is always the
        // table's length in blocks minus one (set with the table in `new` and
        // `ensure_capacity`; the length is a power of two of at least `MIN_WORDS` words), so
        // the block's words are in the table. Every estimate and increment reads one (the
        // tests below, and every test of the adaptive policy).
        unsafe { &*self.table.as_ptr().add(start).cast::<[u64; BLOCK_WORDS]>() }
    }

    /// [`Self::block`], to change.
    #[inline(always)]
    fn block_mut(&mut self, start: usize) -> &mut [u64; BLOCK_WORDS] {
        debug_assert!(start + BLOCK_WORDS <= self.table.len());
        // SAFETY: as in `block`.
        unsafe {
            &mut *self
                .table
                .as_mut_ptr()
                .add(start)
                .cast::<[u64; BLOCK_WORDS]>()
        }
    }

    /// The word (within its block) and the bit offset of each of the four counters that
    /// `bits` picks: counter `i` is in word `2i + bit 5i` of the block, at the 4-bit position
    /// given by bits `5i + 1 ..= 5i + 4` (`((bits >> (5i + 1)) & 15) * 4`, computed as one
    /// shift and one mask).
    #[inline(always)]
    fn counters(bits: u32) -> ([usize; 4], [u32; 4]) {
        (
            [
                (bits & 1) as usize,
                2 + (bits >> 5 & 1) as usize,
                4 + (bits >> 10 & 1) as usize,
                6 + (bits >> 15 & 1) as usize,
            ],
            [
                (bits << 1) & 60,
                (bits >> 4) & 60,
                (bits >> 9) & 60,
                (bits >> 14) & 60,
            ],
        )
    }

    /// How often `fingerprint` was seen recently (an overestimate at worst), 0 to 15.
    #[inline]
    pub(crate) fn frequency(&self, fingerprint: u32) -> u8 {
        let (start, bits) = self.locate(fingerprint);
        let block = self.block(start);
        let (words, shifts) = Self::counters(bits);
        let count = |i: usize| (block[words[i]] >> shifts[i]) & MAX_COUNT;
        count(0).min(count(1)).min(count(2).min(count(3))) as u8
    }

    /// Counts one occurrence of `fingerprint`, and returns its estimate after it (what
    /// [`Self::frequency`] would return now).
    #[inline(always)]
    pub(crate) fn increment(&mut self, fingerprint: u32) -> u8 {
        let (start, bits) = self.locate(fingerprint);
        let block = self.block_mut(start);
        let (words, shifts) = Self::counters(bits);
        let count = |i: usize| (block[words[i]] >> shifts[i]) & MAX_COUNT;
        let counts = [count(0), count(1), count(2), count(3)];
        let min = counts[0].min(counts[1]).min(counts[2].min(counts[3]));
        if min == MAX_COUNT {
            return MAX_COUNT as u8;
        }
        // Conservative: only the counters at the minimum grow (each in its own word).
        block[words[0]] += u64::from(counts[0] == min) << shifts[0];
        block[words[1]] += u64::from(counts[1] == min) << shifts[1];
        block[words[2]] += u64::from(counts[2] == min) << shifts[2];
        block[words[3]] += u64::from(counts[3] == min) << shifts[3];
        self.additions += 1;
        if self.additions >= self.sample_size {
            self.halve();
            // Every counter halved, the least of the four too.
            return ((min + 1) >> 1) as u8;
        }
        (min + 1) as u8
    }

    /// Halves every counter: old popularity fades. Out of line, so that `increment` inlines.
    #[cold]
    #[inline(never)]
    fn halve(&mut self) {
        for word in &mut self.table {
            *word = (*word >> 1) & HALVE_MASK;
        }
        self.additions /= 2;
        self.halvings = self.halvings.wrapping_add(1);
        self.saturated.fill(0);
    }

    /// How many times the counts were halved (wrapping): an estimate read after `h` halvings
    /// is, `k` halvings later, at most that estimate shifted right by `k` (plus what the key and
    /// its collisions added since).
    #[inline]
    pub(crate) fn halvings(&self) -> u8 {
        self.halvings
    }

    /// Counts a hit on the key in `slot` (fingerprint `fingerprint`) as
    /// [`Self::increment`] would, and returns the estimate after it; skips the table if the
    /// key is known to be at the maximum (see `saturated`).
    #[inline(always)]
    pub(crate) fn increment_slot(&mut self, slot: u32, fingerprint: u32) -> u8 {
        let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        if let Some(w) = self.saturated.get(word)
            && w & bit != 0
        {
            return MAX_COUNT as u8;
        }
        self.increment_unsaturated(word, bit, fingerprint)
    }

    /// [`Self::increment_slot`] when the bit is not set: out of line, so that the saturated
    /// keys' hits (a popular key's usual case) stay a few instructions, without spilling.
    #[inline(never)]
    fn increment_unsaturated(&mut self, word: usize, bit: u64, fingerprint: u32) -> u8 {
        let estimate = self.increment(fingerprint);
        if estimate == MAX_COUNT as u8 {
            self.set_saturated(word, bit);
        }
        estimate
    }

    #[cold]
    fn set_saturated(&mut self, word: usize, bit: u64) {
        if self.saturated.len() <= word {
            self.saturated.resize(word + 1, 0);
        }
        self.saturated[word] |= bit;
    }

    /// `slot` holds another key now, or none.
    #[inline]
    pub(crate) fn forget_slot(&mut self, slot: u32) {
        if let Some(w) = self.saturated.get_mut(slot as usize / 64) {
            *w &= !(1u64 << (slot % 64));
        }
    }

    /// The key in slot `from` moved to slot `to`.
    pub(crate) fn relocate_slot(&mut self, from: u32, to: u32) {
        let was = self
            .saturated
            .get(from as usize / 64)
            .is_some_and(|w| w & 1u64 << (from % 64) != 0);
        self.forget_slot(from);
        self.forget_slot(to);
        if was {
            self.set_saturated(to as usize / 64, 1u64 << (to % 64));
        }
    }

    /// Every slot is empty (the counts stay).
    pub(crate) fn clear_slots(&mut self) {
        self.saturated.clear();
    }

    /// The bytes the table takes.
    #[cfg(test)]
    pub(crate) fn table_bytes(&self) -> usize {
        self.table.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_fifteen() {
        let mut sketch = FrequencySketch::new(1024);
        for expected in 1..=20u8 {
            assert_eq!(sketch.increment(7), expected.min(15));
            assert_eq!(sketch.frequency(7), expected.min(15));
        }
        assert_eq!(sketch.frequency(8), 0);
    }

    #[test]
    fn halves_after_the_sample_size() {
        let mut sketch = FrequencySketch::new(1024);
        let sample = SAMPLE_PER_ENTRY as u32 * 1024;
        for _ in 0..12 {
            sketch.increment(1);
        }
        // 12 + (sample - 13) increments stay one short of the sample size.
        let last = 1000 + sample - 13;
        for k in 1000..last {
            sketch.increment(k);
        }
        assert_eq!(sketch.halvings(), 0);
        assert!(sketch.frequency(1) >= 12, "{}", sketch.frequency(1));
        let after = sketch.increment(last); // the last of the sample: every count halves
        assert_eq!(sketch.halvings(), 1);
        assert_eq!(
            after,
            sketch.frequency(last),
            "the estimate after the halving"
        );
        assert!(sketch.frequency(1) <= 7, "{}", sketch.frequency(1));
    }

    #[test]
    fn an_increment_returns_the_estimate_after_it() {
        // Few blocks for many keys: collisions, saturated counters and halvings all occur.
        let mut sketch = FrequencySketch::new(8);
        let mut x = 1u32;
        for _ in 0..40_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let key = x % 3000;
            let halvings = sketch.halvings();
            let after = sketch.increment(key);
            assert_eq!(after, sketch.frequency(key), "key {key}");
            if sketch.halvings() == halvings && after < 15 {
                assert!(after > 0);
            }
        }
        assert!(sketch.halvings() >= 4, "{} halvings", sketch.halvings());
    }

    #[test]
    fn a_saturated_slot_skips_the_sketch_until_a_halving() {
        let mut sketch = FrequencySketch::new(1024);
        for expected in 1..=15u8 {
            assert_eq!(sketch.increment_slot(3, 7), expected);
        }
        let additions = sketch.additions;
        assert_eq!(sketch.increment_slot(3, 7), 15);
        assert_eq!(sketch.additions, additions, "nothing counted");
        // Another key in the slot: it is counted again.
        sketch.forget_slot(3);
        assert_eq!(sketch.increment_slot(3, 8), 1);
        sketch.forget_slot(3);
        sketch.increment_slot(3, 7);
        // A halving: key 7 is at 7, and its hits count again (a stale bit would say 15).
        for k in 1000..1000 + 2 * (SAMPLE_PER_ENTRY * 1024) as u32 {
            if sketch.halvings() > 0 {
                break;
            }
            sketch.increment(k);
        }
        assert_eq!(sketch.frequency(7), 7);
        assert_eq!(sketch.increment_slot(3, 7), 8);
        assert_eq!(sketch.frequency(7), 8);
        // A key that moves keeps its bit; the slot it left has none.
        for _ in 0..8 {
            sketch.increment_slot(3, 7);
        }
        sketch.relocate_slot(3, 200);
        let additions = sketch.additions;
        assert_eq!(sketch.increment_slot(200, 7), 15);
        assert_eq!(sketch.additions, additions, "nothing counted");
        let additions = sketch.additions;
        sketch.increment_slot(3, 9);
        assert_eq!(sketch.additions, additions + 1, "counted");
    }

    #[test]
    fn growing_keeps_counts() {
        let mut sketch = FrequencySketch::new(8);
        for k in 0..5u32 {
            for _ in 0..=k {
                sketch.increment(k);
            }
        }
        sketch.ensure_capacity(4096);
        for k in 0..5u32 {
            assert!(sketch.frequency(k) > k as u8, "key {k}");
        }
        assert_eq!(sketch.table_bytes(), 4096 / ENTRIES_PER_WORD * 8);
    }
}
