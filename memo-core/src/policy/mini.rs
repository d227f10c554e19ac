//! Miniature simulations (Waldspurger, Saemundsson, Ahmad and Park, "Cache Modeling and
//! Optimization using Miniature Simulations", USENIX ATC '17): a few small W-TinyLFU caches, each
//! with its own fixed window share (from pure frequency to pure LRU), replay the requests of a
//! sample of the keys, and the adaptive policy gives its own window the share of the one that has
//! hit most lately.
//!
//! Only keys whose fingerprint falls in a sample (a `2^-k` share of all keys, chosen by the
//! fingerprint's high bits) are replayed, into caches of `capacity * 2^-k` entries. Spatial
//! sampling keeps hit ratios: the sampled keys see the same reuse distances, scaled by the same
//! factor (Waldspurger et al., "Efficient MRC Construction with SHARDS", FAST '15). Caches of
//! fewer than `2 * MIN_MINI` entries are simulated whole, larger ones on at most half of their
//! keys (the replay is most of what a small cache's hits and misses cost), and large ones with
//! at most [`MAX_MINI`] entries per miniature.
//!
//! The miniatures share one index from fingerprint to node and the real cache's frequency sketch
//! (which counts every request, so the sampled keys' counts are what each miniature would have
//! counted); each keeps its own queues, and a node is freed when no miniature holds it.

use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use super::adaptive::{JITTER_FREQUENCY, PROTECTED_SHARE};
use super::sketch::FrequencySketch;
use crate::links::{Links, Queue};

/// The window's share of each miniature's capacity: pure frequency (a one-entry window) to pure
/// LRU (the whole cache is the window).
pub(crate) const SHARES: [f64; LANES] = [0.0, 0.05, 0.2, 0.5, 1.0];

/// How many miniatures.
pub(crate) const LANES: usize = 5;

/// The index of the pure LRU miniature in [`SHARES`].
pub(crate) const LRU_LANE: usize = LANES - 1;

/// The most entries a miniature holds: bounds memory and time.
pub(crate) const MAX_MINI: usize = 1024;

/// The fewest entries a sampled miniature holds: a cache of at least twice this many replays at
/// most half of its keys (the replay is what a small cache's hits and misses pay), and smaller
/// ones replay all of theirs.
pub(crate) const MIN_MINI: usize = 64;

/// Caches large enough for [`MIN_MINI`] replay at most `2^-MIN_SAMPLE_BITS` of their keys.
const MIN_SAMPLE_BITS: u32 = 1;

/// A miniature takes over when it has hit this share of its capacity more often than the
/// current one since it was last behind (a CUSUM test). Two equally good policies that hold
/// different entries can each lead the other by up to a capacity's worth of hits (on a
/// back-and-forth sweep, LRU hits the keys just seen at each turn and frequency the old ones at
/// the end of the pass), so a smaller lead is no evidence; at 0.1 the cache followed those leads
/// and lost half a pass of hits at each switch (4.5 points below LRU on a zigzag over 5000 keys).
const THRESHOLD: f64 = 1.2;

/// Each miniature's hits also decay over this many capacities of sampled requests ...
const SCORE_HORIZON: f64 = 16.0;

/// ... and a miniature whose decayed hits pass the current one's by this share of its
/// capacity takes over too. A lead that comes from holding different entries is a burst of
/// at most a capacity of hits, which a long horizon weighs against the other's burst before it
/// (on a back-and-forth sweep the difference stays under a fifth of a capacity); a lead in the
/// rate of hits grows past this in a capacity of requests or less when it is large (a loop
/// larger than the cache: frequency hits, LRU never). This is what makes a cache that starts
/// as LRU leave it soon where frequency wins, without the CUSUM test's slow large threshold.
const SCORE_MARGIN: f64 = 0.5;

/// The least threshold, in sampled hits.
const MIN_THRESHOLD: f64 = 2.0;

/// After each switch the threshold doubles (two lanes that take turns cost little once the
/// threshold has grown), and it halves again after this many capacities of sampled requests
/// without a switch.
const CALM: usize = 64;

/// The threshold grows to at most `2^MAX_BACKOFF` times its base.
const MAX_BACKOFF: u32 = 6;

