//! Tests of the store-independent parts: `StoreCache` over a store in a map whose failures the
//! test switches on and off, the registry, the breaker's logging, the codecs. The real stores are
//! tested against real servers in the workspace's `tests/backend_*.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{span, Event, Level, Metadata, Subscriber};

use super::*;

/// Values by (namespace, key).
type Entries = HashMap<(String, String), Vec<u8>>;

/// A store in a map that fails with `Connect` while `down` is set, and records ttls.
#[derive(Clone, Default)]
struct MapStore {
    entries: Arc<Mutex<Entries>>,
    ttls: Arc<Mutex<Vec<Option<Duration>>>>,
    down: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    /// While set, writes are refused with this code (a full or read-only server).
    refuse_writes: Arc<Mutex<Option<&'static str>>>,
}

impl MapStore {
    fn check(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            Err(StoreError::new(ErrorKind::Connect, "connection refused"))
        } else {
            Ok(())
        }
    }

    fn raw(&self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        self.entries
            .lock()
            .get(&(namespace.to_string(), key.to_string()))
            .cloned()
    }
}

impl Store for MapStore {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        Ok(self.raw(namespace, key))
    }
    fn set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.check()?;
        if let Some(code) = *self.refuse_writes.lock() {
            return Err(StoreError::new(ErrorKind::Rejected, "refused").with_code(code));
        }
        self.ttls.lock().push(ttl);
        self.entries
            .lock()
            .insert((ns.to_string(), key.to_string()), value.to_vec());
        Ok(())
    }
    fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        self.check()?;
        Ok(self
            .entries
            .lock()
            .remove(&(namespace.to_string(), key.to_string()))
            .is_some())
    }
    fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        self.check()?;
        self.entries.lock().retain(|(ns, _), _| ns != namespace);
        Ok(())
    }
    fn len(&self, namespace: &str) -> Result<Option<usize>, StoreError> {
        self.check()?;
        Ok(Some(
            self.entries
                .lock()
                .keys()
                .filter(|(ns, _)| ns == namespace)
                .count(),
        ))
    }
}

/// A store registered under a name unique to the test.
fn registered(name: &str, options: StoreOptions) -> MapStore {
    let store = MapStore::default();
    register_with(name, store.clone(), options);
    store
}

