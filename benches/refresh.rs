//! What refresh-ahead and the stale windows cost a hit, in one group so the ratios are read from
//! one run: a function with `ttl` alone (whose generated code is that of any function without
//! these options), with `refresh`, and with both stale windows. Every call is a hit of a fresh
//! entry (the ttl is an hour): the options add the stamp's clock read and the age check.
//!
//! `cargo bench -p memo-benches --bench refresh -- --warm-up-time 1 --measurement-time 2`.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use memo::memoize;

#[memoize(ttl = "1h")]
fn ttl_only(key: u64) -> u64 {
    key * 2
}

#[memoize(ttl = "1h", refresh = "50m")]
fn with_refresh(key: u64) -> u64 {
    key * 2
}

#[memoize(ttl = "1h", stale_while_revalidate = "1h", stale_if_error = "1d")]
fn with_stale(key: u64) -> Result<u64, String> {
    Ok(key * 2)
}

fn hit_of_a_fresh_entry(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit_of_a_fresh_entry");
    for key in 0..64 {
        ttl_only(key);
        with_refresh(key);
        let _ = with_stale(key);
    }
    let mut key = 0u64;
    let mut next = move || {
        key = (key + 1) & 63;
        black_box(key)
    };
    group.bench_function("ttl", |b| b.iter(|| ttl_only(next())));
    group.bench_function("ttl_refresh", |b| b.iter(|| with_refresh(next())));
    group.bench_function("ttl_stale_windows", |b| b.iter(|| with_stale(next())));
    group.finish();
}

criterion_group!(benches, hit_of_a_fresh_entry);
criterion_main!(benches);
