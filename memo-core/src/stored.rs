//! What the code of `#[memoize(store = "...")]` calls: the bounds that a store adds to keys and
//! values, and the memo over a [`StoreCache`](crate::stores::StoreCache).
//!
//! Each bound is one trait with a blanket impl, used through `<T as StoreKey>::...` spanned at
//! the user's type, so that a key that is not `Serialize` or a value that is not
//! `DeserializeOwned` is one error at that type naming the missing trait. Without the `stores`
//! feature the same names exist with the in-memory bounds and cache, so that such a function
//! still compiles and the facade's one error (enable the feature) is the only one.

use std::hash::Hash;

#[cfg(feature = "stores")]
use serde::{de::DeserializeOwned, Serialize};

use crate::memo::{ErasedMemo, Memo, Params, TypeCaches};

/// The memo of a function with a store.
#[cfg(feature = "stores")]
pub type StoreMemo<K, V> = Memo<K, V, crate::stores::StoreCache<K, V>>;

/// The memo of a function with a store: in memory, as the `stores` feature is off.
#[cfg(not(feature = "stores"))]
pub type StoreMemo<K, V> = Memo<K, V>;

/// The memo of a function with a store: the function at `path` (`crate::module::f`, or
/// `crate::module::Type::m` for a method) keeps its values in the store registered as `store`,
/// under a namespace made of the path, `version` and `signature` (a hash of its signature).
#[cfg(feature = "stores")]
pub fn store_memo<K, V>(
    store: &'static str,
    path: impl Into<String>,
    signature: u64,
    version: u32,
    params: Params,
) -> StoreMemo<K, V> {
    let path = path.into();
    let cache = crate::stores::StoreCache::new(store, path.clone())
        .with_signature(signature)
        .with_version(version)
        .with_maxsize(params.maxsize)
        .with_ttl(params.ttl);
    Memo::with_cache(path, cache)
}

/// The memo of a function with a store, in memory as the `stores` feature is off.
#[cfg(not(feature = "stores"))]
pub fn store_memo<K: Hash + Eq, V: Clone>(
    store: &'static str,
    path: impl Into<String>,
    signature: u64,
    version: u32,
    params: Params,
) -> StoreMemo<K, V> {
    let _ = (store, signature, version);
    Memo::new(path.into(), params)
}

/// The memo of a `key = ...` function with a store, whose key type is inferred from `key`.
#[inline]
pub fn store_memo_for_key<K, V>(
    caches: &TypeCaches,
    key: &K,
    make: impl FnOnce(Params) -> StoreMemo<K, V>,
) -> &'static StoreMemo<K, V>
where
    K: StoreKeyType + 'static,
    V: Send + 'static,
    StoreMemo<K, V>: ErasedMemo,
{
    let _ = key;
    caches.get(make)
}

/// An argument's part of the key of a function with a store.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of the key of a memoized function with a store",
    label = "this argument is part of the key",
    note = "with `store = ...` a key is stored owned (`&str` as `String`, `&T` as `T`) and as JSON: \
            it must be `Hash + Eq + Send + serde::Serialize`; leave an argument out with \
            `#[memoize(ignore = [name])]`"
)]
pub trait StoreKey {
    /// The stored form.
    type Key;
    /// Whether a stored key equals the argument.
    fn key_eq(key: &Self::Key, arg: &Self) -> bool;
    /// The stored form of the argument.
    fn to_key(&self) -> Self::Key;
}

#[cfg(feature = "stores")]
impl<T> StoreKey for T
where
    T: ?Sized + ToOwned + PartialEq + Serialize,
    <T as ToOwned>::Owned: Hash + Eq + Send + Serialize,
{
    type Key = <T as ToOwned>::Owned;
    #[inline]
    fn key_eq(key: &Self::Key, arg: &Self) -> bool {
        core::borrow::Borrow::<T>::borrow(key) == arg
    }
    #[inline]
    fn to_key(&self) -> Self::Key {
        self.to_owned()
    }
}

#[cfg(not(feature = "stores"))]
impl<T> StoreKey for T
where
    T: ?Sized + ToOwned + PartialEq,
    <T as ToOwned>::Owned: Hash + Eq + Send,
{
    type Key = <T as ToOwned>::Owned;
    #[inline]
    fn key_eq(key: &Self::Key, arg: &Self) -> bool {
        core::borrow::Borrow::<T>::borrow(key) == arg
    }
    #[inline]
    fn to_key(&self) -> Self::Key {
        self.to_owned()
    }
}

