//! Per-namespace generations: what makes `clear` one round trip on a server that cannot list or
//! drop a namespace's keys cheaply (Memcached cannot list keys at all; Redis can only SCAN its
//! whole keyspace).
//!
//! A namespace's generation is a number stored under `namespace:gen` and part of every data key
//! (`namespace:generation:key`); a clear increments it, which orphans the old keys at once. Each
//! process remembers the generations it read for `refresh` (1 s by default), so a clear made by
//! another process is seen within that time and this process's own clears at once. A generation
//! that is missing (lost to a restart or an eviction) is recreated as the last one this process
//! saw, or else as the current time in ms, so that it never comes back to an old value; one that
//! does not parse is overwritten the same way, like an undecodable value.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// The generations this process has read, by namespace.
pub(crate) struct Generations {
    refresh: Duration,
    seen: Mutex<HashMap<String, (u64, Instant)>>,
}

impl Generations {
    pub fn new(refresh: Duration) -> Self {
        Generations {
            refresh,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_refresh(&mut self, refresh: Duration) {
        self.refresh = refresh;
    }

    /// The generation of `namespace` if read less than `refresh` ago.
    pub fn fresh(&self, namespace: &str) -> Option<u64> {
        let seen = self.seen.lock();
        let (generation, read_at) = seen.get(namespace)?;
        (read_at.elapsed() < self.refresh).then_some(*generation)
    }

    /// The generation of `namespace` last read or set by this process, however long ago.
    pub fn last(&self, namespace: &str) -> Option<u64> {
        self.seen
            .lock()
            .get(namespace)
            .map(|(generation, _)| *generation)
    }

    /// What a missing or garbled generation is recreated as: the last one seen, or the time.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn replacement(&self, namespace: &str) -> u64 {
        self.last(namespace).unwrap_or_else(unix_millis)
    }

    pub fn remember(&self, namespace: &str, generation: u64) {
        self.seen
            .lock()
            .insert(namespace.to_string(), (generation, Instant::now()));
    }
}

/// The key that holds the generation of `namespace`.
pub(crate) fn key(namespace: &str) -> String {
    format!("{namespace}:gen")
}

/// A stored generation, if it is one.
pub(crate) fn parse(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_is_trusted_for_the_refresh_then_replaced_by_the_last_seen() {
        let generations = Generations::new(Duration::from_secs(3600));
        assert_eq!(generations.fresh("ns"), None);
        assert!(
            generations.replacement("ns") >= 1_700_000_000_000,
            "the time in ms"
        );
        assert_eq!(generations.last("ns"), None);
        generations.remember("ns", 7);
        assert_eq!(generations.fresh("ns"), Some(7));
        assert_eq!(generations.last("ns"), Some(7));
        assert_eq!(generations.replacement("ns"), 7);
        let stale = Generations::new(Duration::ZERO);
        stale.remember("ns", 7);
        assert_eq!(stale.fresh("ns"), None);
        assert_eq!(stale.last("ns"), Some(7), "remembered past the refresh");
        assert_eq!(
            (parse(b"42"), parse(b"4x"), parse(b"")),
            (Some(42), None, None)
        );
    }
}