#[test]
fn second_lookup_hits_and_counts_like_functools() {
    let store = registered("unit-hits", StoreOptions::default());
    let cache: StoreCache<(String, u32), f64> = StoreCache::new("unit-hits", "app::temperature");
    assert_eq!(cache.get_by(&("Paris", &3u32), |_| unreachable!()), None);
    cache.insert_if_absent(("Paris".into(), 3), 21.5);
    assert_eq!(
        cache.get_by(&("Paris", &3u32), |_| unreachable!()),
        Some(21.5)
    );
    let info = cache.info();
    assert_eq!((info.hits, info.misses, info.currsize), (1, 1, 1));
    let namespace = cache.namespace().unwrap();
    assert_eq!(
        store.raw(namespace, r#"["Paris",3]"#),
        Some(b"21.5".to_vec())
    );
}

#[test]
fn ttl_is_passed_to_the_store() {
    let store = registered("unit-ttl", StoreOptions::default());
    let cache: StoreCache<u8, u8> =
        StoreCache::new("unit-ttl", "app::f").with_ttl(Duration::from_secs(300));
    cache.insert(1, 1);
    assert_eq!(*store.ttls.lock(), vec![Some(Duration::from_secs(300))]);
}

#[test]
fn functions_of_one_name_in_two_modules_never_collide() {
    registered("unit-collide", StoreOptions::default());
    let a: StoreCache<u8, String> = StoreCache::new("unit-collide", "app::users::get");
    let b: StoreCache<u8, String> = StoreCache::new("unit-collide", "app::orders::get");
    a.insert(1, "user".into());
    b.insert(1, "order".into());
    assert_eq!(a.get(&1).as_deref(), Some("user"));
    assert_eq!(b.get(&1).as_deref(), Some("order"));
}

#[test]
fn a_new_version_or_signature_does_not_read_old_entries() {
    registered("unit-version", StoreOptions::default());
    let v1: StoreCache<u8, u8> = StoreCache::new("unit-version", "app::f");
    v1.insert(1, 10);
    let v2: StoreCache<u8, u8> = StoreCache::new("unit-version", "app::f").with_version(2);
    assert_eq!(v2.get(&1), None);
    let resigned: StoreCache<u8, u8> = StoreCache::new("unit-version", "app::f").with_signature(9);
    assert_eq!(resigned.get(&1), None);
    assert_eq!(v1.get(&1), Some(10));
}

#[test]
fn undecodable_value_is_a_miss_and_is_overwritten() {
    let store = registered("unit-garbage", StoreOptions::default());
    let cache: StoreCache<u8, Vec<u32>> = StoreCache::new("unit-garbage", "app::f");
    let namespace = cache.namespace().unwrap().to_string();
    store.set(&namespace, "1", b"{not json", None).unwrap();
    assert_eq!(cache.get(&1), None);
    cache.insert_if_absent(1, vec![1, 2]);
    assert_eq!(cache.get(&1), Some(vec![1, 2]));
    assert_eq!(store.raw(&namespace, "1"), Some(b"[1,2]".to_vec()));
    assert_eq!((cache.info().hits, cache.info().misses), (1, 1));
}

#[test]
fn reset_removes_only_this_functions_entries_and_zeroes_counts() {
    registered("unit-reset", StoreOptions::default());
    let mine: StoreCache<u8, u8> = StoreCache::new("unit-reset", "app::mine");
    let other: StoreCache<u8, u8> = StoreCache::new("unit-reset", "app::other");
    mine.insert(1, 1);
    other.insert(1, 2);
    assert_eq!(mine.get(&1), Some(1));
    mine.reset();
    assert_eq!(mine.info().hits, 0);
    assert_eq!(mine.get(&1), None);
    assert_eq!(other.get(&1), Some(2));
}

#[test]
fn maxsize_zero_stores_nothing_and_counts_every_call_as_a_miss() {
    let store = registered("unit-zero", StoreOptions::default());
    let cache: StoreCache<u8, u8> = StoreCache::new("unit-zero", "app::f").with_maxsize(0);
    assert_eq!(cache.get_or_insert_with(1, || 1), 1);
    assert_eq!(cache.get_or_insert_with(1, || 1), 1);
    assert_eq!((cache.info().hits, cache.info().misses), (0, 2));
    assert!(store.entries.lock().is_empty());
}

#[test]
fn key_prefix_starts_every_namespace() {
    registered("unit-prefix", StoreOptions::default().key_prefix("billing"));
    let cache: StoreCache<u8, u8> = StoreCache::new("unit-prefix", "app::f");
    assert!(cache.namespace().unwrap().starts_with("billing:app::f:v1."));
}

#[test]
fn long_arguments_are_stored_under_their_hash() {
    let store = registered("unit-long", StoreOptions::default());
    let cache: StoreCache<String, u8> = StoreCache::new("unit-long", "app::f");
    let long = "x".repeat(400);
    cache.insert(long.clone(), 7);
    assert_eq!(cache.get(long.as_str()), Some(7));
    let key = cache.key_of(&long).unwrap();
    assert_eq!(key.len(), 65);
    assert!(store.raw(cache.namespace().unwrap(), &key).is_some());
}

/// What one thread logged: (level, message).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(Level, String)>>>);

impl Capture {
    fn at(&self, level: Level) -> Vec<String> {
        let logged = self.0.lock();
        logged
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().push((*event.metadata().level(), message.0));
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[test]
fn an_outage_warns_once_skips_the_store_and_recovery_is_logged_once() {
    let options = StoreOptions::default().retry_after(Duration::ZERO);
    let store = registered("unit-outage", options);
    let cache: StoreCache<u8, u8> = StoreCache::new("unit-outage", "app::f");
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        cache.insert(1, 1);
        store.down.store(true, Ordering::Relaxed);
        for _ in 0..5 {
            assert_eq!(cache.get_or_insert_with(1, || 1), 1);
        }
        store.down.store(false, Ordering::Relaxed);
        assert_eq!(cache.get(&1), Some(1));
        assert_eq!(cache.get(&1), Some(1));
    });
    let warnings = capture.at(Level::WARN);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("store `unit-outage` unreachable: cannot connect: connection refused; calling the function directly until it recovers"),
        "{}",
        warnings[0]
    );
    let infos = capture.at(Level::INFO);
    assert_eq!(infos.len(), 1, "{infos:?}");
    assert!(
        infos[0].starts_with("store `unit-outage` recovered after"),
        "{}",
        infos[0]
    );
    let health = health("unit-outage").unwrap();
    assert!(health.up);
    assert_eq!(health.outages, 1);
    assert_eq!((cache.info().hits, cache.info().misses), (2, 5));
}

#[test]
fn a_refused_write_fails_alone_and_is_warned_once_per_kind_and_function() {
    let store = registered("unit-refused", StoreOptions::default());
    let f: StoreCache<u8, u8> = StoreCache::new("unit-refused", "app::f");
    let g: StoreCache<u8, u8> = StoreCache::new("unit-refused", "app::g");
    f.insert(1, 1);
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        *store.refuse_writes.lock() = Some("OOM");
        for n in 10..20 {
            assert_eq!(f.get_or_insert_with(n, || n), n);
            assert_eq!(f.get(&1), Some(1), "reads keep hitting");
        }
        assert_eq!(g.get_or_insert_with(1, || 1), 1);
        *store.refuse_writes.lock() = Some("WRONGTYPE");
        f.insert(2, 2);
        f.insert(3, 3);
    });
    let warnings = capture.at(Level::WARN);
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "store `unit-refused` refused a request of `app::f`: request rejected: OOM refused; \
             such calls are not cached"
        ),
        "{}",
        warnings[0]
    );
    assert!(warnings[1].contains("of `app::g`: request rejected: OOM"));
    assert!(warnings[2].contains("of `app::f`: request rejected: WRONGTYPE"));
    let health = health("unit-refused").unwrap();
    assert!(health.up);
    assert_eq!((health.outages, health.refused, health.skipped), (0, 13, 0));
    assert_eq!((f.info().hits, f.info().misses), (10, 10));
}