/// `self` as part of the key of a method with a store.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is part of the key of this memoized method with a store, so it must be `Hash + Eq + Clone + Send + serde::Serialize + 'static`",
    label = "`self` is part of the key",
    note = "leave `self` out of the key with `#[memoize(ignore = [self])]` or give a key with \
            `#[memoize(key = ...)]`"
)]
pub trait StoreSelfKey {
    /// The stored form.
    #[cfg(feature = "stores")]
    type Key: Hash + Eq + Send + Serialize + 'static;
    /// The stored form.
    #[cfg(not(feature = "stores"))]
    type Key: Hash + Eq + Send + 'static;
    /// `self` as the key it is stored as.
    fn as_key(&self) -> &Self::Key;
    /// Whether two keys are equal.
    fn key_eq(key: &Self::Key, arg: &Self::Key) -> bool;
    /// An owned copy of a key.
    fn to_key(key: &Self::Key) -> Self::Key;
}

macro_rules! store_self_key {
    ($($bound:tt)*) => {
        impl<T: Clone + Hash + Eq + Send + 'static $($bound)*> StoreSelfKey for T {
            type Key = T;
            #[inline]
            fn as_key(&self) -> &T {
                self
            }
            #[inline]
            fn key_eq(key: &T, arg: &T) -> bool {
                key == arg
            }
            #[inline]
            fn to_key(key: &T) -> T {
                key.clone()
            }
        }
    };
}

#[cfg(feature = "stores")]
store_self_key!(+ Serialize);
#[cfg(not(feature = "stores"))]
store_self_key!();

/// The type of the `key = ...` expression of a function with a store.
#[diagnostic::on_unimplemented(
    message = "the `key` expression's type `{Self}` cannot key a memoized function with a store",
    label = "this key is `{Self}`",
    note = "with `store = ...` a key must be `Hash + Eq + Send + serde::Serialize` and own its \
            data, e.g. `key = city.to_lowercase()`"
)]
#[cfg(feature = "stores")]
pub trait StoreKeyType: Hash + Eq + Send + Serialize {}

#[cfg(feature = "stores")]
impl<T: Hash + Eq + Send + Serialize> StoreKeyType for T {}

/// The type of the `key = ...` expression of a function with a store.
#[cfg(not(feature = "stores"))]
pub trait StoreKeyType: Hash + Eq + Send {}

#[cfg(not(feature = "stores"))]
impl<T: Hash + Eq + Send> StoreKeyType for T {}

/// The value of a function with a store.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached as the value of a memoized function with a store",
    label = "the cached value",
    note = "with `store = ...` a cached value is stored serialized: it must be \
            `Clone + Send + serde::Serialize + serde::de::DeserializeOwned`"
)]
pub trait StoreValue {
    /// `Self`.
    type Value;
    /// A clone of the value.
    fn clone_value(&self) -> Self::Value;
}

macro_rules! store_value {
    ($($bound:tt)*) => {
        impl<T: Clone + Send $($bound)*> StoreValue for T {
            type Value = T;
            #[inline]
            fn clone_value(&self) -> T {
                self.clone()
            }
        }
    };
}

#[cfg(feature = "stores")]
store_value!(+ Serialize + DeserializeOwned);
#[cfg(not(feature = "stores"))]
store_value!();

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memo::FunctionCache;
    use crate::Policy;

    #[test]
    fn store_memo_of_an_unregistered_store_caches_in_memory() {
        let params = Params {
            maxsize: Some(2),
            ttl: None,
            policy: Policy::Lru,
        };
        let memo: StoreMemo<(u32,), String> =
            store_memo("stored-test-nowhere", "app::f", 7, 2, params);
        memo.cache.insert_if_absent((1,), "one".into());
        assert_eq!(
            FunctionCache::peek(&memo.cache, &(1,)).as_deref(),
            Some("one")
        );
        assert!(FunctionCache::remove(&memo.cache, &(1,)));
        assert_eq!(FunctionCache::info(&memo.cache).maxsize, Some(2));
    }
}
