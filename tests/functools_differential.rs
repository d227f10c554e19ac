//! memo against CPython: seeded call sequences replayed through `functools.lru_cache` (by one
//! `python3` process running `tests/support/functools_replay.py`) and through memo, both through
//! `#[memoize]` and through `memo::Cache` driven directly as the macro drives it. The hits,
//! misses and currsize must be equal after every call, at maxsize 0, 1, 2, 7, 128 and None.
//!
//! Every test has its own memoized functions: their caches are global and tests run on several
//! threads at once.

use std::fmt::Debug;
use std::io::{ErrorKind, Write};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use memo::{memoize, Cache, CacheInfo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// The bounds every sequence is replayed at; `None` is unbounded.
const MAXSIZES: [Option<usize>; 6] = [Some(0), Some(1), Some(2), Some(7), Some(128), None];

/// Seeds of the random sequences.
const SEEDS: [u64; 3] = [7, 42, 2024];

/// Key ranges of the random sequences: few keys (mostly hits) to many (evictions at 128).
const KEY_RANGES: [u32; 4] = [3, 10, 40, 300];

/// Calls in each random sequence.
const CALLS_PER_SEQUENCE: usize = 250;

/// The names of the two-argument function's keys, paired with small integers.
const NAMES: [&str; 6] = ["", "a", "ab", "ada", "Ada", "zoë"];

/// `(hits, misses, currsize)`, as `cache_info()` reports them in both languages.
type Counts = (u64, u64, usize);

/// A named call sequence.
struct Sequence<C> {
    name: String,
    calls: Vec<C>,
}

/// Seeded random keys below `range`: uniform, with one call in five repeating the previous key
/// and one in five repeating one of the last eight.
fn random_keys(seed: u64, range: u32, len: usize) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed ^ (u64::from(range) << 32));
    let mut keys: Vec<u32> = Vec::with_capacity(len);
    while keys.len() < len {
        let key = match (keys.len(), rng.gen_range(0..10)) {
            (1.., 0..=1) => keys[keys.len() - 1],
            (n @ 1.., 2..=3) => keys[n - 1 - rng.gen_range(0..n.min(8))],
            _ => rng.gen_range(0..range),
        };
        keys.push(key);
    }
    keys
}

/// The one-argument sequences: random ones per seed and key range, and cyclic scans one key
/// longer than a bound, on which LRU misses every time.
fn key_sequences() -> Vec<Sequence<u32>> {
    let mut sequences = Vec::new();
    for seed in SEEDS {
        for range in KEY_RANGES {
            sequences.push(Sequence {
                name: format!("seed {seed}, keys below {range}"),
                calls: random_keys(seed, range, CALLS_PER_SEQUENCE),
            });
        }
    }
    for cycle in [3, 8, 129] {
        sequences.push(Sequence {
            name: format!("scan of {cycle} keys"),
            calls: (0..cycle).cycle().take(3 * cycle as usize + 5).collect(),
        });
    }
    sequences
}

/// The two-argument sequences: the same random keys, each split into a name and an integer.
fn pair_sequences() -> Vec<Sequence<(String, u32)>> {
    let names = NAMES.len() as u32;
    let mut sequences = Vec::new();
    for seed in SEEDS {
        for range in [4, 24, 400] {
            let calls = random_keys(seed.wrapping_add(1), range, CALLS_PER_SEQUENCE)
                .into_iter()
                .map(|k| (NAMES[(k % names) as usize].to_string(), k / names))
                .collect();
            sequences.push(Sequence {
                name: format!("seed {seed}, pairs below {range}"),
                calls,
            });
        }
    }
    sequences
}

fn maxsize_json(maxsize: Option<usize>) -> Value {
    maxsize.map_or(Value::Null, Value::from)
}

/// Runs `tests/support/functools_replay.py` on `cases` and returns its results, in order.
fn replay_in_python(cases: Vec<Value>) -> Vec<Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/functools_replay.py"
    );
    let mut child = match Command::new("python3")
        .arg(script)
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "python3 is not on PATH: this test compares memo with CPython's functools.lru_cache \
             and needs python3 (3.8 or later) to run {script}"
        ),
        Err(e) => panic!("cannot start python3 {script}: {e}"),
    };
    let input = serde_json::to_vec(&cases).expect("cases serialize");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&input)
        .expect("write the cases to python3");
    let output = child.wait_with_output().expect("wait for python3");
    assert!(
        output.status.success(),
        "python3 {script} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> =
        serde_json::from_slice(&output.stdout).expect("python3 printed one JSON array");
    assert_eq!(results.len(), cases.len(), "one result per case");
    results
}

