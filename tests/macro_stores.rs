//! `#[memoize(store = "...")]` against real servers: `redis-server` and `memcached` on free
//! loopback ports and a SQLite file. Each test registers stores under names of its own (the
//! registry is global) and memoizes functions bound to those names.
#![cfg(all(feature = "redis", feature = "memcached", feature = "persistent"))]

#[path = "support/servers.rs"]
mod servers;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use memo::memoize;
use memo::stores::{self, MemcachedStore, PersistentStore, RedisStore, StoreOptions};
use servers::Server;

fn register_redis(name: &str, server: &Server) {
    let store = RedisStore::connect(&server.redis_url()).expect("a valid url");
    stores::register(name, store);
}

fn register_memcached(name: &str, server: &Server) {
    let store = MemcachedStore::connect(&server.address()).expect("a valid address");
    stores::register(name, store);
}

/// A SQLite file under the temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(test: &str) -> TempFile {
        let dir = std::env::temp_dir().join(format!("memo-macro-stores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempFile(dir.join(format!("{test}.sqlite")))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

fn runs(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

/// The redis keys of values whose name contains `part` (not the generations, `...:gen`).
fn redis_keys(server: &Server, part: &str) -> Vec<String> {
    let keys = server.redis_cli(&["KEYS", &format!("*{part}*")]);
    keys.lines()
        .filter(|key| !key.ends_with(":gen"))
        .map(str::to_owned)
        .collect()
}

mod redis_backend {
    use super::*;

    pub static SQUARES: AtomicU64 = AtomicU64::new(0);
    pub static CUBES: AtomicU64 = AtomicU64::new(0);

    #[memoize(store = "attr-redis", ttl = "5m", version = 2)]
    pub fn square(n: u64) -> u64 {
        SQUARES.fetch_add(1, Ordering::SeqCst);
        n * n
    }

    #[memoize(store = "attr-redis")]
    pub fn cube(n: u64) -> Option<u64> {
        CUBES.fetch_add(1, Ordering::SeqCst);
        (n > 0).then_some(n * n * n)
    }
}

#[test]
fn redis_store_hits_counts_passes_the_ttl_and_clears_only_its_function() {
    use redis_backend::{cube, square, CUBES, SQUARES};
    let server = Server::redis();
    register_redis("attr-redis", &server);
    assert_eq!(square(3), 9);
    assert_eq!(square(3), 9);
    assert_eq!(runs(&SQUARES), 1);
    let info = square::cache_info();
    assert_eq!((info.hits, info.misses, info.currsize_known), (1, 1, false));
    assert_eq!(info.ttl, Some(Duration::from_secs(300)));
    // One key, namespaced by the module path, the function and the version, with the ttl.
    let keys = redis_keys(&server, "square");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("memo:macro_stores::redis_backend::square:v2."),
        "{keys:?}"
    );
    let ttl: i64 = server.redis_cli(&["PTTL", &keys[0]]).parse().unwrap();
    assert!((290_000..=300_000).contains(&ttl), "{ttl}");
    // `Option`: only `Some` is stored.
    assert_eq!(
        (cube(0), cube(0), cube(2), cube(2)),
        (None, None, Some(8), Some(8))
    );
    assert_eq!(runs(&CUBES), 3);
    let info = cube::cache_info();
    assert_eq!((info.hits, info.misses, info.ttl), (1, 3, None));
    let cube_keys = redis_keys(&server, "cube");
    assert_eq!(server.redis_cli(&["PTTL", &cube_keys[0]]), "-1");
    // cache_clear removes this function's keys only.
    square::cache_clear();
    assert_eq!(square::cache_info().hits, 0);
    // Unreadable at once (a new generation); unlinked in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !redis_keys(&server, "square").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the old keys stay");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(redis_keys(&server, "cube").len(), 1);
    assert_eq!(cube(2), Some(8));
    assert_eq!(runs(&CUBES), 3, "cube's entry survived");
    assert_eq!(square(3), 9);
    assert_eq!(runs(&SQUARES), 2, "square's entry was removed");
    // The other companions go to the store too.
    square::cache_prime(4, 17);
    assert_eq!(square(4), 17);
    assert!(square::cache_invalidate(4));
    assert!(!square::cache_invalidate(4));
    assert_eq!(square(4), 16);
    assert_eq!(square::uncached(5), 25);
}

mod memcached_backend {
    use super::*;

    pub static SQUARES: AtomicU64 = AtomicU64::new(0);
    pub static HALVES: AtomicU64 = AtomicU64::new(0);

    #[memoize(store = "attr-memcached", ttl = "5m")]
    pub fn square(n: u64) -> u64 {
        SQUARES.fetch_add(1, Ordering::SeqCst);
        n * n
    }

    #[memoize(store = "attr-memcached")]
    pub fn half(n: u64) -> Result<u64, String> {
        HALVES.fetch_add(1, Ordering::SeqCst);
        if n.is_multiple_of(2) {
            Ok(n / 2)
        } else {
            Err(format!("{n} is odd"))
        }
    }
}

/// The seconds left before memcached expires the key that contains every one of `parts` (`-1`:
/// never), from its dump of the keys (percent-encoded; `hash` walks the hash table, every key).
fn memcached_ttl(server: &Server, parts: &[&str]) -> i64 {
    // memcached runs one crawl at a time, its own background crawler included: retry `BUSY`.
    let mut dump = server.memcached_command("lru_crawler metadump hash", None);
    for _ in 0..100 {
        if !dump.starts_with("BUSY") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        dump = server.memcached_command("lru_crawler metadump hash", None);
    }
    let line = dump
        .lines()
        .find(|line| parts.iter().all(|part| line.contains(part)))
        .unwrap_or_else(|| panic!("no key with {parts:?} in {dump}"));
    let exp: i64 = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("exp="))
        .expect(line)
        .parse()
        .unwrap();
    if exp < 0 {
        return exp;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    exp - now.as_secs() as i64
}

#[test]
fn memcached_store_hits_counts_passes_the_ttl_and_clears_only_its_function() {
    use memcached_backend::{half, square, HALVES, SQUARES};
    let server = Server::memcached();
    register_memcached("attr-memcached", &server);
    assert_eq!(square(3), 9);
    assert_eq!(square(3), 9);
    assert_eq!(runs(&SQUARES), 1);
    let info = square::cache_info();
    assert_eq!((info.hits, info.misses), (1, 1));
    // The data key of `square(3)`: its JSON `[3]`, percent-encoded by the dump.
    let ttl = memcached_ttl(&server, &["square", "%5B3%5D"]);
    assert!((290..=300).contains(&ttl), "{ttl}");
    assert_eq!(half(4), Ok(2));
    assert_eq!(memcached_ttl(&server, &["half", "%5B4%5D"]), -1);
    // `Result`: only `Ok` is stored.
    assert_eq!(half(3), Err("3 is odd".to_owned()));
    assert_eq!(half(3), Err("3 is odd".to_owned()));
    assert_eq!(half(4), Ok(2));
    assert_eq!(runs(&HALVES), 3);
    // cache_clear removes this function's keys only.
    square::cache_clear();
    assert_eq!(half(4), Ok(2));
    assert_eq!(runs(&HALVES), 3, "half's entry survived");
    assert_eq!(square(3), 9);
    assert_eq!(runs(&SQUARES), 2, "square's entry was removed");
    let info = square::cache_info();
    assert_eq!((info.hits, info.misses), (0, 1));
}

mod persistent_backend {
    use super::*;

    pub static SQUARES: AtomicU64 = AtomicU64::new(0);
    pub static LENGTHS: AtomicU64 = AtomicU64::new(0);

    #[memoize(store = "attr-persistent", ttl = "30s")]
    pub fn square(n: u64) -> u64 {
        SQUARES.fetch_add(1, Ordering::SeqCst);
        n * n
    }

    #[memoize(store = "attr-persistent", single_flight = false)]
    pub fn length(text: &str, times: &u32) -> usize {
        LENGTHS.fetch_add(1, Ordering::SeqCst);
        text.len() * *times as usize
    }
}

#[test]
fn persistent_store_hits_counts_expires_and_clears_only_its_function() {
    use persistent_backend::{length, square, LENGTHS, SQUARES};
    let file = TempFile::new("attr");
    let clock = memo::ManualClock::new();
    let store = PersistentStore::open(&file.0)
        .unwrap()
        .with_clock(clock.clone());
    stores::register("attr-persistent", store);
    assert_eq!(square(3), 9);
    assert_eq!(square(3), 9);
    assert_eq!(length("abc", &2), 6);
    assert_eq!(length("abc", &2), 6);
    assert_eq!((runs(&SQUARES), runs(&LENGTHS)), (1, 1));
    let info = square::cache_info();
    assert_eq!((info.hits, info.misses, info.currsize), (1, 1, 1));
    // The ttl is the store's: 29 s later a hit, 30 s later a miss.
    clock.advance(Duration::from_secs(29));
    assert_eq!(square(3), 9);
    assert_eq!(runs(&SQUARES), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(square(3), 9);
    assert_eq!(runs(&SQUARES), 2);
    // cache_clear removes this function's entries only.
    length::cache_clear();
    assert_eq!(length::cache_info().currsize, 0);
    assert_eq!(square::cache_info().currsize, 1);
    assert_eq!(square(3), 9);
    assert_eq!(runs(&SQUARES), 2);
    assert_eq!(length("abc", &2), 6);
    assert_eq!(runs(&LENGTHS), 2);
}

mod users {
    use super::*;

    pub static RUNS: AtomicU64 = AtomicU64::new(0);

    #[memoize(store = "attr-names")]
    pub fn get(id: u32) -> String {
        RUNS.fetch_add(1, Ordering::SeqCst);
        format!("user {id}")
    }
}

mod orders {
    use super::*;

    pub static RUNS: AtomicU64 = AtomicU64::new(0);

    #[memoize(store = "attr-names")]
    pub fn get(id: u32) -> String {
        RUNS.fetch_add(1, Ordering::SeqCst);
        format!("order {id}")
    }
}

struct Users;
struct Orders;

impl Users {
    #[memoize(store = "attr-names", ignore = [self])]
    fn get(&self, id: u32) -> String {
        format!("user method {id}")
    }
}

impl Orders {
    #[memoize(store = "attr-names", ignore = [self])]
    fn get(&self, id: u32) -> String {
        format!("order method {id}")
    }
}

#[test]
fn functions_and_methods_of_the_same_name_do_not_collide() {
    let server = Server::redis();
    register_redis("attr-names", &server);
    assert_eq!(users::get(1), "user 1");
    assert_eq!(orders::get(1), "order 1");
    assert_eq!(Users.get(1), "user method 1");
    assert_eq!(Orders.get(1), "order method 1");
    for _ in 0..2 {
        assert_eq!(users::get(1), "user 1");
        assert_eq!(orders::get(1), "order 1");
        assert_eq!(Users.get(1), "user method 1");
        assert_eq!(Orders.get(1), "order method 1");
    }
    assert_eq!((runs(&users::RUNS), runs(&orders::RUNS)), (1, 1));
    assert_eq!(
        (Users::get_cache_info().hits, Orders::get_cache_info().hits),
        (2, 2)
    );
    let mut keys = redis_keys(&server, "get");
    keys.sort();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(
        keys[0].starts_with("memo:macro_stores::Orders::get:v1."),
        "{keys:?}"
    );
    assert!(
        keys[1].starts_with("memo:macro_stores::Users::get:v1."),
        "{keys:?}"
    );
    assert!(
        keys[2].starts_with("memo:macro_stores::orders::get:v1."),
        "{keys:?}"
    );
    assert!(
        keys[3].starts_with("memo:macro_stores::users::get:v1."),
        "{keys:?}"
    );
}

static DESCRIBED: AtomicU64 = AtomicU64::new(0);

#[test]
fn same_path_shares_keys_and_a_new_version_misses() {
    let server = Server::redis();
    register_redis("attr-version", &server);
    // Three functions with one path (`module_path!()::describe`): the first two have the same
    // signature and version, so the second finds what the first stored; the third has version 2.
    {
        #[memoize(store = "attr-version")]
        fn describe(n: u64) -> String {
            DESCRIBED.fetch_add(1, Ordering::SeqCst);
            format!("{n}")
        }
        assert_eq!(describe(5), "5");
        assert_eq!(describe::cache_info().misses, 1);
    }
    {
        #[memoize(store = "attr-version", version = 1)]
        fn describe(n: u64) -> String {
            DESCRIBED.fetch_add(1, Ordering::SeqCst);
            format!("{n}")
        }
        assert_eq!(describe(5), "5");
        assert_eq!(describe::cache_info().hits, 1);
    }
    assert_eq!(runs(&DESCRIBED), 1);
    {
        #[memoize(store = "attr-version", version = 2)]
        fn describe(n: u64) -> String {
            DESCRIBED.fetch_add(1, Ordering::SeqCst);
            format!("{n}")
        }
        assert_eq!(describe(5), "5");
        assert_eq!(describe::cache_info().misses, 1);
    }
    assert_eq!(runs(&DESCRIBED), 2);
    // A changed signature is a new namespace too.
    {
        #[memoize(store = "attr-version")]
        fn describe(n: u32) -> String {
            DESCRIBED.fetch_add(1, Ordering::SeqCst);
            format!("{n}")
        }
        assert_eq!(describe(5), "5");
        assert_eq!(describe::cache_info().misses, 1);
    }
    assert_eq!(runs(&DESCRIBED), 3);
    assert_eq!(redis_keys(&server, "describe").len(), 3);
}

static FETCHED: AtomicU64 = AtomicU64::new(0);

#[memoize(store = "attr-async", ttl = "1m")]
async fn fetch(city: &str) -> Result<String, String> {
    FETCHED.fetch_add(1, Ordering::SeqCst);
    Ok(city.to_uppercase())
}

static COUNTED: AtomicU64 = AtomicU64::new(0);

/// A `key = ...` function: "Paris" and "PARIS" are one entry.
#[memoize(store = "attr-async", key = city.to_lowercase())]
fn population(city: &str) -> u64 {
    COUNTED.fetch_add(1, Ordering::SeqCst);
    city.len() as u64 * 1000
}

/// A method whose `self` is part of the key, stored as JSON.
#[derive(Clone, Hash, PartialEq, Eq, serde::Serialize)]
struct Poly(Vec<i64>);

impl Poly {
    const SCALE: i64 = 3;

    #[memoize(store = "attr-async")]
    fn at(&self, x: i64) -> i64 {
        self.0.iter().rev().fold(0, |acc, c| acc * x + c)
    }

    /// An associated function (it names `Self`).
    #[memoize(store = "attr-async", version = 4)]
    fn scaled(x: i64) -> i64 {
        Self::SCALE * x
    }
}

/// A generic function: one namespace per instantiation.
#[memoize(store = "attr-async")]
fn parse<
    T: std::str::FromStr
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static,
>(
    text: &str,
) -> Option<T> {
    text.parse().ok()
}

#[test]
fn async_and_generic_functions_use_the_store() {
    let server = Server::memcached();
    register_memcached("attr-async", &server);
    futures::executor::block_on(async {
        assert_eq!(fetch("paris").await.as_deref(), Ok("PARIS"));
        assert_eq!(fetch("paris").await.as_deref(), Ok("PARIS"));
    });
    assert_eq!(runs(&FETCHED), 1);
    assert_eq!(
        (fetch::cache_info().hits, fetch::cache_info().misses),
        (1, 1)
    );
    assert_eq!(parse::<u8>("7"), Some(7));
    assert_eq!(parse::<u8>("7"), Some(7));
    assert_eq!(parse::<f64>("7"), Some(7.0), "not the u8's entry");
    assert_eq!(parse::<f64>("7"), Some(7.0));
    let info = parse::cache_info();
    assert_eq!((info.hits, info.misses), (2, 2));
}

#[test]
fn key_expressions_and_keyed_self_use_the_store() {
    let server = Server::redis();
    register_redis("attr-async", &server);
    assert_eq!((population("Paris"), population("PARIS")), (5000, 5000));
    assert_eq!(runs(&COUNTED), 1);
    assert_eq!(redis_keys(&server, "population").len(), 1);
    assert!(population::cache_invalidate("pArIs"));
    population::cache_prime("Lyon", 7);
    assert_eq!(population("LYON"), 7);
    let square = Poly(vec![0, 0, 1]);
    let cube = Poly(vec![0, 0, 0, 1]);
    assert_eq!((square.at(3), square.at(3), cube.at(3)), (9, 9, 27));
    let info = Poly::at_cache_info();
    assert_eq!((info.hits, info.misses), (1, 2));
    let keys = redis_keys(&server, "Poly::at");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with(":[[0,0,1],3]")), "{keys:?}");
    assert_eq!((Poly::scaled(2), Poly::scaled(2)), (6, 6));
    assert_eq!(Poly::scaled_cache_info().hits, 1);
    let keys = redis_keys(&server, "Poly::scaled");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with("memo:macro_stores::Poly::scaled:v4.") && keys[0].ends_with(":[2]"),
        "{keys:?}"
    );
}

