//! Exact LFU in O(1) per operation: entries sit in buckets of equal use count, the buckets in a
//! list ordered by count, each bucket a queue in order of last use. The victim is the least
//! recently used entry of the lowest bucket (Shah, Mitra and Matani's constant-time LFU).

use super::EvictionPolicy;
use crate::links::{Links, Queue, NIL};

/// Entries used `count` times, front = most recently used.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    count: u64,
    entries: Queue,
    /// The bucket of the next lower count, or `NIL`.
    lower: u32,
    /// The bucket of the next higher count, or `NIL`.
    higher: u32,
}

/// Least frequently used goes first; among equals, the least recently used.
pub(crate) struct LfuPolicy {
    links: Links,
    /// The bucket of each slot.
    bucket_of: Vec<u32>,
    buckets: Vec<Bucket>,
    /// Indices of unused `buckets`.
    free: Vec<u32>,
    /// The bucket of the lowest count, or `NIL`.
    lowest: u32,
}

impl LfuPolicy {
    pub(crate) fn new() -> Self {
        LfuPolicy {
            links: Links::default(),
            bucket_of: Vec::new(),
            buckets: Vec::new(),
            free: Vec::new(),
            lowest: NIL,
        }
    }

    /// A new empty bucket for `count`, linked between `lower` and `higher`.
    fn new_bucket(&mut self, count: u64, lower: u32, higher: u32) -> u32 {
        let bucket = Bucket {
            count,
            entries: Queue::default(),
            lower,
            higher,
        };
        let b = match self.free.pop() {
            Some(b) => {
                self.buckets[b as usize] = bucket;
                b
            }
            None => {
                self.buckets.push(bucket);
                (self.buckets.len() - 1) as u32
            }
        };
        if lower != NIL {
            self.buckets[lower as usize].higher = b;
        } else {
            self.lowest = b;
        }
        if higher != NIL {
            self.buckets[higher as usize].lower = b;
        }
        b
    }

    /// Takes `slot` out of its bucket, dropping the bucket if it becomes empty.
    fn unlink(&mut self, slot: u32) {
        let b = self.bucket_of[slot as usize];
        let bucket = &mut self.buckets[b as usize];
        bucket.entries.unlink(&mut self.links, slot);
        if bucket.entries.is_empty() {
            let Bucket { lower, higher, .. } = *bucket;
            if lower != NIL {
                self.buckets[lower as usize].higher = higher;
            } else {
                self.lowest = higher;
            }
            if higher != NIL {
                self.buckets[higher as usize].lower = lower;
            }
            self.free.push(b);
        }
    }

    fn push(&mut self, b: u32, slot: u32) {
        let idx = slot as usize;
        if self.bucket_of.len() <= idx {
            self.bucket_of.resize(idx + 1, NIL);
        }
        self.bucket_of[idx] = b;
        self.buckets[b as usize]
            .entries
            .push_front(&mut self.links, slot);
    }
}

impl EvictionPolicy for LfuPolicy {
    fn on_insert(&mut self, slot: u32, _hash: u64) {
        let b = if self.lowest != NIL && self.buckets[self.lowest as usize].count == 1 {
            self.lowest
        } else {
            self.new_bucket(1, NIL, self.lowest)
        };
        self.push(b, slot);
    }

    fn on_hit(&mut self, slot: u32) {
        let b = self.bucket_of[slot as usize];
        let Bucket { count, higher, .. } = self.buckets[b as usize];
        let count = count.saturating_add(1);
        let target = if higher != NIL && self.buckets[higher as usize].count == count {
            higher
        } else {
            // Linked above `b` before `b` may be dropped, so the order holds either way.
            self.new_bucket(count, b, higher)
        };
        self.unlink(slot);
        self.push(target, slot);
    }

    fn on_remove(&mut self, slot: u32) {
        self.unlink(slot);
    }

    fn on_move(&mut self, from: u32, to: u32) {
        let b = self.bucket_of[from as usize];
        self.buckets[b as usize]
            .entries
            .relocate(&mut self.links, from, to);
        if self.bucket_of.len() <= to as usize {
            self.bucket_of.resize(to as usize + 1, NIL);
        }
        self.bucket_of[to as usize] = b;
        self.bucket_of[from as usize] = NIL;
    }

    fn evict(&mut self, _incoming_hash: u64) -> u32 {
        let lowest = &self.buckets[self.lowest as usize];
        let victim = lowest
            .entries
            .back()
            .expect("evict is only called on a non-empty shard");
        self.unlink(victim);
        victim
    }

    fn clear(&mut self) {
        *self = LfuPolicy::new();
    }

    #[cfg(test)]
    fn validate(&self, len: usize) {
        let mut seen = 0;
        let mut b = self.lowest;
        let mut lower = NIL;
        let mut last_count = 0;
        while b != NIL {
            let bucket = &self.buckets[b as usize];
            assert_eq!(bucket.lower, lower, "bucket list links");
            assert!(bucket.count > last_count, "buckets ascend by count");
            let slots = bucket.entries.validate(&self.links);
            assert!(!slots.is_empty(), "no empty bucket is linked");
            for s in slots {
                assert_eq!(self.bucket_of[s as usize], b, "slot {s} knows its bucket");
            }
            seen += bucket.entries.len();
            last_count = bucket.count;
            lower = b;
            b = bucket.higher;
        }
        assert_eq!(seen, len, "the buckets hold every entry");
    }
}
