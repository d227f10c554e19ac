//! The persistent store: a SQLite file that survives restarts, with a ttl and a size bound.
#![cfg(feature = "persistent")]

use std::path::PathBuf;
use std::time::Duration;

use memo::stores::{self, PersistentStore, Store, StoreCache};
use memo::ManualClock;

/// A file of its own for each test, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(test: &str) -> TempFile {
        let path = std::env::temp_dir()
            .join(format!("memo-test-{}", std::process::id()))
            .join(format!("{test}.sqlite"));
        let _ = std::fs::remove_file(&path);
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.0.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

#[test]
fn entries_survive_a_restart() {
    let file = TempFile::new("restart");
    {
        let store = PersistentStore::open(&file.0).unwrap();
        stores::register("persistent-before", store);
        let squares: StoreCache<(u64,), u64> = StoreCache::new("persistent-before", "app::square");
        for n in 0..10 {
            squares.insert_if_absent((n,), n * n);
        }
    }
    // A second open of the file, as a restarted process makes.
    stores::register("persistent-after", PersistentStore::open(&file.0).unwrap());
    let squares: StoreCache<(u64,), u64> = StoreCache::new("persistent-after", "app::square");
    for n in 0..10 {
        assert_eq!(squares.get_by(&(&n,), |_| unreachable!()), Some(n * n));
    }
    let info = squares.info();
    assert_eq!((info.hits, info.misses, info.currsize), (10, 0, 10));
}

#[test]
fn entries_expire_after_their_ttl() {
    let file = TempFile::new("ttl");
    let clock = ManualClock::new();
    let store = PersistentStore::open(&file.0)
        .unwrap()
        .with_clock(clock.clone());
    stores::register("persistent-ttl", store);
    let cache: StoreCache<u8, u8> =
        StoreCache::new("persistent-ttl", "app::f").with_ttl(Duration::from_secs(30));
    cache.insert(1, 1);
    clock.advance(Duration::from_secs(29));
    assert_eq!(cache.get(&1), Some(1));
    assert_eq!(cache.info().currsize, 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.info().currsize, 0);
}

#[test]
fn the_file_keeps_at_most_max_entries_dropping_expired_then_oldest() {
    let file = TempFile::new("bound");
    let clock = ManualClock::new();
    let store = PersistentStore::open(&file.0)
        .unwrap()
        .with_max_entries(20)
        .with_clock(clock.clone());
    // Five entries that expire, then 95 that do not, one millisecond apart.
    for i in 0..100u32 {
        let ttl = (i < 5).then_some(Duration::from_millis(1));
        store.set("ns", &i.to_string(), b"v", ttl).unwrap();
        clock.advance(Duration::from_millis(1));
        assert!(store.total_entries().unwrap() <= 20, "after {i}");
    }
    assert_eq!(store.get("ns", "99").unwrap(), Some(b"v".to_vec()));
    assert_eq!(store.get("ns", "0").unwrap(), None);
    assert_eq!(
        store.get("ns", "50").unwrap(),
        None,
        "the oldest went first"
    );
}

#[test]
fn clear_removes_only_this_functions_entries() {
    let file = TempFile::new("clear");
    stores::register("persistent-clear", PersistentStore::open(&file.0).unwrap());
    let users: StoreCache<u32, String> = StoreCache::new("persistent-clear", "app::users::get");
    let orders: StoreCache<u32, String> = StoreCache::new("persistent-clear", "app::orders::get");
    users.insert(1, "user".into());
    orders.insert(1, "order".into());
    users.reset();
    assert_eq!(users.get(&1), None);
    assert_eq!(orders.get(&1).as_deref(), Some("order"));
}

#[test]
fn undecodable_value_is_a_miss_and_is_overwritten() {
    let file = TempFile::new("garbage");
    let store = PersistentStore::open(&file.0).unwrap();
    stores::register(
        "persistent-garbage",
        PersistentStore::open(&file.0).unwrap(),
    );
    let cache: StoreCache<u8, u32> = StoreCache::new("persistent-garbage", "app::f");
    store
        .set(cache.namespace().unwrap(), "1", b"\xff\xfe", None)
        .unwrap();
    assert_eq!(cache.get(&1), None);
    cache.insert_if_absent(1, 7);
    assert_eq!(cache.get(&1), Some(7));
    assert_eq!(
        store.get(cache.namespace().unwrap(), "1").unwrap(),
        Some(b"7".to_vec())
    );
}

