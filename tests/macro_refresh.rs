//! Refresh-ahead (`refresh`), `stale_while_revalidate` and `stale_if_error`.
//!
//! Nothing here is timed: each upstream has a gate that holds the body until the test opens
//! it, so a call that returns while the gate is shut provably did not wait for the body (a call
//! that waited would hang the test). Ages are reached by sleeping past `refresh` or `ttl`,
//! which are short, while the other bound is an hour away.

#[path = "support/upstream.rs"]
mod upstream;
use upstream::Upstream;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use memo::memoize;

/// Longer than the short bounds below (50 ms).
const PAST: Duration = Duration::from_millis(80);

/// Spins until `done` (a background refresh finishing); a refresh that never finishes hangs
/// the test, which then fails by its harness's timeout.
fn until(done: impl Fn() -> bool) {
    while !done() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

static RATES: Upstream = Upstream::new();

#[memoize(ttl = "1h", refresh = "50ms")]
fn rate(city: &str) -> u64 {
    let _ = city;
    RATES.read().unwrap()
}

#[test]
fn a_due_entry_is_returned_at_once_and_recomputed_in_the_background() {
    assert_eq!(rate("oslo"), 1);
    std::thread::sleep(PAST);
    RATES.version.store(2, Ordering::SeqCst);
    RATES.shut();
    // Due for a refresh: the old value at once, while the refresh is held by the gate.
    assert_eq!(rate("oslo"), 1);
    RATES.until_runs(2);
    assert_eq!(rate("oslo"), 1, "the refresh is still running");
    assert_eq!(RATES.runs(), 2, "one refresh for the key, not one per call");
    RATES.open();
    until(|| rate::cache_info().refreshes == 1);
    assert_eq!(rate("oslo"), 2);
    let info = rate::cache_info();
    assert_eq!((info.hits, info.misses, info.waits), (3, 1, 0), "{info}");
    assert_eq!(info.ttl, Some(Duration::from_secs(3600)));
    assert!(info.to_string().contains("refreshes=1"), "{info}");
}

static PRICES: Upstream = Upstream::new();

#[memoize(ttl = "1h", refresh = "50ms")]
fn price(item: u32) -> u64 {
    PRICES.read().unwrap() * u64::from(item)
}

#[test]
fn many_concurrent_callers_of_a_due_entry_start_one_refresh() {
    assert_eq!(price(1), 1);
    std::thread::sleep(PAST);
    PRICES.version.store(2, Ordering::SeqCst);
    PRICES.shut();
    let answers: Vec<u64> = std::thread::scope(|s| {
        let callers: Vec<_> = (0..16).map(|_| s.spawn(|| price(1))).collect();
        callers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|&a| a == 1), "{answers:?}");
    PRICES.until_runs(2);
    PRICES.open();
    until(|| price::cache_info().refreshes == 1);
    assert_eq!(price(1), 2);
    assert_eq!(PRICES.runs(), 2);
}

static QUOTES: Upstream = Upstream::new();
static PANICS: AtomicBool = AtomicBool::new(false);

#[memoize(ttl = "1h", refresh = "50ms")]
fn quote(symbol: &str) -> Result<u64, String> {
    if PANICS.load(Ordering::SeqCst) {
        QUOTES.runs.fetch_add(1, Ordering::SeqCst);
        panic!("upstream panicked for {symbol}");
    }
    QUOTES.read()
}

#[test]
fn a_refresh_that_fails_or_panics_keeps_the_old_value() {
    assert_eq!(quote("abc"), Ok(1));
    std::thread::sleep(PAST);
    QUOTES.version.store(2, Ordering::SeqCst);
    QUOTES.failing.store(true, Ordering::SeqCst);
    assert_eq!(quote("abc"), Ok(1));
    until(|| quote::cache_info().refreshes == 1);
    assert_eq!(quote("abc"), Ok(1), "an Err is not stored");
    // The failed refresh left the entry due: this call scheduled another, which panics.
    QUOTES.failing.store(false, Ordering::SeqCst);
    PANICS.store(true, Ordering::SeqCst);
    until(|| {
        let _ = quote("abc");
        QUOTES.runs() >= 4
    });
    assert_eq!(quote("abc"), Ok(1), "a panic is a failed refresh");
    PANICS.store(false, Ordering::SeqCst);
    until(|| quote("abc") == Ok(2));
}

static CONFIG: Upstream = Upstream::new();

#[memoize(ttl = "1h", refresh = "50ms")]
fn config(name: String) -> u64 {
    drop(name);
    CONFIG.read().unwrap()
}

#[test]
fn an_invalidation_during_a_refresh_wins() {
    assert_eq!(config("db".into()), 1);
    std::thread::sleep(PAST);
    CONFIG.version.store(2, Ordering::SeqCst);
    CONFIG.shut();
    assert_eq!(config("db".into()), 1);
    CONFIG.until_runs(2);
    // Version 3 is written and the key invalidated while the refresh of version 2 runs.
    CONFIG.version.store(3, Ordering::SeqCst);
    assert!(config::cache_invalidate("db".into()));
    CONFIG.open();
    until(|| config::cache_info().refreshes == 1);
    // The refresh read version 2 before the invalidation: its value is not stored, and the
    // next call computes version 3.
    assert_eq!(config("db".into()), 3);
    assert_eq!(CONFIG.runs(), 3);
    assert_eq!(config::cache_info().misses, 2);
}

static PAGES: Upstream = Upstream::new();

#[memoize(ttl = "50ms", stale_while_revalidate = "1h")]
fn page(path: &str) -> Option<String> {
    PAGES.read().ok().map(|v| format!("{path} v{v}"))
}

#[test]
fn stale_while_revalidate_serves_the_stale_value_past_ttl_while_it_is_recomputed() {
    assert_eq!(page("/").as_deref(), Some("/ v1"));
    std::thread::sleep(PAST);
    PAGES.version.store(2, Ordering::SeqCst);
    PAGES.shut();
    assert_eq!(page("/").as_deref(), Some("/ v1"));
    PAGES.until_runs(2);
    PAGES.open();
    until(|| page::cache_info().refreshes == 1);
    assert_eq!(page("/").as_deref(), Some("/ v2"));
    let info = page::cache_info();
    assert_eq!(
        (info.hits, info.misses, info.stale_hits),
        (2, 1, 1),
        "{info}"
    );
}

static FEEDS: Upstream = Upstream::new();

#[memoize(ttl = "50ms", stale_if_error = "1h")]
fn feed(user: u32) -> Result<String, String> {
    FEEDS.read().map(|v| format!("{user}:{v}"))
}

#[test]
fn stale_if_error_answers_a_failure_with_the_stale_value() {
    assert_eq!(feed(7).as_deref(), Ok("7:1"));
    std::thread::sleep(PAST);
    FEEDS.failing.store(true, Ordering::SeqCst);
    // Past ttl: the call computes (and waits for it), and gets the stale value for its Err.
    assert_eq!(feed(7).as_deref(), Ok("7:1"));
    assert_eq!(FEEDS.runs(), 2);
    let info = feed::cache_info();
    assert_eq!(
        (info.hits, info.misses, info.stale_errors),
        (0, 2, 1),
        "{info}"
    );
    FEEDS.failing.store(false, Ordering::SeqCst);
    FEEDS.version.store(2, Ordering::SeqCst);
    assert_eq!(feed(7).as_deref(), Ok("7:2"));
    // A key with no stale value gets its error.
    FEEDS.failing.store(true, Ordering::SeqCst);
    assert_eq!(feed(8), Err("upstream down".to_owned()));
}

static ACCOUNTS: Upstream = Upstream::new();

#[memoize(ttl = "50ms", stale_if_error = "1h", err_ttl = "1h")]
fn account(id: u32) -> Result<String, String> {
    ACCOUNTS.read().map(|v| format!("{id}:{v}"))
}

#[test]
fn a_stale_value_answers_a_failure_before_err_ttl_caches_it() {
    assert_eq!(account(1).as_deref(), Ok("1:1"));
    std::thread::sleep(PAST);
    ACCOUNTS.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        account(1).as_deref(),
        Ok("1:1"),
        "the stale value, not cached as an Err"
    );
    // No stale value: the Err is cached for err_ttl.
    assert_eq!(account(2), Err("upstream down".to_owned()));
    assert_eq!(account(2), Err("upstream down".to_owned()));
    assert_eq!(
        ACCOUNTS.runs(),
        3,
        "the second Err of 2 came from the cache"
    );
    ACCOUNTS.failing.store(false, Ordering::SeqCst);
    ACCOUNTS.version.store(2, Ordering::SeqCst);
    assert_eq!(account(1).as_deref(), Ok("1:2"));
    let info = account::cache_info();
    assert_eq!(
        (info.hits, info.misses, info.stale_errors),
        (1, 4, 1),
        "{info}"
    );
}

