//! A real store wrapped so that a test can hold its calls at chosen points (a slow server, a busy
//! I/O thread): every call goes to the inner store, after the [`Hold`]'s hooks.

use memo::stores::{Store, StoreError};
use std::time::Duration;

/// Where a test holds a store's calls; each hook may block until the test lets it go.
pub trait Hold: Send + Sync + 'static {
    /// Before a `set` reaches the store.
    fn before_set(&self) {}
    /// After a `get` has read the store, before its answer is returned.
    fn after_get(&self) {}
}

/// `inner`, its calls passing `hold`'s hooks first.
pub struct Held<S, H: 'static> {
    pub inner: S,
    pub hold: &'static H,
}

impl<S: Store, H: Hold> Store for Held<S, H> {
    fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let found = self.inner.get(namespace, key);
        self.hold.after_get();
        found
    }
    fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.hold.before_set();
        self.inner.set(namespace, key, value, ttl)
    }
    fn delete(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        self.inner.delete(namespace, key)
    }
    fn clear(&self, namespace: &str) -> Result<(), StoreError> {
        self.inner.clear(namespace)
    }
    fn len(&self, namespace: &str) -> Result<Option<usize>, StoreError> {
        self.inner.len(namespace)
    }
    fn try_lock(&self, namespace: &str, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.try_lock(namespace, key, ttl)
    }
    fn unlock(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        self.inner.unlock(namespace, key)
    }
}