/// A node's region in a lane it is not in.
const ABSENT: u8 = 0;
const WINDOW: u8 = 1;
const PROBATION: u8 = 2;
const PROTECTED: u8 = 3;

/// Hashes a fingerprint, which is already well mixed, by one multiplication.
#[derive(Default)]
pub(crate) struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        // The product's low bits depend on the fingerprint's low bits only (two of which are
        // always zero): fold the high half in, which hashbrown takes its bucket from.
        self.0 ^ self.0 >> 32
    }
}

/// One miniature: W-TinyLFU with a fixed window.
#[derive(Default)]
struct Lane {
    links: Links,
    /// The window, probation and protected queues, indexed by region (`ABSENT`'s unused):
    /// a node's region picks its queue without a branch.
    queues: [Queue; 4],
    window_max: usize,
    protected_max: usize,
    /// Sampled hits this lane would have had more than the chosen one, since it was last behind.
    lead: f64,
    /// Hits, decaying over [`SCORE_HORIZON`] capacities of sampled requests.
    score: f64,
    /// Whether the last request hit.
    hit: bool,
}

impl Lane {
    fn len(&self) -> usize {
        self.queues[WINDOW as usize].len()
            + self.queues[PROBATION as usize].len()
            + self.queues[PROTECTED as usize].len()
    }
}

/// The miniatures of one cache.
pub(crate) struct Minis {
    /// Bits of a fingerprint (from the top) that must be zero for it to be sampled.
    sample_bits: u32,
    /// Each miniature's capacity (0 until the real cache's is known).
    capacity: usize,
    index: HashMap<u32, u32, BuildHasherDefault<FingerprintHasher>>,
    /// The fingerprint in each node.
    fingerprints: Vec<u32>,
    /// Each node's region in each lane.
    regions: Vec<[u8; LANES]>,
    /// Each node's frequency estimate at its last request, and the sketch's halvings then: the
    /// lanes compare these rather than read the sketch twice per lane (a sampled key's estimate
    /// moves between its requests only by halvings and by collisions with other keys).
    counts: Vec<(u8, u8)>,
    /// Nodes no lane holds, for reuse.
    free: Vec<u32>,
    lanes: [Lane; LANES],
    /// Sampled requests since the last switch or calming.
    requests: usize,
    /// The threshold is `THRESHOLD * capacity * 2^backoff`.
    backoff: u32,
    /// The lane whose share the real cache's window follows (LRU until another one leads).
    chosen: usize,
    rng: u64,
}

