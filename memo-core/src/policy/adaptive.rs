//! The adaptive policy: W-TinyLFU (Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient
//! Cache Admission Policy", 2017), as in Caffeine, with its window sized by miniature
//! simulations (Waldspurger et al., "Cache Modeling and Optimization using Miniature
//! Simulations", USENIX ATC '17).
//!
//! New entries enter an LRU *window*. When the window overflows, its oldest entry has to win
//! a place in the *main* space against main's eviction victim: it is admitted only if a frequency
//! sketch has seen it more often recently (a candidate seen at least 6 times also wins one time
//! in 128, so that a flood of colliding keys cannot lock a popular candidate out). Each entry
//! keeps the sketch's estimate from when its key was last counted, halved with the sketch since,
//! and the two are compared as the miniatures compare theirs: without two sketch reads per
//! eviction (86 of the 1230 instructions of a miss at maxsize 128), for the same hit ratios but
//! on one generated trace (two interleaved loops at 1020, 4 points lower, still 6 above LRU) and
//! 0.4 points more on Zipf 0.99 at 10k. Main is a
//! segmented LRU: *probation* for entries not used since they arrived, *protected* (90% of main)
//! for those used again.
//!
//! A large window favours recency (at 99% of the capacity it is nearly LRU), a small one
//! frequency. Which is best depends on the workload, so the policy runs five sampled miniature
//! copies of itself ([`Minis`]) with fixed windows of 0 (one entry), 5, 20, 50 and 100% (pure
//! LRU) of their capacity, on the requests of a sample of the keys, and moves its own window
//! toward the share of the copy it follows: per sampled request, by 1% of the capacity when it
//! grows and 0.5% when it shrinks.
//!
//! The cache starts as LRU (a 99% window, following the LRU copy), and another copy takes over
//! only on evidence that holding other entries cannot explain. Two policies that are equally
//! good but hold different entries take turns at leading each other by up to a capacity's worth
//! of hits: on a back-and-forth sweep LRU hits the keys just seen at each turn and frequency the
//! old ones at the end of the pass, and both are optimal. Following such a lead costs the real
//! cache what it held (half a pass of hits at each switch). So a copy takes over when it has hit
//! 1.2 miniature capacities more often than the followed one since it was last behind (a CUSUM
//! test; each switch doubles that threshold, and it halves again after 64 capacities of sampled
//! requests without one), or when its hits, decaying over 16 capacities of sampled requests,
//! pass the followed one's by half a capacity: over that horizon the turns of a sweep weigh
//! against each other (their difference stays under a fifth of a capacity), while a copy that
//! hits at a higher rate (frequency on a loop larger than the cache, where LRU never hits)
//! passes the margin within a capacity of requests. Starting from LRU means the one damaging
//! move, toward LRU after main was filled by frequency, is only needed after a workload change;
//! where frequency wins, shrinking the window loses nothing (the window's oldest move to main).
//!
//! Copies with fixed windows do not see what a switch costs the real cache, which holds neither
//! the old nor the new copy's entries for a while. So the policy also compares itself with the
//! LRU copy directly: `lead` counts, with a decay over 4 capacities, the sampled requests LRU
//! hit and this policy missed, minus the reverse. While LRU is ahead by more than 0.6
//! capacities of (decayed) hits, which LRU's turn on a sweep does not reach, each request LRU would have hit grows the
//! window by one entry per sampled share plus 20% of its size, and an entry used again in main
//! moves to the window's front (the most recent of all, as in LRU) instead of protected, where a
//! shrinking main would soon lose it.
//!
//! That guard forgets; the policy's last line does not. The regret counts, with no decay, the
//! sampled requests LRU hit and this policy missed minus the reverse, while the window is
//! smaller than LRU's: what the policy's choices have cost it against LRU. Once that passes an
//! allowance of a miniature capacity plus 0.5% of the sampled requests, the miniatures go back
//! to the LRU copy and stay there (the cache is LRU, and its regret stops counting) until the
//! allowance, growing with the requests, covers it again (what the policy won over LRU counts
//! toward it up to 8 capacities, so a long good run does not license a long bad one). Each
//! switch costs at most about a capacity of hits, so the cache falls behind LRU by little more
//! than the allowance, however often two copies take turns at leading (back-and-forth sweeps
//! whose centre and width drift).
//!
//! Known limits: a switch away from LRU may cost up to the allowance, a capacity of hits,
//! which is more than 2 points of a trace only a few capacities long: short random sweeps over
//! 6000 keys at 3750 (30000 requests) fall 3.2 points below LRU for the worst of 32 seeds, as
//! the shrinking window leaves main with LRU's tail, which admission (the victim wins a tie)
//! then keeps. A cache that starts as LRU pays LRU's misses until a frequency copy has
//! proved itself (about a capacity of sampled requests on a loop, longer where the gain is
//! smaller), which shows on short traces: loops replayed for ten passes, the LIRS paper's
//! short program traces. On random short sweeps (sweeps-3000 at 2000) the cache, in transition
//! between copies, stays about 1 point below LRU although the frequency copies are 14 points
//! above it. A hot set smaller than the cache, then a scan, before the cache has first filled
//! up: as LRU, the cache loses the hot set to the scan, since no copy hits during a scan to
//! show that frequency would have kept it (`tests::policies::adaptive_keeps_hot_keys_through_a_scan`
//! keeps 1 of 50 hot keys, against 44 to 48 when the policy started from frequency).