static ROWS: AtomicU64 = AtomicU64::new(0);
static MISSING: AtomicBool = AtomicBool::new(false);

#[memoize(ttl = "50ms", stale_if_error = "1h", none_ttl = "1h")]
async fn row(id: u32) -> Option<u64> {
    ROWS.fetch_add(1, Ordering::SeqCst);
    (!MISSING.load(Ordering::SeqCst)).then_some(u64::from(id))
}

#[test]
fn an_async_none_is_answered_by_the_stale_value_or_cached_for_none_ttl() {
    futures::executor::block_on(async {
        assert_eq!(row(1).await, Some(1));
        std::thread::sleep(PAST);
        MISSING.store(true, Ordering::SeqCst);
        assert_eq!(row(1).await, Some(1));
        assert_eq!(row(2).await, None);
        assert_eq!(row(2).await, None);
        assert_eq!(ROWS.load(Ordering::SeqCst), 3);
        assert_eq!(row::cache_info().stale_errors, 1);
    });
}

static SHARED: Upstream = Upstream::new();

#[memoize(ttl = "50ms", stale_if_error = "1h")]
fn shared(user: u32) -> Result<u64, String> {
    let _ = user;
    SHARED.read()
}

#[test]
fn callers_that_wait_for_a_failing_computation_get_the_stale_value_too() {
    assert_eq!(shared(1), Ok(1));
    std::thread::sleep(PAST);
    SHARED.failing.store(true, Ordering::SeqCst);
    SHARED.shut();
    let answers: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let callers: Vec<_> = (0..8).map(|_| s.spawn(|| shared(1))).collect();
        SHARED.until_runs(2);
        // Give the other callers time to join the flight (they may also lead after it).
        std::thread::sleep(Duration::from_millis(20));
        SHARED.open();
        callers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| *a == Ok(1)), "{answers:?}");
    let info = shared::cache_info();
    assert_eq!(info.stale_errors, 8, "{info}");
    assert_eq!(info.hits + info.misses + info.waits, 9, "{info}");
}

