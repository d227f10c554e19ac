//! The expiry order of a shard with a ttl, behind the shard's lock.
//!
//! Without jitter every entry lives exactly the ttl, so insertion order is expiry order: one
//! queue, whose back is the next to expire. With jitter (`ttl_jitter`), an entry's deadline is
//! `now + ttl - offset`, the offset uniform in `[0, window)`, and one queue would no longer be
//! sorted. The offsets are split into [`LANES`] equal ranges, one queue per range: in a lane, an
//! entry stored later has a deadline at most one lane's width (`window / LANES`) earlier than an
//! entry stored before it. So the sweep that pops each lane's back while it is expired leaves an
//! expired entry behind at most that long (lookups check each entry's own deadline and never
//! return it), and an exact sweep (for reports) walks each lane only until an entry that
//! expires more than a lane's width from now.

use crate::links::{Links, Queue};

/// Queues of a shard whose deadlines are jittered.
pub(crate) const LANES: usize = 8;

pub(crate) struct Expiry {
    pub(crate) ttl: u64,
    /// The latest time seen under the lock: callers read the clock before locking, so a
    /// thread can arrive with an older time than one already used; deadlines must not go back.
    pub(crate) high_water: u64,
    /// The spread of deadlines below `now + ttl` (0: no jitter), less than `ttl`.
    window: u64,
    /// One lane's share of `window` (rounded up; 0 without jitter).
    lane_width: u64,
    /// The state of the per-insert random numbers (wyrand), behind the lock like the rest.
    rng: u64,
    links: Links,
    lanes: Vec<Queue>,
    /// Per slot, its lane (jitter only: a byte per entry).
    lane: Vec<u8>,
}

impl Expiry {
    /// Expiry after `ttl` nanoseconds, deadlines spread over the last `jitter` (a fraction in
    /// `[0, 1]`) of it.
    pub(crate) fn new(ttl: u64, jitter: f64) -> Self {
        let window = ((ttl as f64 * jitter) as u64).min(ttl.saturating_sub(1));
        let lanes = if window > 0 { LANES } else { 1 };
        Expiry {
            ttl,
            high_water: 0,
            window,
            lane_width: window.div_ceil(lanes as u64),
            rng: seed(),
            links: Links::default(),
            lanes: vec![Queue::default(); lanes],
            lane: Vec::new(),
        }
    }

    /// The deadline of an entry stored at `now`, and the lane it goes to.
    #[inline]
    pub(crate) fn deadline(&mut self, now: u64) -> (u64, usize) {
        let end = now.saturating_add(self.ttl);
        if self.window == 0 {
            return (end, 0);
        }
        let r = self.next_random();
        // The top bits of `r` pick the offset in the window and, consistently, its lane.
        let offset = ((r as u128 * self.window as u128) >> 64) as u64;
        let lane = ((r as u128 * LANES as u128) >> 64) as usize;
        (end - offset, lane)
    }

    /// wyrand: one multiply per number, good enough to spread deadlines.
    #[inline]
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.rng as u128).wrapping_mul((self.rng ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u64
    }

    /// Adds the entry `id`, just stored, to `lane` (from [`Expiry::deadline`]).
    #[inline]
    pub(crate) fn push(&mut self, id: u32, lane: usize) {
        self.lanes[lane].push_front(&mut self.links, id);
        if self.lanes.len() > 1 {
            let at = id as usize;
            if self.lane.len() <= at {
                self.lane.resize(at + 1, 0);
            }
            self.lane[at] = lane as u8;
        }
    }

    /// Takes the entry `id` out of its lane.
    #[inline]
    pub(crate) fn unlink(&mut self, id: u32) {
        let lane = self.lane_of(id);
        self.lanes[lane].unlink(&mut self.links, id);
    }

    /// The entry at slot `from` now lives at slot `to`, which held nothing.
    pub(crate) fn relocate(&mut self, from: u32, to: u32) {
        let lane = self.lane_of(from);
        self.lanes[lane].relocate(&mut self.links, from, to);
        if self.lanes.len() > 1 {
            let at = to as usize;
            if self.lane.len() <= at {
                self.lane.resize(at + 1, 0);
            }
            self.lane[at] = lane as u8;
        }
    }

    /// The lane holding `id`.
    #[inline]
    fn lane_of(&self, id: u32) -> usize {
        match self.lane.get(id as usize) {
            Some(&lane) if self.lanes.len() > 1 => lane as usize,
            _ => 0,
        }
    }

    /// The oldest entry of some lane for which `past` holds, if any (the sweep on writes).
    #[inline]
    pub(crate) fn next_past(&self, mut past: impl FnMut(u32) -> bool) -> Option<u32> {
        self.lanes
            .iter()
            .filter_map(|q| q.back())
            .find(|&id| past(id))
    }

    /// Every entry past its deadline at `now`, given `deadline` per slot: the exact sweep.
    pub(crate) fn all_past(&self, now: u64, deadline: impl Fn(u32) -> u64) -> Vec<u32> {
        let mut found = Vec::new();
        for q in &self.lanes {
            let mut cur = q.back();
            while let Some(id) = cur {
                let d = deadline(id);
                if d <= now {
                    found.push(id);
                } else if d - now > self.lane_width {
                    // Every newer entry of this lane expires after `d - lane_width > now`.
                    break;
                }
                cur = self.links.prev(id);
            }
        }
        found
    }

    /// Forgets every entry.
    pub(crate) fn clear(&mut self) {
        self.links.clear();
        self.lanes.iter_mut().for_each(|q| *q = Queue::default());
    }

    /// Checks every lane and its order against the deadlines; returns how many entries the
    /// lanes hold (tests only).
    #[cfg(test)]
    pub(crate) fn validate(&self, deadline: impl Fn(u32) -> u64) -> usize {
        let mut total = 0;
        for q in &self.lanes {
            let order = q.validate(&self.links);
            total += order.len();
            // From the oldest: nothing newer expires more than a lane's width before it.
            let mut latest = 0;
            for &id in order.iter().rev() {
                let d = deadline(id);
                assert!(
                    d.saturating_add(self.lane_width) >= latest,
                    "expiry lane out of order: deadline {d} after {latest} (width {})",
                    self.lane_width
                );
                latest = latest.max(d);
            }
        }
        total
    }
}