use super::mini::Minis;
use super::sketch::FrequencySketch;
use super::EvictionPolicy;
use crate::links::Rings;

/// The low bits of a slot's metadata: which queue it is in.
const REGION_MASK: u32 = 0b11;
const WINDOW: u32 = 0;
const PROBATION: u32 = 1;
const PROTECTED: u32 = 2;

/// The window's share of the capacity when the cache first fills up: all of it but main's
/// least share, i.e. LRU (see the module doc).
const INITIAL_WINDOW: f64 = 1.0 - MIN_MAIN;
/// Protected's share of the main space (also in the miniatures).
pub(super) const PROTECTED_SHARE: f64 = 0.90;
/// The least share of the capacity left to main.
const MIN_MAIN: f64 = 0.01;
/// A candidate this frequent is admitted against a more frequent victim one time in 128.
pub(super) const JITTER_FREQUENCY: u8 = 6;
/// The comparison with LRU forgets at this many times a miniature's size (in sampled requests).
const GUARD_HORIZON: f64 = 4.0;
/// LRU is ahead when it hit this share of the recent sampled requests more than the policy:
/// 0.15 of a horizon of 4 capacities, i.e. 0.6 capacities of hits (decayed). LRU leads a
/// policy that holds other entries by up to a capacity of hits at times even where both are
/// optimal (the turn of a back-and-forth sweep, where the decayed lead stays under this); at
/// 0.002 the guard turned the cache into LRU there and lost what main held (the mini module's
/// `THRESHOLD` says the same of the miniatures). At 0.3 it came too late where the cache, on
/// its way to a frequency copy that led LRU by little, fell behind LRU (lirs-cpp at 306,
/// 3.2 points below LRU for one seed).
const GUARD_MARGIN: f64 = 0.15;
/// The real cache may fall behind LRU, by what its choices cost, by one sampled hit per this
/// many sampled requests (0.5%) ...
const REGRET_PER: i64 = 200;
/// ... plus this many miniature capacities of sampled hits; further behind, it goes back to
/// LRU and stays there until the allowance, which grows with the requests, covers the loss
/// again. The miniatures see what each copy hits, not what a switch costs the real cache (it
/// holds neither copy's entries for a while): where a frequency copy and LRU take turns at
/// leading (back-and-forth sweeps whose centre and width drift), each switch cost the real
/// cache up to a capacity of hits: 3.3 and 3.5 points below LRU in the worst cells (min of 32
/// seeds), with the allowance at most 1.95 below (drift-3000 at 1000; 2.56 below once the
/// hit-ratio tool's seeds were mixed over the hasher's state). A quarter of a capacity
/// or no capacity at all went back to LRU in transitions that pay later (sweeps-3000 at 3000
/// 2.3 to 5 points below LRU); staying with the copy followed instead of going back left the
/// drift cells where they were; 1% of the requests was 2.6 points below on a drifting zigzag.
const REGRET_BASE: usize = 1;
/// What the policy gained over LRU counts toward the allowance up to this many times
/// [`REGRET_BASE`]: after a long run where it won, a workload that makes its choices lose
/// still sends it back to LRU within a few capacities of hits, however long that run. At 4 to
/// 16, and without a cap, no cell of the traces moves.
const SLACK_CAP: i64 = 8;
/// Each sampled request that LRU would have hit and the policy missed, while LRU is ahead,
/// grows the window by this many entries per sampled share (one entry per such request).
const GUARD_STEP: f64 = 1.0;
/// ... and by this share of its size.
const GUARD_GROWTH: f64 = 0.2;
/// Otherwise, each sampled request moves the window toward the chosen miniature's share by this
/// share of the capacity (at least one entry) when it grows ...
const FOLLOW_STEP: f64 = 0.01;
/// ... and by this share when it shrinks: more slowly, since a cache that was LRU holds no
/// frequency-chosen main yet (shrinking at the growth rate left sweeps over 100 keys 2.2 points
/// below LRU when the miniatures followed small leads; 0.002, since the cache starts as LRU,
/// made it leave LRU too slowly on short traces where frequency wins).
const FOLLOW_SHRINK: f64 = 0.005;

