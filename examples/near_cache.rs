//! A near cache over Redis: each process keeps its hot values in memory, and an invalidation in
//! one process reaches the others within milliseconds.
//!
//! ```text
//! cargo run --release --example near_cache --features redis          # 1000 invalidations
//! cargo run --release --example near_cache --features redis -- 100   # fewer
//! ```
//!
//! The example starts a `redis-server` on a free loopback port (or uses `REDIS_URL` if set) and
//! a second copy of itself, the reader, which keeps calling `price("tea")`: from its local layer
//! in tens of nanoseconds, not a Redis round trip. The main process then changes the price and
//! calls `price::cache_invalidate("tea")`, again and again; each time the reader's next call
//! misses and gets the new price. It reports when it saw it, and the example prints how long
//! after the call to `cache_invalidate` that was (median, p99, max): the cross-process delay.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memo::memoize;
use memo::stores::{self, RedisStore};

/// The "database": what a price lookup answers in this process.
static PRICE: AtomicU64 = AtomicU64::new(0);

/// A price, cached in Redis for 5 minutes and in each process for up to 30 s (or until some
/// process invalidates it).
#[memoize(store = "prices", ttl = "5m", local = 1000, local_ttl = "30s")]
fn price(item: &str) -> u64 {
    let _ = item;
    PRICE.load(Ordering::SeqCst)
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// The reader: for each price `p` it is told, sets it as its own "database" and polls
/// `price("tea")` until it answers `p`, then says when (µs since the epoch).
fn reader(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    stores::register("prices", RedisStore::connect(url)?);
    price("tea");
    while stores::near_subscribed("prices") != Some(true) {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("ready");
    for line in std::io::stdin().lines() {
        let expected: u64 = line?.trim().parse()?;
        PRICE.store(expected, Ordering::SeqCst);
        println!("polling");
        while price("tea") != expected {
            std::thread::yield_now();
        }
        println!("{}", now_micros());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, url] = args.as_slice() {
        if role == "reader" {
            return reader(url);
        }
    }
    let rounds: usize = args.get(1).map_or(Ok(1000), |n| n.parse())?;
    let (url, server) = match std::env::var("REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let (url, child) = start_redis()?;
            (url, Some(child))
        }
    };
    stores::register("prices", RedisStore::connect(&url)?);
    let mut child = Command::new(std::env::current_exe()?)
        .args(["reader", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut to_reader = child.stdin.take().unwrap();
    let mut from_reader = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || {
        from_reader
            .next()
            .unwrap()
            .map_err(Box::<dyn std::error::Error>::from)
    };
    assert_eq!(next()?, "ready");

    let mut delays = Vec::with_capacity(rounds);
    for round in 1..=rounds as u64 {
        writeln!(to_reader, "{round}")?;
        assert_eq!(next()?, "polling");
        PRICE.store(round, Ordering::SeqCst);
        let invalidated = now_micros();
        price::cache_invalidate("tea");
        let seen: u128 = next()?.parse()?;
        delays.push(Duration::from_micros(
            seen.saturating_sub(invalidated) as u64
        ));
    }
    drop(to_reader); // the reader ends at the end of its input
    let _ = child.wait();

    // A local hit, in this process.
    while stores::near_subscribed("prices") != Some(true) {
        std::thread::sleep(Duration::from_millis(1));
    }
    price("tea");
    let start = Instant::now();
    for _ in 0..100_000 {
        std::hint::black_box(price("tea"));
    }
    let local = start.elapsed() / 100_000;
    delays.sort();
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize];
    println!(
        "{rounds} invalidations: the other process missed {:?} (median), {:?} (p99), {:?} (max) \
         after cache_invalidate was called; a local hit takes {local:?}",
        at(0.5),
        at(0.99),
        delays[delays.len() - 1],
    );
    if let Some(mut child) = server {
        child.kill()?;
        child.wait()?;
    }
    Ok(())
}

/// A throwaway `redis-server` on a free loopback port, once it answers.
fn start_redis() -> Result<(String, std::process::Child), Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-server ({e}); install it or set REDIS_URL"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((format!("redis://127.0.0.1:{port}/"), child))
}
