//! One single-threaded shard: a dense slab of entries, a `HashTable` of slot numbers into it, the
//! eviction policy's metadata, and the expiry order. The thread-safe cache locks one shard per
//! operation; everything here runs under that lock and never calls user code other than
//! `Hash`, `Eq` and `Clone` of keys and values.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::links::{Links, Queue};
use crate::policy::{EvictionPolicy, Policy, PolicyState};
use crate::stats::Counters;

pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
}

/// Expiry bookkeeping, present only when the cache has a ttl. Every entry lives for the same ttl,
/// so insertion order is expiry order: the queue's back is the next to expire.
struct Expiry {
    ttl: u64,
    /// The latest time seen under the lock: callers read the clock before locking, so a
    /// thread can arrive with an older time than one already used; deadlines must not go back.
    high_water: u64,
    deadline: Vec<u64>,
    links: Links,
    order: Queue,
}

/// What an insert should do when the key is already present and alive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnPresent {
    /// Replace the value and count the write as a use (a cache's `insert`).
    Replace,
    /// Keep the stored entry untouched (functools: a recursive call stored it meanwhile).
    Keep,
}

pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    entries: Vec<Entry<K, V>>,
    policy: PolicyState,
    capacity: usize,
    expiry: Option<Expiry>,
    pub(crate) counters: Counters,
}

