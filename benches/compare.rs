//! memo against the other caching crates (cached, memoize, moka, quick_cache, lru), printed as one
//! markdown table: `cargo bench -p memo-benches --bench compare`.
//!
//! Every cache maps `u64 -> u64` and is driven the way a memoized function drives it: look the
//! key up, and on a miss compute the value and insert it. Workloads, each on one thread and on two
//! threads sharing ONE cache:
//!
//! - hit path: 100 hot keys in a cache of maxsize 128, all present;
//! - miss path: keys uniform over 1M at maxsize 128 and at maxsize 10k;
//! - zipf 0.99 over 1M keys at maxsize 10k (fixed seed), with the hit ratio;
//! - memory: bytes per entry, from a counting global allocator, after storing 1M entries.
//!
//! The baseline is an unsynchronized thread-local `hashbrown::HashMap` doing only the lookups
//! (prefilled with the hot keys, or the most popular keys). Caches that are not `Sync` sit behind a
//! `parking_lot::Mutex`, as a user sharing them would put them; the macro crates (memoize, memo's
//! own `#[memoize]`) are measured through memoized functions. Every crate runs with its default
//! hasher and settings.
//!
//! Timing is a plain loop over pre-generated keys (`std::hint::black_box` on each key), timed
//! with `Instant` over large batches: a short calibration picks the batch size, then the median
//! of a few runs is reported. Two threads wait on a barrier, each does the same number of calls,
//! and the wall time divided by the calls per thread is reported. Within a workload the runs of
//! all contenders are interleaved, so that a change in the (shared) machine's load hits them
//! alike.
//!
//! `MEMO_BENCH_QUICK=1 cargo bench -p memo-benches --bench compare` (or `-- --quick`) is a smoke run of a few
//! seconds; so is running the binary without cargo bench's `--bench` flag (as `cargo test` does).
//! `MEMO_BENCH_ONLY=hit,zipf` runs only the workloads whose names contain one of the words
//! (`memory` for the memory rows); `MEMO_BENCH_CACHES=memoize(maxsize = N)` only the caches whose
//! names contain one of the words (and the baseline).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use memo::{Cache, Policy};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::Zipf;

const SEED: u64 = 0x5eed_cafe;
const HOT_KEYS: usize = 100;
const UNIVERSE: u64 = 1_000_000;
const SMALL: usize = 128;
const LARGE: usize = 10_000;
/// The maxsize of the caches whose memory is measured (the macro crates need it as a literal).
const MEMORY_MAXSIZE: usize = 1_000_000;
/// Calls per timing check while calibrating.
const BATCH: usize = 4096;

// ---------------------------------------------------------------------------------------------
// The counting allocator.

/// Forwards to the system allocator and, while [`COUNTING`] is on, keeps the live heap bytes in
/// [`LIVE_BYTES`]. Hand-written rather than `stats_alloc` or `cap` because those count every
/// allocation with shared atomics, a tax on the allocating caches inside the timed loops (and a
/// contended one with two threads); here the timed loops pay one relaxed load of a flag.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

