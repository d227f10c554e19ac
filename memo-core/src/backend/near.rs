//! The near cache: a bounded in-process layer in front of a store (`#[memoize(store = "...",
//! local = 1000, local_ttl = "5s")]`, [`StoreCache::with_local`](super::StoreCache::with_local)),
//! kept coherent across processes where the store can push.
//!
//! Every entry of the layer carries its *birth*, a stamp of a process-wide counter taken when
//! the read (or write) that produced it began. Whatever can make an entry stale takes a new
//! stamp and records it, and a hit checks its birth against those records (a few atomic loads;
//! a lock only while an invalidation of the last `local_ttl` is recorded):
//!
//! - `cache_invalidate` of a key, in this process or (pushed) in another: a mark for the key
//!   (a hash of its stored item) with the stamp; entries of that key born before are misses;
//! - `cache_clear`, here or pushed: every entry of the function born before is a miss;
//! - the push subscription lost (or not yet made): every entry of every function of the store
//!   born before is a miss, and the layer is bypassed (no hit, nothing kept) until it is back,
//!   since the messages missed meanwhile cannot be known.
//!
//! A read that began before an invalidation is not kept, so a value read from the store just
//! before another process deleted it never lands in the layer after the message came.
//!
//! Pushes (Redis): one pattern subscription per store (`PSUBSCRIBE <prefix>:*:near`), on a
//! thread of its own, and one channel per namespace (`<namespace>:near`). The messages are
//! `<sender> del <item>` and `<sender> clr <generation>`; a process ignores its own (it applied
//! them synchronously). Classic pub/sub is broadcast to every node of a Redis Cluster, so the
//! subscription is made on any one node. A silent connection is found by a `PING` after 500 ms
//! without a message. Stores without pushes (memcached, SQLite, a custom store): the layer's
//! ttl is the only bound on what other processes changed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::StoreError;

/// The process-wide clock of births and invalidations.
static STAMPS: AtomicU64 = AtomicU64::new(1);

/// The stamp a read or write takes when it begins: what it keeps is born then.
pub(crate) fn stamp() -> u64 {
    STAMPS.load(Ordering::Acquire)
}

/// A new stamp, after every birth so far: what an invalidation records.
fn bump() -> u64 {
    STAMPS.fetch_add(1, Ordering::AcqRel) + 1
}