fn steps(result: &Value) -> Steps {
    serde_json::from_value(result["steps"].clone()).expect("steps are [hits, misses, currsize]")
}

/// The sequences and what functools reports after every call of each, per maxsize (indexed as
/// [`MAXSIZES`]) and per sequence.
struct Oracle {
    keys: Vec<Sequence<u32>>,
    pairs: Vec<Sequence<(String, u32)>>,
    key_steps: Vec<Vec<Steps>>,
    pair_steps: Vec<Vec<Steps>>,
}

/// The counts after every call of one sequence.
type Steps = Vec<Counts>;

/// The oracle, computed once by one python3 process for all tests.
fn oracle() -> &'static Oracle {
    static ORACLE: OnceLock<Oracle> = OnceLock::new();
    ORACLE.get_or_init(|| {
        let (keys, pairs) = (key_sequences(), pair_sequences());
        let mut cases = Vec::new();
        for maxsize in MAXSIZES {
            let maxsize = maxsize_json(maxsize);
            for sequence in &keys {
                cases.push(json!({"kind": "f", "maxsize": maxsize, "calls": sequence.calls}));
            }
            for sequence in &pairs {
                cases.push(json!({"kind": "g", "maxsize": maxsize, "calls": sequence.calls}));
            }
        }
        let results = replay_in_python(cases);
        let mut results = results.iter();
        let (mut key_steps, mut pair_steps) = (Vec::new(), Vec::new());
        for _ in MAXSIZES {
            key_steps.push(results.by_ref().take(keys.len()).map(steps).collect());
            pair_steps.push(results.by_ref().take(pairs.len()).map(steps).collect());
        }
        Oracle {
            keys,
            pairs,
            key_steps,
            pair_steps,
        }
    })
}

#[test]
fn sequences_hit_and_evict_at_every_bound() {
    let oracle = oracle();
    for (i, maxsize) in MAXSIZES.into_iter().enumerate() {
        for by_sequence in [&oracle.key_steps[i], &oracle.pair_steps[i]] {
            let last: Vec<Counts> = by_sequence
                .iter()
                .filter_map(|s| s.last().copied())
                .collect();
            let hits: u64 = last.iter().map(|&(hits, ..)| hits).sum();
            // functools stores every miss (none at maxsize 0): misses not stored any more were
            // evicted.
            let evicted = last
                .iter()
                .any(|&(_, misses, currsize)| misses > currsize as u64);
            assert_eq!(hits > 0, maxsize != Some(0), "hits at maxsize {maxsize:?}");
            assert_eq!(
                evicted,
                maxsize.is_some(),
                "evictions at maxsize {maxsize:?}"
            );
        }
    }
}

fn counts(info: &CacheInfo) -> Counts {
    (info.hits, info.misses, info.currsize)
}

/// Replays `sequence` through `call`, which makes one call and returns the counts after it,
/// and compares them with functools' after every call.
fn assert_same_steps<C: Debug>(
    driver: &str,
    maxsize: Option<usize>,
    sequence: &Sequence<C>,
    expected: &[Counts],
    mut call: impl FnMut(&C) -> Counts,
) {
    assert_eq!(expected.len(), sequence.calls.len(), "one step per call");
    for (step, (c, want)) in sequence.calls.iter().zip(expected).enumerate() {
        let got = call(c);
        assert_eq!(
            got, *want,
            "{driver}, maxsize {maxsize:?}, {}: after call {step} ({c:?}), memo has \
             (hits, misses, currsize) = {got:?} but functools.lru_cache has {want:?}",
            sequence.name
        );
    }
}

fn f_body(x: u32) -> u32 {
    x * 3 + 1
}

fn g_body(name: &str, n: u32) -> String {
    format!("{name}:{n}")
}

/// A `#[memoize]` function with its companions.
struct Memoized<F> {
    maxsize: Option<usize>,
    call: F,
    cache_info: fn() -> CacheInfo,
    cache_clear: fn(),
}

