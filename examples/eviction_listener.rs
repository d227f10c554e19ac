//! An eviction listener: be told of every value that leaves a cache, and why.
//!
//! ```text
//! cargo run --release --example eviction_listener
//! ```
//!
//! A cache of open "sessions" (at most 3, each for 1 s) whose listener closes each session that
//! leaves: evicted to make room (size), timed out (expired), logged out (explicit), renewed
//! (replaced) or shut down (cleared). The listener runs after the cache has released its lock,
//! once per session; at the end every session opened has been closed once or is still cached.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use memo::{Cache, RemovalCause};

/// A session: its user and a serial number, to tell renewals apart.
#[derive(Clone, Debug)]
struct Session {
    user: &'static str,
    serial: u32,
}

fn main() {
    let closed: Arc<Mutex<BTreeMap<String, Vec<u32>>>> = Arc::default();
    let log = Arc::clone(&closed);
    let sessions: Cache<&'static str, Session> = Cache::builder()
        .maxsize(3)
        .ttl(Duration::from_secs(1))
        .on_evict(
            move |_user: &&str, session: &Session, cause: RemovalCause| {
                println!(
                    "  closed {}'s session #{} ({cause})",
                    session.user, session.serial
                );
                let mut log = log.lock().unwrap();
                log.entry(cause.to_string())
                    .or_default()
                    .push(session.serial);
            },
        )
        .build()
        .expect("a valid configuration");

    let mut serial = 0;
    let mut open = |user: &'static str| {
        serial += 1;
        println!("open {user} #{serial}");
        sessions.insert(user, Session { user, serial });
    };
    open("ada");
    open("bob");
    open("cy");
    open("dee"); // the fourth: evicts ada's, the least recently used
    open("bob"); // renews bob's: the old one is replaced
    println!("log out cy");
    sessions.remove("cy");
    println!("(sleeping 1.1 s: every session times out)");
    thread::sleep(Duration::from_millis(1100));
    open("eve"); // a write first sweeps the expired sessions
    println!("{}", sessions.info());
    open("fay");
    println!("shut down");
    sessions.clear();

    let closed = closed.lock().unwrap();
    println!("\nclosed, by cause: {closed:?}");
    let total: usize = closed.values().map(Vec::len).sum();
    assert_eq!(
        total, serial as usize,
        "every session opened was closed exactly once"
    );
    assert_eq!(closed["size"], [1]);
    assert_eq!(closed["replaced"], [2]);
    assert_eq!(closed["explicit"], [3]);
    assert!(sessions.is_empty());
}
