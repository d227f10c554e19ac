//! The cost of single-flight, with and without it in the same group so the ratio is read from one
//! run. Single-flight touches only the miss path: a hit never sees the table of keys in flight.
//!
//! - `hit_path`: a warm key of a `(&str, u64)` function, plain call as the floor.
//! - `miss_path`: `maxsize = 0`, so every call misses, runs a trivial body and stores nothing:
//!   the whole overhead of the miss path with a body that costs nothing. With single-flight a
//!   miss also hashes the key for the table, inserts its flight, checks the cache again and
//!   removes the flight.
//! - `miss_then_hit_1k_keys`: 1,000 distinct keys into an empty cache (misses that store), then
//!   the same keys again (hits): the realistic mix of a cold start.
//! - `miss_bookkeeping`: a leader's miss as the generated code makes it (join, run the body,
//!   complete; `maxsize = 0`), with issue 10's bookkeeping on (`all`, what `#[memoize]` does), and
//!   with `load_time`'s two clock reads off, with the waits counter and the record of the
//!   flights a thread leads (what the recursion and cycle checks read) off, and with both off:
//!   the differences are what each costs a miss. A hit never reaches any of it (`hit_path`:
//!   `single_flight` against `no_single_flight`).
//!
//! - `miss_evicts_128`: `u64 -> u64` functions of maxsize 128 called with keys uniform over 1M
//!   (benches/compare's "miss that evicts" row), with and without single-flight: what
//!   single-flight adds to a miss that stores and evicts. `-- miss_evicts --profile-time 5`
//!   under `perf record` for a profile of one variant.
//!
//! `cargo bench -p memo-benches --bench single_flight -- --warm-up-time 1 --measurement-time 2` for a quick look.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use memo::__private::{Flights, Joined, Memo, Params};
use memo::{memoize, Policy};

fn plain(city: &str, day: u64) -> u64 {
    city.len() as u64 + day
}

#[memoize]
fn with_flight(city: &str, day: u64) -> u64 {
    city.len() as u64 + day
}

#[memoize(single_flight = false)]
fn without_flight(city: &str, day: u64) -> u64 {
    city.len() as u64 + day
}

#[memoize(maxsize = 0)]
fn miss_with_flight(city: &str, day: u64) -> u64 {
    city.len() as u64 + day
}

#[memoize(maxsize = 0, single_flight = false)]
fn miss_without_flight(city: &str, day: u64) -> u64 {
    city.len() as u64 + day
}

#[memoize(maxsize = 2048)]
fn cold_with_flight(day: u64) -> u64 {
    day * 2
}

#[memoize(maxsize = 2048, single_flight = false)]
fn cold_without_flight(day: u64) -> u64 {
    day * 2
}

fn hit_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit_path");
    assert_eq!(with_flight("Lyon", 3), 7);
    assert_eq!(without_flight("Lyon", 3), 7);
    group.bench_function("plain", |b| {
        b.iter(|| plain(black_box("Lyon"), black_box(3)))
    });
    group.bench_function("single_flight", |b| {
        b.iter(|| with_flight(black_box("Lyon"), black_box(3)))
    });
    group.bench_function("no_single_flight", |b| {
        b.iter(|| without_flight(black_box("Lyon"), black_box(3)))
    });
    group.finish();
    assert_eq!(with_flight::cache_info().misses, 1);
}

fn miss_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("miss_path");
    group.bench_function("plain", |b| {
        b.iter(|| plain(black_box("Lyon"), black_box(3)))
    });
    group.bench_function("single_flight", |b| {
        b.iter(|| miss_with_flight(black_box("Lyon"), black_box(3)))
    });
    group.bench_function("no_single_flight", |b| {
        b.iter(|| miss_without_flight(black_box("Lyon"), black_box(3)))
    });
    group.finish();
    assert_eq!(miss_with_flight::cache_info().hits, 0);
}

fn miss_then_hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("miss_then_hit_1k_keys");
    group.bench_function("single_flight", |b| {
        b.iter_batched(
            cold_with_flight::cache_clear,
            |()| {
                for _ in 0..2 {
                    for day in 0..1_000 {
                        black_box(cold_with_flight(black_box(day)));
                    }
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("no_single_flight", |b| {
        b.iter_batched(
            cold_without_flight::cache_clear,
            |()| {
                for _ in 0..2 {
                    for day in 0..1_000 {
                        black_box(cold_without_flight(black_box(day)));
                    }
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    let info = cold_with_flight::cache_info();
    // Nothing ran when a filter on the command line left this group out.
    if info.misses > 0 {
        assert_eq!(
            (info.hits, info.misses),
            (1_000, 1_000),
            "the last run: {info}"
        );
    }
}

#[memoize(maxsize = 128)]
fn evicts_with_flight(key: u64) -> u64 {
    key ^ 0x5555_5555
}

#[memoize(maxsize = 128, single_flight = false)]
fn evicts_without_flight(key: u64) -> u64 {
    key ^ 0x5555_5555
}

fn miss_evicts(c: &mut Criterion) {
    let mut group = c.benchmark_group("miss_evicts_128");
    // Keys uniform over 1M (xorshift), so that nearly every call misses and evicts.
    let next = |x: &mut u64| {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x % 1_000_000
    };
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    group.bench_function("single_flight", |b| {
        b.iter(|| evicts_with_flight(black_box(next(&mut x))))
    });
    group.bench_function("no_single_flight", |b| {
        b.iter(|| evicts_without_flight(black_box(next(&mut x))))
    });
    group.finish();
    let info = evicts_with_flight::cache_info();
    if info.misses > 0 {
        assert!(info.hits * 100 < info.misses, "{info}");
    }
}

/// A leader's miss through `memo`'s flights, as the generated code makes it.
fn leader_miss(memo: &Memo<u64, u64>, key: u64) -> u64 {
    match memo.flights.join_owned(&memo.cache, key) {
        Joined::Ready(value) => value,
        Joined::Failed(_) => unreachable!("the body never fails"),
        Joined::Lead(leader) => {
            let value = leader.call(|| black_box(key) * 2);
            memo.flights.complete(leader, &memo.cache, value);
            value
        }
    }
}

fn miss_bookkeeping(c: &mut Criterion) {
    let mut group = c.benchmark_group("miss_bookkeeping");
    let params = Params {
        maxsize: Some(0),
        ttl: None,
        ttl_jitter: 0.0,
        policy: Policy::Lru,
        negative_ttl: None,
    };
    for (name, load_time, waits_and_cycles) in [
        ("all", true, true),
        ("no_load_time", false, true),
        ("no_waits_or_cycle_record", true, false),
        ("none", false, false),
    ] {
        let mut memo = Memo::new(name, params);
        memo.flights = Flights::new(name).measured_with(load_time, waits_and_cycles);
        let mut key = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                key = key.wrapping_add(1);
                leader_miss(&memo, key)
            })
        });
        let info = memo.info();
        if info.misses > 0 {
            assert_eq!(info.load_time.is_zero(), !load_time);
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    hit_path,
    miss_path,
    miss_then_hit,
    miss_bookkeeping,
    miss_evicts
);
criterion_main!(benches);