static HELD: AtomicU64 = AtomicU64::new(0);
static ORDERS: Upstream = Upstream::new();

/// Holds its second run (the refresh) at the gate, not the others.
#[memoize(ttl = "50ms", stale_while_revalidate = "50ms")]
fn orders(user: u32) -> u64 {
    let _ = user;
    if ORDERS.runs() + 1 == HELD.load(Ordering::SeqCst) {
        return ORDERS.read().unwrap();
    }
    ORDERS.runs.fetch_add(1, Ordering::SeqCst);
    ORDERS.version.load(Ordering::SeqCst)
}

#[test]
fn a_caller_past_every_window_never_waits_for_a_refresh() {
    HELD.store(2, Ordering::SeqCst);
    ORDERS.shut();
    assert_eq!(orders(1), 1);
    std::thread::sleep(Duration::from_millis(60));
    ORDERS.version.store(2, Ordering::SeqCst);
    assert_eq!(orders(1), 1, "a stale hit: the refresh is held at the gate");
    ORDERS.until_runs(2);
    std::thread::sleep(Duration::from_millis(60));
    // Past the window while the refresh is held: this call computes by itself.
    ORDERS.version.store(3, Ordering::SeqCst);
    assert_eq!(orders(1), 3);
    assert_eq!(ORDERS.runs(), 3);
    ORDERS.open();
    until(|| orders::cache_info().refreshes == 1);
    // The refresh (of version 2) ended after that newer computation: it is discarded.
    assert_eq!(orders(1), 3);
}

mod asynchronous {
    use super::*;

    static READY: AtomicBool = AtomicBool::new(true);
    static RUNS: AtomicU64 = AtomicU64::new(0);
    static VERSION: AtomicU64 = AtomicU64::new(1);
    static ON_TOKIO: AtomicBool = AtomicBool::new(false);

