//! Memoized against plain calls, in the same group so the ratio is read from one run.
//!
//! - `fib_30`: plain recursive fib(30) (1.6M calls), memoized fib(30) answered from a warm cache,
//!   and memoized fib(30) from an empty cache (31 misses, 28 hits).
//! - `costly_fn_10us`: a function that burns about 10 µs of CPU, plain against a cache hit.
//!
//! `cargo bench -p memo-benches --bench memoize -- --warm-up-time 1 --measurement-time 2` for a quick look.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use memo::memoize;

fn fib_plain(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_plain(n - 1) + fib_plain(n - 2)
    }
}

#[memoize]
fn fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

fn fib_30(c: &mut Criterion) {
    let mut group = c.benchmark_group("fib_30");
    group.bench_function("plain", |b| b.iter(|| fib_plain(black_box(30))));

    fib::cache_clear();
    assert_eq!(fib(30), 832_040);
    group.bench_function("memoized_warm", |b| b.iter(|| fib(black_box(30))));

    // PerIteration: criterion runs a whole batch of setups before the batch of routines, so
    // only with batches of one does every timed call find an empty cache.
    group.bench_function("memoized_cold", |b| {
        b.iter_batched(
            fib::cache_clear,
            |()| fib(black_box(30)),
            BatchSize::PerIteration,
        )
    });
    let info = fib::cache_info();
    assert_eq!(
        (info.hits, info.misses),
        (28, 31),
        "the last cold run: {info}"
    );
    group.finish();
}

/// Rounds of mixing in `costly`: about 10 µs on the 2-core machine this was tuned on (one
/// dependent multiply-rotate-xor round takes about 1.3 ns there).
const COSTLY_ROUNDS: u32 = 7_500;

/// A pure function whose cost is CPU work (not a sleep), which the optimizer cannot skip.
fn costly_plain(x: u64) -> u64 {
    let mut h = x;
    for i in 0..COSTLY_ROUNDS {
        h = black_box(h.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) ^ u64::from(i));
    }
    h
}

#[memoize]
fn costly(x: u64) -> u64 {
    costly_plain(x)
}

fn costly_fn_10us(c: &mut Criterion) {
    let mut group = c.benchmark_group("costly_fn_10us");
    let keys: Vec<u64> = (0..100).map(|i| i * 7919 + 17).collect();
    for &k in &keys {
        assert_eq!(costly(k), costly_plain(k));
    }

    let mut i = 0;
    group.bench_function("plain", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            costly_plain(black_box(keys[i]))
        })
    });
    let misses_before = costly::cache_info().misses;
    let mut i = 0;
    group.bench_function("memoized_hit", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            costly(black_box(keys[i]))
        })
    });
    assert_eq!(
        costly::cache_info().misses,
        misses_before,
        "every timed call must hit"
    );
    group.finish();
}

criterion_group!(benches, fib_30, costly_fn_10us);
criterion_main!(benches);