/// The [`Memoized`] of a `#[memoize]` function `$f` declared with `maxsize = $maxsize`.
macro_rules! memoized {
    ($f:ident, $maxsize:expr) => {
        Memoized {
            maxsize: $maxsize,
            call: $f,
            cache_info: $f::cache_info,
            cache_clear: $f::cache_clear,
        }
    };
}

/// A one-argument function under test.
type KeyFn = fn(u32) -> u32;

/// A `(&str, u32)` function under test.
type PairFn = fn(&str, u32) -> String;

/// A recursive Fibonacci under test.
type FibFn = fn(u64) -> u128;

impl<F> Memoized<F> {
    /// Clears the cache and checks that it is empty and at the right bound.
    fn clear(&self) {
        (self.cache_clear)();
        let info = (self.cache_info)();
        assert_eq!(counts(&info), (0, 0, 0), "cache_clear resets the counts");
        assert_eq!(info.maxsize, self.maxsize, "cache_info reports the maxsize");
    }
}

#[memoize(maxsize = 0)]
fn f0(x: u32) -> u32 {
    f_body(x)
}

#[memoize(maxsize = 1)]
fn f1(x: u32) -> u32 {
    f_body(x)
}

#[memoize(maxsize = 2)]
fn f2(x: u32) -> u32 {
    f_body(x)
}

#[memoize(maxsize = 7)]
fn f7(x: u32) -> u32 {
    f_body(x)
}

#[memoize(maxsize = 128)]
fn f128(x: u32) -> u32 {
    f_body(x)
}

#[memoize(maxsize = None)]
fn f_unbounded(x: u32) -> u32 {
    f_body(x)
}

#[test]
fn memoized_fn_matches_functools_after_every_call() {
    let functions: [Memoized<KeyFn>; 6] = [
        memoized!(f0, Some(0)),
        memoized!(f1, Some(1)),
        memoized!(f2, Some(2)),
        memoized!(f7, Some(7)),
        memoized!(f128, Some(128)),
        memoized!(f_unbounded, None),
    ];
    let oracle = oracle();
    for (i, function) in functions.iter().enumerate() {
        assert_eq!(function.maxsize, MAXSIZES[i]);
        for (sequence, want) in oracle.keys.iter().zip(&oracle.key_steps[i]) {
            function.clear();
            assert_same_steps("#[memoize] f(x)", function.maxsize, sequence, want, |&x| {
                assert_eq!((function.call)(x), f_body(x), "f({x}) returns its value");
                counts(&(function.cache_info)())
            });
        }
    }
}

#[memoize(maxsize = 0)]
fn g0(name: &str, n: u32) -> String {
    g_body(name, n)
}

#[memoize(maxsize = 1)]
fn g1(name: &str, n: u32) -> String {
    g_body(name, n)
}

#[memoize(maxsize = 2)]
fn g2(name: &str, n: u32) -> String {
    g_body(name, n)
}

#[memoize(maxsize = 7)]
fn g7(name: &str, n: u32) -> String {
    g_body(name, n)
}

#[memoize(maxsize = 128)]
fn g128(name: &str, n: u32) -> String {
    g_body(name, n)
}

#[memoize(maxsize = None)]
fn g_unbounded(name: &str, n: u32) -> String {
    g_body(name, n)
}

#[test]
fn memoized_str_int_fn_matches_functools_after_every_call() {
    let functions: [Memoized<PairFn>; 6] = [
        memoized!(g0, Some(0)),
        memoized!(g1, Some(1)),
        memoized!(g2, Some(2)),
        memoized!(g7, Some(7)),
        memoized!(g128, Some(128)),
        memoized!(g_unbounded, None),
    ];
    let oracle = oracle();
    for (i, function) in functions.iter().enumerate() {
        assert_eq!(function.maxsize, MAXSIZES[i]);
        for (sequence, want) in oracle.pairs.iter().zip(&oracle.pair_steps[i]) {
            function.clear();
            let driver = "#[memoize] g(name, n)";
            assert_same_steps(driver, function.maxsize, sequence, want, |(name, n)| {
                let value = (function.call)(name, *n);
                assert_eq!(
                    value,
                    g_body(name, *n),
                    "g({name:?}, {n}) returns its value"
                );
                counts(&(function.cache_info)())
            });
        }
    }
}

