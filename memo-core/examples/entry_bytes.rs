//! Bytes per entry of a plain `Cache<u64, u64>` (LRU, no ttl), of one with a ttl and of an
//! adaptive one, at 1M entries, from a counting global allocator: for A/B runs of the core's
//! memory cost (`cargo run --release -p memo-core --example entry_bytes`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use memo_core::{Cache, Policy};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, counting the bytes live.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ENTRIES: u64 = 1_000_000;

fn measure(ttl: Option<Duration>, policy: Policy) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let cache: Cache<u64, u64> = Cache::builder()
        .maxsize(ENTRIES as usize)
        .ttl(ttl)
        .policy(policy)
        .build()
        .expect("a valid configuration");
    for k in 0..ENTRIES {
        cache.insert(k, k);
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    assert_eq!(cache.len(), ENTRIES as usize);
    bytes as f64 / ENTRIES as f64
}

fn main() {
    println!("lru: {:.1} B/entry", measure(None, Policy::Lru));
    println!(
        "lru + ttl: {:.1} B/entry",
        measure(Some(Duration::from_secs(3600)), Policy::Lru)
    );
    println!("adaptive: {:.1} B/entry", measure(None, Policy::Adaptive));
}
