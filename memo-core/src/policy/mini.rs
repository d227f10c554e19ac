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

use super::adaptive::{JITTER_FREQUENCY, PROTECTED_SHARE};
use super::sketch::FrequencySketch;

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
///
/// Leaving the LRU copy this way takes the margin times `2^backoff`, as the CUSUM test's
/// threshold: where the decayed hits of LRU and a frequency copy take turns at leading by the
/// margin (back-and-forth sweeps whose centre and width drift: the `drift` traces), each switch
/// costs the real cache what it held. At a constant margin, 8 cells of such traces (min of 32
/// seeds) ended 2.1 to 4.0 points below LRU; with the doubling, 4 do (2.4 to 3.9 below, where
/// the first switch is an early CUSUM one). Coming back to LRU keeps the plain margin.
const SCORE_MARGIN: f64 = 0.5;

/// The least threshold, in sampled hits.
const MIN_THRESHOLD: f64 = 2.0;

/// After each switch the threshold doubles (two lanes that take turns cost little once the
/// threshold has grown), and it halves again after this many capacities of sampled requests
/// without a switch.
const CALM: usize = 64;

/// The threshold grows to at most `2^MAX_BACKOFF` times its base.
const MAX_BACKOFF: u32 = 6;

/// A node's region in a lane: two bits per lane in [`Node::regions`], `ABSENT` in a lane that
/// does not hold it. A region is also the id of its queue's sentinel node.
const ABSENT: u16 = 0;
const WINDOW: u16 = 1;
const PROBATION: u16 = 2;
const PROTECTED: u16 = 3;

/// The bits of a lane's region in [`Node::regions`].
const REGION_BITS: u16 = 0b11;

/// A node's number. 0 is no node (an empty bucket of the index, the end of the free list), 1 to
/// 3 are the sentinels of the window, probation and protected queues (one per region: a node
/// has links in every lane, so each sentinel heads its queue in every lane). A node is in at
/// least one lane, and a lane holds at most a miniature's capacity (at most [`MAX_MINI`]) plus
/// the request being replayed, so the ids fit: at most `LANES * (MAX_MINI + 1)` nodes live.
type Id = u16;

/// The first id of a real node.
const FIRST_NODE: usize = 4;

/// One sampled key: its links in each lane's queues (circular, through the sentinels: no
/// branch for an end), its region in each lane, and its estimate. Freed (in no lane), its
/// `next[0]` links the free list. 32 bytes: two nodes per cache line, none straddling two.
#[derive(Clone, Copy, Default)]
#[repr(C, align(32))]
struct Node {
    prev: [Id; LANES],
    next: [Id; LANES],
    /// The node's region in lane `i` at bits `2i..2i + 2`: 0 when no lane holds it.
    regions: u16,
    /// The sketch's estimate at the node's last request, and the sketch's halvings then: the
    /// lanes compare these rather than read the sketch twice per lane (a sampled key's
    /// estimate moves between its requests only by halvings and by collisions with other keys).
    count: u8,
    then: u8,
    fingerprint: u32,
}

/// The sentinels, each its queue's only element in every lane (and node 0, unused).
fn sentinels() -> Vec<Node> {
    (0..FIRST_NODE as Id)
        .map(|id| Node {
            prev: [id; LANES],
            next: [id; LANES],
            ..Node::default()
        })
        .collect()
}

/// One miniature's sizes (its queues are threaded through the nodes).
#[derive(Clone, Copy, Default)]
struct Lane {
    /// How many nodes each region holds, indexed by region; at `ABSENT`, the lane's total.
    len: [u32; 4],
    window_max: u32,
    protected_max: u32,
}

/// From fingerprint to node: linear probing over buckets of `fingerprint << 32 | id` (0 is an
/// empty bucket: no node has id 0), at most half full, with backward-shift deletion (no
/// tombstones to build up as the sampled keys come and go).
#[derive(Default)]
struct Index {
    buckets: Vec<u64>,
    /// 32 minus log2 of the buckets: a fingerprint's home bucket is the high bits of its
    /// product with an odd constant (the high bits depend on all of the fingerprint's).
    shift: u32,
    len: usize,
}

impl Index {
    /// An empty index of `buckets` buckets (a power of two, at least 2).
    fn with_buckets(buckets: usize) -> Index {
        Index {
            buckets: vec![0; buckets],
            shift: 32 - buckets.trailing_zeros(),
            len: 0,
        }
    }

    #[inline(always)]
    fn home(&self, fingerprint: u32) -> usize {
        (fingerprint.wrapping_mul(0x9e37_79b9) >> self.shift) as usize
    }

