//! Storage whose elements never move: segment `k` holds `first << k` elements, so element `id`
//! is found with two shifts, and growing adds a segment instead of reallocating. Readers that
//! hold no lock can therefore keep a reference to an element while a writer grows the storage.
//! The storage holds at most `most` elements (ids below it): the segment that reaches it is
//! allocated only up to it (a full shard's slots then have no spare room: 0.8 of 36 bytes per
//! `u64 -> u64` entry at 1M, for a last segment sized by the power of two).

use std::ptr;

use super::sync::{AtomicPtr, Ordering};

/// Enough segments for `u32` ids with any first segment of at least one element.
const SEGMENTS: usize = 33;

pub(crate) struct Segments<T> {
    /// log2 of the first segment's length.
    first_shift: u32,
    /// The first segment's length, `1 << first_shift` (kept: one load instead of two
    /// instructions more on every lookup).
    first: usize,
    /// How many elements the storage can hold: ids below this.
    most: usize,
    /// Segment `k` (null until allocated) points at `first << k` elements.
    segments: [AtomicPtr<T>; SEGMENTS],
    /// For the segment whose elements `id` have `id + first` of highest bit `b`: its pointer
    /// moved back by `1 << b` elements (wrapping), so that element `id` is at `bases[b] +
    /// (id + first)`: what `get` reads (a leading-zero count and one load, no subtraction).
    bases: [AtomicPtr<T>; 64],
}

