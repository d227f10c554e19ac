//! Eviction listeners: what a cache calls for each value that leaves it, and why it left.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Why a value left a cache: what an eviction listener
/// ([`CacheBuilder::on_evict`](crate::CacheBuilder::on_evict)) is told, as moka's and Caffeine's
/// `RemovalCause`.
///
/// ```
/// use memo::{Cache, RemovalCause};
/// use std::sync::{Arc, Mutex};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&seen);
/// let cache: Cache<u32, &str> = Cache::builder()
///     .maxsize(1)
///     .on_evict(move |k: &u32, v: &&str, cause| log.lock().unwrap().push((*k, *v, cause)))
///     .build()?;
/// cache.insert(1, "a");
/// cache.insert(1, "b"); // replaces "a"
/// cache.insert(2, "c"); // evicts 1 -> "b": the cache holds one entry
/// cache.remove(&2);
/// assert_eq!(
///     *seen.lock().unwrap(),
///     [
///         (1, "a", RemovalCause::Replaced),
///         (1, "b", RemovalCause::Size),
///         (2, "c", RemovalCause::Explicit),
///     ]
/// );
/// assert!(RemovalCause::Size.was_evicted() && !RemovalCause::Explicit.was_evicted());
/// # Ok::<(), memo::BuildError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted by the policy to respect `maxsize` (or the weight bound), or never kept because
    /// the cache cannot hold it (`maxsize = 0`, a value heavier than the bound).
    Size,
    /// Its ttl ran out.
    Expired,
    /// Removed by [`Cache::remove`](crate::Cache::remove) (`cache_invalidate`).
    Explicit,
    /// Its key was stored again: the old value left, the new one is in the cache.
    Replaced,
    /// Removed by [`Cache::clear`](crate::Cache::clear) or [`Cache::reset`](crate::Cache::reset).
    Cleared,
}

impl RemovalCause {
    /// Whether the cache removed the value on its own (size or expiry), not at a caller's
    /// request.
    ///
    /// ```
    /// assert!(memo::RemovalCause::Expired.was_evicted());
    /// assert!(!memo::RemovalCause::Replaced.was_evicted());
    /// ```
    pub fn was_evicted(self) -> bool {
        matches!(self, RemovalCause::Size | RemovalCause::Expired)
    }
}

impl fmt::Display for RemovalCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemovalCause::Size => "size",
            RemovalCause::Expired => "expired",
            RemovalCause::Explicit => "explicit",
            RemovalCause::Replaced => "replaced",
            RemovalCause::Cleared => "cleared",
        })
    }
}

/// A cache's eviction listener.
pub(crate) type Listener<K, V> = Arc<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;

/// What a writer pushed out of a shard, to be dropped (and reported to the listener) after the
/// lock is released: the entry and why it left (`None`: an input that never entered, such as
/// the value of an `insert_if_absent` whose key was present).
pub(crate) type Dropped<K, V> = Vec<(K, V, Option<RemovalCause>)>;

/// Reports every entry of `dropped` with a cause to `listener`, then drops them. A listener that
/// panics does not stop the others from being reported; the first panic is resumed afterwards
/// (unless the thread is already unwinding, when it is dropped).
pub(crate) fn notify<K, V>(listener: Option<&Listener<K, V>>, dropped: Dropped<K, V>) {
    let Some(listener) = listener else {
        return drop(dropped);
    };
    let mut first_panic: Option<Box<dyn Any + Send>> = None;
    for (key, value, cause) in dropped {
        let Some(cause) = cause else { continue };
        let called = catch_unwind(AssertUnwindSafe(|| listener(&key, &value, cause)));
        if let Err(panic) = called {
            first_panic.get_or_insert(panic);
        }
    }
    if let Some(panic) = first_panic
        && !std::thread::panicking()
    {
        resume_unwind(panic);
    }
}