/// The fingerprint of a hash that the sketch and the miniatures count (the region bits cleared).
#[inline]
fn fingerprint(hash: u64) -> u32 {
    (hash as u32) & !REGION_MASK
}

/// W-TinyLFU with a window sized by miniature simulations.
pub(crate) struct AdaptivePolicy {
    /// Per slot: the fingerprint of its hash, with its region in the low bits.
    meta: Vec<u32>,
    /// Per slot: the sketch's estimate for its key when last counted, and the sketch's
    /// halvings then (admission reads it, halved since, as the miniatures read theirs).
    counts: Vec<[u8; 2]>,
    /// The fingerprint, estimate and halvings of the last miss counted: the estimate of the
    /// entry inserted next, usually that key.
    last_miss: (u32, u8, u8),
    /// The window, probation and protected queues, indexed by region (the fourth is unused):
    /// a slot's region picks its queue without a branch.
    queues: Rings<4>,
    /// The shard's capacity, learnt at the first eviction (0 until then).
    capacity: usize,
    /// The window's target size, in entries.
    window_size: f64,
    /// [`Self::window_max`] and [`Self::protected_max`] as of the last rebalance (the hit
    /// path reads them).
    window_limit: usize,
    protected_limit: usize,
    sketch: FrequencySketch,
    /// Sampled copies of the policy at fixed window shares.
    minis: Minis,
    /// Recent sampled requests LRU hit and this policy missed, minus the reverse (decaying).
    lead: f64,
    /// State of the xorshift generator behind the admission jitter.
    rng: u64,
    /// The allowance ([`REGRET_BASE`] and [`REGRET_PER`]) minus the regret, in
    /// `1 / REGRET_PER`ths of a sampled hit: the regret is the sampled requests LRU hit and
    /// this policy missed, minus the reverse, counted while the window is smaller than LRU's
    /// (at LRU's window the two differ only by the sample's noise). The miniatures hold the
    /// LRU copy while it is negative.
    slack: i64,
    /// What the replay of a sampled request computes from the capacities, as of their last
    /// change ([`Self::set_sizes`]): the comparison's horizon, in sampled requests, ...
    guard_horizon: f64,
    /// ... the lead over it at which LRU is ahead, ...
    guard_limit: f64,
    /// ... entries of the cache per entry of a miniature, ...
    sample_share: f64,
    /// ... the capacity, the most the window grows by per sampled request and, negated, the
    /// most it shrinks by.
    capacity_f: f64,
    follow_grow: f64,
    follow_shrink: f64,
    /// [`Self::largest_window`].
    largest: f64,
    /// [`REGRET_BASE`] miniature capacities, in the units of `slack`.
    regret_base: i64,
}

impl AdaptivePolicy {
    pub(crate) fn new() -> Self {
        AdaptivePolicy {
            meta: Vec::new(),
            counts: Vec::new(),
            last_miss: (0, 0, 0),
            queues: Default::default(),
            capacity: 0,
            window_size: 1.0,
            window_limit: 1,
            protected_limit: 0,
            sketch: FrequencySketch::new(0),
            minis: Minis::new(),
            lead: 0.0,
            rng: 0x2545_f491_4f6c_dd1d,
            slack: 0,
            // What `set_sizes` computes of two capacities of 0 (only the guard's limit is read
            // before the capacity is known).
            guard_horizon: GUARD_HORIZON,
            guard_limit: GUARD_MARGIN * GUARD_HORIZON,
            sample_share: 0.0,
            capacity_f: 0.0,
            follow_grow: 1.0,
            follow_shrink: 0.0,
            largest: 1.0,
            regret_base: 0,
        }
    }

    /// Computes what the replay of a sampled request needs of the capacity and the
    /// miniatures' capacity (after either changed).
    #[cold]
    #[inline(never)]
    fn set_sizes(&mut self) {
        self.guard_horizon = GUARD_HORIZON * self.minis.capacity().max(1) as f64;
        self.guard_limit = GUARD_MARGIN * self.guard_horizon;
        let capacity = self.capacity as f64;
        self.capacity_f = capacity;
        self.sample_share = capacity / self.minis.capacity() as f64;
        self.follow_grow = (FOLLOW_STEP * capacity).max(1.0);
        self.follow_shrink = -FOLLOW_SHRINK * capacity;
        self.largest = self.largest_window();
        let base = (REGRET_BASE * self.minis.capacity()) as i64 * REGRET_PER;
        self.slack += base - self.regret_base;
        self.regret_base = base;
    }

