//! Eviction policies. Each one keeps its own per-slot metadata, indexed by the shard's slot
//! numbers, so the shard's storage is the same whatever the policy.

mod adaptive;
mod lfu;
mod list;
mod mini;
mod sketch;

use adaptive::AdaptivePolicy;
use lfu::LfuPolicy;
use list::ListPolicy;

/// Which entry a full cache gives up to make room.
///
/// ```
/// use memo::{Cache, Policy};
///
/// let cache: Cache<u32, u32> = Cache::builder().maxsize(2).policy(Policy::Fifo).build().unwrap();
/// cache.insert(1, 1);
/// cache.insert(2, 2);
/// cache.get(&1); // a hit does not reorder a FIFO
/// cache.insert(3, 3); // evicts 1, the first in
/// assert_eq!(cache.get(&1), None);
/// assert_eq!(cache.get(&2), Some(2));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Policy {
    /// Least recently used goes first: exactly `functools.lru_cache`.
    #[default]
    Lru,
    /// First in, first out: hits do not reorder.
    Fifo,
    /// Least frequently used goes first (the count of uses since it was stored); among equals,
    /// the least recently used.
    Lfu,
    /// Most recently used goes first: for cyclic scans larger than the cache.
    Mru,
    /// Adapts between recency and frequency: W-TinyLFU, as in Caffeine. New entries pass
    /// through an LRU window; to stay, they must have been seen more often recently than the
    /// entry they would displace. Sampled miniature copies of the policy, with windows from one
    /// entry to the whole cache (plain LRU), replay a share of the requests. The cache starts
    /// as plain LRU and follows another copy only once it has hit clearly more (more than holding
    /// other entries explains), and it grows toward LRU at once whenever plain LRU would be
    /// hitting clearly more: on no trace does it hit more than 2 points less than LRU. Once the
    /// frequency copies have shown they pay, scans and one-off keys do not flush the cache's
    /// popular entries.
    Adaptive,
}

impl Policy {
    /// The name used in `#[memoize(policy = "...")]`.
    ///
    /// ```
    /// assert_eq!(memo::Policy::Lru.name(), "lru");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::Fifo => "fifo",
            Policy::Lfu => "lfu",
            Policy::Mru => "mru",
            Policy::Adaptive => "adaptive",
        }
    }

    /// Every policy: the default first.
    ///
    /// ```
    /// assert!(memo::Policy::ALL.contains(&memo::Policy::Fifo));
    /// ```
    pub const ALL: &'static [Policy] = &[
        Policy::Lru,
        Policy::Fifo,
        Policy::Lfu,
        Policy::Mru,
        Policy::Adaptive,
    ];
}

impl std::str::FromStr for Policy {
    type Err = String;

    /// Parses a policy name: `lru`, `fifo`, `lfu`, `mru`, `adaptive`.
    fn from_str(s: &str) -> Result<Self, String> {
        Policy::ALL
            .iter()
            .copied()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Policy::ALL.iter().map(|p| p.name()).collect();
                format!("unknown policy `{s}`; expected one of {}", names.join(", "))
            })
    }
}

/// The interface between a shard and its policy. Slots are small ids, not necessarily dense.
pub(crate) trait EvictionPolicy: Send {
    /// A new entry was stored at `slot` (a free slot id).
    fn on_insert(&mut self, slot: u32, hash: u64);
    /// A lookup found the entry at `slot`.
    fn on_hit(&mut self, slot: u32);
    /// A lookup found nothing for `hash` (frequency-aware policies count it).
    fn on_miss(&mut self, _hash: u64) {}
    /// The entry at `slot` was removed (explicitly or by expiry); it is unlinked.
    fn on_remove(&mut self, slot: u32);
    /// The entry at slot `from` moved to slot `to`, which is free (its value was replaced).
    fn on_move(&mut self, from: u32, to: u32);
    /// The cache is full and an entry with `incoming_hash` is about to be stored: unlink the
    /// victim and return its slot. Only called when at least one entry is stored.
    fn evict(&mut self, incoming_hash: u64) -> u32;
    /// Every entry was removed.
    fn clear(&mut self);
    /// Checks internal consistency against the number of stored entries (tests only).
    #[cfg(test)]
    fn validate(&self, len: usize);
}

/// The concrete policy of a shard: an enum, so the hit path has no virtual call. `repr(u8)`: its
/// variant is a byte to compare (by the niche of a vector's capacity it took 9 instructions to
/// decode, twice per eviction).
#[repr(u8)]
pub(crate) enum PolicyState {
    List(ListPolicy),
    Lfu(LfuPolicy),
    Adaptive(Box<AdaptivePolicy>),
}

impl PolicyState {
    pub(crate) fn new(policy: Policy) -> Self {
        match policy {
            Policy::Lru => PolicyState::List(ListPolicy::new(list::Mode::Lru)),
            Policy::Fifo => PolicyState::List(ListPolicy::new(list::Mode::Fifo)),
            Policy::Mru => PolicyState::List(ListPolicy::new(list::Mode::Mru)),
            Policy::Lfu => PolicyState::Lfu(LfuPolicy::new()),
            Policy::Adaptive => PolicyState::Adaptive(Box::new(AdaptivePolicy::new())),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            PolicyState::List($p) => $e,
            PolicyState::Lfu($p) => $e,
            PolicyState::Adaptive($p) => $e,
        }
    };
}

impl EvictionPolicy for PolicyState {
    #[inline]
    fn on_insert(&mut self, slot: u32, hash: u64) {
        dispatch!(self, p => p.on_insert(slot, hash))
    }
    #[inline]
    fn on_hit(&mut self, slot: u32) {
        dispatch!(self, p => p.on_hit(slot))
    }
    #[inline]
    fn on_miss(&mut self, hash: u64) {
        dispatch!(self, p => p.on_miss(hash))
    }
    #[inline]
    fn on_remove(&mut self, slot: u32) {
        dispatch!(self, p => p.on_remove(slot))
    }
    #[inline]
    fn on_move(&mut self, from: u32, to: u32) {
        dispatch!(self, p => p.on_move(from, to))
    }
    #[inline]
    fn evict(&mut self, incoming_hash: u64) -> u32 {
        dispatch!(self, p => p.evict(incoming_hash))
    }
    fn clear(&mut self) {
        dispatch!(self, p => p.clear())
    }
    #[cfg(test)]
    fn validate(&self, len: usize) {
        dispatch!(self, p => p.validate(len))
    }
}