#[inline]
fn count(delta: isize) {
    if COUNTING.load(Relaxed) {
        LIVE_BYTES.fetch_add(delta, Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the bookkeeping only updates atomics and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller meets `alloc`'s requirements, which are `System.alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller meets `alloc_zeroed`'s requirements, which are `System`'s.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, hence by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller checked `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Checks that the allocator counts each of its four paths exactly; run at start-up, so a
/// miscounting allocator stops the bench instead of printing wrong memory numbers.
fn check_counting_allocator() {
    LIVE_BYTES.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
    let mut grown = Vec::<u8>::with_capacity(16); // alloc
    grown.reserve_exact(4096); // realloc
    let zeroed = vec![0u8; 1000]; // alloc_zeroed
    black_box((&grown, &zeroed));
    let live = LIVE_BYTES.load(Relaxed);
    let expected = (grown.capacity() + zeroed.capacity()) as isize;
    drop((grown, zeroed)); // dealloc
    let after = LIVE_BYTES.load(Relaxed);
    COUNTING.store(false, Relaxed);
    assert_eq!(
        live, expected,
        "the counting allocator missed an allocation"
    );
    assert_eq!(after, 0, "the counting allocator missed a deallocation");
}

// ---------------------------------------------------------------------------------------------
// The contenders.

thread_local! {
    /// Calls of [`compute`] on this thread: the misses, whatever the cache.
    static MISSES: Cell<u64> = const { Cell::new(0) };
    /// The baseline's map.
    static BASELINE: RefCell<HashMap<u64, u64>> = RefCell::new(HashMap::new());
}

/// The memoized function: cheap, so that the cache's own cost is what is measured.
#[inline]
fn compute(key: u64) -> u64 {
    MISSES.with(|m| m.set(m.get() + 1));
    key ^ 0x5555_5555
}

fn misses() -> u64 {
    MISSES.with(Cell::get)
}

/// A cache as a memoized function uses it.
trait Contender: Sync + Sized + 'static {
    /// The row's label.
    const NAME: &'static str;
    /// The crate, for "the fastest other crate" (memo's variants do not compete with each other).
    const CRATE: &'static str;
    /// An empty cache of this maxsize (one of [`SMALL`], [`LARGE`], [`MEMORY_MAXSIZE`]).
    fn new(maxsize: usize) -> Self;
    /// The memoized call: the cached value, or `compute(key)` stored on a miss.
    fn call(&self, key: u64) -> u64;
    /// How many entries are stored.
    fn len(&self) -> usize;
    /// Stores `key` as a miss would (the baseline, which never stores on a miss, overrides it).
    fn fill(&self, key: u64) {
        black_box(self.call(key));
    }
    /// Lets deferred work finish (moka applies writes in batches).
    fn settle(&self) {}
    /// Per-thread preparation before a thread calls it: the baseline fills its thread-local map.
    fn thread_setup(&self, _resident: &[u64]) {}
}

/// Look up, and on a miss compute and insert: the body every store-based contender shares.
macro_rules! memoized_call {
    ($key:ident, get: $get:expr, insert($value:ident): $insert:expr) => {{
        let found = $get; // a statement of its own, so a lock guard in `$get` is released here
        match found {
            Some(v) => v,
            None => {
                let $value = compute($key);
                $insert;
                $value
            }
        }
    }};
}

/// The unsynchronized thread-local `hashbrown::HashMap` lookup that targets are stated against.
struct Baseline;

impl Contender for Baseline {
    const NAME: &'static str = "hashbrown HashMap, thread-local (baseline)";
    const CRATE: &'static str = "baseline";
    fn new(_maxsize: usize) -> Self {
        BASELINE.with(|m| *m.borrow_mut() = HashMap::new());
        Baseline
    }
    #[inline]
    fn call(&self, key: u64) -> u64 {
        match BASELINE.with(|m| m.borrow().get(&key).copied()) {
            Some(v) => v,
            None => compute(key),
        }
    }
    fn len(&self) -> usize {
        BASELINE.with(|m| m.borrow().len())
    }
    fn fill(&self, key: u64) {
        BASELINE.with(|m| m.borrow_mut().insert(key, compute(key)));
    }
    fn thread_setup(&self, resident: &[u64]) {
        BASELINE.with(|m| {
            let mut map = m.borrow_mut();
            map.clear();
            map.extend(resident.iter().map(|&k| (k, k ^ 0x5555_5555)));
        });
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        BASELINE.with(|m| *m.borrow_mut() = HashMap::new());
    }
}

/// One configuration of `memo::Cache`.
trait MemoConfig: Sync + 'static {
    const NAME: &'static str;
    fn build(maxsize: usize) -> Cache<u64, u64>;
}

struct MemoLru;
impl MemoConfig for MemoLru {
    const NAME: &'static str = "memo Cache, Policy::Lru (default)";
    fn build(maxsize: usize) -> Cache<u64, u64> {
        Cache::new(maxsize)
    }
}

struct MemoAdaptive;
impl MemoConfig for MemoAdaptive {
    const NAME: &'static str = "memo Cache, Policy::Adaptive";
    fn build(maxsize: usize) -> Cache<u64, u64> {
        let builder = Cache::builder().maxsize(maxsize).policy(Policy::Adaptive);
        builder.build().expect("a valid configuration")
    }
}

struct MemoTtl;
impl MemoConfig for MemoTtl {
    const NAME: &'static str = "memo Cache, Policy::Lru, ttl 1h";
    fn build(maxsize: usize) -> Cache<u64, u64> {
        let builder = Cache::builder()
            .maxsize(maxsize)
            .ttl(Duration::from_secs(3600));
        builder.build().expect("a valid configuration")
    }
}

struct MemoStore<M>(Cache<u64, u64>, PhantomData<M>);

impl<M: MemoConfig> Contender for MemoStore<M> {
    const NAME: &'static str = M::NAME;
    const CRATE: &'static str = "memo";
    fn new(maxsize: usize) -> Self {
        MemoStore(M::build(maxsize), PhantomData)
    }
    #[inline]
    fn call(&self, key: u64) -> u64 {
        memoized_call!(key, get: self.0.get(&key), insert(v): self.0.insert(key, v))
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

#[memoize::memoize(Capacity: 128, SharedCache)]
fn memoize_fn_small(key: u64) -> u64 {
    compute(key)
}

#[memoize::memoize(Capacity: 10_000, SharedCache)]
fn memoize_fn_large(key: u64) -> u64 {
    compute(key)
}

#[memoize::memoize(Capacity: 1_000_000, SharedCache)]
fn memoize_fn_memory(key: u64) -> u64 {
    compute(key)
}

/// Which of a macro crate's three memoized functions (one per maxsize) a contender calls.
#[derive(Clone, Copy)]
enum Size {
    Small,
    Large,
    Memory,
}

impl Size {
    fn of(maxsize: usize) -> Size {
        match maxsize {
            SMALL => Size::Small,
            LARGE => Size::Large,
            MEMORY_MAXSIZE => Size::Memory,
            _ => panic!("no memoized function of maxsize {maxsize}"),
        }
    }
}

/// A contender calling memo's own `#[memoize]`: three functions (one per maxsize) with the
/// options given after the maxsize.
macro_rules! memo_macro_contender {
    ($ty:ident, $name:literal, [$small:ident, $large:ident, $memory:ident] $($options:tt)*) => {
        #[memo::memoize(maxsize = 128 $($options)*)]
        fn $small(key: u64) -> u64 {
            compute(key)
        }

        #[memo::memoize(maxsize = 10_000 $($options)*)]
        fn $large(key: u64) -> u64 {
            compute(key)
        }

        #[memo::memoize(maxsize = 1_000_000 $($options)*)]
        fn $memory(key: u64) -> u64 {
            compute(key)
        }

        struct $ty(Size);

        impl Contender for $ty {
            const NAME: &'static str = $name;
            const CRATE: &'static str = "memo";
            fn new(maxsize: usize) -> Self {
                let size = Size::of(maxsize);
                match size {
                    Size::Small => $small::cache_clear(),
                    Size::Large => $large::cache_clear(),
                    Size::Memory => $memory::cache_clear(),
                }
                $ty(size)
            }
            #[inline]
            fn call(&self, key: u64) -> u64 {
                match self.0 {
                    Size::Small => $small(key),
                    Size::Large => $large(key),
                    Size::Memory => $memory(key),
                }
            }
            fn len(&self) -> usize {
                match self.0 {
                    Size::Small => $small::cache_info().currsize,
                    Size::Large => $large::cache_info().currsize,
                    Size::Memory => $memory::cache_info().currsize,
                }
            }
        }
    };
}

memo_macro_contender!(
    MemoMacro,
    "memo #[memoize(maxsize = N)]",
    [memo_fn_small, memo_fn_large, memo_fn_memory]
);

memo_macro_contender!(
    MemoMacroPlain,
    "memo #[memoize(maxsize = N, single_flight = false)]",
    [memo_plain_small, memo_plain_large, memo_plain_memory],
    single_flight = false
);

memo_macro_contender!(
    MemoMacroAdaptive,
    "memo #[memoize(maxsize = N, policy = \"adaptive\")]",
    [
        memo_adaptive_small,
        memo_adaptive_large,
        memo_adaptive_memory
    ],
    policy = "adaptive"
);

/// `cached::LruCache` behind a lock, which is what `#[cached(max_size = N)]` generates.
struct CachedLru(Mutex<cached::LruCache<u64, u64>>);

impl Contender for CachedLru {
    const NAME: &'static str = "cached LruCache + Mutex";
    const CRATE: &'static str = "cached";
    fn new(maxsize: usize) -> Self {
        let cache = cached::LruCache::builder().max_size(maxsize).build();
        CachedLru(Mutex::new(cache.expect("a valid configuration")))
    }
    #[inline]
    fn call(&self, key: u64) -> u64 {
        use cached::Cached;
        memoized_call!(
            key,
            get: self.0.lock().cache_get(&key).copied(),
            insert(v): self.0.lock().cache_set(key, v)
        )
    }
    fn len(&self) -> usize {
        cached::Cached::cache_size(&*self.0.lock())
    }
}

/// `cached::ShardedLruCache`, what `#[concurrent_cached(max_size = N)]` generates.
struct CachedSharded(cached::ShardedLruCache<u64, u64>);

impl Contender for CachedSharded {
    const NAME: &'static str = "cached ShardedLruCache";
    const CRATE: &'static str = "cached";
    fn new(maxsize: usize) -> Self {
        let cache = cached::ShardedLruCache::builder().max_size(maxsize).build();
        CachedSharded(cache.expect("a valid configuration"))
    }
    #[inline]
    fn call(&self, key: u64) -> u64 {
        use cached::ConcurrentCached;
        let Ok(found) = self.0.cache_get(&key);
        memoized_call!(key, get: found, insert(v): { let Ok(_) = self.0.cache_set(key, v); })
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// `memoize`'s `#[memoize(Capacity: N, SharedCache)]`: an `lru::LruCache` in a `std` mutex.
struct MemoizeMacro(Size);

impl Contender for MemoizeMacro {
    const NAME: &'static str = "memoize #[memoize(Capacity: N, SharedCache)]";
    const CRATE: &'static str = "memoize";
    fn new(maxsize: usize) -> Self {
        let size = Size::of(maxsize);
        match size {
            Size::Small => memoized_flush_memoize_fn_small(),
            Size::Large => memoized_flush_memoize_fn_large(),
            Size::Memory => memoized_flush_memoize_fn_memory(),
        }
        MemoizeMacro(size)
    }
    #[inline]
    fn call(&self, key: u64) -> u64 {
        match self.0 {
            Size::Small => memoize_fn_small(key),
            Size::Large => memoize_fn_large(key),
            Size::Memory => memoize_fn_memory(key),
        }
    }
    fn len(&self) -> usize {
        match self.0 {
            Size::Small => memoized_size_memoize_fn_small(),
            Size::Large => memoized_size_memoize_fn_large(),
            Size::Memory => memoized_size_memoize_fn_memory(),
        }
    }
}

struct Moka(moka::sync::Cache<u64, u64>);

impl Contender for Moka {
    const NAME: &'static str = "moka sync::Cache";
    const CRATE: &'static str = "moka";
    fn new(maxsize: usize) -> Self {
        Moka(moka::sync::Cache::new(maxsize as u64))
    }
    #[inline]
    fn call(&self, key: u64) -> u64 {
        memoized_call!(key, get: self.0.get(&key), insert(v): self.0.insert(key, v))
    }
    fn len(&self) -> usize {
        self.0.run_pending_tasks();
        self.0.entry_count() as usize
    }
    fn settle(&self) {
        self.0.run_pending_tasks();
    }
}

struct QuickCache(quick_cache::sync::Cache<u64, u64>);

impl Contender for QuickCache {
    const NAME: &'static str = "quick_cache sync::Cache";
    const CRATE: &'static str = "quick_cache";
    fn new(maxsize: usize) -> Self {
        QuickCache(quick_cache::sync::Cache::new(maxsize))
    }
    #[inline]
    fn call(&self, key: u64) -> u64 {
        memoized_call!(key, get: self.0.get(&key), insert(v): self.0.insert(key, v))
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

struct Lru(Mutex<lru::LruCache<u64, u64>>);

impl Contender for Lru {
    const NAME: &'static str = "lru LruCache + Mutex";
    const CRATE: &'static str = "lru";
    fn new(maxsize: usize) -> Self {
        let maxsize = NonZeroUsize::new(maxsize).expect("a positive maxsize");
        Lru(Mutex::new(lru::LruCache::new(maxsize)))
    }
    #[inline]
    fn call(&self, key: u64) -> u64 {
        memoized_call!(
            key,
            get: self.0.lock().get(&key).copied(),
            insert(v): self.0.lock().put(key, v)
        )
    }
    fn len(&self) -> usize {
        self.0.lock().len()
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads and measurement.

/// How long and how large a run is.
struct Settings {
    quick: bool,
    runs: usize,
    run_time: Duration,
    calibration: Duration,
    stream_len: usize,
    memory_entries: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let args: Vec<String> = std::env::args().collect();
        let under_cargo_bench = args.iter().any(|a| a == "--bench");
        let quick = args.iter().any(|a| a == "--quick")
            || std::env::var("MEMO_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
            || !under_cargo_bench;
        if quick {
            Settings {
                quick,
                runs: 1,
                run_time: Duration::from_millis(5),
                calibration: Duration::from_millis(2),
                stream_len: 1 << 16,
                memory_entries: 1 << 16,
            }
        } else {
            Settings {
                quick,
                runs: 7,
                run_time: Duration::from_millis(100),
                calibration: Duration::from_millis(40),
                stream_len: 1 << 20,
                memory_entries: MEMORY_MAXSIZE,
            }
        }
    }
}

/// One workload: the cache's maxsize, what is stored before timing, and each thread's keys.
struct Workload {
    name: &'static str,
    maxsize: usize,
    /// Stored in the cache before timing.
    prefill: Vec<u64>,
    /// What the baseline's map holds.
    resident: Vec<u64>,
    /// One key stream per thread.
    streams: [Stream; 2],
}

/// A bijection on `u64` that spreads small ranks over the key space.
fn scramble(rank: u64) -> u64 {
    rank.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn workloads(s: &Settings) -> Vec<Workload> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut hot = Vec::with_capacity(HOT_KEYS);
    while hot.len() < HOT_KEYS {
        let k = rng.gen::<u64>();
        if !hot.contains(&k) {
            hot.push(k);
        }
    }
    let hot_stream = |rng: &mut StdRng| Stream {
        keys: (0..s.stream_len)
            .map(|_| hot[rng.gen_range(0..HOT_KEYS)])
            .collect(),
        salt: 0,
    };
    let hit_streams = [hot_stream(&mut rng), hot_stream(&mut rng)];
    // Fresh keys on every replay: a frequency-aware cache must not profit from the replays.
    let uniform = |rng: &mut StdRng| Stream {
        keys: (0..s.stream_len)
            .map(|_| scramble(rng.gen_range(0..UNIVERSE)))
            .collect(),
        salt: 0x2545_f491_4f6c_dd1d,
    };
    let uniform_streams = || {
        let mut rng = StdRng::seed_from_u64(SEED + 1);
        [uniform(&mut rng), uniform(&mut rng)]
    };
    let zipf = Zipf::new(UNIVERSE, 0.99).expect("valid zipf parameters");
    // The same keys on every replay: popularity is what zipf is about.
    let zipfian = |rng: &mut StdRng| Stream {
        keys: (0..s.stream_len)
            .map(|_| scramble(rng.sample(zipf) as u64))
            .collect(),
        salt: 0,
    };
    let zipf_streams = [zipfian(&mut rng), zipfian(&mut rng)];
    let mut uniform_resident = |n: usize| -> Vec<u64> {
        (0..n)
            .map(|_| scramble(rng.gen_range(0..UNIVERSE)))
            .collect()
    };
    let (resident_small, resident_large) = (uniform_resident(SMALL), uniform_resident(LARGE));
    vec![
        Workload {
            name: "hit: 100 hot keys, maxsize 128",
            maxsize: SMALL,
            prefill: hot.clone(),
            resident: hot.clone(),
            streams: hit_streams,
        },
        Workload {
            name: "miss: uniform over 1M keys, maxsize 128",
            maxsize: SMALL,
            prefill: Vec::new(),
            resident: resident_small,
            streams: uniform_streams(),
        },
        Workload {
            name: "miss: uniform over 1M keys, maxsize 10k",
            maxsize: LARGE,
            prefill: Vec::new(),
            resident: resident_large,
            streams: uniform_streams(),
        },
        Workload {
            name: "zipf 0.99 over 1M keys, maxsize 10k",
            maxsize: LARGE,
            prefill: Vec::new(),
            resident: (1..=LARGE as u64).map(scramble).collect(),
            streams: zipf_streams,
        },
    ]
}

/// The keys one thread calls with: a pre-generated sequence, replayed as often as needed.
struct Stream {
    /// A power-of-two number of keys.
    keys: Vec<u64>,
    /// Each replay XORs the keys with `replay * salt`: 0 replays the same keys, an odd salt makes
    /// every replay a fresh set of keys, so that no cache can remember a previous replay.
    salt: u64,
}

/// `n` calls on consecutive keys of `stream` from `cursor` on: the timed loop.
#[inline(never)]
fn drive<C: Contender>(cache: &C, stream: &Stream, cursor: usize, n: usize) -> u64 {
    let (keys, salt) = (&stream.keys[..], stream.salt);
    let (mask, bits) = (keys.len() - 1, keys.len().trailing_zeros());
    let mut acc = 0u64;
    for i in cursor..cursor + n {
        let key = keys[i & mask] ^ ((i >> bits) as u64).wrapping_mul(salt);
        acc = acc.wrapping_add(cache.call(black_box(key)));
    }
    black_box(acc)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

/// One measurement: nanoseconds per call (per thread) and the hit ratio.
#[derive(Clone, Copy)]
struct Timing {
    ns: f64,
    hit_ratio: f64,
}

/// Both threads run `n` calls, starting together at a barrier. Returns the wall time from the
/// first start to the last end, and the misses of both threads.
fn two_threads<C: Contender>(
    cache: &C,
    w: &Workload,
    cursors: &mut [usize; 2],
    n: usize,
) -> (Duration, u64) {
    let barrier = Barrier::new(2);
    let per_thread: Vec<(Instant, Instant, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let (barrier, stream, cursor) = (&barrier, &w.streams[t], cursors[t]);
                scope.spawn(move || {
                    cache.thread_setup(&w.resident);
                    let misses_before = misses();
                    barrier.wait();
                    let start = Instant::now();
                    drive(cache, stream, cursor, n);
                    (start, Instant::now(), misses() - misses_before)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread panicked"))
            .collect()
    });
    for cursor in cursors.iter_mut() {
        *cursor += n;
    }
    let start = per_thread.iter().map(|r| r.0).min().expect("two threads");
    let end = per_thread.iter().map(|r| r.1).max().expect("two threads");
    (end - start, per_thread.iter().map(|r| r.2).sum())
}

/// A contender set up for one workload, whose timed runs the caller interleaves with the other
/// contenders' so that a change in the machine's load hits every contender alike.
trait Session {
    /// One timed run on one thread.
    fn run_one(&mut self);
    /// One timed run on two threads.
    fn run_two(&mut self);
    /// The medians and hit ratios: one thread, two threads.
    fn result(&self) -> [Timing; 2];
}

struct Prepared<'w, C> {
    cache: C,
    w: &'w Workload,
    cursors: [usize; 2],
    /// Calls per run, per thread.
    n: [usize; 2],
    ns: [Vec<f64>; 2],
    misses: [u64; 2],
}

/// Makes the cache, prefills it, and sizes the runs: a calibration on one thread (which also
/// warms the cache up), then a warm-up run on two threads, since contention slows some caches.
fn prepare<'w, C: Contender>(w: &'w Workload, s: &Settings) -> Box<dyn Session + 'w> {
    let cache = C::new(w.maxsize);
    cache.thread_setup(&w.resident);
    for &k in &w.prefill {
        cache.fill(k);
    }
    let mut cursors = [0usize; 2];
    let started = Instant::now();
    let mut calls = 0;
    while started.elapsed() < s.calibration {
        drive(&cache, &w.streams[0], cursors[0], BATCH);
        cursors[0] += BATCH;
        calls += BATCH;
    }
    let ns_per_call = started.elapsed().as_nanos() as f64 / calls as f64;
    let n = ((s.run_time.as_nanos() as f64 / ns_per_call) as usize).clamp(BATCH, 1 << 27);
    let (warm, _) = two_threads(&cache, w, &mut cursors, n / 4);
    let ns_per_call = warm.as_nanos() as f64 / (n / 4) as f64;
    let n2 = ((s.run_time.as_nanos() as f64 / ns_per_call) as usize).clamp(BATCH, n);
    Box::new(Prepared {
        cache,
        w,
        cursors,
        n: [n, n2],
        ns: [Vec::new(), Vec::new()],
        misses: [0, 0],
    })
}

impl<C: Contender> Session for Prepared<'_, C> {
    fn run_one(&mut self) {
        let (n, misses_before) = (self.n[0], misses());
        let start = Instant::now();
        drive(&self.cache, &self.w.streams[0], self.cursors[0], n);
        self.ns[0].push(start.elapsed().as_nanos() as f64 / n as f64);
        self.cursors[0] += n;
        self.misses[0] += misses() - misses_before;
    }

    fn run_two(&mut self) {
        let n = self.n[1];
        let (wall, misses) = two_threads(&self.cache, self.w, &mut self.cursors, n);
        self.ns[1].push(wall.as_nanos() as f64 / n as f64);
        self.misses[1] += misses;
    }

    fn result(&self) -> [Timing; 2] {
        [0, 1].map(|t| {
            let calls = (self.n[t] * self.ns[t].len() * (t + 1)) as f64;
            Timing {
                ns: median(self.ns[t].clone()),
                hit_ratio: 1.0 - self.misses[t] as f64 / calls,
            }
        })
    }
}

/// Heap bytes per stored entry after storing `entries` distinct keys in a cache of maxsize
/// [`MEMORY_MAXSIZE`], counted from before the cache is made.
fn bytes_per_entry<C: Contender>(s: &Settings) -> f64 {
    let keys: Vec<u64> = (0..s.memory_entries as u64).map(scramble).collect();
    LIVE_BYTES.store(0, Relaxed);
    COUNTING.store(true, Relaxed);
    let cache = C::new(MEMORY_MAXSIZE);
    for &k in &keys {
        cache.fill(k);
    }
    cache.settle();
    let bytes = LIVE_BYTES.load(Relaxed);
    COUNTING.store(false, Relaxed);
    let stored = cache.len();
    drop(cache);
    bytes as f64 / stored.max(1) as f64
}

/// A contender's row label and crate, and its two measurements, type-erased.
struct Entry {
    name: &'static str,
    krate: &'static str,
    prepare: for<'w> fn(&'w Workload, &Settings) -> Box<dyn Session + 'w>,
    bytes: fn(&Settings) -> f64,
}

fn entry<C: Contender>() -> Entry {
    Entry {
        name: C::NAME,
        krate: C::CRATE,
        prepare: prepare::<C>,
        bytes: bytes_per_entry::<C>,
    }
}

// ---------------------------------------------------------------------------------------------
// The table.

/// One table row: a contender on one workload, one value per thread count.
struct Row {
    entry: usize,
    values: [Option<Timing>; 2],
}

/// This value over the best (lowest) value of any other crate on the same workload and thread
/// count; the baseline is neither compared nor compared against.
fn ratio_to_best_other(rows: &[Row], entries: &[Entry], i: usize, t: usize) -> Option<f64> {
    let mine = rows[i].values[t]?.ns;
    let krate = entries[rows[i].entry].krate;
    let best = rows
        .iter()
        .filter(|r| {
            let other = entries[r.entry].krate;
            other != krate && other != "baseline"
        })
        .filter_map(|r| r.values[t].map(|v| v.ns))
        .min_by(f64::total_cmp)?;
    Some(mine / best)
}

fn render(groups: &[(String, &str, Vec<Row>)], entries: &[Entry], s: &Settings) -> String {
    let mut out = String::new();
    let mode = if s.quick {
        "QUICK smoke run (numbers are not meaningful), "
    } else {
        ""
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    out += &format!(
        "`cargo bench -p memo-benches --bench compare`: {mode}median of {} runs of ~{} ms each, {cores} cores.\n\n",
        s.runs,
        s.run_time.as_millis()
    );
    out += concat!(
        "| workload | cache | 1 thread | × best other ",
        "| 2 threads, per thread | × best other | hit ratio 1t / 2t |\n"
    );
    out += "|---|---|--:|--:|--:|--:|--:|\n";
    for (name, unit, rows) in groups {
        let best: Vec<Option<f64>> = (0..2)
            .map(|t| {
                rows.iter()
                    .filter(|r| entries[r.entry].krate != "baseline")
                    .filter_map(|r| r.values[t].map(|v| v.ns))
                    .min_by(f64::total_cmp)
            })
            .collect();
        for (i, row) in rows.iter().enumerate() {
            let label = if i == 0 { name.as_str() } else { "" };
            let mut cells = vec![label.to_string(), entries[row.entry].name.to_string()];
            for (t, value) in row.values.iter().enumerate() {
                match value {
                    Some(v) => {
                        let is_best =
                            entries[row.entry].krate != "baseline" && best[t] == Some(v.ns);
                        let value = format!("{:.1} {unit}", v.ns);
                        cells.push(if is_best {
                            format!("**{value}**")
                        } else {
                            value
                        });
                        let ratio = ratio_to_best_other(rows, entries, i, t);
                        cells.push(ratio.map_or("—".into(), |r| format!("{r:.2}")));
                    }
                    None => cells.extend(["—".to_string(), "—".to_string()]),
                }
            }
            cells.push(match row.values {
                [Some(a), Some(b)] if *unit == "ns" => {
                    format!("{:.1}% / {:.1}%", 100.0 * a.hit_ratio, 100.0 * b.hit_ratio)
                }
                _ => "—".into(),
            });
            out += &format!("| {} |\n", cells.join(" | "));
        }
    }
    out += "\nns per call of a memoized `u64 -> u64` function (look up; on a miss compute and \
        insert), \
        median of the runs; with 2 threads, wall time / calls per thread on one shared cache. \
        **Bold**: the fastest cache on that line. × best other: this number over the best of the \
        other crates' on that line (memo's variants are not compared with each other; below 1 = \
        faster). The baseline only looks up, in an unsynchronized thread-local map holding the \
        hot keys (hit), 128 or 10k random keys (miss), or the 10k most popular keys (zipf). \
        Memory: heap bytes per stored entry after storing that many distinct keys in a cache \
        of maxsize 1M (including what the empty cache allocates).\n";
    out
}

fn main() {
    check_counting_allocator();
    let s = Settings::from_env();
    let entries = [
        entry::<Baseline>(),
        entry::<MemoStore<MemoLru>>(),
        entry::<MemoStore<MemoAdaptive>>(),
        entry::<MemoStore<MemoTtl>>(),
        entry::<MemoMacro>(),
        entry::<MemoMacroPlain>(),
        entry::<MemoMacroAdaptive>(),
        entry::<CachedLru>(),
        entry::<CachedSharded>(),
        entry::<MemoizeMacro>(),
        entry::<Moka>(),
        entry::<QuickCache>(),
        entry::<Lru>(),
    ];
    // `MEMO_BENCH_CACHES=memo,lru`: only the caches whose names contain one of the words (and
    // the baseline), e.g. to profile one of them.
    let caches: Vec<String> = std::env::var("MEMO_BENCH_CACHES")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let entries: Vec<Entry> = entries
        .into_iter()
        .enumerate()
        .filter(|(i, e)| {
            *i == 0 || caches.is_empty() || caches.iter().any(|c| e.name.contains(c.as_str()))
        })
        .map(|(_, e)| e)
        .collect();
    let only: Vec<String> = std::env::var("MEMO_BENCH_ONLY")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    let started = Instant::now();
    let mut groups = Vec::new();
    for w in workloads(&s).into_iter().filter(|w| wanted(w.name)) {
        eprintln!("compare: {}", w.name);
        let mut sessions: Vec<_> = entries.iter().map(|e| (e.prepare)(&w, &s)).collect();
        for _ in 0..s.runs {
            sessions.iter_mut().for_each(|session| session.run_one());
        }
        for _ in 0..s.runs {
            sessions.iter_mut().for_each(|session| session.run_two());
        }
        let rows = sessions
            .iter()
            .enumerate()
            .map(|(i, session)| {
                let [one, two] = session.result();
                Row {
                    entry: i,
                    values: [Some(one), Some(two)],
                }
            })
            .collect();
        drop(sessions);
        groups.push((w.name.to_string(), "ns", rows));
    }
    if !wanted("memory") {
        eprintln!("compare: done in {:.1} s", started.elapsed().as_secs_f64());
        print!("{}", render(&groups, &entries, &s));
        return;
    }
    let memory_rows = (0..entries.len())
        .map(|i| {
            eprintln!("compare: memory / {}", entries[i].name);
            let bytes = (entries[i].bytes)(&s);
            Row {
                entry: i,
                values: [
                    Some(Timing {
                        ns: bytes,
                        hit_ratio: f64::NAN,
                    }),
                    None,
                ],
            }
        })
        .collect();
    let memory = match s.memory_entries {
        MEMORY_MAXSIZE => "memory: 1M u64 → u64 entries".to_string(),
        n => format!("memory: {n} u64 → u64 entries"),
    };
    groups.push((memory, "B/entry", memory_rows));
    eprintln!("compare: done in {:.1} s", started.elapsed().as_secs_f64());
    print!("{}", render(&groups, &entries, &s));
}