    fn len(&self) -> usize {
        self.queues.len(WINDOW as usize)
            + self.queues.len(PROBATION as usize)
            + self.queues.len(PROTECTED as usize)
    }

    /// The window's size in entries; while the cache fills up, a share of its current size.
    #[inline]
    fn window_max(&self) -> usize {
        self.window_limit
    }

    #[inline]
    fn protected_max(&self) -> usize {
        self.protected_limit
    }

    fn compute_window_max(&self) -> usize {
        let size = if self.capacity > 0 {
            self.window_size
        } else {
            self.len() as f64 * INITIAL_WINDOW
        };
        // `+ 0.5` rounds a positive size (`f64::round` is a libm call on this path).
        ((size + 0.5) as usize).max(1)
    }

    fn compute_protected_max(&self) -> usize {
        let total = if self.capacity > 0 {
            self.capacity
        } else {
            self.len()
        };
        (total.saturating_sub(self.compute_window_max()) as f64 * PROTECTED_SHARE) as usize
    }

    #[inline]
    fn region(&self, slot: u32) -> u32 {
        self.meta[slot as usize] & REGION_MASK
    }

    #[inline]
    fn frequency(&self, slot: u32) -> u8 {
        let [count, then] = self.counts[slot as usize];
        super::sketch::aged(count, then, self.sketch.halvings())
    }

    /// Records `count`, the sketch's estimate for the key in `slot` just counted.
    #[inline(always)]
    fn set_count(&mut self, slot: u32, count: u8) {
        self.counts[slot as usize] = [count, self.sketch.halvings()];
    }

    /// Takes `slot` out of whichever queue holds it.
    #[inline]
    fn unlink(&mut self, slot: u32) {
        let region = self.region(slot);
        self.queues.unlink((region & REGION_MASK) as usize, slot);
    }

    /// Puts `slot`, in no queue, at the front of `region`.
    #[inline]
    fn push_front(&mut self, slot: u32, region: u32) {
        let m = &mut self.meta[slot as usize];
        *m = (*m & !REGION_MASK) | region;
        self.queues
            .push_front((region & REGION_MASK) as usize, slot);
    }

    /// Moves `slot` to the front of `region`.
    #[inline]
    fn move_to(&mut self, slot: u32, region: u32) {
        self.unlink(slot);
        self.push_front(slot, region);
    }

    /// Moves the window's oldest entries to probation until the window fits its size, and
    /// protected's oldest until protected fits its share.
    fn rebalance(&mut self) {
        self.window_limit = self.compute_window_max();
        self.protected_limit = self.compute_protected_max();
        self.spill();
    }

    /// [`Self::rebalance`] without recomputing the sizes: enough when neither the window's size
    /// nor the capacity changed since the last one.
    #[inline]
    fn spill(&mut self) {
        let window_max = self.window_max();
        while self.queues.len(WINDOW as usize) > window_max {
            let Some(slot) = self.queues.back(WINDOW as usize) else {
                break;
            };
            self.move_to(slot, PROBATION);
        }
        let protected_max = self.protected_max();
        while self.queues.len(PROTECTED as usize) > protected_max {
            let Some(slot) = self.queues.back(PROTECTED as usize) else {
                break;
            };
            self.move_to(slot, PROBATION);
        }
    }