fn new_cache<K: std::hash::Hash + Eq, V>(maxsize: Option<usize>) -> Cache<K, V> {
    Cache::builder()
        .maxsize(maxsize)
        .build()
        .unwrap_or_else(|e| panic!("maxsize {maxsize:?} builds a cache: {e}"))
}

#[test]
fn cache_get_then_insert_if_absent_matches_functools_after_every_call() {
    let oracle = oracle();
    for (i, maxsize) in MAXSIZES.into_iter().enumerate() {
        for (sequence, want) in oracle.keys.iter().zip(&oracle.key_steps[i]) {
            let cache: Cache<u32, u32> = new_cache(maxsize);
            assert_same_steps("Cache<u32, u32>", maxsize, sequence, want, |&x| {
                let value = match cache.get(&x) {
                    Some(value) => value,
                    None => {
                        let value = f_body(x);
                        cache.insert_if_absent(x, value);
                        value
                    }
                };
                assert_eq!(value, f_body(x), "the value stored for {x}");
                counts(&cache.info())
            });
        }
        for (sequence, want) in oracle.pairs.iter().zip(&oracle.pair_steps[i]) {
            let cache: Cache<(String, u32), String> = new_cache(maxsize);
            let driver = "Cache<(String, u32), String>";
            assert_same_steps(driver, maxsize, sequence, want, |(name, n)| {
                let probe = (name.as_str(), n);
                let value = match cache.get_by(&probe, |k| k.0 == *name && k.1 == *n) {
                    Some(value) => value,
                    None => {
                        let value = g_body(name, *n);
                        cache.insert_if_absent((name.clone(), *n), value.clone());
                        value
                    }
                };
                assert_eq!(
                    value,
                    g_body(name, *n),
                    "the value stored for ({name:?}, {n})"
                );
                counts(&cache.info())
            });
        }
    }
}

#[memoize]
fn fib_default(n: u64) -> u128 {
    if n < 2 {
        n.into()
    } else {
        fib_default(n - 1) + fib_default(n - 2)
    }
}

#[memoize(maxsize = None)]
fn fib_unbounded(n: u64) -> u128 {
    if n < 2 {
        n.into()
    } else {
        fib_unbounded(n - 1) + fib_unbounded(n - 2)
    }
}

/// The smallest bound at which functools' recursive fib stays linear.
#[memoize(maxsize = 3)]
fn fib3(n: u64) -> u128 {
    if n < 2 {
        n.into()
    } else {
        fib3(n - 1) + fib3(n - 2)
    }
}

#[test]
fn recursive_fib_matches_functools() {
    let functions: [Memoized<FibFn>; 3] = [
        memoized!(fib_default, Some(128)),
        memoized!(fib_unbounded, None),
        memoized!(fib3, Some(3)),
    ];
    let cases = functions
        .iter()
        .map(|f| json!({"kind": "fib", "maxsize": maxsize_json(f.maxsize), "n": 150}))
        .collect();
    let results = replay_in_python(cases);
    let mut memo_counts = Vec::new();
    for (function, result) in functions.iter().zip(&results) {
        let maxsize = function.maxsize;
        function.clear();
        let value = (function.call)(150);
        let python_value: u128 = result["value"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("python's fib(150) is a decimal string that fits in u128");
        assert_eq!(value, python_value, "fib(150) at maxsize {maxsize:?}");
        let info = (function.cache_info)();
        assert_eq!(
            vec![counts(&info)],
            steps(result),
            "fib(150) at maxsize {maxsize:?}: memo's (hits, misses, currsize) against functools'"
        );
        memo_counts.push(counts(&info));
    }
    // The well-known numbers, in case both sides drift together.
    assert_eq!(value_of_fib_150(), fib_default(150));
    assert_eq!(
        memo_counts,
        [(148, 151, 128), (148, 151, 151), (148, 151, 3)],
        "fib(150) at maxsize 128, None and 3"
    );
}

/// fib(150), by iteration.
fn value_of_fib_150() -> u128 {
    let (mut a, mut b) = (0u128, 1u128);
    for _ in 0..150 {
        (a, b) = (b, a + b);
    }
    a
}
