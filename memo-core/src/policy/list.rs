//! LRU, FIFO and MRU: one recency (or insertion) ordered list.

use super::EvictionPolicy;
use crate::links::{Links, Queue};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Lru,
    Fifo,
    Mru,
}

/// One list, front = most recently used (or inserted, for FIFO).
pub(crate) struct ListPolicy {
    mode: Mode,
    links: Links,
    queue: Queue,
}

impl ListPolicy {
    pub(crate) fn new(mode: Mode) -> Self {
        ListPolicy {
            mode,
            links: Links::default(),
            queue: Queue::default(),
        }
    }

    /// Replays a run of hits (slot ids, oldest first) as `on_hit` would one by one. Ids of
    /// slots no longer in the list (retired since the hit) are skipped: no liveness check
    /// needed (see `Queue::move_all_to_front`).
    #[inline]
    pub(crate) fn on_hits(&mut self, slots: &[u64]) {
        if self.mode != Mode::Fifo {
            self.queue.move_all_to_front(&mut self.links, slots);
        }
    }
}

impl EvictionPolicy for ListPolicy {
    #[inline]
    fn on_insert(&mut self, slot: u32, _hash: u64) {
        self.queue.push_front(&mut self.links, slot);
    }

    #[inline]
    fn on_hit(&mut self, slot: u32) {
        if self.mode != Mode::Fifo {
            self.queue.move_to_front(&mut self.links, slot);
        }
    }

    fn on_remove(&mut self, slot: u32) {
        self.queue.unlink(&mut self.links, slot);
    }

    fn on_move(&mut self, from: u32, to: u32) {
        self.queue.relocate(&mut self.links, from, to);
    }

    #[inline]
    fn evict(&mut self, _incoming_hash: u64) -> u32 {
        let victim = match self.mode {
            Mode::Lru | Mode::Fifo => self.queue.pop_back(&mut self.links),
            Mode::Mru => self.queue.pop_front(&mut self.links),
        };
        victim.expect("evict is only called on a non-empty shard")
    }

    fn clear(&mut self) {
        self.links.clear();
        self.queue = Queue::default();
    }

    #[cfg(test)]
    fn validate(&self, len: usize) {
        let slots = self.queue.validate(&self.links);
        assert_eq!(slots.len(), len, "policy list holds every entry");
    }
}
