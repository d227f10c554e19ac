//! How much memory a cache keeps while a reader stalls inside a lookup, and after.
//!
//! `cargo run --release -p memo-core --example reader_stall` runs two scenarios and prints, for
//! each, the values alive (counted by their `Clone` and `Drop`), the live heap (counted by a
//! global allocator) and the process's resident memory, at the peak and at the end:
//!
//! 1. `Cache<u64, Val>` with maxsize 1000: one reader's `Clone` sleeps 3 s while a writer
//!    inserts distinct keys for 2.5 s; then the same with 64 readers stalled at once (more
//!    than the read stripes, so most look their entry up under the lock and clone after it).
//! 2. `Cache<String, u64>` with maxsize 1000, as `#[memoize(maxsize = 1000)] fn f(s: &str)`
//!    uses it (look up, then insert on a miss), with distinct 100-byte keys from 4 threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memo_core::Cache;

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static HEAP: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// How many clones still have to stall, and how many are stalling now.
static STALLS: AtomicUsize = AtomicUsize::new(0);
static STALLING: AtomicUsize = AtomicUsize::new(0);

/// A value with some heap, counted while alive; its `Clone` sleeps 3 s while `STALLS` is not 0
/// (counting it down).
struct Val(#[allow(dead_code)] Box<[u8; 64]>);

impl Val {
    fn new() -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Val(Box::new([0; 64]))
    }
}

impl Clone for Val {
    fn clone(&self) -> Self {
        let stall = STALLS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if stall {
            STALLING.fetch_add(1, Ordering::AcqRel);
            std::thread::sleep(Duration::from_secs(3));
            STALLING.fetch_sub(1, Ordering::AcqRel);
        }
        Val::new()
    }
}

impl Drop for Val {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn stalled_readers(readers: u64) {
    let cache: Arc<Cache<u64, Val>> = Arc::new(Cache::new(1000));
    for key in 0..readers {
        cache.insert(key, Val::new());
    }
    STALLS.store(readers as usize, Ordering::Release);
    let readers: Vec<_> = (0..readers)
        .map(|key| {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || drop(cache.get(&key)))
        })
        .collect();
    while STALLS.load(Ordering::Acquire) != 0 {
        std::thread::yield_now();
    }
    let start = Instant::now();
    let first = 1 << 32;
    let (mut key, mut peak_live, mut peak_heap, mut peak_rss) = (first, 0, 0, 0);
    while start.elapsed() < Duration::from_millis(2500) {
        for _ in 0..1000 {
            cache.insert(key, Val::new());
            key += 1;
        }
        peak_live = peak_live.max(LIVE.load(Ordering::Relaxed));
        peak_heap = peak_heap.max(HEAP.load(Ordering::Relaxed));
        peak_rss = peak_rss.max(rss_kib());
    }
    let stalled = STALLING.load(Ordering::Acquire);
    let n = readers.len();
    for reader in readers {
        reader.join().unwrap();
    }
    let _ = cache.len(); // reclaims what the readers held
    println!(
        "{n} stalled reader(s) ({stalled} still in their clone after 2.5 s): {} inserts \
         meanwhile; peak {peak_live} live values, heap {:.1} MiB, VmRSS {:.1} MiB; after: {} \
         live values, heap {:.1} MiB, VmRSS {:.1} MiB",
        key - first,
        mib(peak_heap),
        peak_rss as f64 / 1024.0,
        LIVE.load(Ordering::Relaxed),
        mib(HEAP.load(Ordering::Relaxed)),
        rss_kib() as f64 / 1024.0,
    );
}

fn distinct_keys(threads: u64, per_thread: u64) {
    let base = HEAP.load(Ordering::Relaxed);
    let cache: Arc<Cache<String, u64>> = Arc::new(Cache::new(1000));
    let peak = Arc::new(AtomicIsize::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (cache, peak) = (Arc::clone(&cache), Arc::clone(&peak));
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let key = format!("{t:>2}{i:>98}");
                    if cache.get(key.as_str()).is_none() {
                        cache.insert_if_absent(key, i);
                    }
                    if i % 1024 == 0 {
                        peak.fetch_max(HEAP.load(Ordering::Relaxed) - base, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    println!(
        "{threads} threads x {per_thread} distinct 100-byte keys: peak heap {:.2} MiB, \
         after {:.2} MiB, VmRSS {:.1} MiB",
        mib(peak.load(Ordering::Relaxed)),
        mib(HEAP.load(Ordering::Relaxed) - base),
        rss_kib() as f64 / 1024.0,
    );
    drop(cache);
}

fn main() {
    stalled_readers(1);
    stalled_readers(64);
    let total: u64 = std::env::var("KEYS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(20_000_000);
    distinct_keys(1, total);
    distinct_keys(4, total / 4);
}