/// The hash of a stored item (`["Paris",3]`) that marks it invalidated: FNV-1a, the same in
/// every process (a collision only costs a miss).
pub(crate) fn item_hash(item: &str) -> u64 {
    item.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Invalidations recorded at most per function; past it, the whole layer is cleared instead.
const MAX_MARKS: usize = 4096;

/// What makes one function's local layer stale in this process (its entries are typed, in the
/// `StoreCache`; this part is not).
pub(crate) struct NearState {
    /// How long an entry lives: marks older than this invalidate nothing still there.
    ttl: Duration,
    /// Entries born before this are misses (`cache_clear`).
    cleared_at: AtomicU64,
    /// Item hash -> the stamp and time of its invalidation.
    marks: Mutex<HashMap<u64, (u64, Instant)>>,
    marked: AtomicUsize,
    hub: Option<Arc<Hub>>,
}

impl NearState {
    /// The state of a layer of `namespace` with entries living `ttl`, attached to `hub` (the
    /// store's pushes) if it has one.
    pub fn attach(hub: Option<&Arc<Hub>>, namespace: &str, ttl: Duration) -> Arc<NearState> {
        let state = Arc::new(NearState {
            ttl,
            cleared_at: AtomicU64::new(0),
            marks: Mutex::new(HashMap::new()),
            marked: AtomicUsize::new(0),
            hub: hub.cloned(),
        });
        if let Some(hub) = hub {
            hub.attach(namespace, &state);
        }
        state
    }

    /// Whether the layer may be used now: always without pushes; with them, while subscribed.
    #[inline]
    pub fn usable(&self) -> bool {
        self.hub.as_ref().is_none_or(|hub| hub.live())
    }

    /// Whether an entry of `item` born at `born` is still good.
    #[inline]
    pub fn fresh(&self, born: u64, item: u64) -> bool {
        if let Some(hub) = &self.hub
            && (!hub.live() || born < hub.lost_at.load(Ordering::Acquire))
        {
            return false;
        }
        if born < self.cleared_at.load(Ordering::Acquire) {
            return false;
        }
        if self.marked.load(Ordering::Acquire) == 0 {
            return true;
        }
        self.marks
            .lock()
            .get(&item)
            .is_none_or(|(stamp, _)| born >= *stamp)
    }

    /// `item` was invalidated: its entries born until now are misses.
    pub fn invalidated(&self, item: u64) {
        let mut marks = self.marks.lock();
        let stamp = bump();
        let now = Instant::now();
        let ttl = self.ttl;
        // Entries born before a mark older than the ttl have expired anyway.
        marks.retain(|_, (_, at)| now.duration_since(*at) < ttl);
        if marks.len() >= MAX_MARKS {
            marks.clear();
            self.cleared_at.store(stamp, Ordering::Release);
        } else {
            marks.insert(item, (stamp, now));
        }
        self.marked.store(marks.len(), Ordering::Release);
    }

    /// The function's cache was cleared: every entry born until now is a miss.
    pub fn cleared(&self) {
        self.cleared_at.store(bump(), Ordering::Release);
        let mut marks = self.marks.lock();
        marks.clear();
        self.marked.store(0, Ordering::Release);
    }

    /// Tells the other layers of `namespace` in this process, and (if `publish`) the other
    /// processes, that `item` was invalidated (with pushes).
    pub fn tell_invalidated(&self, namespace: &str, item: &str, publish: bool) {
        if let Some(hub) = &self.hub {
            let hash = item_hash(item);
            hub.each_layer(namespace, |layer| layer.invalidated(hash));
            if publish {
                hub.publish(namespace, &format!("del {item}"));
            }
        }
    }

    /// Tells the other layers of `namespace` in this process, and (if `publish`) the other
    /// processes, that it was cleared (with pushes).
    pub fn tell_cleared(&self, namespace: &str, publish: bool) {
        if let Some(hub) = &self.hub {
            hub.each_layer(namespace, NearState::cleared);
            if publish {
                let generation = hub.push.generation(namespace).unwrap_or(0);
                hub.publish(namespace, &format!("clr {generation}"));
            }
        }
    }
}

/// What a store that pushes invalidations provides (Redis pub/sub).
pub(crate) trait Push: Send + Sync + 'static {
    /// Subscribes to `pattern` and calls `live` once subscribed, then `message(channel,
    /// payload)` for each message, until the subscription is lost: its error. Blocks.
    fn listen(
        &self,
        pattern: &str,
        live: &mut dyn FnMut(),
        message: &mut dyn FnMut(&str, &[u8]),
    ) -> StoreError;
    /// Publishes `payload` on `channel`.
    fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), StoreError>;
    /// The generation of `namespace` this process last saw.
    fn generation(&self, namespace: &str) -> Option<u64>;
    /// Another process cleared `namespace` to `generation`: read it from now on (unless a
    /// newer one was seen).
    fn advance(&self, namespace: &str, generation: u64);
}

/// One store's pushes: the subscription and the layers it keeps coherent.
pub(crate) struct Hub {
    store: String,
    push: Box<dyn Push>,
    pattern: String,
    /// This process, in messages: its own are skipped.
    sender: String,
    live: AtomicBool,
    /// Entries born before this are misses: the subscription was lost then.
    lost_at: AtomicU64,
    layers: RwLock<HashMap<String, Vec<Weak<NearState>>>>,
    started: Once,
    /// Messages received from other processes (for tests and `near_subscribed`).
    received: AtomicU64,
}

/// The retry of a lost subscription: from this, doubling.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(2);

