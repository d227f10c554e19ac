//! The index of a shard: an open-addressing table of atomic buckets, each holding the low 32 bits
//! of a key's hash and the id of its slot. One writer at a time (under the shard's lock) inserts
//! and removes; any number of readers probe it without a lock.
//!
//! Removal shifts later buckets of the probe run back (no tombstones, so the table never needs
//! rebuilding for churn). A reader racing with a shift could step over the entry it looks for,
//! so removals bump `version` around the shift, seqlock style, and a reader that found nothing
//! retries if the version moved. A reader that finds its key needs no check: the bucket it read
//! pointed at that key's slot at that moment.

use super::sync::{AtomicU64, Ordering};

/// An empty bucket; occupied ones hold `hash32 << 32 | (id + 1)`, never zero.
const EMPTY: u64 = 0;

/// What a freed table's buckets hold in tests (the id it names, `u32::MAX - 1`, is never handed
/// out): a reader that finds it probed a table after it was freed.
#[cfg(test)]
const POISON: u64 = u64::MAX;

#[inline]
fn pack(hash: u64, id: u32) -> u64 {
    (u64::from(hash as u32) << 32) | (u64::from(id) + 1)
}

#[inline]
fn id_of(bucket: u64) -> u32 {
    (bucket as u32).wrapping_sub(1)
}

pub(crate) struct Table {
    buckets: Box<[AtomicU64]>,
    /// Even when no removal is shifting buckets, odd while one is.
    version: AtomicU64,
}

/// What a lock-free probe's visitor decided about one candidate.
pub(crate) enum Visit<T> {
    /// The candidate is the key: the probe ends with what the visitor found there.
    Match(T),
    /// Another key with the same 32 hash bits: go on.
    Next,
    /// The candidate left its bucket before the reader could protect it: probe again.
    Moved,
}

/// What a lock-free probe concluded.
pub(crate) enum Probe<T> {
    /// The id and what the visitor returned for it.
    Found(u32, T),
    Absent,
    /// A removal moved buckets during the probe: look again.
    Retry,
}

impl Table {
    /// A table with room for `entries` at a load factor of at most 3/4, in a power of two of
    /// buckets (so usually sparser: a growing table doubles).
    pub(crate) fn with_capacity(entries: usize) -> Self {
        Self::of_buckets(Self::sparse_buckets(entries))
    }

    /// The buckets of [`Table::with_capacity`]`(entries)`.
    pub(crate) fn sparse_buckets(entries: usize) -> usize {
        (entries.saturating_mul(4) / 3 + 1)
            .next_power_of_two()
            .max(8)
    }

    /// The buckets of [`Table::exactly`]`(entries)`.
    pub(crate) fn exact_buckets(entries: usize) -> usize {
        (entries.saturating_mul(4) / 3).saturating_add(2).max(8)
    }

    /// A table with room for `entries` at a load factor just under 3/4, in as few buckets as
    /// that takes: the last table of a large shard that reached its capacity (a power of two
    /// could leave it at a load of 3/8, 8 more bytes per entry).
    pub(crate) fn exactly(entries: usize) -> Self {
        Self::of_buckets(Self::exact_buckets(entries))
    }

    fn of_buckets(buckets: usize) -> Self {
        // `home` multiplies 32 hash bits by the length in 64 bits: it must not overflow; and
        // writers name buckets by `u32` positions, `u32::MAX` naming none.
        assert!(
            (buckets as u64) < 1 << 32,
            "an index of fewer than 2^32 buckets"
        );
        Table {
            buckets: (0..buckets).map(|_| AtomicU64::new(EMPTY)).collect(),
            version: AtomicU64::new(0),
        }
    }

    /// How many entries fit before the table must grow.
    pub(crate) fn limit(&self) -> usize {
        self.buckets.len() * 3 / 4
    }