impl Minis {
    pub(crate) fn new() -> Self {
        Minis {
            sample_bits: 0,
            capacity: 0,
            index: HashMap::default(),
            fingerprints: Vec::new(),
            regions: Vec::new(),
            counts: Vec::new(),
            free: Vec::new(),
            lanes: Default::default(),
            requests: 0,
            backoff: 0,
            chosen: LRU_LANE,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The real cache holds `capacity` entries: sizes the miniatures (sampling more sparsely if
    /// need be; a sample is never made denser, so that the nodes kept stay sampled).
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        while capacity >> self.sample_bits > MAX_MINI
            || (self.sample_bits < MIN_SAMPLE_BITS
                && capacity >> (self.sample_bits + 1) >= MIN_MINI)
        {
            self.sample_bits += 1;
        }
        self.capacity = (capacity >> self.sample_bits).max(1);
        let dropped: Vec<u32> = self
            .index
            .iter()
            .filter(|&(&fp, _)| !self.samples(fp))
            .map(|(_, &node)| node)
            .collect();
        for node in dropped {
            for lane in 0..LANES {
                self.remove(lane, node);
            }
        }
        for (lane, share) in SHARES.iter().enumerate() {
            let capacity = self.capacity;
            let window_max = ((share * capacity as f64).round() as usize).clamp(1, capacity);
            let l = &mut self.lanes[lane];
            l.window_max = window_max;
            l.protected_max = ((capacity - window_max) as f64 * PROTECTED_SHARE) as usize;
        }
    }

    /// Whether requests for `fingerprint` are replayed.
    #[inline]
    pub(crate) fn samples(&self, fingerprint: u32) -> bool {
        u64::from(fingerprint) >> (32 - self.sample_bits) == 0
    }

    /// The share of keys sampled, as a power of two: `2^-sample_bits`.
    #[cfg(test)]
    pub(crate) fn sample_bits(&self) -> u32 {
        self.sample_bits
    }

    /// The window share the real cache should take.
    pub(crate) fn chosen_share(&self) -> f64 {
        SHARES[self.chosen]
    }

    /// Whether LRU hit the last request replayed.
    pub(crate) fn lru_hit(&self) -> bool {
        self.lanes[LRU_LANE].hit
    }

    /// Each miniature's capacity.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every entry (the cache was cleared), keeping the hit counts and the choice.
    pub(crate) fn clear(&mut self) {
        self.index.clear();
        self.fingerprints.clear();
        self.regions.clear();
        self.counts.clear();
        self.free.clear();
        for lane in &mut self.lanes {
            lane.links.clear();
            lane.queues = Default::default();
        }
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Takes `node` out of `lane`, freeing it if no lane holds it any more.
    #[inline]
    fn remove(&mut self, lane: usize, node: u32) {
        let region = self.regions[node as usize][lane];
        if region == ABSENT {
            return;
        }
        let l = &mut self.lanes[lane];
        l.queues[region as usize & 3].unlink(&mut l.links, node);
        let regions = &mut self.regions[node as usize];
        regions[lane] = ABSENT;
        if *regions == [ABSENT; LANES] {
            self.index.remove(&self.fingerprints[node as usize]);
            self.free.push(node);
        }
    }

    #[inline]
    fn push_front(&mut self, lane: usize, node: u32, region: u8) {
        self.regions[node as usize][lane] = region;
        let l = &mut self.lanes[lane];
        l.queues[region as usize & 3].push_front(&mut l.links, node);
    }

    #[inline]
    fn move_to(&mut self, lane: usize, node: u32, region: u8) {
        let from = self.regions[node as usize][lane];
        let l = &mut self.lanes[lane];
        l.queues[from as usize & 3].unlink(&mut l.links, node);
        self.push_front(lane, node, region);
    }

    /// Replays a request for a sampled `fingerprint` in every miniature, and updates the
    /// choice: `frequency` is the sketch's estimate for it (after counting this request), and
    /// `halvings` the sketch's halvings so far.
    pub(crate) fn access(&mut self, fingerprint: u32, frequency: u8, halvings: u8) {
        if self.capacity == 0 {
            return;
        }
        // One probe of the index, whether the node is new or not.
        let node = match self.index.entry(fingerprint) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                let node = match self.free.pop() {
                    Some(node) => {
                        self.fingerprints[node as usize] = fingerprint;
                        self.regions[node as usize] = [ABSENT; LANES];
                        node
                    }
                    None => {
                        self.fingerprints.push(fingerprint);
                        self.regions.push([ABSENT; LANES]);
                        self.counts.push((0, 0));
                        (self.fingerprints.len() - 1) as u32
                    }
                };
                entry.insert(node);
                node
            }
        };
        self.counts[node as usize] = (frequency, halvings);
        for lane in 0..LANES {
            self.access_lane(lane, node, halvings);
        }
        self.choose();
    }

    /// Starts the miniatures with the sampled ones of `fingerprints` (least recent first): what
    /// the real cache holds when it first fills up, which every policy would hold.
    pub(crate) fn seed(
        &mut self,
        fingerprints: impl Iterator<Item = u32>,
        sketch: &FrequencySketch,
    ) {
        for fp in fingerprints {
            if self.samples(fp) {
                self.access(fp, sketch.frequency(fp), sketch.halvings());
            }
        }
        self.requests = 0;
        for lane in &mut self.lanes {
            lane.lead = 0.0;
        }
    }

    /// `node`'s frequency estimate now (`halvings` by the sketch).
    #[inline]
    fn frequency(&self, node: u32, halvings: u8) -> u8 {
        let (count, then) = self.counts[node as usize];
        count
            .checked_shr(u32::from(halvings.wrapping_sub(then)))
            .unwrap_or(0)
    }

    fn access_lane(&mut self, lane: usize, node: u32, halvings: u8) {
        match self.regions[node as usize][lane] {
            ABSENT => {
                self.lanes[lane].hit = false;
                self.insert(lane, node, halvings);
            }
            WINDOW => {
                self.lanes[lane].hit = true;
                self.move_to(lane, node, WINDOW);
            }
            PROBATION => {
                self.lanes[lane].hit = true;
                self.move_to(lane, node, PROTECTED);
                let l = &self.lanes[lane];
                if l.queues[PROTECTED as usize].len() > l.protected_max {
                    let demoted = l.queues[PROTECTED as usize]
                        .back()
                        .expect("protected is not empty");
                    self.move_to(lane, demoted, PROBATION);
                }
            }
            _ => {
                self.lanes[lane].hit = true;
                self.move_to(lane, node, PROTECTED);
            }
        }
    }

    /// A miss in `lane`: `node` enters its window; the window's oldest, pushed out, competes
    /// with main's victim when the miniature is full.
    fn insert(&mut self, lane: usize, node: u32, halvings: u8) {
        self.push_front(lane, node, WINDOW);
        let l = &self.lanes[lane];
        if l.queues[WINDOW as usize].len() > l.window_max {
            let candidate = l.queues[WINDOW as usize]
                .back()
                .expect("the window overflows");
            match l.queues[PROBATION as usize]
                .back()
                .or(l.queues[PROTECTED as usize].back())
            {
                _ if l.len() <= self.capacity => self.move_to(lane, candidate, PROBATION),
                None => self.remove(lane, candidate),
                Some(victim) => {
                    let fc = self.frequency(candidate, halvings);
                    let fv = self.frequency(victim, halvings);
                    if fc > fv || (fc >= JITTER_FREQUENCY && self.jitter()) {
                        self.remove(lane, victim);
                        self.move_to(lane, candidate, PROBATION);
                    } else {
                        self.remove(lane, candidate);
                    }
                }
            }
        }
        // Only after the capacity changed: main gives up its victims.
        while self.lanes[lane].len() > self.capacity {
            let l = &self.lanes[lane];
            let victim = l.queues[PROBATION as usize]
                .back()
                .or(l.queues[PROTECTED as usize].back())
                .or(l.queues[WINDOW as usize].back());
            self.remove(lane, victim.expect("not empty"));
        }
    }

    fn jitter(&mut self) -> bool {
        self.next_random() & 127 == 0
    }

    /// Updates each lane's lead over the chosen one and its decayed hits, and switches to a
    /// lane whose lead passed the threshold or whose decayed hits passed the chosen one's by
    /// [`SCORE_MARGIN`].
    fn choose(&mut self) {
        let chosen = f64::from(u8::from(self.lanes[self.chosen].hit));
        let threshold =
            (THRESHOLD * self.capacity as f64).max(MIN_THRESHOLD) * f64::from(1u32 << self.backoff);
        let horizon = SCORE_HORIZON * self.capacity as f64;
        let mut best = None;
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            let hit = f64::from(u8::from(lane.hit));
            lane.lead = (lane.lead + hit - chosen).max(0.0);
            lane.score += hit - lane.score / horizon;
            if lane.lead >= threshold && best.is_none_or(|(_, lead)| lane.lead > lead) {
                best = Some((i, lane.lead));
            }
        }
        if best.is_none() {
            let margin = (SCORE_MARGIN * self.capacity as f64).max(MIN_THRESHOLD);
            let current = self.lanes[self.chosen].score;
            for (i, lane) in self.lanes.iter().enumerate() {
                let lead = lane.score - current;
                if lead >= margin && best.is_none_or(|(_, best)| lead > best) {
                    best = Some((i, lead));
                }
            }
        }
        self.requests += 1;
        if let Some((i, _)) = best {
            self.chosen = i;
            for lane in &mut self.lanes {
                lane.lead = 0.0;
            }
            self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
            self.requests = 0;
        } else if self.requests >= CALM * self.capacity {
            self.backoff = self.backoff.saturating_sub(1);
            self.requests = 0;
        }
    }