    /// Main's eviction victim: probation's oldest, else protected's oldest.
    fn main_victim(&self) -> Option<u32> {
        self.queues
            .back(PROBATION as usize)
            .or_else(|| self.queues.back(PROTECTED as usize))
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Whether the window's `candidate` should replace main's `victim`.
    fn admit(&mut self, candidate: u32, victim: u32) -> bool {
        let candidate_frequency = self.frequency(candidate);
        if candidate_frequency > self.frequency(victim) {
            true
        } else {
            candidate_frequency >= JITTER_FREQUENCY && self.next_random() & 127 == 0
        }
    }

    /// Whether LRU hit clearly more of the recent sampled requests than this policy.
    #[inline]
    fn lru_ahead(&self) -> bool {
        self.lead > self.guard_limit
    }

    /// Replays a request in the miniatures (if sampled). While LRU is ahead of this policy,
    /// each request it would have hit and this policy missed grows the window toward LRU;
    /// otherwise the window moves toward the share of the best miniature.
    ///
    /// `frequency` is the sketch's estimate for `fp` after counting this request.
    #[inline]
    fn simulate(&mut self, fp: u32, frequency: u8, hit: bool) {
        if self.capacity != 0 && self.minis.samples(fp) {
            self.simulate_sampled(fp, frequency, hit);
        }
    }

    /// [`Self::simulate`] for a sampled request, once the capacity is known: out of line, so
    /// that the unsampled hits' replay stays short.
    #[inline(never)]
    fn simulate_sampled(&mut self, fp: u32, frequency: u8, hit: bool) {
        self.minis.hold_lru(self.slack < 0);
        self.minis.access(fp, frequency, self.sketch.halvings());
        let lru_hit = self.minis.lru_hit();
        self.slack += 1;
        if self.window_size < self.largest {
            self.slack -= (i64::from(lru_hit) - i64::from(hit)) * REGRET_PER;
        }
        self.slack = self.slack.min(self.regret_base * SLACK_CAP);
        self.lead -= self.lead / self.guard_horizon;
        match (lru_hit, hit) {
            (true, false) => {
                self.lead += 1.0;
                if self.lru_ahead() {
                    self.resize(GUARD_STEP * self.sample_share + GUARD_GROWTH * self.window_size);
                    return;
                }
            }
            (false, true) => self.lead -= 1.0,
            _ => {}
        }
        if self.lru_ahead() {
            return;
        }
        let target = self.minis.chosen_share() * self.capacity_f;
        // The move is 0 exactly when the window is at the target (the bounds have either sign).
        if target != self.window_size {
            let delta = (target - self.window_size).clamp(self.follow_shrink, self.follow_grow);
            self.resize(delta);
        }
    }

    /// The largest window: all but main's least share.
    fn largest_window(&self) -> f64 {
        let capacity = self.capacity as f64;
        (capacity - (MIN_MAIN * capacity).max(1.0)).max(1.0)
    }

    /// Moves the window's size by `delta` entries, within its bounds.
    fn resize(&mut self, delta: f64) {
        let size = (self.window_size + delta).clamp(1.0, self.largest);
        // At its bound (LRU's largest window, a one-entry window), the size does not move, and
        // every operation leaves the queues within their sizes: nothing to rebalance.
        if size != self.window_size {
            self.window_size = size;
            self.rebalance();
        }
    }

    /// The shard is full for the first time: its size is its capacity. The miniatures start
    /// with what the cache holds (while it filled up, every policy kept every key).
    fn learn_capacity(&mut self) {
        self.capacity = self.len();
        self.window_size =
            (self.capacity as f64 * INITIAL_WINDOW).clamp(1.0, self.largest_window());
        self.sketch.ensure_capacity(self.capacity);
        self.minis.set_capacity(self.capacity);
        self.set_sizes();
        let mut slots: Vec<u32> = Vec::with_capacity(self.len());
        for region in [PROTECTED, PROBATION, WINDOW] {
            let mut at = self.queues.back(region as usize);
            while let Some(slot) = at {
                slots.push(slot);
                at = self.queues.prev(slot);
            }
        }
        self.minis.seed(
            slots.iter().map(|&s| self.meta[s as usize] & !REGION_MASK),
            &self.sketch,
        );
        self.rebalance();
    }
}

impl AdaptivePolicy {
    /// Replays a run of hits (slot ids, oldest first) as `on_hit` would one by one, for the
    /// ids that `is_live` accepts: the replay of a buffer of hits, with the policy's dispatch
    /// out of the loop. Out of line: inlined into the replay of the stripes' buffers, the loop
    /// ran out of registers.
    #[inline(never)]
    pub(crate) fn on_hits(&mut self, slots: &[u64], is_live: impl Fn(u32) -> bool) {
        if self.capacity == 0 {
            // Hits do not fill the cache: the capacity stays unknown through the run.
            for &slot in slots {
                let slot = slot as u32;
                if is_live(slot) {
                    self.hit_while_filling(slot);
                }
            }
        } else {
            for &slot in slots {
                let slot = slot as u32;
                if is_live(slot) {
                    self.hit(slot);
                }
            }
        }
    }

    /// [`Self::hit`] before the cache first fills up: nothing is simulated, and LRU cannot be
    /// ahead.
    #[inline(always)]
    fn hit_while_filling(&mut self, slot: u32) {
        let meta = self.meta[slot as usize];
        let count = self.sketch.increment_slot(slot, meta & !REGION_MASK);
        self.set_count(slot, count);
        self.move_up(slot, meta & REGION_MASK);
    }

