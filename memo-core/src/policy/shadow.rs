//! A sampled shadow LRU: what plain LRU would have hit, for comparing the adaptive policy with
//! it on the same requests.
//!
//! Only keys whose fingerprint falls in a sample (a `2^-k` share of all keys, chosen by the
//! fingerprint's high bits) are tracked, in an LRU list of `capacity * 2^-k` fingerprints.
//! Spatial sampling keeps LRU's hit ratio: the sampled keys see the same reuse distances,
//! scaled by the same factor (Waldspurger et al., "Efficient MRC Construction with SHARDS",
//! FAST '15). Small caches are shadowed whole; large ones by at most [`MAX_SHADOW`] entries.
//! While the cache fills up (its capacity is not known yet), the shadow keeps every sampled key
//! and halves its sample whenever it holds more than `MAX_SHADOW` (SHARDS with a fixed size).

use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashMap;

use crate::links::{Links, Queue};

/// The most fingerprints a shadow keeps: bounds its memory (about 20 bytes each) and its time.
pub(crate) const MAX_SHADOW: usize = 1024;

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
        self.0
    }
}

/// LRU over a sample of fingerprints.
pub(crate) struct Shadow {
    /// Bits of a fingerprint (from the top) that must be zero for it to be sampled.
    sample_bits: u32,
    /// The most fingerprints kept; `usize::MAX` until the cache's capacity is known.
    capacity: usize,
    index: HashMap<u32, u32, BuildHasherDefault<FingerprintHasher>>,
    /// The fingerprint in each node.
    fingerprints: Vec<u32>,
    /// Nodes dropped from the sample, for reuse.
    free: Vec<u32>,
    links: Links,
    order: Queue,
}

impl Shadow {
    /// A shadow of a cache that is filling up.
    pub(crate) fn new() -> Self {
        Shadow {
            sample_bits: 0,
            capacity: usize::MAX,
            index: HashMap::default(),
            fingerprints: Vec::new(),
            free: Vec::new(),
            links: Links::default(),
            order: Queue::default(),
        }
    }

    /// The cache is full at `capacity` entries: the shadow samples at most `MAX_SHADOW` of
    /// them, and evicts like an LRU cache of that many from now on.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        while capacity >> self.sample_bits > MAX_SHADOW {
            self.sample_bits += 1;
        }
        self.drop_unsampled();
        self.capacity = (capacity >> self.sample_bits).max(1);
        while self.order.len() > self.capacity {
            let node = self.order.pop_back(&mut self.links).expect("len > 0");
            self.index.remove(&self.fingerprints[node as usize]);
            self.free.push(node);
        }
    }

    /// Forgets every fingerprint (an LRU cache that was cleared), keeping the sample.
    pub(crate) fn clear(&mut self) {
        self.index.clear();
        self.fingerprints.clear();
        self.free.clear();
        self.links.clear();
        self.order = Queue::default();
    }

    /// Forgets the fingerprints outside the current sample.
    fn drop_unsampled(&mut self) {
        let dropped: Vec<(u32, u32)> = self
            .index
            .iter()
            .filter(|(&fp, _)| !self.samples(fp))
            .map(|(&fp, &node)| (fp, node))
            .collect();
        for (fp, node) in dropped {
            self.index.remove(&fp);
            self.order.unlink(&mut self.links, node);
            self.free.push(node);
        }
    }

    /// The share of keys sampled, as a power of two: `2^-sample_bits`.
    pub(crate) fn sample_bits(&self) -> u32 {
        self.sample_bits
    }

    /// Whether requests for `fingerprint` are shadowed.
    #[inline]
    pub(crate) fn samples(&self, fingerprint: u32) -> bool {
        u64::from(fingerprint) >> (32 - self.sample_bits) == 0
    }

    /// Replays a request for a sampled `fingerprint`; whether LRU would have hit.
    pub(crate) fn access(&mut self, fingerprint: u32) -> bool {
        if let Some(&node) = self.index.get(&fingerprint) {
            self.order.move_to_front(&mut self.links, node);
            return true;
        }
        if self.order.len() >= self.capacity {
            let node = self
                .order
                .pop_back(&mut self.links)
                .expect("a full shadow has nodes");
            self.index.remove(&self.fingerprints[node as usize]);
            self.free.push(node);
        }
        let node = if let Some(node) = self.free.pop() {
            self.fingerprints[node as usize] = fingerprint;
            node
        } else {
            self.fingerprints.push(fingerprint);
            (self.fingerprints.len() - 1) as u32
        };
        self.index.insert(fingerprint, node);
        self.order.push_front(&mut self.links, node);
        if self.capacity == usize::MAX && self.order.len() > MAX_SHADOW {
            // Still filling up, and more sampled keys than a shadow keeps: halve the sample.
            self.sample_bits += 1;
            self.drop_unsampled();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_like_lru() {
        let mut shadow = Shadow::new();
        shadow.set_capacity(3);
        assert_eq!(shadow.sample_bits(), 0);
        assert!(shadow.samples(u32::MAX));
        let hits: Vec<bool> = [1, 2, 3, 1, 4, 2, 1, 3]
            .iter()
            .map(|&k| shadow.access(k))
            .collect();
        // 4 evicts 2 (least recent), then 2 evicts 3, then 3 misses.
        assert_eq!(hits, [false, false, false, true, false, false, true, false]);
    }

    #[test]
    fn samples_large_caches() {
        let mut shadow = Shadow::new();
        // Filling up: the sample halves whenever it would hold more than MAX_SHADOW.
        let keys = (0..1u32 << 16).map(|k| k.wrapping_mul(0x9e37_79b9));
        for fp in keys.clone() {
            if shadow.samples(fp) {
                shadow.access(fp);
            }
            assert!(shadow.order.len() <= MAX_SHADOW);
        }
        assert!(
            (6..=7).contains(&shadow.sample_bits()),
            "{}",
            shadow.sample_bits()
        );
        shadow.set_capacity(1 << 20);
        assert_eq!(shadow.capacity, MAX_SHADOW);
        assert_eq!(shadow.sample_bits(), 10);
        // Once the capacity is known, the shadow holds at most that many, free nodes or not.
        shadow.set_capacity(40_000);
        assert_eq!(shadow.capacity, 39);
        for fp in keys {
            if shadow.samples(fp) {
                shadow.access(fp);
            }
            assert!(shadow.order.len() <= 39);
            assert_eq!(shadow.index.len(), shadow.order.len());
        }
        let sampled = (0..1u32 << 16)
            .filter(|k| shadow.samples(k.wrapping_mul(0x9e37_79b9)))
            .count();
        assert!((48..=80).contains(&sampled), "{sampled} of 65536");
    }
}