    /// The bucket holding `fingerprint`, or the empty one where it would go.
    #[inline(always)]
    fn find(&self, fingerprint: u32) -> Result<usize, usize> {
        let mask = self.buckets.len() - 1;
        let mut i = self.home(fingerprint);
        loop {
            let bucket = self.buckets[i];
            if bucket as Id == 0 {
                return Err(i);
            }
            if (bucket >> 32) as u32 == fingerprint {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Stores `id` for `fingerprint` in the empty bucket `at` that [`Self::find`] returned.
    #[inline(always)]
    fn insert_at(&mut self, at: usize, fingerprint: u32, id: Id) {
        self.buckets[at] = u64::from(fingerprint) << 32 | u64::from(id);
        self.len += 1;
    }

    /// Empties bucket `hole`, moving back the entries after it that their probe would no longer
    /// reach.
    #[inline]
    fn remove_at(&mut self, mut hole: usize) {
        let mask = self.buckets.len() - 1;
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let bucket = self.buckets[i];
            if bucket as Id == 0 {
                break;
            }
            // It stays unless the hole is on its way from its home (at or after its home).
            let home = self.home((bucket >> 32) as u32);
            if i.wrapping_sub(home) & mask >= i.wrapping_sub(hole) & mask {
                self.buckets[hole] = bucket;
                hole = i;
            }
        }
        self.buckets[hole] = 0;
        self.len -= 1;
    }

    /// The buckets for `nodes` nodes: at most half full.
    fn buckets_for(nodes: usize) -> usize {
        (nodes * 2).next_power_of_two().max(2)
    }
}

/// The miniatures of one cache.
pub(crate) struct Minis {
    /// Bits of a fingerprint (from the top) that must be zero for it to be sampled.
    sample_bits: u32,
    /// Each miniature's capacity (0 until the real cache's is known).
    capacity: usize,
    index: Index,
    /// The sentinels, then the nodes.
    nodes: Vec<Node>,
    /// The first free node (0 if none), linked through `next[0]`.
    free: Id,
    lanes: [Lane; LANES],
    /// Sampled hits each lane would have had more than the chosen one, since it was last
    /// behind: whole numbers (what the `f64` sums of ones they were always held).
    leads: [u32; LANES],
    /// Each lane's hits, decaying over [`SCORE_HORIZON`] capacities of sampled requests.
    scores: [f64; LANES],
    /// Whether each lane's last request hit.
    hits: [bool; LANES],
    /// Sampled requests since the last switch or calming.
    requests: usize,
    /// The threshold is `THRESHOLD * capacity * 2^backoff`.
    backoff: u32,
    /// The lane whose share the real cache's window follows (LRU until another one leads).
    chosen: usize,
    rng: u64,
    /// The least whole lead at or over the threshold (which follows the capacity and the
    /// backoff).
    threshold: u32,
    /// `SCORE_HORIZON * capacity`, [`SCORE_MARGIN`]'s lead and `CALM * capacity`, as of the
    /// last change of capacity.
    horizon: f64,
    margin: f64,
    calm: usize,
    /// Whether the LRU lane is to be chosen whatever the others hit ([`Self::hold_lru`]).
    hold: bool,
}

impl Minis {
    pub(crate) fn new() -> Self {
        Minis {
            sample_bits: 0,
            capacity: 0,
            index: Index::default(),
            nodes: sentinels(),
            free: 0,
            lanes: Default::default(),
            leads: [0; LANES],
            scores: [0.0; LANES],
            hits: [false; LANES],
            requests: 0,
            backoff: 0,
            chosen: LRU_LANE,
            rng: 0x9e37_79b9_7f4a_7c15,
            threshold: 0,
            horizon: 0.0,
            margin: 0.0,
            calm: 0,
            hold: false,
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
        let dropped: Vec<Id> = (FIRST_NODE..self.nodes.len())
            .filter(|&id| {
                let node = &self.nodes[id];
                node.regions != 0 && !self.samples(node.fingerprint)
            })
            .map(|id| id as Id)
            .collect();
        for id in dropped {
            for lane in 0..LANES {
                let region = self.region(lane, id);
                if region != ABSENT {
                    self.remove(lane, id, region);
                }
            }
        }
        // Room for full lanes, and for what the lanes hold if the capacity shrank.
        let nodes = (LANES * (self.capacity + 1)).max(self.index.len);
        if Index::buckets_for(nodes) > self.index.buckets.len() {
            self.rebuild_index(Index::buckets_for(nodes));
        }
        for (lane, share) in SHARES.iter().enumerate() {
            let capacity = self.capacity;
            let window_max = ((share * capacity as f64).round() as usize).clamp(1, capacity);
            let l = &mut self.lanes[lane];
            l.window_max = window_max as u32;
            l.protected_max = ((capacity - window_max) as f64 * PROTECTED_SHARE) as u32;
        }
        self.horizon = SCORE_HORIZON * self.capacity as f64;
        self.margin = (SCORE_MARGIN * self.capacity as f64).max(MIN_THRESHOLD);
        self.calm = CALM * self.capacity;
        self.set_threshold();
    }

    /// Indexes every node that a lane holds in an index of `buckets` buckets.
    #[cold]
    fn rebuild_index(&mut self, buckets: usize) {
        let mut index = Index::with_buckets(buckets);
        for (id, node) in self.nodes.iter().enumerate().skip(FIRST_NODE) {
            if node.regions != 0 {
                let Err(at) = index.find(node.fingerprint) else {
                    unreachable!("a fingerprint has one node");
                };
                index.insert_at(at, node.fingerprint, id as Id);
            }
        }
        self.index = index;
    }

    /// The least whole lead that is at least `THRESHOLD * capacity * 2^backoff` (at least
    /// [`MIN_THRESHOLD`] before the backoff): leads are whole, so comparing them with it is
    /// comparing them with the threshold.
    fn set_threshold(&mut self) {
        let threshold =
            (THRESHOLD * self.capacity as f64).max(MIN_THRESHOLD) * f64::from(1u32 << self.backoff);
        self.threshold = threshold.ceil() as u32;
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

    /// While `hold` is set, the replays choose the LRU lane (switching to it if another one is
    /// chosen) and no other: the real cache has fallen too far behind LRU to try another.
    #[inline(always)]
    pub(crate) fn hold_lru(&mut self, hold: bool) {
        self.hold = hold;
    }

    /// Whether the LRU lane is held (tests only).
    #[cfg(test)]
    pub(crate) fn held(&self) -> bool {
        self.hold
    }

    /// Whether LRU hit the last request replayed.
    pub(crate) fn lru_hit(&self) -> bool {
        self.hits[LRU_LANE]
    }

    /// Each miniature's capacity.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every entry (the cache was cleared), keeping the hit counts and the choice.
    pub(crate) fn clear(&mut self) {
        self.index.buckets.fill(0);
        self.index.len = 0;
        self.nodes = sentinels();
        self.free = 0;
        for lane in &mut self.lanes {
            lane.len = [0; 4];
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

    /// The node `id`.
    #[inline(always)]
    fn node(&self, id: Id) -> &Node {
        debug_assert!((id as usize) < self.nodes.len());
        // SAFETY: every id held (in a link, the index or the free list) is below
        // `nodes.len()`: a node's id is its place when pushed, nodes are never popped, and
        // `clear`, which truncates them to the sentinels, resets every link (the sentinels'),
        // the index and the free list with them. Every path runs in the tests (mini.rs's, the
        // adaptive policy's), where the assertion above checks it.
        unsafe { self.nodes.get_unchecked(id as usize) }
    }

    /// The node `id`, to change.
    #[inline(always)]
    fn node_mut(&mut self, id: Id) -> &mut Node {
        debug_assert!((id as usize) < self.nodes.len());
        // SAFETY: as in `node`.
        unsafe { self.nodes.get_unchecked_mut(id as usize) }
    }

    /// `id`'s region in `lane`.
    #[inline(always)]
    fn region(&self, lane: usize, id: Id) -> u16 {
        self.node(id).regions >> (2 * lane) & REGION_BITS
    }

    /// The oldest node of `region`'s queue in `lane` (the sentinel if it is empty).
    #[inline(always)]
    fn back(&self, lane: usize, region: u16) -> Id {
        self.node(region).prev[lane]
    }

    /// Takes `id` out of its queue in `lane` (its region and the lengths unchanged).
    #[inline(always)]
    fn unlink(&mut self, lane: usize, id: Id) {
        let node = self.node(id);
        let (prev, next) = (node.prev[lane], node.next[lane]);
        self.node_mut(prev).next[lane] = next;
        self.node_mut(next).prev[lane] = prev;
    }

    /// Links `id`, in no queue of `lane`, at the front of `region`'s (its region and the
    /// lengths unchanged).
    #[inline(always)]
    fn link_front(&mut self, lane: usize, id: Id, region: u16) {
        let next = self.node(region).next[lane];
        let node = self.node_mut(id);
        node.prev[lane] = region;
        node.next[lane] = next;
        self.node_mut(next).prev[lane] = id;
        self.node_mut(region).next[lane] = id;
    }

    /// Sets `id`'s region in `lane`.
    #[inline(always)]
    fn set_region(&mut self, lane: usize, id: Id, region: u16) {
        let regions = &mut self.node_mut(id).regions;
        *regions = *regions & !(REGION_BITS << (2 * lane)) | region << (2 * lane);
    }

    /// Moves `id`, in `region`, to the front of its queue in `lane`.
    #[inline(always)]
    fn move_to_front(&mut self, lane: usize, id: Id, region: u16) {
        self.unlink(lane, id);
        self.link_front(lane, id, region);
    }

    /// Moves `id` from `from` to the front of `to` in `lane`.
    #[inline(always)]
    fn move_to(&mut self, lane: usize, id: Id, from: u16, to: u16) {
        self.unlink(lane, id);
        self.link_front(lane, id, to);
        self.set_region(lane, id, to);
        let len = &mut self.lanes[lane].len;
        len[(from & REGION_BITS) as usize] -= 1;
        len[(to & REGION_BITS) as usize] += 1;
    }

    /// Takes `id`, in `region`, out of `lane`, freeing it if no lane holds it any more.
    #[inline(always)]
    fn remove(&mut self, lane: usize, id: Id, region: u16) {
        self.unlink(lane, id);
        let len = &mut self.lanes[lane].len;
        len[(region & REGION_BITS) as usize] -= 1;
        len[ABSENT as usize] -= 1;
        let node = self.node_mut(id);
        node.regions &= !(REGION_BITS << (2 * lane));
        if node.regions == 0 {
            self.free_node(id);
        }
    }

    /// `id` is in no lane: out of the index, onto the free list.
    #[inline]
    fn free_node(&mut self, id: Id) {
        let free = self.free;
        let node = self.node_mut(id);
        let fingerprint = node.fingerprint;
        node.next[0] = free;
        self.free = id;
        let Ok(at) = self.index.find(fingerprint) else {
            unreachable!("a node in a lane is indexed");
        };
        self.index.remove_at(at);
    }

    /// A node for `fingerprint`, which has none, indexed at bucket `at`.
    #[inline]
    fn add(&mut self, at: usize, fingerprint: u32) -> Id {
        let id = if self.free != 0 {
            let id = self.free;
            self.free = self.node(id).next[0];
            id
        } else {
            let id = Id::try_from(self.nodes.len()).expect("at most LANES * (MAX_MINI + 1) nodes");
            self.nodes.push(Node::default());
            id
        };
        self.node_mut(id).fingerprint = fingerprint;
        self.index.insert_at(at, fingerprint, id);
        if self.index.len * 2 > self.index.buckets.len() {
            // Not while the capacity stays (see `set_capacity`): a safety net.
            self.rebuild_index(self.index.buckets.len() * 2);
        }
        id
    }

    /// Replays a request for a sampled `fingerprint` in every miniature, and updates the
    /// choice: `frequency` is the sketch's estimate for it (after counting this request), and
    /// `halvings` the sketch's halvings so far. Inline: into the policy's out-of-line replay
    /// of a sampled request, its one caller on the hot path.
    #[inline(always)]
    pub(crate) fn access(&mut self, fingerprint: u32, frequency: u8, halvings: u8) {
        if self.capacity == 0 {
            return;
        }
        // One probe of the index, whether the node is new or not.
        let id = match self.index.find(fingerprint) {
            Ok(at) => self.index.buckets[at] as Id,
            Err(at) => self.add(at, fingerprint),
        };
        let node = self.node_mut(id);
        node.count = frequency;
        node.then = halvings;
        // Each lane changes only its own region of the node.
        let regions = node.regions;
        const _: () = assert!(LANES == 5, "one call per lane");
        self.access_lane(0, id, regions & REGION_BITS, halvings);
        self.access_lane(1, id, regions >> 2 & REGION_BITS, halvings);
        self.access_lane(2, id, regions >> 4 & REGION_BITS, halvings);
        self.access_lane(3, id, regions >> 6 & REGION_BITS, halvings);
        self.access_lane(4, id, regions >> 8 & REGION_BITS, halvings);
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
        self.leads = [0; LANES];
    }

    /// `id`'s frequency estimate now (`halvings` by the sketch).
    #[inline(always)]
    fn frequency(&self, id: Id, halvings: u8) -> u8 {
        let node = self.node(id);
        super::sketch::aged(node.count, node.then, halvings)
    }

    /// Replays the request for `id`, in `region` of `lane`, in that lane.
    #[inline(always)]
    fn access_lane(&mut self, lane: usize, id: Id, region: u16, halvings: u8) {
        self.hits[lane] = region != ABSENT;
        match region {
            ABSENT => self.insert(lane, id, halvings),
            WINDOW => self.move_to_front(lane, id, WINDOW),
            PROBATION => {
                self.move_to(lane, id, PROBATION, PROTECTED);
                let l = &self.lanes[lane];
                if l.len[PROTECTED as usize] > l.protected_max {
                    let demoted = self.back(lane, PROTECTED);
                    self.move_to(lane, demoted, PROTECTED, PROBATION);
                }
            }
            _ => self.move_to_front(lane, id, PROTECTED),
        }
    }

    /// A miss in `lane`: `id` enters its window; the window's oldest, pushed out, competes
    /// with main's victim when the miniature is full.
    #[inline(always)]
    fn insert(&mut self, lane: usize, id: Id, halvings: u8) {
        self.link_front(lane, id, WINDOW);
        self.set_region(lane, id, WINDOW);
        let len = &mut self.lanes[lane].len;
        len[WINDOW as usize] += 1;
        len[ABSENT as usize] += 1;
        let l = self.lanes[lane];
        if l.len[WINDOW as usize] > l.window_max {
            let candidate = self.back(lane, WINDOW);
            if l.len[ABSENT as usize] as usize <= self.capacity {
                self.move_to(lane, candidate, WINDOW, PROBATION);
            } else {
                // Main's victim: probation's oldest, else protected's.
                let victim = if l.len[PROBATION as usize] != 0 {
                    Some((self.back(lane, PROBATION), PROBATION))
                } else if l.len[PROTECTED as usize] != 0 {
                    Some((self.back(lane, PROTECTED), PROTECTED))
                } else {
                    None
                };
                match victim {
                    None => self.remove(lane, candidate, WINDOW),
                    Some((victim, region)) => {
                        let fc = self.frequency(candidate, halvings);
                        let fv = self.frequency(victim, halvings);
                        if fc > fv || (fc >= JITTER_FREQUENCY && self.jitter()) {
                            self.remove(lane, victim, region);
                            self.move_to(lane, candidate, WINDOW, PROBATION);
                        } else {
                            self.remove(lane, candidate, WINDOW);
                        }
                    }
                }
            }
        }
        if self.lanes[lane].len[ABSENT as usize] as usize > self.capacity {
            self.shrink(lane);
        }
    }

    /// Only after the capacity changed: main gives up its victims until `lane` fits.
    #[cold]
    #[inline(never)]
    fn shrink(&mut self, lane: usize) {
        while self.lanes[lane].len[ABSENT as usize] as usize > self.capacity {
            let len = self.lanes[lane].len;
            let region = [PROBATION, PROTECTED, WINDOW]
                .into_iter()
                .find(|&r| len[r as usize] != 0)
                .expect("not empty");
            self.remove(lane, self.back(lane, region), region);
        }
    }

    fn jitter(&mut self) -> bool {
        self.next_random() & 127 == 0
    }

    /// Updates each lane's lead over the chosen one and its decayed hits, and switches to a
    /// lane whose lead passed the threshold or whose decayed hits passed the chosen one's by
    /// [`SCORE_MARGIN`]; while the LRU lane is held, to it and no other.
    #[inline(always)]
    fn choose(&mut self) {
        let chosen = u32::from(self.hits[self.chosen]);
        let mut over = false;
        for i in 0..LANES {
            // `(lead + hit - chosen).max(0.0)` of the `f64` leads, in whole numbers.
            let lead = (self.leads[i] + u32::from(self.hits[i])).saturating_sub(chosen);
            self.leads[i] = lead;
            over |= lead >= self.threshold;
        }
        for i in 0..LANES {
            self.scores[i] += f64::from(u8::from(self.hits[i])) - self.scores[i] / self.horizon;
        }
        let switch = if self.hold {
            (self.chosen != LRU_LANE).then_some(LRU_LANE)
        } else if over {
            self.most_ahead()
        } else {
            self.best_scored()
        };
        self.requests += 1;
        if let Some(i) = switch {
            self.chosen = i;
            self.leads = [0; LANES];
            self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
            self.requests = 0;
            self.set_threshold();
        } else if self.requests >= self.calm {
            self.backoff = self.backoff.saturating_sub(1);
            self.requests = 0;
            self.set_threshold();
        }
    }

    /// The lane with the largest lead at or over the threshold (the first of equals).
    #[cold]
    fn most_ahead(&self) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, &lead) in self.leads.iter().enumerate() {
            if lead >= self.threshold && best.is_none_or(|(_, best)| lead > best) {
                best = Some((i, lead));
            }
        }
        best.map(|(i, _)| i)
    }

    /// The lane whose decayed hits pass the chosen one's by the most, at least by the margin
    /// (the first of equals).
    #[inline(always)]
    fn best_scored(&self) -> Option<usize> {
        let current = self.scores[self.chosen];
        // Leaving LRU (where the cache starts, and the line it must not fall below) takes a
        // margin that doubles with each switch, as the threshold does: a lead in the rate of
        // hits that flips back and forth costs the real cache at every switch.
        let margin = if self.chosen == LRU_LANE {
            self.margin * f64::from(1u32 << self.backoff)
        } else {
            self.margin
        };
        // Rounding is monotonic, so the largest score minus the chosen one's is the largest
        // of the differences: whether any lane passes the margin, without a branch per lane.
        let top = self
            .scores
            .iter()
            .fold(f64::MIN, |top, &s| if s > top { s } else { top });
        if top - current >= margin {
            self.best_scored_slow(current, margin)
        } else {
            None
        }
    }

    #[cold]
    fn best_scored_slow(&self, current: f64, margin: f64) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (i, &score) in self.scores.iter().enumerate() {
            let lead = score - current;
            if lead >= margin && best.is_none_or(|(_, best)| lead > best) {
                best = Some((i, lead));
            }
        }
        best.map(|(i, _)| i)
    }

    /// The fingerprints in `region`'s queue of `lane`, front to back (tests only).
    #[cfg(test)]
    fn queue(&self, lane: usize, region: u16) -> Vec<u32> {
        let mut fingerprints = Vec::new();
        let mut at = self.nodes[region as usize].next[lane];
        while at != region {
            fingerprints.push(self.nodes[at as usize].fingerprint);
            at = self.nodes[at as usize].next[lane];
        }
        fingerprints
    }

    /// The fingerprints indexed (tests only).
    #[cfg(test)]
    fn indexed(&self) -> impl Iterator<Item = u32> + '_ {
        self.index
            .buckets
            .iter()
            .filter(|&&b| b as Id != 0)
            .map(|&b| (b >> 32) as u32)
    }

    /// Checks the lanes' invariants (tests only).
    #[cfg(test)]
    pub(crate) fn validate(&self) {
        let mut held = vec![0u16; self.nodes.len()];
        for (i, lane) in self.lanes.iter().enumerate() {
            assert!(
                lane.len[ABSENT as usize] as usize <= self.capacity,
                "lane {i} over capacity"
            );
            let mut total = 0;
            for region in [WINDOW, PROBATION, PROTECTED] {
                // Forward, then backward: the same nodes.
                let mut forward = Vec::new();
                let mut at = self.nodes[region as usize].next[i];
                while at != region {
                    assert!(at as usize >= FIRST_NODE, "lane {i}: a sentinel in a queue");
                    forward.push(at);
                    at = self.nodes[at as usize].next[i];
                }
                let mut backward = Vec::new();
                let mut at = self.back(i, region);
                while at != region {
                    backward.push(at);
                    at = self.nodes[at as usize].prev[i];
                }
                backward.reverse();
                assert_eq!(forward, backward, "lane {i}, region {region}");
                assert_eq!(forward.len(), lane.len[region as usize] as usize, "length");
                total += forward.len();
                for id in forward {
                    assert_eq!(self.region(i, id), region);
                    held[id as usize] |= region << (2 * i);
                }
            }
            assert_eq!(
                total, lane.len[ABSENT as usize] as usize,
                "lane {i}'s total"
            );
        }
        let mut live = 0;
        for (id, node) in self.nodes.iter().enumerate().skip(FIRST_NODE) {
            assert_eq!(node.regions, held[id], "node {id}'s regions");
            if node.regions != 0 {
                live += 1;
                let at = self.index.find(node.fingerprint).expect("indexed");
                assert_eq!(self.index.buckets[at] as Id as usize, id);
            }
        }
        assert_eq!(self.index.len, live);
        assert_eq!(self.indexed().count(), live);
        assert!(self.index.len * 2 <= self.index.buckets.len().max(1));
        let mut free = 0;
        let mut at = self.free;
        while at != 0 {
            assert_eq!(self.nodes[at as usize].regions, 0, "a free node in a lane");
            free += 1;
            at = self.nodes[at as usize].next[0];
        }
        assert_eq!(FIRST_NODE + live + free, self.nodes.len());
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
        assert!(minis.indexed().all(|fp| minis.samples(fp)));
        let sampled = (0..1u32 << 16).filter(|&k| minis.samples(fp(k))).count();
        assert!((32..=96).contains(&sampled), "{sampled} of 65536");
        for k in 0..1u32 << 22 {
            request(&mut minis, &mut sketch, fp(k));
        }
        minis.validate();
        assert!(minis.index.len <= LANES * MAX_MINI);
    }

    /// The miniatures as first written, as plainly as possible: each lane's queues are vectors
    /// of fingerprints (front first), found by scanning, and the leads are `f64` sums. The
    /// tight representation must replay exactly as this does.
    mod reference {
        use std::collections::HashMap;

        use super::super::{
            CALM, JITTER_FREQUENCY, LANES, MAX_BACKOFF, MAX_MINI, MIN_MINI, MIN_SAMPLE_BITS,
            MIN_THRESHOLD, PROTECTED_SHARE, SCORE_HORIZON, SCORE_MARGIN, SHARES, THRESHOLD,
        };

        #[derive(Default)]
        pub(super) struct Lane {
            /// The window, probation and protected queues (index = region - 1).
            pub(super) queues: [Vec<u32>; 3],
            window_max: usize,
            protected_max: usize,
            lead: f64,
            score: f64,
            pub(super) hit: bool,
        }

        impl Lane {
            fn len(&self) -> usize {
                self.queues.iter().map(Vec::len).sum()
            }
            fn region(&self, fp: u32) -> Option<usize> {
                (0..3).find(|&r| self.queues[r].contains(&fp))
            }
            fn take(&mut self, fp: u32) {
                let r = self.region(fp).expect("held");
                self.queues[r].retain(|&f| f != fp);
            }
            fn back(&self, r: usize) -> Option<u32> {
                self.queues[r].last().copied()
            }
        }

        pub(super) struct Minis {
            sample_bits: u32,
            capacity: usize,
            counts: HashMap<u32, (u8, u8)>,
            pub(super) lanes: Vec<Lane>,
            requests: usize,
            backoff: u32,
            pub(super) chosen: usize,
            pub(super) hold: bool,
            rng: u64,
        }

        impl Minis {
            pub(super) fn new() -> Self {
                Minis {
                    sample_bits: 0,
                    capacity: 0,
                    counts: HashMap::new(),
                    lanes: (0..LANES).map(|_| Lane::default()).collect(),
                    requests: 0,
                    backoff: 0,
                    chosen: LANES - 1,
                    hold: false,
                    rng: 0x9e37_79b9_7f4a_7c15,
                }
            }

            pub(super) fn set_capacity(&mut self, capacity: usize) {
                while capacity >> self.sample_bits > MAX_MINI
                    || (self.sample_bits < MIN_SAMPLE_BITS
                        && capacity >> (self.sample_bits + 1) >= MIN_MINI)
                {
                    self.sample_bits += 1;
                }
                self.capacity = (capacity >> self.sample_bits).max(1);
                let bits = self.sample_bits;
                for lane in &mut self.lanes {
                    for q in &mut lane.queues {
                        q.retain(|&fp| u64::from(fp) >> (32 - bits) == 0);
                    }
                }
                for (lane, share) in self.lanes.iter_mut().zip(SHARES) {
                    let c = self.capacity;
                    lane.window_max = ((share * c as f64).round() as usize).clamp(1, c);
                    lane.protected_max = ((c - lane.window_max) as f64 * PROTECTED_SHARE) as usize;
                }
            }

            pub(super) fn clear(&mut self) {
                for lane in &mut self.lanes {
                    lane.queues = Default::default();
                }
            }

            fn frequency(&self, fp: u32, halvings: u8) -> u8 {
                let (count, then) = self.counts[&fp];
                count
                    .checked_shr(u32::from(halvings.wrapping_sub(then)))
                    .unwrap_or(0)
            }

            pub(super) fn access(&mut self, fp: u32, frequency: u8, halvings: u8) {
                if self.capacity == 0 {
                    return;
                }
                self.counts.insert(fp, (frequency, halvings));
                for i in 0..LANES {
                    let region = self.lanes[i].region(fp);
                    self.lanes[i].hit = region.is_some();
                    match region {
                        None => self.insert(i, fp, halvings),
                        Some(1) => {
                            let lane = &mut self.lanes[i];
                            lane.take(fp);
                            lane.queues[2].insert(0, fp);
                            if lane.queues[2].len() > lane.protected_max {
                                let demoted = lane.queues[2].pop().expect("not empty");
                                lane.queues[1].insert(0, demoted);
                            }
                        }
                        Some(r) => {
                            let lane = &mut self.lanes[i];
                            lane.take(fp);
                            lane.queues[r].insert(0, fp);
                        }
                    }
                }
                self.choose();
            }

            fn insert(&mut self, i: usize, fp: u32, halvings: u8) {
                self.lanes[i].queues[0].insert(0, fp);
                let lane = &self.lanes[i];
                if lane.queues[0].len() > lane.window_max {
                    let candidate = lane.back(0).expect("overflows");
                    let victim = lane.back(1).or(lane.back(2));
                    if lane.len() <= self.capacity {
                        let lane = &mut self.lanes[i];
                        lane.take(candidate);
                        lane.queues[1].insert(0, candidate);
                    } else if let Some(victim) = victim {
                        let fc = self.frequency(candidate, halvings);
                        let fv = self.frequency(victim, halvings);
                        let admit = fc > fv || (fc >= JITTER_FREQUENCY && self.jitter());
                        let lane = &mut self.lanes[i];
                        if admit {
                            lane.take(victim);
                            lane.take(candidate);
                            lane.queues[1].insert(0, candidate);
                        } else {
                            lane.take(candidate);
                        }
                    } else {
                        self.lanes[i].take(candidate);
                    }
                }
                while self.lanes[i].len() > self.capacity {
                    let lane = &mut self.lanes[i];
                    let victim = lane.back(1).or(lane.back(2)).or(lane.back(0));
                    lane.take(victim.expect("not empty"));
                }
            }

            fn jitter(&mut self) -> bool {
                let mut x = self.rng;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.rng = x;
                x & 127 == 0
            }

            fn choose(&mut self) {
                let chosen = f64::from(u8::from(self.lanes[self.chosen].hit));
                let threshold = (THRESHOLD * self.capacity as f64).max(MIN_THRESHOLD)
                    * f64::from(1u32 << self.backoff);
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
                if self.hold {
                    best = (self.chosen != LANES - 1).then_some((LANES - 1, 0.0));
                } else if best.is_none() {
                    let mut margin = (SCORE_MARGIN * self.capacity as f64).max(MIN_THRESHOLD);
                    if self.chosen == LANES - 1 {
                        margin *= f64::from(1u32 << self.backoff);
                    }
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
        }
    }

    #[test]
    fn the_miniatures_replay_as_the_plain_reference_does() {
        for (capacity, grown) in [(3, 5), (40, 90), (300, 5000)] {
            let mut minis = Minis::new();
            let mut plain = reference::Minis::new();
            let mut sketch = FrequencySketch::new(capacity);
            minis.set_capacity(capacity);
            plain.set_capacity(capacity);
            let mut x = 0x2545_f491_4f6c_dd1d_u64;
            let mut switches = 0;
            for i in 0..60_000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Phases of hot keys, scans, loops and noise, so that each lane leads at times.
                let n = capacity as u64 * 4;
                let key = match (i / 5000) % 4 {
                    0 => (x % 8).pow(2) % n,
                    1 => u64::from(i) % (n / 2 + 1),
                    2 => {
                        if x.is_multiple_of(3) {
                            x % (n / 4 + 1)
                        } else {
                            1 << 20 | u64::from(i)
                        }
                    }
                    _ => x % (2 * n),
                };
                let fp = fp(key as u32);
                let frequency = sketch.increment(fp);
                if minis.samples(fp) {
                    let chosen = minis.chosen;
                    // At times the policy holds the LRU lane (out of step with the phases).
                    let hold = (i / 3000) % 7 == 3;
                    minis.hold_lru(hold);
                    plain.hold = hold;
                    minis.access(fp, frequency, sketch.halvings());
                    plain.access(fp, frequency, sketch.halvings());
                    let hits: Vec<bool> = plain.lanes.iter().map(|l| l.hit).collect();
                    assert_eq!(minis.hits[..], hits[..], "request {i} at {capacity}");
                    assert_eq!(minis.chosen, plain.chosen, "request {i} at {capacity}");
                    switches += usize::from(chosen != minis.chosen);
                }
                if i == 30_000 {
                    // A weighted cache that grows, then a cleared one.
                    minis.set_capacity(grown);
                    plain.set_capacity(grown);
                    minis.validate();
                } else if i == 45_000 {
                    minis.clear();
                    plain.clear();
                }
            }
            minis.validate();
            for (i, lane) in plain.lanes.iter().enumerate() {
                for region in [WINDOW, PROBATION, PROTECTED] {
                    assert_eq!(minis.queue(i, region), lane.queues[region as usize - 1]);
                }
            }
            assert!(switches > 0, "no switch at {capacity}");
        }
    }
}