    /// A lookup found the entry at `slot`: counted by the sketch, replayed in the miniatures if
    /// sampled, and moved up in its region.
    #[inline(always)]
    fn hit(&mut self, slot: u32) {
        if self.capacity == 0 {
            return self.hit_while_filling(slot);
        }
        let fp = self.meta[slot as usize] & !REGION_MASK;
        let frequency = self.sketch.increment_slot(slot, fp);
        self.set_count(slot, frequency);
        if self.minis.samples(fp) {
            self.simulate_sampled(fp, frequency, true);
        }
        if self.lru_ahead() {
            self.hit_while_lru_is_ahead(slot);
            return;
        }
        // The replay may have moved the entry (a resized window spills into probation).
        self.move_up(slot, self.region(slot));
    }

    /// A hit on the entry at `slot`, in `region`, while the cache is not behaving like LRU:
    /// to the front of the window or protected, or from probation into protected.
    #[inline(always)]
    fn move_up(&mut self, slot: u32, region: u32) {
        match region {
            // The same order as `move_to`, without the bookkeeping of leaving a queue.
            WINDOW => self.queues.move_to_front(WINDOW as usize, slot),
            PROBATION => {
                self.move_to(slot, PROTECTED);
                if self.queues.len(PROTECTED as usize) > self.protected_max()
                    && let Some(demoted) = self.queues.back(PROTECTED as usize)
                {
                    self.move_to(demoted, PROBATION);
                }
            }
            _ => self.queues.move_to_front(PROTECTED as usize, slot),
        }
    }

    /// Behaving like LRU: an entry used again is the most recent of all, so it goes to the
    /// window's front, and the window's oldest spills into probation. In protected it would be
    /// demoted and lost as soon as main shrinks.
    #[cold]
    fn hit_while_lru_is_ahead(&mut self, slot: u32) {
        if self.region(slot) == WINDOW {
            self.queues.move_to_front(WINDOW as usize, slot);
        } else {
            self.move_to(slot, WINDOW);
            self.rebalance();
        }
    }
}

impl EvictionPolicy for AdaptivePolicy {
    fn on_insert(&mut self, slot: u32, hash: u64) {
        let idx = slot as usize;
        if self.meta.len() <= idx {
            self.meta.resize(idx + 1, 0);
            self.counts.resize(idx + 1, [0; 2]);
        }
        let fp = fingerprint(hash);
        self.meta[idx] = fp;
        let (missed, count, then) = self.last_miss;
        self.counts[idx] = if missed == fp {
            [count, then]
        } else {
            [self.sketch.frequency(fp), self.sketch.halvings()]
        };
        self.sketch.forget_slot(slot);
        self.push_front(slot, WINDOW);
        if self.capacity == 0 {
            self.sketch.ensure_capacity(self.len());
        } else if self.len() > self.capacity {
            // A weighted shard: lighter entries let it hold more than when it first filled up.
            self.capacity = self.len();
            self.sketch.ensure_capacity(self.capacity);
            self.minis.set_capacity(self.capacity);
            self.set_sizes();
        } else {
            // The sizes follow the window's size and the capacity only, both unchanged.
            self.spill();
            return;
        }
        self.rebalance();
    }

    #[inline]
    fn on_hit(&mut self, slot: u32) {
        self.hit(slot);
    }

    fn on_miss(&mut self, hash: u64) {
        let fp = fingerprint(hash);
        let frequency = self.sketch.increment(fp);
        self.last_miss = (fp, frequency, self.sketch.halvings());
        self.simulate(fp, frequency, false);
    }

    fn on_remove(&mut self, slot: u32) {
        self.unlink(slot);
        self.sketch.forget_slot(slot);
        if self.capacity == 0 {
            self.rebalance(); // the shares follow the size until the cache is first full
        }
    }

    fn on_move(&mut self, from: u32, to: u32) {
        self.queues.relocate(from, to);
        if self.meta.len() <= to as usize {
            self.meta.resize(to as usize + 1, 0);
            self.counts.resize(to as usize + 1, [0; 2]);
        }
        self.meta[to as usize] = self.meta[from as usize];
        self.counts[to as usize] = self.counts[from as usize];
        self.sketch.relocate_slot(from, to);
    }

    fn evict(&mut self, _incoming_hash: u64) -> u32 {
        if self.capacity == 0 {
            self.learn_capacity();
        }
        let victim = if self.queues.len(WINDOW as usize) >= self.window_max() {
            // The newcomer pushes the window's oldest out: it competes with main's victim.
            let candidate = self
                .queues
                .back(WINDOW as usize)
                .expect("evict is only called on a non-empty shard");
            match self.main_victim() {
                Some(victim) if self.admit(candidate, victim) => {
                    self.move_to(candidate, PROBATION);
                    victim
                }
                _ => candidate,
            }
        } else {
            // The window is growing into main's space: main gives up its victim.
            self.main_victim()
                .or_else(|| self.queues.back(WINDOW as usize))
                .expect("evict is only called on a non-empty shard")
        };
        self.unlink(victim);
        self.sketch.forget_slot(victim);
        victim
    }

