//! Calls of memoized `u64 -> u64` functions for callgrind's exact instruction counts (A/B of the
//! miss path on a noisy machine): `miss_count VARIANT N` makes 100k calls, then N more, with
//! keys uniform over 1M; the difference of two runs' counts (N = 100000 and 200000) over
//! 100000 is the cost of one call. `sf`/`nosf`: maxsize 128 with and without single-flight
//! (nearly every call misses and evicts); `sf10k`/`nosf10k`: maxsize 10,000; `sfhit`/`nosfhit`:
//! keys 0..100 at maxsize 128, every call a hit. `adaptive`, `adaptive10k`, `adaptivehit`: as
//! `sf`, `sf10k` and `sfhit` with `policy = "adaptive"`.
//!
//! ```text
//! cargo bench -p memo-benches --bench miss_count --no-run
//! valgrind --tool=callgrind target/release/deps/miss_count-HASH sf 100000
//! ```
#![allow(missing_docs, reason = "a plain binary, not a library")]
use std::hint::black_box;

use memo::memoize;

#[memoize(maxsize = 128)]
fn with_flight(key: u64) -> u64 {
    key ^ 0x5555_5555
}

#[memoize(maxsize = 128, single_flight = false)]
fn without_flight(key: u64) -> u64 {
    key ^ 0x5555_5555
}

#[memoize(maxsize = 10000)]
fn with_flight_10k(key: u64) -> u64 {
    key ^ 0x5555_5555
}

#[memoize(maxsize = 10000, single_flight = false)]
fn without_flight_10k(key: u64) -> u64 {
    key ^ 0x5555_5555
}

#[memoize(maxsize = 128, policy = "adaptive")]
fn adaptive(key: u64) -> u64 {
    key ^ 0x5555_5555
}

#[memoize(maxsize = 10000, policy = "adaptive")]
fn adaptive_10k(key: u64) -> u64 {
    key ^ 0x5555_5555
}

fn main() {
    // `cargo bench` passes `--bench` (and any filter after it): only the words without a
    // leading dash are ours, so that `cargo bench -p memo-benches` runs this too.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let variant = args.first().map_or("sf", String::as_str);
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let f: fn(u64) -> u64 = match variant {
        "sf" => with_flight,
        "nosf" => without_flight,
        "sf10k" => with_flight_10k,
        "nosf10k" => without_flight_10k,
        "adaptive" => adaptive,
        "adaptive10k" => adaptive_10k,
        "sfhit" | "nosfhit" | "adaptivehit" => {
            let f: fn(u64) -> u64 = match variant {
                "sfhit" => with_flight,
                "nosfhit" => without_flight,
                _ => adaptive,
            };
            let mut acc = 0u64;
            for i in 0..100_000 + n {
                acc = acc.wrapping_add(f(black_box(i % 100)));
            }
            black_box(acc);
            return;
        }
        _ => {
            eprintln!(
                "miss_count: no variant {variant:?} (sf, nosf, sf10k, nosf10k, sfhit, nosfhit, \
                 adaptive, adaptive10k, adaptivehit)"
            );
            std::process::exit(2);
        }
    };
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut acc = 0u64;
    for _ in 0..100_000 + n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(f(black_box(x % 1_000_000)));
    }
    black_box(acc);
}