impl<T> Segments<T> {
    /// Empty storage whose first segment will hold `first` (rounded up to a power of two)
    /// elements, for ids below `most`.
    pub(crate) fn new(first: usize, most: usize) -> Self {
        let first = first.clamp(1, 1 << 20).next_power_of_two();
        Segments {
            first_shift: first.trailing_zeros(),
            first,
            most,
            segments: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            bases: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// The segment of `id` and the offset in it.
    #[inline]
    fn locate(&self, id: u32) -> (usize, usize) {
        let x = id as usize + (1 << self.first_shift);
        let k = (usize::BITS - 1 - x.leading_zeros() - self.first_shift) as usize;
        (k, x - ((1 << self.first_shift) << k))
    }

    /// The length of segment `k`: `first << k`, or less for the one that reaches `most`.
    fn segment_len(&self, k: usize) -> usize {
        let full = (1usize << self.first_shift) << k;
        // Segment `k` starts at id `full - first`, below `most` for any segment `ensure` makes.
        full.min(self.most.saturating_sub(full - (1 << self.first_shift)))
    }

    /// The element `id`.
    ///
    /// # Safety
    /// `ensure(id, ..)` returned before this call (so `id < most`), and the ordering between them is a
    /// happens-before (the caller holds the writers' lock, or learned `id` through an
    /// acquire load of a value published after `ensure`).
    #[inline]
    pub(crate) unsafe fn get(&self, id: u32) -> &T {
        let x = id as usize + self.first;
        // `x | 1` has the same highest bit (`x >= first >= 1`), and is visibly nonzero.
        let b = (x | 1).ilog2() as usize;
        let base = self.bases[b & 63].load(Ordering::Acquire);
        debug_assert!(!base.is_null(), "element {id} was never allocated");
        // SAFETY: the caller guarantees that the segment of `id`, `k = b - first_shift`, was
        // allocated and that `id < most`: `bases[b]` is its pointer moved back by `1 << b`
        // elements with wrapping arithmetic (`ensure`), so moving it forward by `x` (wrapping,
        // the same provenance) gives element `x - (1 << b)` = `locate(id).1` of that segment,
        // below `segment_len(k)` since `id < most`: in bounds. Segments are freed only by `Drop`, which has `&mut self`.
        unsafe { &*base.wrapping_add(x) }
    }

    /// Makes element `id` (below `most`) exist, allocating its segment with `init` if needed.
    /// Writers only (one at a time: the caller holds the writers' lock).
    pub(crate) fn ensure(&self, id: u32, init: impl Fn() -> T) {
        assert!(
            (id as usize) < self.most,
            "element {id} past the storage's {}",
            self.most
        );
        let (k, _) = self.locate(id);
        if self.segments[k].load(Ordering::Acquire).is_null() {
            let segment: Box<[T]> = (0..self.segment_len(k)).map(|_| init()).collect();
            let segment = Box::into_raw(segment).cast::<T>();
            let b = k + self.first_shift as usize;
            self.bases[b].store(segment.wrapping_sub(1 << b), Ordering::Release);
            self.segments[k].store(segment, Ordering::Release);
        }
    }

    /// How many elements the allocated segments hold.
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> usize {
        (0..SEGMENTS)
            .filter(|&k| !self.segments[k].load(Ordering::Relaxed).is_null())
            .map(|k| self.segment_len(k))
            .sum()
    }
}

impl<T> Drop for Segments<T> {
    fn drop(&mut self) {
        for k in 0..SEGMENTS {
            let segment = self.segments[k].load(Ordering::Relaxed);
            if !segment.is_null() {
                let len = self.segment_len(k);
                // SAFETY: `segment` came from `Box::<[T]>::into_raw` of exactly `len` elements
                // in `ensure`, and `&mut self` means no reader holds a reference into it.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(segment, len)) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_keep_their_address_while_segments_are_added() {
        let s: Segments<u64> = Segments::new(4, usize::MAX);
        s.ensure(0, || 7);
        // SAFETY: `ensure(0)` ran on this thread.
        let first: *const u64 = unsafe { s.get(0) };
        for id in 0..1000 {
            s.ensure(id, || 7);
        }
        // SAFETY: every id below 1000 was ensured on this thread.
        assert!(ptr::eq(first, unsafe { s.get(0) }));
        assert_eq!(s.allocated(), 4 * (1 + 2 + 4 + 8 + 16 + 32 + 64 + 128));
        for id in 0..1000 {
            // SAFETY: as above.
            assert_eq!(unsafe { *s.get(id) }, 7);
        }
    }

    #[test]
    fn ids_map_to_distinct_elements() {
        let s: Segments<crate::concurrent::sync::AtomicU64> = Segments::new(3, usize::MAX);
        for id in 0..300 {
            s.ensure(id, || crate::concurrent::sync::AtomicU64::new(0));
            // SAFETY: just ensured.
            unsafe { s.get(id) }.store(u64::from(id), Ordering::Relaxed);
        }
        for id in 0..300 {
            // SAFETY: ensured above.
            assert_eq!(unsafe { s.get(id) }.load(Ordering::Relaxed), u64::from(id));
        }
    }

    #[test]
    fn the_largest_id_has_a_segment() {
        let s: Segments<u8> = Segments::new(1, usize::MAX);
        let (k, offset) = s.locate(u32::MAX);
        assert!(k < SEGMENTS && offset < s.segment_len(k));
    }

    /// The segment that reaches `most` is allocated up to it: 4 + 8 + 16 + 2 elements for 30
    /// (every id below it has its element, distinct), and an id past it is refused.
    #[test]
    fn the_last_segment_stops_at_most() {
        let s: Segments<crate::concurrent::sync::AtomicU64> = Segments::new(4, 30);
        for id in 0..30 {
            s.ensure(id, || crate::concurrent::sync::AtomicU64::new(0));
            // SAFETY: just ensured.
            unsafe { s.get(id) }.store(u64::from(id), Ordering::Relaxed);
        }
        assert_eq!(s.allocated(), 30);
        for id in 0..30 {
            // SAFETY: ensured above.
            assert_eq!(unsafe { s.get(id) }.load(Ordering::Relaxed), u64::from(id));
        }
        let past = std::panic::catch_unwind(|| {
            s.ensure(30, || crate::concurrent::sync::AtomicU64::new(0))
        });
        assert!(past.is_err(), "an element past `most` is refused");
    }
}
