//! `key`, `ignore`, `policy`, `crate`, the typed companions and single-flight, through the facade.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo::{memoize, Policy};

static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

#[memoize(key = city.to_lowercase())]
fn population(city: &str) -> u64 {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    city.len() as u64 * 1_000
}

#[test]
fn key_expression_decides_what_is_the_same_call() {
    assert_eq!(population("Paris"), 5_000);
    assert_eq!(population("PARIS"), 5_000);
    assert_eq!(population("paris"), 5_000);
    assert_eq!(population("Lyon"), 4_000);
    assert_eq!(LOOKUPS.load(Ordering::SeqCst), 2);
    let info = population::cache_info();
    assert_eq!((info.hits, info.misses, info.currsize), (2, 2, 2));
    assert!(population::cache_invalidate("pArIs"));
    assert!(!population::cache_invalidate("Nice"));
    assert_eq!(population::cache_info().currsize, 1);
}

/// A client handle that is neither `Hash` nor `Eq`.
struct Client {
    requests: AtomicUsize,
}

#[memoize(ignore = [client])]
fn temperature(client: &Client, city: &str) -> Result<i32, String> {
    client.requests.fetch_add(1, Ordering::SeqCst);
    match city {
        "nowhere" => Err("unknown city".to_owned()),
        _ => Ok(city.len() as i32),
    }
}

#[test]
fn ignored_arguments_are_left_out_of_the_key() {
    let (first, second) = (
        Client {
            requests: AtomicUsize::new(0),
        },
        Client {
            requests: AtomicUsize::new(0),
        },
    );
    assert_eq!(temperature(&first, "Oslo"), Ok(4));
    assert_eq!(temperature(&second, "Oslo"), Ok(4)); // a hit: the client is not part of the key
    assert!(temperature(&second, "nowhere").is_err());
    assert_eq!(first.requests.load(Ordering::SeqCst), 1);
    assert_eq!(second.requests.load(Ordering::SeqCst), 1);
    // The companions take only the key's arguments: no client.
    temperature::cache_prime("Rome", 40);
    assert_eq!(temperature(&first, "Rome"), Ok(40));
    assert!(temperature::cache_invalidate("Rome"));
    assert_eq!(temperature(&first, "Rome"), Ok(4));
}

#[memoize(maxsize = 2, policy = "fifo")]
fn fifo(n: u32) -> u32 {
    n
}

#[memoize(maxsize = 2, policy = "mru")]
fn mru(n: u32) -> u32 {
    n
}

#[memoize(policy = "lfu")]
fn lfu(n: u32) -> u32 {
    n
}

#[memoize(policy = "adaptive", ttl = "10m")]
fn adaptive(n: u32) -> u32 {
    n
}

#[test]
fn policy_and_parameters_are_readable_at_run_time() {
    assert_eq!(fifo::cache_info().policy, Policy::Fifo);
    assert_eq!(mru::cache_info().policy, Policy::Mru);
    assert_eq!(lfu::cache_info().policy, Policy::Lfu);
    let info = adaptive::cache_info();
    assert_eq!(info.policy, Policy::Adaptive);
    assert_eq!(info.ttl, Some(std::time::Duration::from_secs(600)));
    assert_eq!(info.maxsize, Some(128));
    // FIFO: a hit does not save the first entry from eviction.
    fifo(1);
    fifo(2);
    fifo(1);
    fifo(3); // evicts 1
    fifo(1);
    assert_eq!(fifo::cache_info().misses, 4);
    // MRU: the most recently used goes first.
    mru(1);
    mru(2);
    mru(3); // evicts 2
    mru(1);
    mru(2);
    assert_eq!((mru::cache_info().hits, mru::cache_info().misses), (1, 4));
}

static SQUARES: AtomicUsize = AtomicUsize::new(0);

#[memoize]
fn square(n: u64) -> u64 {
    SQUARES.fetch_add(1, Ordering::SeqCst);
    n * n
}

#[test]
fn typed_companions_invalidate_prime_and_bypass() {
    // Warm the cache with a known value: the body is not run for it.
    square::cache_prime(12, 144);
    assert_eq!(square(12), 144);
    assert_eq!(SQUARES.load(Ordering::SeqCst), 0);
    // `uncached` runs the body and neither reads nor writes the cache.
    assert_eq!(square::uncached(3), 9);
    assert_eq!(SQUARES.load(Ordering::SeqCst), 1);
    let info = square::cache_info();
    assert_eq!((info.hits, info.misses, info.currsize), (1, 0, 1));
    assert!(square::cache_invalidate(12));
    assert!(!square::cache_invalidate(12));
    assert_eq!(square(12), 144);
    assert_eq!(SQUARES.load(Ordering::SeqCst), 2);
    // Priming replaces a stored value.
    square::cache_prime(12, 0);
    assert_eq!(square(12), 0);
}

#[memoize]
fn parse(text: &str) -> Result<u8, std::num::ParseIntError> {
    text.parse()
}

#[test]
fn prime_takes_the_ok_type_of_a_result() {
    parse::cache_prime("x", 7);
    assert_eq!(parse("x"), Ok(7));
    assert!(parse("y").is_err());
}

mod renamed {
    extern crate memo as my_memo;

    #[my_memo::memoize(crate = "my_memo", maxsize = 3)]
    pub fn triple(n: u32) -> u32 {
        n * 3
    }

    #[my_memo::memoize(crate = my_memo)]
    pub fn quadruple(n: u32) -> u32 {
        n * 4
    }
}

#[test]
fn crate_option_names_a_renamed_facade() {
    assert_eq!(renamed::triple(2), 6);
    assert_eq!(renamed::triple(2), 6);
    assert_eq!(renamed::triple::cache_info().maxsize, Some(3));
    assert_eq!(renamed::quadruple(2), 8);
}

#[test]
fn nested_functions_may_use_block_local_types_and_companions() {
    #[derive(Clone, Hash, PartialEq, Eq)]
    struct Local(u32);

    #[memoize]
    fn get(key: Local) -> u32 {
        key.0 + 1
    }

    assert_eq!(get(Local(1)), 2);
    assert_eq!(get::uncached(Local(1)), 2);
    assert!(get::cache_invalidate(Local(1)));
    assert_eq!(get::cache_info().misses, 1);
}
