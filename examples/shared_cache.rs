//! Two worker processes sharing one Redis-backed memoized function.
//!
//! ```text
//! cargo run --example shared_cache --features redis
//! ```
//!
//! The example starts a `redis-server` on a free loopback port (or uses `REDIS_URL` if set),
//! then runs itself twice as a worker. Each worker registers the store under the name `shared`
//! and calls a slow function for the same ten inputs: the first worker computes them, the second
//! gets every one from Redis.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memo::memoize;
use memo::stores::{self, RedisStore};

/// A function worth caching: 20 ms per call. Its results live in the store named `shared` for
/// five minutes, under keys namespaced by this module and function.
#[memoize(store = "shared", ttl = "5m")]
fn slow_square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    n * n
}

fn worker(id: &str, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    // Once, at start-up, as Django's CACHES.
    stores::register("shared", RedisStore::connect(url)?);
    let start = Instant::now();
    let total: u64 = (1..=10).map(slow_square).sum();
    let info = slow_square::cache_info();
    println!(
        "worker {id} (pid {}): sum of squares {total} in {:>6.1?}: {} hits, {} misses",
        std::process::id(),
        start.elapsed(),
        info.hits,
        info.misses
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, id, url] = args.as_slice() {
        if role == "worker" {
            return worker(id, url);
        }
    }
    let (url, server) = match std::env::var("REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let (url, child) = start_redis()?;
            (url, Some(child))
        }
    };
    println!("redis at {url}");
    for id in ["1", "2"] {
        let status = Command::new(std::env::current_exe()?)
            .args(["worker", id, &url])
            .status()?;
        assert!(status.success(), "worker {id} failed");
    }
    if let Some(mut child) = server {
        child.kill()?;
        child.wait()?;
    }
    Ok(())
}

/// A throwaway `redis-server` on a free loopback port, once it answers.
fn start_redis() -> Result<(String, Child), Box<dyn std::error::Error>> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--loglevel", "warning"])
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