/// A different seed per shard (std's per-`RandomState` keys), so caches do not share offsets.
/// An offset in `[0, window)` that `state` picks, uniformly as `state` varies: wyrand's mix.
#[inline]
pub(crate) fn pick(window: u64, state: u64) -> u64 {
    let t = (state as u128).wrapping_mul((state ^ 0xe703_7ed1_a0b4_28db) as u128);
    let r = ((t >> 64) ^ t) as u64;
    ((r as u128 * window as u128) >> 64) as u64
}

/// The jitter of ttls given out one at a time, outside any lock (a store's write, a stamp's
/// shift): `cut(ttl)` is `ttl` less an offset uniform in `[0, ttl * fraction)`, so in
/// `(ttl * (1 - fraction), ttl]`. Its state is one atomic (wyrand's counter, bumped per draw).
pub(crate) struct Jitter {
    fraction: f64,
    rng: std::sync::atomic::AtomicU64,
}

impl Jitter {
    /// Offsets over `fraction` (clamped to `[0, 1]`; NaN is none) of each ttl.
    pub(crate) fn new(fraction: f64) -> Self {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        Jitter {
            fraction,
            rng: std::sync::atomic::AtomicU64::new(seed()),
        }
    }

    /// The fraction of each ttl offsets are drawn over.
    #[cfg_attr(not(feature = "stores"), allow(dead_code))] // a store's writes
    pub(crate) fn fraction(&self) -> f64 {
        self.fraction
    }

    /// The window offsets of `span` nanoseconds are drawn from: `span * fraction`, below `span`.
    pub(crate) fn window(&self, span: u64) -> u64 {
        ((span as f64 * self.fraction) as u64).min(span.saturating_sub(1))
    }

    /// An offset uniform in `[0, span * fraction)` nanoseconds, below `span` (0 when off).
    pub(crate) fn offset(&self, span: u64) -> u64 {
        let window = self.window(span);
        if window == 0 {
            return 0;
        }
        let state = self
            .rng
            .fetch_add(0xa076_1d64_78bd_642f, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(0xa076_1d64_78bd_642f);
        pick(window, state)
    }

    /// `ttl` less an offset: uniform in `(ttl * (1 - fraction), ttl]`.
    #[cfg_attr(not(feature = "stores"), allow(dead_code))] // a store's writes
    pub(crate) fn cut(&self, ttl: std::time::Duration) -> std::time::Duration {
        let nanos = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        ttl.saturating_sub(std::time::Duration::from_nanos(self.offset(nanos)))
    }
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(&h as *const _ as usize);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jitter_cuts_each_ttl_uniformly_within_its_fraction() {
        let ttl = std::time::Duration::from_secs(10);
        assert_eq!(Jitter::new(0.0).cut(ttl), ttl);
        assert_eq!(Jitter::new(f64::NAN).cut(ttl), ttl);
        let jitter = Jitter::new(0.2);
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            let cut = jitter.cut(ttl);
            assert!(cut <= ttl && cut > ttl.mul_f64(0.8), "{cut:?}");
            let offset = (ttl - cut).as_secs_f64() / 2.0; // in [0, 1)
            buckets[(offset * 10.0) as usize] += 1;
        }
        // 1000 expected per bucket: chi-square over 9 degrees of freedom, 0.999 quantile 27.9.
        let chi: f64 = buckets
            .iter()
            .map(|&n| (f64::from(n) - 1000.0).powi(2) / 1000.0)
            .sum();
        assert!(chi < 27.9, "{buckets:?}");
        assert_eq!(Jitter::new(1.0).offset(1), 0);
        assert!(Jitter::new(1.0).offset(100) < 100);
    }

    #[test]
    fn deadlines_without_jitter_are_exact_and_in_one_lane() {
        let mut e = Expiry::new(1_000, 0.0);
        for now in [0, 5, 1 << 40] {
            assert_eq!(e.deadline(now), (now + 1_000, 0));
        }
    }

    #[test]
    fn jittered_deadlines_stay_within_the_window_and_lanes_match_offsets() {
        let mut e = Expiry::new(1_000_000, 0.1);
        let (window, width) = (e.window, e.lane_width);
        assert_eq!((window, width), (100_000, 12_500));
        for _ in 0..10_000 {
            let (d, lane) = e.deadline(0);
            assert!((900_001..=1_000_000).contains(&d), "deadline {d}");
            let offset = 1_000_000 - d;
            let low = lane as u64 * window / LANES as u64;
            assert!(
                offset + 1 >= low && offset <= low + width,
                "offset {offset} in lane {lane}"
            );
        }
    }

    #[test]
    fn full_jitter_never_expires_an_entry_at_birth() {
        let mut e = Expiry::new(10, 1.0);
        for _ in 0..1_000 {
            assert!(e.deadline(7).0 > 7);
        }
    }
}