    fn clear(&mut self) {
        // The capacity, the window's size, the sketch and the miniatures' choice are kept: they
        // describe the workload, not the entries.
        self.meta.clear();
        self.counts.clear();
        self.sketch.clear_slots();
        self.queues.clear();
        self.minis.clear();
        self.lead = 0.0;
    }

    #[cfg(test)]
    fn validate(&self, len: usize) {
        let mut seen = 0;
        for region in [WINDOW, PROBATION, PROTECTED] {
            for slot in self.queues.validate(region as usize) {
                assert_eq!(self.region(slot), region, "slot {slot} knows its queue");
                seen += 1;
            }
        }
        assert_eq!(seen, len, "the queues hold every entry");
        if self.capacity > 0 {
            assert!(len <= self.capacity, "{len} entries over {}", self.capacity);
        }
        assert!(
            self.queues.len(WINDOW as usize) <= self.window_max(),
            "window {} over {}",
            self.queues.len(WINDOW as usize),
            self.window_max()
        );
        assert!(
            self.queues.len(PROTECTED as usize) <= self.protected_max(),
            "protected {} over {}",
            self.queues.len(PROTECTED as usize),
            self.protected_max()
        );
        self.minis.validate();
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use std::collections::HashMap;

    use super::*;

    /// Drives the policy the way a shard does, with `validate` after every access.
    pub(crate) struct Driver {
        pub(crate) policy: AdaptivePolicy,
        capacity: usize,
        /// The key stored in each slot.
        pub(crate) slots: Vec<u64>,
        pub(crate) index: HashMap<u64, u32>,
    }

    impl Driver {
        pub(crate) fn new(capacity: usize) -> Self {
            Driver {
                policy: AdaptivePolicy::new(),
                capacity,
                slots: Vec::new(),
                index: HashMap::new(),
            }
        }

        /// A lookup, then an insert on a miss; whether it hit.
        pub(crate) fn access(&mut self, key: u64) -> bool {
            let hash = key.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
            if let Some(&slot) = self.index.get(&key) {
                self.policy.on_hit(slot);
                return true;
            }
            self.policy.on_miss(hash);
            let slot = if self.slots.len() >= self.capacity {
                let victim = self.policy.evict(hash);
                self.index.remove(&self.slots[victim as usize]);
                self.slots[victim as usize] = key;
                victim
            } else {
                self.slots.push(key);
                (self.slots.len() - 1) as u32
            };
            self.index.insert(key, slot);
            self.policy.on_insert(slot, hash);
            self.policy.validate(self.slots.len());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    /// Each new key is used again once, 250 new keys later: LRU of 1000 hits every second use.
    fn short_lived(driver: &mut Driver, from: u64, to: u64) -> usize {
        (from..to)
            .map(|i| {
                driver.access(i);
                usize::from(i >= 250 && driver.access(i - 250))
            })
            .sum()
    }

    /// 900 hot keys in a cycle, each between two one-off keys: LRU of 1000 never hits.
    fn hot_set_among_one_offs(driver: &mut Driver, from: u64, to: u64) -> usize {
        (from..to)
            .map(|i| {
                driver.access(1 << 40 | i);
                usize::from(driver.access(i % 900))
            })
            .sum()
    }

    #[test]
    fn window_grows_until_short_lived_keys_hit() {
        let mut driver = Driver::new(1000);
        short_lived(&mut driver, 0, 10_000);
        assert!(
            driver.policy.window_max() > 250,
            "window {}",
            driver.policy.window_max()
        );
        let hits = short_lived(&mut driver, 10_000, 20_000);
        assert!(hits > 9_500, "{hits} of 10000 second uses hit");
    }

    #[test]
    fn window_shrinks_when_frequency_pays_again() {
        let mut driver = Driver::new(1000);
        short_lived(&mut driver, 0, 10_000);
        let grown = driver.policy.window_max();
        hot_set_among_one_offs(&mut driver, 0, 30_000);
        let shrunk = driver.policy.window_max();
        assert!(shrunk < grown / 4, "window {grown} then {shrunk}");
        let hits = hot_set_among_one_offs(&mut driver, 30_000, 40_000);
        assert!(hits > 8_000, "{hits} of 10000 hot lookups hit");
    }

    #[test]
    fn while_lru_is_ahead_a_hit_in_main_moves_to_the_window() {
        let mut driver = Driver::new(1000);
        // The cache starts as LRU: a hot set among one-off keys makes it frequency first.
        hot_set_among_one_offs(&mut driver, 0, 30_000);
        assert!(
            driver.policy.window_max() < 100,
            "{}",
            driver.policy.window_max()
        );
        // The miniatures follow a recency workload before the guard sees LRU ahead by more than
        // a capacity of hits (its margin), so the lead is set here: ahead by two more requests
        // than it takes, so that the hit below still sees it ahead.
        driver.policy.lead = driver.policy.guard_limit + 2.0;
        assert!(driver.policy.lru_ahead());
        let main_slot = |d: &Driver| {
            d.index
                .values()
                .copied()
                .find(|&slot| d.policy.region(slot) != WINDOW)
        };
        let slot = main_slot(&driver).expect("main holds entries");
        driver.policy.on_hit(slot);
        assert_eq!(driver.policy.region(slot), WINDOW);
        assert_eq!(
            driver.policy.queues.front(WINDOW as usize),
            Some(slot),
            "the most recent of all"
        );
        driver.policy.validate(driver.slots.len());
    }

    /// Every queue's slots, front to back, and the sketch's estimate of every stored key.
    fn snapshot(driver: &Driver) -> (Vec<Vec<u32>>, Vec<u8>) {
        let p = &driver.policy;
        let queues = (0..3).map(|q| p.queues.validate(q)).collect();
        let estimates = (0..driver.slots.len() as u32)
            .map(|s| p.frequency(s))
            .collect();
        (queues, estimates)
    }

    #[test]
    fn a_run_of_hits_replays_as_hits_one_by_one_and_skips_dead_slots() {
        for (fill, capacity) in [(40, 64), (64 + 500, 64)] {
            // Before the cache fills up, and once it is full (sampled, simulated).
            let mut one = Driver::new(capacity);
            let mut run = Driver::new(capacity);
            for k in 0..fill {
                one.access(k % 300);
                run.access(k % 300);
            }
            let mut x = 7u64;
            let slots: Vec<u64> = (0..200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % one.slots.len() as u64
                })
                .collect();
            let dead = slots[3] as u32;
            for &slot in &slots {
                if slot as u32 != dead {
                    one.policy.on_hit(slot as u32);
                }
            }
            run.policy.on_hits(&slots, |slot| slot != dead);
            run.policy.validate(run.slots.len());
            assert_eq!(snapshot(&one), snapshot(&run), "fill {fill}");
            // A run of only a dead slot changes nothing.
            let before = snapshot(&run);
            run.policy
                .on_hits(&[u64::from(dead); 40], |slot| slot != dead);
            assert_eq!(snapshot(&run), before);
        }
    }

    #[test]
    fn what_the_policy_won_over_lru_counts_toward_its_allowance_up_to_a_cap() {
        let mut driver = Driver::new(1000);
        // Frequency hits the hot set, LRU never: the policy wins on every sampled hot request.
        hot_set_among_one_offs(&mut driver, 0, 100_000);
        let p = &driver.policy;
        assert!(p.window_max() < 100, "window {}", p.window_max());
        assert!(p.regret_base > 0);
        assert_eq!(p.slack, SLACK_CAP * p.regret_base, "at the cap");
    }

    #[test]
    fn past_its_allowance_the_policy_goes_back_to_lru() {
        let mut driver = Driver::new(1000);
        hot_set_among_one_offs(&mut driver, 0, 30_000);
        assert!(driver.policy.window_max() < 100);
        // The policy's choices have cost it more than its allowance: the LRU copy is chosen
        // at the next sampled request, and the window grows to LRU's.
        driver.policy.slack = -(REGRET_PER * 1_000_000);
        hot_set_among_one_offs(&mut driver, 30_000, 31_000);
        let p = &driver.policy;
        assert_eq!(p.minis.chosen_share(), 1.0);
        assert_eq!(p.window_size, p.largest, "LRU's window");
        // At LRU's window the regret no longer counts: it stays held however LRU fares.
        assert!(p.slack < 0);
        assert!(p.minis.held());
    }

    #[test]
    fn capacity_is_learnt_at_the_first_eviction() {
        let mut driver = Driver::new(64);
        for k in 0..64 {
            driver.access(k);
        }
        assert_eq!(driver.policy.capacity, 0, "not full yet");
        driver.access(64);
        assert_eq!(driver.policy.capacity, 64);
        assert_eq!(driver.policy.len(), 64);
    }
}