impl Hub {
    /// The pushes of store `store` (keys prefixed `key_prefix`) through `push`; the
    /// subscription is made when the first layer attaches.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn new(store: &str, key_prefix: &str, push: Box<dyn Push>) -> Arc<Hub> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Arc::new(Hub {
            store: store.to_string(),
            push,
            pattern: format!("{}:*:near", glob_escape(key_prefix)),
            sender: format!("{:08x}{:08x}", std::process::id(), nanos),
            live: AtomicBool::new(false),
            lost_at: AtomicU64::new(0),
            layers: RwLock::new(HashMap::new()),
            started: Once::new(),
            received: AtomicU64::new(0),
        })
    }

    #[inline]
    fn live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Whether the subscription is up, and how many messages came from other processes.
    pub fn status(&self) -> (bool, u64) {
        (self.live(), self.received.load(Ordering::Acquire))
    }

    fn attach(self: &Arc<Self>, namespace: &str, state: &Arc<NearState>) {
        let mut layers = self.layers.write();
        let list = layers.entry(namespace.to_string()).or_default();
        list.retain(|layer| layer.strong_count() > 0);
        list.push(Arc::downgrade(state));
        drop(layers);
        self.started.call_once(|| {
            let hub = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("memo-near".into())
                .spawn(move || hub.run());
            if let Err(error) = spawned {
                tracing::warn!(store = %self.store, %error,
                    "cannot start the near cache's subscription; local layers stay bypassed");
            }
        });
    }

    /// The subscription's thread: subscribe, dispatch, and on loss clear every layer, warn
    /// once, and subscribe again after a backoff.
    fn run(self: Arc<Self>) {
        let mut retry = FIRST_RETRY;
        let mut warned = false;
        loop {
            let mut live = || {
                // A read that began before now may have missed a message: not kept.
                self.lost_at.store(bump(), Ordering::Release);
                self.live.store(true, Ordering::Release);
                if std::mem::take(&mut warned) {
                    tracing::info!(store = %self.store,
                        "store `{}`: near cache subscription back; local layers in use again",
                        self.store);
                }
            };
            let mut message = |channel: &str, payload: &[u8]| self.dispatch(channel, payload);
            let error = self.push.listen(&self.pattern, &mut live, &mut message);
            let was_live = self.live.swap(false, Ordering::AcqRel);
            self.lost_at.store(bump(), Ordering::Release);
            if was_live {
                retry = FIRST_RETRY;
            }
            if !warned {
                warned = true;
                tracing::warn!(store = %self.store, %error,
                    "store `{}`: near cache subscription lost ({error}); local layers cleared \
                     and bypassed until it is back (warned once per loss)", self.store);
            }
            std::thread::sleep(retry);
            retry = (retry * 2).min(MAX_RETRY);
        }
    }

    fn dispatch(&self, channel: &str, payload: &[u8]) {
        let Some(namespace) = channel.strip_suffix(":near") else {
            return;
        };
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let Some((sender, rest)) = text.split_once(' ') else {
            return;
        };
        if sender == self.sender {
            return;
        }
        self.received.fetch_add(1, Ordering::AcqRel);
        if let Some(item) = rest.strip_prefix("del ") {
            let hash = item_hash(item);
            self.each_layer(namespace, |layer| layer.invalidated(hash));
        } else if let Some(generation) = rest.strip_prefix("clr ") {
            if let Ok(generation) = generation.parse::<u64>() {
                self.push.advance(namespace, generation);
            }
            self.each_layer(namespace, NearState::cleared);
        }
    }

    /// `op` on every layer of `namespace` in this process.
    fn each_layer(&self, namespace: &str, op: impl Fn(&NearState)) {
        let layers: Vec<Arc<NearState>> = match self.layers.read().get(namespace) {
            Some(list) => list.iter().filter_map(Weak::upgrade).collect(),
            None => return,
        };
        for layer in &layers {
            op(layer);
        }
    }

    fn publish(&self, namespace: &str, message: &str) {
        let channel = format!("{namespace}:near");
        let payload = format!("{} {message}", self.sender);
        if let Err(error) = self.push.publish(&channel, payload.as_bytes()) {
            // The others keep their entries until their local ttl: say so (debug: the store's
            // own failure is warned by its breaker).
            tracing::debug!(store = %self.store, %error,
                "near cache: cannot publish an invalidation; other processes keep their local \
                 entry until its local ttl");
        }
    }
}

/// `text` with the glob characters of a `PSUBSCRIBE` pattern escaped.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_rejects_entries_born_before_it_and_only_of_its_item() {
        let state = NearState::attach(None, "ns", Duration::from_secs(60));
        let (a, b) = (item_hash("[1]"), item_hash("[2]"));
        let before = stamp();
        assert!(state.fresh(before, a) && state.usable());
        state.invalidated(a);
        assert!(!state.fresh(before, a), "born before the invalidation");
        assert!(state.fresh(before, b), "another key");
        assert!(state.fresh(stamp(), a), "read again after it");
        let before = stamp();
        state.cleared();
        assert!(!state.fresh(before, b));
        assert!(state.fresh(stamp(), b));
    }

    #[test]
    fn too_many_marks_clear_the_layer_and_old_marks_are_dropped() {
        let state = NearState::attach(None, "ns", Duration::from_secs(60));
        let before = stamp();
        for n in 0..MAX_MARKS as u64 {
            state.invalidated(n);
        }
        assert_eq!(state.marked.load(Ordering::Acquire), MAX_MARKS);
        let after = stamp();
        state.invalidated(u64::MAX);
        assert_eq!(state.marked.load(Ordering::Acquire), 0, "cleared instead");
        assert!(!state.fresh(before, 12345) && !state.fresh(after, 12345));
        let short = NearState::attach(None, "ns", Duration::ZERO);
        short.invalidated(1);
        short.invalidated(2);
        assert_eq!(short.marks.lock().len(), 1, "the expired mark was dropped");
    }

    #[test]
    fn patterns_escape_the_prefix() {
        assert_eq!(glob_escape("my*app[1]"), "my\\*app\\[1\\]");
        assert_ne!(item_hash("[1]"), item_hash("[2]"));
    }
}