impl<K, V> Shard<K, V> {
    pub(crate) fn new(capacity: usize, policy: Policy, ttl_nanos: Option<u64>) -> Self {
        Shard {
            table: HashTable::new(),
            entries: Vec::new(),
            policy: PolicyState::new(policy),
            capacity,
            expiry: ttl_nanos.map(|ttl| Expiry {
                ttl,
                high_water: 0,
                deadline: Vec::new(),
                links: Links::default(),
                order: Queue::default(),
            }),
            counters: Counters::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops every entry, keeping the counters. Returns the entries so the caller drops them
    /// after releasing the lock.
    pub(crate) fn take_all(&mut self) -> Vec<Entry<K, V>> {
        self.table.clear();
        self.policy.clear();
        if let Some(e) = &mut self.expiry {
            e.deadline.clear();
            e.links.clear();
            e.order = Queue::default();
        }
        std::mem::take(&mut self.entries)
    }
}

impl<K: Hash + Eq, V> Shard<K, V> {
    /// Looks up the entry for `hash` matching `is_match`; counts a hit or a miss.
    #[inline]
    pub(crate) fn get<S: BuildHasher>(
        &mut self,
        hasher: &S,
        hash: u64,
        mut is_match: impl FnMut(&K) -> bool,
        now: u64,
    ) -> Option<&V> {
        let entries = &self.entries;
        let Some(&slot) = self
            .table
            .find(hash, |&i| is_match(&entries[i as usize].key))
        else {
            self.counters.misses += 1;
            self.policy.on_miss(hash);
            return None;
        };
        if self.is_expired(slot, now) {
            drop(self.remove_slot(hasher, slot));
            self.counters.expirations += 1;
            self.counters.misses += 1;
            self.policy.on_miss(hash);
            return None;
        }
        self.counters.hits += 1;
        self.policy.on_hit(slot);
        Some(&self.entries[slot as usize].value)
    }

    /// Looks up without counting or reordering; expired entries are not returned.
    pub(crate) fn peek(
        &self,
        hash: u64,
        mut is_match: impl FnMut(&K) -> bool,
        now: u64,
    ) -> Option<&V> {
        let entries = &self.entries;
        let &slot = self
            .table
            .find(hash, |&i| is_match(&entries[i as usize].key))?;
        (!self.is_expired(slot, now)).then(|| &self.entries[slot as usize].value)
    }

    #[inline]
    fn is_expired(&self, slot: u32, now: u64) -> bool {
        self.expiry
            .as_ref()
            .is_some_and(|e| e.deadline[slot as usize] <= now)
    }

    /// Stores `key -> value`. Returns what was pushed out (an evicted, expired or replaced
    /// entry, or the rejected input), for the caller to drop outside the lock.
    pub(crate) fn insert<S: BuildHasher>(
        &mut self,
        hasher: &S,
        hash: u64,
        key: K,
        value: V,
        now: u64,
        on_present: OnPresent,
    ) -> Vec<Entry<K, V>> {
        let mut dropped = Vec::new();
        let now = match &mut self.expiry {
            Some(e) => {
                e.high_water = e.high_water.max(now);
                e.high_water
            }
            None => now,
        };
        if self.capacity == 0 {
            dropped.push(Entry { key, value });
            return dropped;
        }
        let entries = &self.entries;
        if let Some(&slot) = self.table.find(hash, |&i| entries[i as usize].key == key) {
            if self.is_expired(slot, now) {
                dropped.push(self.remove_slot(hasher, slot));
                self.counters.expirations += 1;
            } else {
                if on_present == OnPresent::Replace {
                    let old = std::mem::replace(&mut self.entries[slot as usize].value, value);
                    self.policy.on_hit(slot);
                    self.restart_ttl(slot, now);
                    dropped.push(Entry { key, value: old });
                } else {
                    dropped.push(Entry { key, value });
                }
                return dropped;
            }
        }
        self.sweep_expired(hasher, now, &mut dropped);
        let slot = if self.entries.len() >= self.capacity {
            let victim = self.policy.evict(hash);
            self.unindex(hasher, victim);
            self.counters.evictions += 1;
            dropped.push(std::mem::replace(
                &mut self.entries[victim as usize],
                Entry { key, value },
            ));
            victim
        } else {
            let slot = self.entries.len() as u32;
            self.entries.push(Entry { key, value });
            slot
        };
        let entries = &self.entries;
        self.table
            .insert_unique(hash, slot, |&i| hasher.hash_one(&entries[i as usize].key));
        self.policy.on_insert(slot, hash);
        if let Some(e) = &mut self.expiry {
            let idx = slot as usize;
            if e.deadline.len() <= idx {
                e.deadline.resize(idx + 1, 0);
            }
            e.deadline[idx] = now.saturating_add(e.ttl);
            e.order.push_front(&mut e.links, slot);
        }
        dropped
    }

    /// Removes the entry matching `is_match`, returning it and whether it was still alive (an
    /// expired one counts as an expiration).
    pub(crate) fn remove<S: BuildHasher>(
        &mut self,
        hasher: &S,
        hash: u64,
        mut is_match: impl FnMut(&K) -> bool,
        now: u64,
    ) -> Option<(Entry<K, V>, bool)> {
        let entries = &self.entries;
        let &slot = self
            .table
            .find(hash, |&i| is_match(&entries[i as usize].key))?;
        let alive = !self.is_expired(slot, now);
        if !alive {
            self.counters.expirations += 1;
        }
        Some((self.remove_slot(hasher, slot), alive))
    }

    /// Removes every expired entry; the expiry order makes this touch only expired entries.
    pub(crate) fn sweep_expired<S: BuildHasher>(
        &mut self,
        hasher: &S,
        now: u64,
        dropped: &mut Vec<Entry<K, V>>,
    ) {
        while let Some(e) = &self.expiry {
            match e.order.back() {
                Some(slot) if e.deadline[slot as usize] <= now => {
                    dropped.push(self.remove_slot(hasher, slot));
                    self.counters.expirations += 1;
                }
                _ => break,
            }
        }
    }

    fn restart_ttl(&mut self, slot: u32, now: u64) {
        if let Some(e) = &mut self.expiry {
            e.deadline[slot as usize] = now.saturating_add(e.ttl);
            e.order.move_to_front(&mut e.links, slot);
        }
    }

    /// Takes the entry at `slot` out of the table and the expiry order (not the policy).
    fn unindex<S: BuildHasher>(&mut self, hasher: &S, slot: u32) {
        let hash = hasher.hash_one(&self.entries[slot as usize].key);
        match self.table.find_entry(hash, |&i| i == slot) {
            Ok(found) => {
                found.remove();
            }
            Err(_) => unreachable!("every stored entry is indexed"),
        }
        if let Some(e) = &mut self.expiry {
            e.order.unlink(&mut e.links, slot);
        }
    }

    /// Removes the entry at `slot`, moving the last entry into its place to keep slots dense.
    fn remove_slot<S: BuildHasher>(&mut self, hasher: &S, slot: u32) -> Entry<K, V> {
        self.unindex(hasher, slot);
        self.policy.on_remove(slot);
        let last = (self.entries.len() - 1) as u32;
        let removed = self.entries.swap_remove(slot as usize);
        if slot != last {
            let hash = hasher.hash_one(&self.entries[slot as usize].key);
            match self.table.find_mut(hash, |&i| i == last) {
                Some(index) => *index = slot,
                None => unreachable!("the moved entry is indexed"),
            }
            self.policy.on_move(last, slot);
            if let Some(e) = &mut self.expiry {
                e.order.relocate(&mut e.links, last, slot);
                e.deadline[slot as usize] = e.deadline[last as usize];
            }
        }
        if let Some(e) = &mut self.expiry {
            e.deadline.truncate(self.entries.len());
        }
        removed
    }

    /// Recounts everything and checks the invariants (tests and fuzzing only).
    #[cfg(test)]
    pub(crate) fn validate<S: BuildHasher>(&self, hasher: &S) {
        let len = self.entries.len();
        assert!(
            len <= self.capacity,
            "{len} entries over capacity {}",
            self.capacity
        );
        assert_eq!(self.table.len(), len, "table and slab disagree");
        for (slot, entry) in self.entries.iter().enumerate() {
            let hash = hasher.hash_one(&entry.key);
            assert_eq!(
                self.table.find(hash, |&i| i as usize == slot).copied(),
                Some(slot as u32),
                "entry {slot} is not indexed under its hash"
            );
        }
        self.policy.validate(len);
        if let Some(e) = &self.expiry {
            let order = e.order.validate(&e.links);
            assert_eq!(order.len(), len, "expiry order holds every entry");
            let deadlines: Vec<u64> = order.iter().map(|&s| e.deadline[s as usize]).collect();
            assert!(
                deadlines.windows(2).all(|w| w[0] >= w[1]),
                "expiry order is sorted by deadline"
            );
        }
    }
}