static FALLBACKS: AtomicU64 = AtomicU64::new(0);

#[memoize(store = "attr-never-registered", maxsize = 2)]
fn in_memory(n: u64) -> u64 {
    FALLBACKS.fetch_add(1, Ordering::SeqCst);
    n + 1
}

#[test]
fn an_unregistered_store_caches_in_memory() {
    assert!(!stores::is_registered("attr-never-registered"));
    assert_eq!((in_memory(1), in_memory(1), in_memory(2)), (2, 2, 3));
    assert_eq!(runs(&FALLBACKS), 2);
    let info = in_memory::cache_info();
    assert_eq!(
        (info.hits, info.misses, info.currsize, info.maxsize),
        (1, 2, 2, Some(2))
    );
    in_memory::cache_clear();
    assert_eq!(in_memory(1), 2);
    assert_eq!(runs(&FALLBACKS), 3);
}

static SURVIVED: AtomicU64 = AtomicU64::new(0);

#[memoize(store = "attr-killed")]
fn survives(n: u64) -> u64 {
    SURVIVED.fetch_add(1, Ordering::SeqCst);
    n * 3
}

#[test]
fn a_killed_server_never_fails_the_caller() {
    let mut server = Server::redis();
    let store = RedisStore::connect(&server.redis_url())
        .unwrap()
        .with_timeouts(Duration::from_millis(100), Duration::from_millis(100));
    stores::register_with(
        "attr-killed",
        store,
        StoreOptions::default().retry_after(Duration::from_millis(50)),
    );
    for n in 0..10 {
        assert_eq!(survives(n), n * 3);
    }
    for n in 0..10 {
        assert_eq!(survives(n), n * 3);
    }
    assert_eq!(runs(&SURVIVED), 10, "the second sweep hit");
    server.stop();
    for n in 0..10 {
        assert_eq!(
            survives(n),
            n * 3,
            "the body answers while the server is down"
        );
    }
    assert_eq!(runs(&SURVIVED), 20);
    assert!(stores::health("attr-killed").unwrap().outages >= 1);
}