    /// Checks the lanes' invariants (tests only).
    #[cfg(test)]
    pub(crate) fn validate(&self) {
        for (i, lane) in self.lanes.iter().enumerate() {
            assert!(lane.len() <= self.capacity, "lane {i} over capacity");
            for (region, queue) in [
                (WINDOW, &lane.queues[WINDOW as usize]),
                (PROBATION, &lane.queues[PROBATION as usize]),
                (PROTECTED, &lane.queues[PROTECTED as usize]),
            ] {
                for node in queue.validate(&lane.links) {
                    assert_eq!(self.regions[node as usize][i], region);
                }
            }
        }
        assert_eq!(self.index.len() + self.free.len(), self.fingerprints.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts `fp` in the sketch, then replays it in the miniatures, as the policy does.
    fn request(minis: &mut Minis, sketch: &mut FrequencySketch, fp: u32) {
        let frequency = sketch.increment(fp);
        if minis.samples(fp) {
            minis.access(fp, frequency, sketch.halvings());
        }
    }

    fn fp(key: u32) -> u32 {
        key.wrapping_mul(0x9e37_79b9) & !0b11
    }

    #[test]
    fn the_lru_lane_hits_like_lru() {
        let mut minis = Minis::new();
        let sketch = FrequencySketch::new(3);
        minis.set_capacity(3);
        let hits: Vec<bool> = [1, 2, 3, 1, 4, 2, 1, 3]
            .iter()
            .map(|&k| {
                minis.access(fp(k), sketch.frequency(fp(k)), sketch.halvings());
                minis.validate();
                minis.lru_hit()
            })
            .collect();
        // 4 evicts 2 (least recent), then 2 evicts 3, then 3 misses.
        assert_eq!(hits, [false, false, false, true, false, false, true, false]);
    }

    #[test]
    fn recency_chooses_lru_and_frequency_a_small_window() {
        // Each new key used again once, 250 new keys later: only a large window keeps it.
        let mut minis = Minis::new();
        let mut sketch = FrequencySketch::new(1000);
        minis.set_capacity(1000);
        for i in 0..10_000 {
            request(&mut minis, &mut sketch, fp(i));
            if i >= 250 {
                request(&mut minis, &mut sketch, fp(i - 250));
            }
        }
        minis.validate();
        assert_eq!(minis.chosen, LRU_LANE, "shares {:?}", minis.chosen_share());
        // 900 hot keys in a cycle, each between two one-off keys: LRU of 1000 never hits.
        for i in 0..40_000 {
            request(&mut minis, &mut sketch, fp(1 << 30 | i));
            request(&mut minis, &mut sketch, fp(i % 900));
        }
        minis.validate();
        assert!(minis.chosen_share() <= 0.05, "{}", minis.chosen_share());
    }

    #[test]
    fn caches_of_twice_the_least_miniature_replay_half_their_keys() {
        for (capacity, bits, mini) in [(100, 0, 100), (127, 0, 127), (128, 1, 64), (1000, 1, 500)] {
            let mut minis = Minis::new();
            minis.set_capacity(capacity);
            assert_eq!(
                (minis.sample_bits(), minis.capacity()),
                (bits, mini),
                "{capacity}"
            );
        }
    }

    #[test]
    fn large_caches_are_sampled() {
        let mut minis = Minis::new();
        let mut sketch = FrequencySketch::new(1 << 20);
        minis.set_capacity(40_000);
        assert_eq!(minis.sample_bits(), 6);
        assert_eq!(minis.capacity(), 625);
        for k in 0..1u32 << 20 {
            request(&mut minis, &mut sketch, fp(k % 100_000));
        }
        minis.validate();
        // A weighted cache that grows: the sample gets sparser, the unsampled keys go.
        minis.set_capacity(1 << 20);
        assert_eq!(minis.sample_bits(), 10);
        assert_eq!(minis.capacity(), MAX_MINI);
        minis.validate();
        assert!(minis.index.keys().all(|&fp| minis.samples(fp)));
        let sampled = (0..1u32 << 16).filter(|&k| minis.samples(fp(k))).count();
        assert!((32..=96).contains(&sampled), "{sampled} of 65536");
        for k in 0..1u32 << 22 {
            request(&mut minis, &mut sketch, fp(k));
        }
        minis.validate();
        assert!(minis.index.len() <= LANES * MAX_MINI);
    }
}