#[test]
fn threads_share_one_store() {
    let file = TempFile::new("threads");
    stores::register(
        "persistent-threads",
        PersistentStore::open(&file.0).unwrap(),
    );
    let cache: StoreCache<u32, u32> = StoreCache::new("persistent-threads", "app::f");
    std::thread::scope(|s| {
        for t in 0..4 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..50 {
                    assert_eq!(cache.get_or_insert_with(i, || i + 1), i + 1, "thread {t}");
                }
            });
        }
    });
    let info = cache.info();
    assert_eq!(info.hits + info.misses, 200);
    assert!(info.misses >= 50);
    assert_eq!(info.currsize, 50);
}

/// Database files beside `file` whose names begin with its name and `.corrupt-`.
fn moved_aside(file: &TempFile) -> Vec<PathBuf> {
    let mut found = aside_files(file);
    found.retain(|p| {
        let name = p.to_string_lossy();
        !name.ends_with("-wal") && !name.ends_with("-shm")
    });
    found
}

/// Every file moved aside from `file` (with their WAL and shared memory).
fn aside_files(file: &TempFile) -> Vec<PathBuf> {
    let name = file.0.file_name().unwrap().to_string_lossy().into_owned();
    let mut found: Vec<PathBuf> = std::fs::read_dir(file.0.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{name}.corrupt-")))
        })
        .collect();
    found.sort();
    found
}

fn remove_aside(file: &TempFile) {
    for path in aside_files(file) {
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn a_file_that_is_not_a_database_is_moved_aside_and_started_over() {
    let file = TempFile::new("not-a-database");
    std::fs::create_dir_all(file.0.parent().unwrap()).unwrap();
    std::fs::write(&file.0, vec![0xA5u8; 8192]).unwrap();
    let store = PersistentStore::open(&file.0).expect("open never fails on a corrupt file");
    stores::register("persistent-corrupt-open", store);
    let cache: StoreCache<u8, u8> = StoreCache::new("persistent-corrupt-open", "app::f");
    cache.insert(1, 2);
    assert_eq!(cache.get(&1), Some(2));
    let aside = moved_aside(&file);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        vec![0xA5u8; 8192],
        "kept as it was"
    );
    remove_aside(&file);
}

#[test]
fn a_file_corrupted_while_open_is_replaced_at_the_next_call() {
    let file = TempFile::new("corrupted-later");
    let store = PersistentStore::open(&file.0).unwrap();
    for i in 0..200 {
        store.set("ns", &i.to_string(), &[7; 100], None).unwrap();
    }
    drop(store);
    // Another program scribbles over the file (the WAL was checkpointed at close).
    let store = PersistentStore::open(&file.0).unwrap();
    let mut bytes = std::fs::read(&file.0).unwrap();
    for b in bytes.iter_mut() {
        *b = !*b;
    }
    std::fs::write(&file.0, &bytes).unwrap();
    stores::register("persistent-corrupt-later", store);
    let cache: StoreCache<u8, u8> = StoreCache::new("persistent-corrupt-later", "app::f");
    assert_eq!(cache.get(&1), None, "a miss");
    cache.insert(1, 2);
    assert_eq!(cache.get(&1), Some(2));
    assert_eq!(moved_aside(&file).len(), 1);
    let health = stores::health("persistent-corrupt-later").unwrap();
    assert_eq!((health.up, health.outages), (true, 0), "{health:?}");
    remove_aside(&file);
}

#[test]
fn a_full_file_refuses_writes_alone_and_reads_keep_hitting() {
    let file = TempFile::new("full");
    let store = PersistentStore::open(&file.0)
        .unwrap()
        .with_max_file_size(128 << 10)
        .unwrap();
    stores::register("persistent-full", store);
    let cache: StoreCache<u32, String> = StoreCache::new("persistent-full", "app::f");
    let value = |n: u32| format!("{n}:{}", "x".repeat(4000));
    let mut stored = 0;
    for n in 0..100 {
        cache.insert(n, value(n));
        if cache.get(&n).is_none() {
            break;
        }
        stored += 1;
    }
    assert!((5..60).contains(&stored), "{stored} values fit");
    for n in 0..stored {
        assert_eq!(cache.get(&n), Some(value(n)), "value {n} still hits");
    }
    let health = stores::health("persistent-full").unwrap();
    assert_eq!((health.up, health.outages), (true, 0), "{health:?}");
    assert!(health.last_error.unwrap().contains("full"));
}

#[test]
fn huge_ttls_are_capped_not_wrapped() {
    let file = TempFile::new("huge-ttl");
    stores::register(
        "persistent-huge-ttl",
        PersistentStore::open(&file.0).unwrap(),
    );
    for (i, ttl) in [Duration::MAX, Duration::from_secs(u64::MAX)]
        .into_iter()
        .enumerate()
    {
        let cache: StoreCache<u8, u8> =
            StoreCache::new("persistent-huge-ttl", format!("app::f{i}")).with_ttl(ttl);
        cache.insert(1, 1);
        assert_eq!(cache.get(&1), Some(1), "{ttl:?}");
    }
}