    /// Pending until [`READY`], without a runtime's timer (it runs on any executor).
    async fn gate() {
        std::future::poll_fn(|cx| {
            if READY.load(Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
    }

    #[memoize(ttl = "1h", refresh = "50ms")]
    async fn weather(city: &str) -> String {
        RUNS.fetch_add(1, Ordering::SeqCst);
        ON_TOKIO.store(
            tokio::runtime::Handle::try_current().is_ok(),
            Ordering::SeqCst,
        );
        gate().await;
        format!("{city} v{}", VERSION.load(Ordering::SeqCst))
    }

    #[test]
    fn an_async_refresh_runs_on_the_callers_runtime_without_making_it_wait() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            assert_eq!(weather("oslo").await, "oslo v1");
            std::thread::sleep(PAST);
            VERSION.store(2, Ordering::SeqCst);
            READY.store(false, Ordering::SeqCst);
            assert_eq!(weather("oslo").await, "oslo v1");
            until(|| RUNS.load(Ordering::SeqCst) == 2);
            assert_eq!(weather("oslo").await, "oslo v1");
            READY.store(true, Ordering::SeqCst);
            until(|| weather::cache_info().refreshes == 1);
            assert_eq!(weather("oslo").await, "oslo v2");
        });
        // With the `tokio` feature the refresh is a task of the caller's runtime; without it,
        // it runs on memo's refresh threads.
        assert_eq!(ON_TOKIO.load(Ordering::SeqCst), cfg!(feature = "tokio"));
    }

    static PLAIN_RUNS: AtomicU64 = AtomicU64::new(0);

    #[memoize(ttl = "1h", refresh = "50ms")]
    async fn plain(n: u32) -> u32 {
        PLAIN_RUNS.fetch_add(1, Ordering::SeqCst) as u32 + n
    }

    #[test]
    fn an_async_refresh_off_any_runtime_runs_on_the_refresh_threads() {
        futures::executor::block_on(async {
            assert_eq!(plain(10).await, 10);
            std::thread::sleep(PAST);
            assert_eq!(plain(10).await, 10);
            until(|| plain::cache_info().refreshes == 1);
            assert_eq!(plain(10).await, 11);
        });
    }
}

mod shapes {
    use super::*;

    static RUNS: AtomicU64 = AtomicU64::new(0);

    /// Generic, keyed by an expression, with an ignored argument: each is rebuilt owned for the
    /// background run.
    #[memoize(ttl = "1h", refresh = "50ms", key = (name.to_lowercase(), n.to_string()))]
    fn keyed<T: std::fmt::Display + Send + Sync + 'static>(name: &str, n: T) -> String {
        let run = RUNS.fetch_add(1, Ordering::SeqCst);
        format!("{name}{n}#{run}")
    }

    #[test]
    fn generic_and_key_expression_functions_refresh_too() {
        assert_eq!(keyed("A", 1u8), "A1#0");
        assert_eq!(keyed("a", 1u8), "A1#0");
        std::thread::sleep(PAST);
        assert_eq!(keyed("a", 1u8), "A1#0");
        until(|| keyed::cache_info().refreshes == 1);
        assert_eq!(keyed("a", 1u8), "a1#1");
    }

    static PRIMED: AtomicU64 = AtomicU64::new(0);

    #[memoize(ttl = "1h", refresh = "50ms")]
    fn primed(n: u64) -> u64 {
        PRIMED.fetch_add(1, Ordering::SeqCst) + n
    }

    #[test]
    fn a_primed_value_is_stamped_and_refreshed_like_a_computed_one() {
        primed::cache_prime(5, 500);
        assert_eq!(primed(5), 500);
        std::thread::sleep(PAST);
        assert_eq!(primed(5), 500);
        until(|| primed::cache_info().refreshes == 1);
        assert_eq!(primed(5), 5);
        primed::cache_clear();
        assert_eq!(primed::cache_info().refreshes, 0);
    }

    #[derive(Clone)]
    struct Catalog {
        currency: &'static str,
        runs: std::sync::Arc<AtomicU64>,
    }

    impl Catalog {
        /// Not keyed by `self`, which the background run gets a clone of.
        #[memoize(ttl = "1h", refresh = "50ms", ignore = [self])]
        fn price(&self, item: &str) -> String {
            let run = self.runs.fetch_add(1, Ordering::SeqCst);
            format!("{item}: {run} {}", self.currency)
        }
    }

    #[test]
    fn a_method_is_refreshed_on_a_clone_of_self() {
        let catalog = Catalog {
            currency: "EUR",
            runs: Default::default(),
        };
        assert_eq!(catalog.price("tea"), "tea: 0 EUR");
        std::thread::sleep(PAST);
        assert_eq!(catalog.price("tea"), "tea: 0 EUR");
        until(|| Catalog::price_cache_info().refreshes == 1);
        assert_eq!(catalog.price("tea"), "tea: 1 EUR");
        assert_eq!(
            catalog.runs.load(Ordering::SeqCst),
            2,
            "the clone shares the counter"
        );
    }
}

