//! Fibonacci without and with `#[memoize]`.
//!
//! ```text
//! cargo run --release --example fibonacci
//! ```
//!
//! The plain recursive `fib` calls itself about φⁿ times; the memoized one computes each `F(k)`
//! once and answers the other calls from its cache, so F(1000) is instant.
use std::hint::black_box;
use std::time::{Duration, Instant};

use memo::memoize;
use num_bigint::BigUint;

/// The textbook definition: exponential time.
fn fib_plain(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_plain(n - 1) + fib_plain(n - 2)
    }
}

/// The same definition, memoized: linear time.
#[memoize]
fn fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// Exact Fibonacci numbers of any size.
#[memoize]
fn fib_big(n: u64) -> BigUint {
    if n < 2 {
        BigUint::from(n)
    } else {
        fib_big(n - 1) + fib_big(n - 2)
    }
}

const F1000: &str = "43466557686937456435688527675040625802564660517371780402481729089536555417949051890403879840079255169295922593080322634775209689623239873322471161642996440906533187938298969649928516003704476137795166849228875";

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn main() {
    // Warm up: the cache is created on first use; don't count that in the first row.
    fib(10);
    fib::cache_clear();

    println!(
        "{:>3}  {:>10}  {:>11}  {:>14}  {:>8}",
        "n", "F(n)", "plain (ms)", "memoized (µs)", "speedup"
    );
    for n in 30..=40 {
        let (plain, plain_time) = time(|| fib_plain(black_box(n)));
        // Each memoized run starts from an empty cache; a run takes microseconds, so take the
        // best of 5 to keep other processes' noise out of the table.
        let (memoized, memo_time) = (0..5)
            .map(|_| {
                fib::cache_clear();
                time(|| fib(black_box(n)))
            })
            .min_by_key(|&(_, t)| t)
            .expect("five runs");
        assert_eq!(plain, memoized);
        let speedup = plain_time.as_secs_f64() / memo_time.as_secs_f64();
        println!(
            "{n:>3}  {plain:>10}  {:>11.1}  {:>14.1}  {:>7.0}x",
            plain_time.as_secs_f64() * 1e3,
            memo_time.as_secs_f64() * 1e6,
            speedup
        );
    }

    // After the cold fib(40), as with functools.lru_cache: 41 misses (F(0)..F(40), each computed
    // once) and 38 hits (fib(k) for k in 3..=40 finds fib(k - 2) cached).
    let info = fib::cache_info();
    println!("\nfib::cache_info() after fib(40): {info}");
    assert_eq!((info.hits, info.misses, info.currsize), (38, 41, 41));

    let (f1000, big_time) = time(|| fib_big(1000));
    println!("\nF(1000) = {f1000}");
    println!(
        "computed in {:.1} µs; fib_big::cache_info(): {}",
        big_time.as_secs_f64() * 1e6,
        fib_big::cache_info()
    );
    assert_eq!(f1000.to_string(), F1000);
}