static LABELLED: AtomicU64 = AtomicU64::new(0);

/// A generic `impl` under `#[memoize]`, whose function never names `Self` and is not keyed by
/// `self`: one namespace per `Self` type, in the store and in the process.
struct Labels<T>(std::marker::PhantomData<T>);

#[memoize]
impl<T: 'static> Labels<T> {
    #[memoize(store = "attr-generic-impl")]
    fn label(n: u32) -> String {
        LABELLED.fetch_add(1, Ordering::SeqCst);
        format!("{}:{n}", std::any::type_name::<T>())
    }
}

#[test]
fn functions_of_a_generic_impl_keep_a_namespace_per_self_type() {
    let server = Server::redis();
    register_redis("attr-generic-impl", &server);
    assert_eq!(Labels::<u8>::label(1), "u8:1");
    assert_eq!(Labels::<u8>::label(1), "u8:1");
    assert_eq!(Labels::<u16>::label(1), "u16:1", "not the u8's entry");
    assert_eq!(runs(&LABELLED), 2);
    let info = Labels::<u8>::label_cache_info();
    assert_eq!((info.hits, info.misses), (1, 2));
    let keys = redis_keys(&server, "Labels<");
    assert_eq!(keys.len(), 2, "{keys:?}");
    for self_type in ["Labels<u8>::label", "Labels<u16>::label"] {
        assert!(keys.iter().any(|k| k.contains(self_type)), "{keys:?}");
    }
    // Cleared in the store: the next call runs the body again.
    Labels::<u8>::label_cache_clear();
    assert_eq!(Labels::<u8>::label(1), "u8:1");
    assert_eq!(runs(&LABELLED), 3);
}