#[test]
fn during_the_backoff_the_store_is_not_called() {
    let store = registered(
        "unit-backoff",
        StoreOptions::default().retry_after(Duration::from_secs(3600)),
    );
    let cache: StoreCache<u8, u8> = StoreCache::new("unit-backoff", "app::f");
    store.down.store(true, Ordering::Relaxed);
    for _ in 0..10 {
        assert_eq!(cache.get_or_insert_with(1, || 2), 2);
    }
    assert_eq!(store.calls.load(Ordering::Relaxed), 1);
    assert_eq!(health("unit-backoff").unwrap().skipped, 19);
}

#[test]
fn an_unregistered_name_caches_in_memory_with_one_warning_per_name() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let a: StoreCache<u8, u8> = StoreCache::new("unit-never-registered", "app::a");
        let b: StoreCache<u8, u8> = StoreCache::new("unit-never-registered", "app::b");
        assert_eq!(a.get_or_insert_with(1, || 1), 1);
        assert_eq!(a.get_or_insert_with(1, || unreachable!()), 1);
        assert_eq!(b.get_or_insert_with(1, || 2), 2);
        assert_eq!(a.namespace(), None);
    });
    let warnings = capture.at(Level::WARN);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("no store is registered as `unit-never-registered`"));
}

#[test]
fn a_key_that_is_not_json_is_not_cached_and_warns_once() {
    registered("unit-badkey", StoreOptions::default());
    // A map with non-string keys has no JSON form.
    let cache: StoreCache<std::collections::BTreeMap<(u8, u8), u8>, u8> =
        StoreCache::new("unit-badkey", "app::f");
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let key: std::collections::BTreeMap<_, _> = [((1, 2), 3)].into();
        assert_eq!(cache.get_or_insert_with(key.clone(), || 4), 4);
        assert_eq!(cache.get_or_insert_with(key, || 5), 5);
    });
    assert_eq!(capture.at(Level::WARN).len(), 1);
    assert_eq!(cache.info().misses, 2);
}

#[cfg(feature = "msgpack")]
#[test]
fn msgpack_values_round_trip_and_are_smaller_than_json() {
    let store = registered(
        "unit-msgpack",
        StoreOptions::default().codec(Codec::MessagePack),
    );
    let cache: StoreCache<u8, Vec<u32>> = StoreCache::new("unit-msgpack", "app::f");
    let value: Vec<u32> = (1000..1100).collect();
    cache.insert(1, value.clone());
    assert_eq!(cache.get(&1), Some(value.clone()));
    let stored = store.raw(cache.namespace().unwrap(), "1").unwrap();
    assert!(stored.len() < serde_json::to_vec(&value).unwrap().len());
}

#[cfg(any(feature = "zstd", feature = "lz4"))]
fn compressed_round_trip(name: &str, compression: Compression, magic: [u8; 4]) {
    let store = registered(name, StoreOptions::default().compression(compression));
    let cache: StoreCache<u8, String> = StoreCache::new(name, "app::f");
    let long = "memoize me ".repeat(200);
    cache.insert(1, long.clone());
    cache.insert(2, "short".into());
    assert_eq!(cache.get(&1), Some(long.clone()));
    assert_eq!(cache.get(&2).as_deref(), Some("short"));
    let ns = cache.namespace().unwrap();
    let big = store.raw(ns, "1").unwrap();
    assert!(
        big.starts_with(&magic) && big.len() < long.len() / 4,
        "{}",
        big.len()
    );
    assert_eq!(store.raw(ns, "2").unwrap(), br#""short""#);
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_compresses_values_above_the_threshold_only() {
    let compression = Compression::Zstd {
        level: 3,
        min_size: 256,
    };
    compressed_round_trip("unit-zstd", compression, [0x28, 0xB5, 0x2F, 0xFD]);
}

#[cfg(feature = "lz4")]
#[test]
fn lz4_compresses_values_above_the_threshold_only() {
    let compression = Compression::Lz4 { min_size: 256 };
    compressed_round_trip("unit-lz4", compression, [0x04, 0x22, 0x4D, 0x18]);
}

#[test]
fn a_compressed_value_is_read_whatever_the_setting() {
    // Written by a process with compression on, read by one with it off (or the reverse).
    let plain = b"[1,2,3]".to_vec();
    assert_eq!(Compression::decompress(plain.clone()).unwrap(), plain);
    #[cfg(feature = "zstd")]
    {
        let packed = zstd::bulk::compress(&plain, 3).unwrap();
        assert_eq!(Compression::decompress(packed).unwrap(), plain);
    }
}