/// `cache_field`: each instance's memo is shared with its background refreshes.
mod fields {
    use super::*;

    static FETCHES: Upstream = Upstream::new();
    static ASYNC_FETCHES: Upstream = Upstream::new();

    #[derive(Clone, Default)]
    struct Client {
        fetches: memo::InstanceCache,
    }

    impl Client {
        #[memoize(cache_field = fetches, ttl = "1h", refresh = "50ms", stale_if_error = "1h")]
        fn fetch(&self, path: &str) -> Result<u64, String> {
            let _ = path;
            FETCHES.read()
        }

        #[memoize(cache_field = fetches, ttl = "1h", refresh = "50ms")]
        async fn fetch_async(&self, path: &str) -> u64 {
            let _ = path;
            ASYNC_FETCHES.read().unwrap()
        }
    }

    #[test]
    fn a_method_with_its_cache_in_a_field_is_refreshed_in_the_background() {
        let client = Client::default();
        assert_eq!(client.fetch("/a"), Ok(1));
        std::thread::sleep(PAST);
        FETCHES.version.store(2, Ordering::SeqCst);
        FETCHES.shut();
        let runs = FETCHES.runs();
        // Due: the old value at once for every caller; one refresh.
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| assert_eq!(client.fetch("/a"), Ok(1)));
            }
        });
        FETCHES.until_runs(runs + 1);
        assert_eq!(client.fetch("/a"), Ok(1));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(FETCHES.runs(), runs + 1, "one refresh per key at a time");
        // An invalidation during the refresh wins.
        assert!(client.fetch_cache_invalidate("/a"));
        FETCHES.version.store(3, Ordering::SeqCst);
        FETCHES.open();
        until(|| client.fetches.info().is_some_and(|i| i.refreshes == 1));
        assert_eq!(
            client.fetch("/a"),
            Ok(3),
            "the refresh that read 2 stored nothing"
        );
        // An instance dropped while its refresh is held: the refresh still ends, harmlessly.
        let other = Client::default();
        assert_eq!(other.fetch("/b"), Ok(3));
        std::thread::sleep(PAST);
        FETCHES.shut();
        let runs = FETCHES.runs();
        assert_eq!(other.fetch("/b"), Ok(3));
        FETCHES.until_runs(runs + 1);
        drop(other);
        FETCHES.open();
        // The refresh threads are free again: a later refresh of the first client runs.
        std::thread::sleep(PAST);
        FETCHES.version.store(4, Ordering::SeqCst);
        assert_eq!(client.fetch("/a"), Ok(3));
        until(|| client.fetch("/a") == Ok(4));
    }

    #[test]
    fn an_async_method_with_its_cache_in_a_field_is_refreshed_on_the_runtime() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let client = Client::default();
        ASYNC_FETCHES.version.store(10, Ordering::SeqCst);
        assert_eq!(runtime.block_on(client.fetch_async("/c")), 10);
        std::thread::sleep(PAST);
        ASYNC_FETCHES.version.store(11, Ordering::SeqCst);
        ASYNC_FETCHES.shut();
        let runs = ASYNC_FETCHES.runs();
        assert_eq!(runtime.block_on(client.fetch_async("/c")), 10, "at once");
        ASYNC_FETCHES.until_runs(runs + 1);
        assert_eq!(runtime.block_on(client.fetch_async("/c")), 10);
        ASYNC_FETCHES.open();
        until(|| runtime.block_on(client.fetch_async("/c")) == 11);
        assert_eq!(ASYNC_FETCHES.runs(), runs + 1);
    }
}
