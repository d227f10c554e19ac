//! Store keys are injective for every key type: with `store = ...`, arguments that plain JSON
//! would write alike (`None` and `Some(None)`, `None` and `Some(())`) never share an entry.
#![cfg(feature = "persistent")]

use std::sync::atomic::{AtomicU32, Ordering};

use memo::memoize;
use memo::stores::{self, PersistentStore};

static RUNS: AtomicU32 = AtomicU32::new(0);

#[memoize(store = "keys-sqlite")]
fn tri(x: Option<Option<u8>>) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{x:?}")
}

#[memoize(store = "keys-sqlite")]
fn flag(x: Option<()>) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{x:?}")
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, serde::Serialize)]
enum Mode {
    Off,
    On,
    Level(u8),
}

#[memoize(store = "keys-sqlite")]
fn mode(x: Option<Mode>) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("{x:?}")
}

#[test]
fn distinct_keys_never_share_a_stored_entry() {
    let dir = std::env::temp_dir().join(format!("memo-store-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    stores::register(
        "keys-sqlite",
        PersistentStore::open(dir.join("keys.sqlite")).unwrap(),
    );
    for _ in 0..2 {
        assert_eq!(tri(None), "None");
        assert_eq!(tri(Some(None)), "Some(None)");
        assert_eq!(tri(Some(Some(0))), "Some(Some(0))");
        assert_eq!(flag(None), "None");
        assert_eq!(flag(Some(())), "Some(())");
        assert_eq!(mode(None), "None");
        assert_eq!(mode(Some(Mode::Off)), "Some(Off)");
        assert_eq!(mode(Some(Mode::On)), "Some(On)");
        assert_eq!(mode(Some(Mode::Level(0))), "Some(Level(0))");
    }
    // Each key ran once, then was read back from the store.
    assert_eq!(RUNS.load(Ordering::SeqCst), 9);
    assert_eq!(tri::cache_info().hits, 3);
    let _ = std::fs::remove_dir_all(&dir);
}
