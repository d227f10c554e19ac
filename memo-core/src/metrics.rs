//! Every cache's statistics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`), so that any exporter serves them: Prometheus, StatsD, OpenTelemetry, ...
//!
//! [`collect`] reads every function that [`caches`](crate::caches()) lists and records, labelled
//! `function="crate::module::f"`:
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `memo_cache_hits_total` | counter | calls answered from the cache |
//! | `memo_cache_misses_total` | counter | calls that ran the function (nothing cached, or expired) |
//! | `memo_cache_waits_total` | counter | calls that waited for another caller's computation of the same key |
//! | `memo_cache_refreshes_total` | counter | background recomputations (`refresh`, `stale_while_revalidate`) |
//! | `memo_cache_stale_hits_total` | counter | calls answered by a stale value while it was recomputed |
//! | `memo_cache_stale_errors_total` | counter | calls answered by a stale value instead of an `Err` or `None` |
//! | `memo_cache_evictions_total` | counter | entries removed to make room for new ones |
//! | `memo_cache_expirations_total` | counter | entries removed because their ttl had passed |
//! | `memo_cache_entries` | gauge | entries stored now (`currsize`) |
//! | `memo_cache_max_entries` | gauge | the bound (`maxsize`; absent when unbounded) |
//!
//! A cache counts by itself and costs nothing more on its hit path: [`collect`] turns its counts
//! into the counters' increments since the previous collection. Call it before each scrape, or
//! every few seconds with [`collect_every`]. The counters only grow: a `cache_clear()` (which
//! zeroes a cache's statistics) is a restart from zero, as Prometheus counters expect.
//!
//! ```
//! use std::time::Duration;
//! use memo::memoize;
//!
//! #[memoize]
//! fn price(item: u32) -> u64 {
//!     u64::from(item) * 100
//! }
//!
//! // With an exporter installed first, e.g. metrics_exporter_prometheus::PrometheusBuilder:
//! memo::metrics::collect_every(Duration::from_secs(10)).expect("a thread");
//! price(1);
//! memo::metrics::collect(); // or wait for the next collection
//! ```
//!
//! Hit ratio of every function, in PromQL:
//! `rate(memo_cache_hits_total[5m]) / (rate(memo_cache_hits_total[5m]) + rate(memo_cache_misses_total[5m]))`.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use metrics::Unit;
use parking_lot::Mutex;

use crate::CacheInfo;

/// A counter: its name, its description, and what it counts.
type Counter = (&'static str, &'static str, fn(&CacheInfo) -> u64);

/// The counters exported. One entry per counter.
const COUNTERS: &[Counter] = &[
    (
        "memo_cache_hits_total",
        "Calls of a memoized function answered from its cache.",
        |info| info.hits,
    ),
    (
        "memo_cache_misses_total",
        "Calls of a memoized function that ran it (nothing cached, or expired).",
        |info| info.misses,
    ),
    (
        "memo_cache_waits_total",
        "Calls of a memoized function that waited for another caller's computation of the same key.",
        |info| info.waits,
    ),
    (
        "memo_cache_refreshes_total",
        "Background recomputations of a memoized function with refresh or stale_while_revalidate.",
        |info| info.refreshes,
    ),
    (
        "memo_cache_stale_hits_total",
        "Calls of a memoized function answered by a stale value while it was recomputed.",
        |info| info.stale_hits,
    ),
    (
        "memo_cache_stale_errors_total",
        "Calls of a memoized function answered by a stale value instead of an Err or None.",
        |info| info.stale_errors,
    ),
    (
        "memo_cache_evictions_total",
        "Entries removed from a memoized function's cache to make room for new ones.",
        |info| info.evictions,
    ),
    (
        "memo_cache_expirations_total",
        "Entries removed from a memoized function's cache because their ttl had passed.",
        |info| info.expirations,
    ),
];

/// The gauge of the entries stored now.
const ENTRIES: &str = "memo_cache_entries";
/// The gauge of the bound on the entries.
const MAX_ENTRIES: &str = "memo_cache_max_entries";
/// The label naming the function.
const LABEL: &str = "function";

/// What each function's counters were at the previous collection; the lock also keeps two
/// collections from interleaving.
static LAST: LazyLock<Mutex<HashMap<String, [u64; COUNTERS.len()]>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Records every registered cache's statistics with the installed `metrics` recorder (see the
/// [module](self)): the counters grow by what each cache counted since the previous call, the
/// gauges are set. Without a recorder it does nothing.
///
/// ```
/// use memo::memoize;
///
/// #[memoize]
/// fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// double(2);
/// memo::metrics::collect(); // no recorder installed: nothing is recorded, nothing fails
/// ```
pub fn collect() {
    let mut last = LAST.lock();
    describe();
    for report in crate::caches() {
        let labels = [(LABEL, report.function.clone())];
        let seen = last.entry(report.function).or_insert([0; COUNTERS.len()]);
        for ((name, _, count), seen) in COUNTERS.iter().zip(seen.iter_mut()) {
            let now = count(&report.info);
            // Fewer than last time: the cache was cleared, and counted `now` since.
            let increment = now.checked_sub(*seen).unwrap_or(now);
            metrics::counter!(*name, &labels).increment(increment);
            *seen = now;
        }
        metrics::gauge!(ENTRIES, &labels).set(report.info.currsize as f64);
        if let Some(max) = report.info.maxsize {
            metrics::gauge!(MAX_ENTRIES, &labels).set(max as f64);
        }
    }
}

/// Calls [`collect`] every `interval` on a thread of its own (named `memo-metrics`), for the
/// rest of the process's life: for exporters that serve their own endpoint, such as
/// `metrics-exporter-prometheus`'s HTTP listener. The error is the thread's creation's.
///
/// ```
/// memo::metrics::collect_every(std::time::Duration::from_secs(15)).expect("a thread");
/// ```
pub fn collect_every(interval: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("memo-metrics".into())
        .spawn(move || loop {
            collect();
            std::thread::sleep(interval);
        })
        .map(drop)
}

/// Gives the installed recorder each metric's unit and description (Prometheus' `# HELP`).
fn describe() {
    for (name, description, _) in COUNTERS {
        metrics::describe_counter!(*name, Unit::Count, *description);
    }
    metrics::describe_gauge!(
        ENTRIES,
        Unit::Count,
        "Entries stored now in a memoized function's cache."
    );
    metrics::describe_gauge!(
        MAX_ENTRIES,
        Unit::Count,
        "The bound on the entries of a memoized function's cache."
    );
}