    /// The first bucket of the probe run of `hash` (its low 32 bits): their fraction of the
    /// table (a multiply, so any number of buckets works). Below the length, which `of_buckets`
    /// keeps at most 2^32 so that the product does not overflow.
    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((u64::from(hash as u32) * self.buckets.len() as u64) >> 32) as usize
    }

    /// The bucket after `i` (below the length), wrapping around: below the length too.
    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.buckets.len() {
            0
        } else {
            i + 1
        }
    }

    /// The slot id stored under `hash` that `visit` accepts. Lock-free; `visit` gets each
    /// candidate with the same 32 hash bits, with its bucket and the bucket's value as read.
    #[inline]
    pub(crate) fn probe<T>(
        &self,
        hash: u64,
        mut visit: impl FnMut(u32, &AtomicU64, u64) -> Visit<T>,
    ) -> Probe<T> {
        let version = self.version.load(Ordering::Acquire);
        if version & 1 == 1 {
            return Probe::Retry;
        }
        let tag = u64::from(hash as u32);
        let mut i = self.home(hash);
        for _ in 0..self.buckets.len() {
            // SeqCst pairs with the fence a writer issues before reusing slots (see stripe.rs).
            // SAFETY: `home` and `next` give indexes below `buckets.len()` (the checked index
            // cost a compare and a branch per bucket probed, on every lookup).
            let cell = unsafe { self.buckets.get_unchecked(i) };
            let bucket = cell.load(Ordering::SeqCst);
            #[cfg(test)]
            assert_ne!(bucket, POISON, "a reader probed a freed index table");
            if bucket == EMPTY {
                break;
            }
            if bucket >> 32 == tag {
                match visit(id_of(bucket), cell, bucket) {
                    Visit::Match(found) => return Probe::Found(id_of(bucket), found),
                    Visit::Next => {}
                    Visit::Moved => return Probe::Retry,
                }
            }
            i = self.next(i);
        }
        // Absent, unless a removal shifted the run under us.
        if self.version.load(Ordering::SeqCst) == version {
            Probe::Absent
        } else {
            Probe::Retry
        }
    }

    /// The id stored under `hash` matching `is_match`. Writers only (no concurrent removal).
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(hash, |bucket| is_match(id_of(bucket)))
            // SAFETY: `position` returns an index from `home` or `next`.
            .map(|i| id_of(unsafe { self.at(i) }.load(Ordering::Relaxed)))
    }

    /// Bucket `i` without a bounds check: the writers' paths (each check cost a compare, a
    /// branch and a reload of the length after every store: about 15 of the ~60 instructions of
    /// an eviction's removal).
    ///
    /// # Safety
    /// `i < self.buckets()`: an index from `home` or `next`.
    #[inline]
    unsafe fn at(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.buckets.len());
        // SAFETY: the caller passes an index below the length.
        unsafe { self.buckets.get_unchecked(i) }
    }

    fn position(&self, hash: u64, mut is_match: impl FnMut(u64) -> bool) -> Option<usize> {
        let tag = u64::from(hash as u32);
        let mut i = self.home(hash);
        loop {
            // SAFETY: `i` came from `home` or `next`.
            let bucket = unsafe { self.at(i) }.load(Ordering::Relaxed);
            if bucket == EMPTY {
                return None;
            }
            if bucket >> 32 == tag && is_match(bucket) {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    /// Adds `id` under `hash` (not present yet), returning its bucket. Writers only; the caller
    /// keeps the load under `limit()`. The release store publishes the slot's contents written
    /// before.
    #[inline]
    pub(crate) fn insert(&self, hash: u64, id: u32) -> u32 {
        let mut i = self.home(hash);
        loop {
            // SAFETY: `i` came from `home` or `next`.
            let bucket = unsafe { self.at(i) };
            if bucket.load(Ordering::Relaxed) == EMPTY {
                bucket.store(pack(hash, id), Ordering::Release);
                // Below the length, which `of_buckets` keeps at most 2^32.
                return i as u32;
            }
            i = self.next(i);
        }
    }

    /// Points bucket `at`, which holds `old`, at `new`: an atomic swap of the entry readers find
    /// for that key. Writers only.
    pub(crate) fn replace(&self, at: u32, old: u32, new: u32) {
        let cell = &self.buckets[at as usize];
        let bucket = cell.load(Ordering::Relaxed);
        assert_eq!(
            id_of(bucket),
            old,
            "replace of a bucket that holds another id"
        );
        cell.store(pack(bucket >> 32, new), Ordering::Release);
    }

    /// Removes the id in bucket `at`, shifting the rest of its probe run back; each id moved to
    /// another bucket is reported to `moved` with its new bucket. Returns the hash bits the
    /// removed id was stored under. Writers only.
    /// Always inlined into the eviction (its call cost ~10 instructions of register saves).
    #[inline(always)]
    pub(crate) fn remove(&self, at: u32, id: u32, mut moved: impl FnMut(u32, u32)) -> u32 {
        let mut hole = at as usize;
        let removed = self.buckets[hole].load(Ordering::Relaxed);
        assert_eq!(
            id_of(removed),
            id,
            "remove of a bucket that holds another id"
        );
        let version = self.version.load(Ordering::Relaxed);
        self.version.store(version + 1, Ordering::Relaxed);
        // Readers that see a bucket moved below must also see the odd version.
        super::sync::fence(Ordering::Release);
        let mut j = hole;
        loop {
            j = self.next(j);
            // SAFETY: `j` came from `next`.
            let bucket = unsafe { self.at(j) }.load(Ordering::Relaxed);
            if bucket == EMPTY {
                break;
            }
            let home = self.home(bucket >> 32);
            // Move `j` into the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                // SAFETY: `hole` was checked against the length above, or came from `next`.
                unsafe { self.at(hole) }.store(bucket, Ordering::Release);
                moved(id_of(bucket), hole as u32);
                hole = j;
            }
        }
        // SAFETY: as above.
        unsafe { self.at(hole) }.store(EMPTY, Ordering::Release);
        self.version.store(version + 2, Ordering::Release);
        (removed >> 32) as u32
    }

    /// Empties every bucket; readers probing meanwhile see the version move and look again.
    /// Writers only.
    pub(crate) fn clear(&self) {
        let version = self.version.load(Ordering::Relaxed);
        self.version.store(version + 1, Ordering::Relaxed);
        super::sync::fence(Ordering::Release);
        for bucket in self.buckets.iter() {
            if bucket.load(Ordering::Relaxed) != EMPTY {
                bucket.store(EMPTY, Ordering::Release);
            }
        }
        self.version.store(version + 2, Ordering::Release);
    }

    /// Marks every bucket freed (tests: see `Shard::free_old_tables`).
    #[cfg(test)]
    pub(crate) fn poison(&self) {
        for bucket in self.buckets.iter() {
            bucket.store(POISON, Ordering::SeqCst);
        }
    }

    /// How many buckets the table has.
    pub(crate) fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Every stored id with its hash bits, in bucket order (growth and tests).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.buckets.iter().filter_map(|b| {
            let bucket = b.load(Ordering::Relaxed);
            (bucket != EMPTY).then(|| (bucket >> 32, id_of(bucket)))
        })
    }

    /// A copy with room for `entries` ([`Table::exactly`] that many if `exact`), holding the
    /// same ids; each id's bucket in it is reported to `placed`. Writers only.
    pub(crate) fn grown(
        &self,
        entries: usize,
        exact: bool,
        mut placed: impl FnMut(u32, u32),
    ) -> Table {
        let table = if exact {
            Table::exactly(entries)
        } else {
            Table::with_capacity(entries)
        };
        for (hash32, id) in self.entries() {
            placed(id, table.insert(hash32, id));
        }
        table
    }

    /// The id in bucket `at`, if any (tests).
    #[cfg(test)]
    pub(crate) fn id_at(&self, at: u32) -> Option<u32> {
        let bucket = self.buckets.get(at as usize)?.load(Ordering::Relaxed);
        (bucket != EMPTY).then(|| id_of(bucket))
    }

    /// How many entries the table holds (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn found(table: &Table, hash: u64, id: u32) -> bool {
        let visit = |i, _: &AtomicU64, _| {
            if i == id {
                Visit::Match(())
            } else {
                Visit::Next
            }
        };
        matches!(table.probe(hash, visit), Probe::Found(i, ()) if i == id)
    }

    /// Random inserts and removals with colliding hashes against a HashMap model, in a table
    /// of a power of two of buckets and in one of 66; the buckets reported by inserts and
    /// shifts are where the ids are.
    #[test]
    fn removal_keeps_every_other_entry_reachable() {
        removal_keeps_every_other_entry_reachable_in(Table::with_capacity(48));
        let exact = Table::exactly(48);
        assert_eq!((exact.buckets(), exact.limit()), (66, 49));
        removal_keeps_every_other_entry_reachable_in(exact);
    }

    fn removal_keeps_every_other_entry_reachable_in(table: Table) {
        let mut rng = StdRng::seed_from_u64(7);
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut at: HashMap<u32, u32> = HashMap::new();
        let mut next = 0u32;
        for _ in 0..20_000 {
            if model.len() < 48 && rng.gen_bool(0.55) {
                // Few distinct homes near the end (the high bits of the low 32): long probe
                // runs that wrap around it.
                let hash =
                    (0xF000_0000 + rng.gen_range(0..16u64) * 0x00C0_0000 + rng.gen_range(0..4u64))
                        | (rng.r#gen::<u64>() << 32);
                at.insert(next, table.insert(hash, next));
                model.insert(next, hash);
                next += 1;
            } else if let Some(&id) = model.keys().nth(rng.gen_range(0..model.len().max(1))) {
                let hash = model.remove(&id).unwrap();
                let removed = table.remove(at.remove(&id).unwrap(), id, |moved, to| {
                    at.insert(moved, to);
                });
                assert_eq!(u64::from(removed), hash & 0xFFFF_FFFF);
                assert!(!found(&table, hash, id));
            }
            for (&id, &hash) in &model {
                assert!(found(&table, hash, id), "id {id} lost");
                let bucket = table.buckets[at[&id] as usize].load(Ordering::Relaxed);
                assert_eq!(
                    bucket,
                    pack(hash, id),
                    "id {id} is not where it was reported"
                );
            }
            assert_eq!(table.len(), model.len());
        }
    }

    #[test]
    fn replace_swaps_the_id_in_place_and_growth_keeps_everything() {
        let table = Table::with_capacity(4);
        let at: Vec<u32> = (0..6u32)
            .map(|id| table.insert(u64::from(id) * 0x9E37_79B9, id))
            .collect();
        table.replace(at[1], 1, 100);
        assert!(found(&table, 0x9E37_79B9, 100) && !found(&table, 0x9E37_79B9, 1));
        let mut placed = HashMap::new();
        let grown = table.grown(1000, false, |id, to| {
            placed.insert(id, to);
        });
        assert!(grown.limit() >= 1000);
        assert_eq!(placed.len(), 6);
        for (&id, &to) in &placed {
            assert_eq!(
                id_of(grown.buckets[to as usize].load(Ordering::Relaxed)),
                id
            );
        }
        assert!(found(&grown, 0x9E37_79B9, 100));
        for id in [0, 2, 3, 4, 5u32] {
            assert!(found(&grown, u64::from(id) * 0x9E37_79B9, id));
        }
    }

    #[test]
    fn a_probe_during_a_removal_asks_for_a_retry() {
        let table = Table::with_capacity(8);
        table.insert(3, 0);
        table.version.store(1, Ordering::Relaxed); // as if a removal were shifting
        let any = |_, _: &AtomicU64, _| Visit::Match(());
        assert!(matches!(table.probe(3, any), Probe::Retry));
        table.version.store(2, Ordering::Relaxed);
        assert!(matches!(table.probe(3, any), Probe::Found(0, ())));
        assert!(matches!(table.probe(4, any), Probe::Absent));
        assert!(matches!(
            table.probe(3, |_, _: &AtomicU64, _| Visit::<()>::Moved),
            Probe::Retry
        ));
        table.clear();
        assert_eq!(table.len(), 0);
        assert_eq!(table.version.load(Ordering::Relaxed), 4);
        assert!(matches!(table.probe(3, any), Probe::Absent));
    }
}
