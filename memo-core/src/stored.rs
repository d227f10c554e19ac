//! What the code of `#[memoize(store = "...")]` calls: the bounds that a store adds to keys and
//! values, and the memo over a [`StoreCache`](crate::stores::StoreCache).
//!
//! Each trait here is the store's counterpart of one in `__private`, with the same shape and the
//! same use: [`StoreKey`] and [`StoreValue`] type a static's memo through projections spanned at
//! the user's types (as `MemoKey` and `MemoValue` do), and the checked traits [`StoreArgKey`],
//! [`StoreSelfKey`], [`StoreKeyExpr`] and [`StoreCachedValue`] give the other memos their types
//! by inference (as `ArgKey`, `SelfKey`, `KeyExpr` and `CachedValue` do, with the same
//! [`Met`]/[`Unmet`] pair of impls), so that a key that is not `Serialize` or a value that is not
//! `DeserializeOwned` is one error at that type naming the store's requirement. Without the
//! `stores` feature the same names exist with the in-memory bounds and cache, so that such a
//! function still compiles and the facade's one error (enable the feature) is the only one.

use core::marker::PhantomData;
use std::hash::Hash;

#[cfg(feature = "stores")]
use serde::{de::DeserializeOwned, Serialize};

use crate::__private::tagged_memo;
#[cfg(not(feature = "stores"))]
use crate::memo::FunctionCache;
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
        .with_ttl(params.ttl)
        .with_ttl_jitter(params.ttl_jitter);
    Memo::with_cache(path, cache).with_negative(params)
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

/// The memo of a function with a store and a near cache (`local = N, local_ttl = "5s"`):
/// [`store_memo`]'s, keeping up to `local` values in this process for at most `local_ttl`
/// (see [`StoreCache::with_local`](crate::stores::StoreCache::with_local)).
#[cfg(feature = "stores")]
pub fn store_memo_local<K, V>(
    store: &'static str,
    path: impl Into<String>,
    signature: u64,
    version: u32,
    params: Params,
    local: usize,
    local_ttl: std::time::Duration,
) -> StoreMemo<K, V> {
    let mut memo = store_memo(store, path, signature, version, params);
    memo.cache = memo.cache.with_local(local, local_ttl);
    memo
}

/// The memo of a function with a store and a near cache, in memory as the `stores` feature is
/// off (the near cache is then the cache itself).
#[cfg(not(feature = "stores"))]
pub fn store_memo_local<K: Hash + Eq, V: Clone>(
    store: &'static str,
    path: impl Into<String>,
    signature: u64,
    version: u32,
    params: Params,
    local: usize,
    local_ttl: std::time::Duration,
) -> StoreMemo<K, V> {
    let _ = (local, local_ttl);
    store_memo(store, path, signature, version, params)
}

/// The lookups of a function with a near cache (`local = N`) on the in-memory cache that stands
/// in for the store when the `stores` feature is off (with it, `StoreCache`'s own methods are
/// called, and this trait has no impl).
pub trait InMemoryLocal<K, V> {
    /// `get_by`, the owned key unused.
    fn get_by_keeping<Q: Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
        owned: impl FnOnce() -> K,
    ) -> Option<V>;
    /// `get_by`, as a future, the owned key unused.
    fn get_by_keeping_async<Q: Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
        owned: impl FnOnce() -> K,
    ) -> impl core::future::Future<Output = Option<V>>;
}

#[cfg(not(feature = "stores"))]
impl<K: Hash + Eq, V: Clone> InMemoryLocal<K, V> for crate::Cache<K, V> {
    fn get_by_keeping<Q: Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
        owned: impl FnOnce() -> K,
    ) -> Option<V> {
        let _ = owned;
        self.get_by(probe, is_match)
    }
    fn get_by_keeping_async<Q: Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
        owned: impl FnOnce() -> K,
    ) -> impl core::future::Future<Output = Option<V>> {
        let _ = owned;
        core::future::ready(self.get_by(probe, is_match))
    }
}

/// The async lookups and writes of an `async fn` with a store, on the in-memory cache that
/// stands in for the store when the `stores` feature is off (with it, `StoreCache`'s own
/// methods are called, and this trait has no impl).
pub trait InMemoryAsync<K, V> {
    /// `get_by`, as a future.
    fn get_by_async<Q: Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
    ) -> impl core::future::Future<Output = Option<V>>;
    /// `get`, as a future.
    fn get_async(&self, key: &K) -> impl core::future::Future<Output = Option<V>>;
    /// `insert_if_absent`, as a future.
    fn insert_async(&self, key: K, value: V) -> impl core::future::Future<Output = ()>;
}

#[cfg(not(feature = "stores"))]
impl<K: Hash + Eq, V: Clone> InMemoryAsync<K, V> for crate::Cache<K, V> {
    fn get_by_async<Q: Hash + ?Sized>(
        &self,
        probe: &Q,
        is_match: impl FnMut(&K) -> bool,
    ) -> impl core::future::Future<Output = Option<V>> {
        core::future::ready(self.get_by(probe, is_match))
    }
    fn get_async(&self, key: &K) -> impl core::future::Future<Output = Option<V>> {
        core::future::ready(self.get(key))
    }
    fn insert_async(&self, key: K, value: V) -> impl core::future::Future<Output = ()> {
        self.insert_if_absent(key, value);
        core::future::ready(())
    }
}

/// What the single-flight leader of an `async fn` with a store completes into; `flush()` then
/// awaits the write.
#[cfg(feature = "stores")]
pub fn store_write_behind<K: StoredKey, V: StoredValue>(
    cache: &crate::stores::StoreCache<K, V>,
) -> crate::stores::WriteBehind<'_, K, V> {
    crate::stores::WriteBehind::new(cache)
}

/// What the single-flight leader of an `async fn` with a store completes into (in memory: the
/// cache itself, and `flush()` does nothing).
#[cfg(not(feature = "stores"))]
pub fn store_write_behind<K: Hash + Eq, V: Clone>(
    cache: &crate::Cache<K, V>,
) -> DirectWrite<'_, K, V> {
    DirectWrite(cache)
}

/// The cache itself, by reference, with nothing to flush (the `stores` feature is off).
#[cfg(not(feature = "stores"))]
pub struct DirectWrite<'a, K, V>(&'a crate::Cache<K, V>);

#[cfg(not(feature = "stores"))]
impl<K, V> DirectWrite<'_, K, V> {
    /// Nothing: the write was made.
    pub async fn flush(self) {}
}

#[cfg(not(feature = "stores"))]
impl<K: Hash + Eq, V: Clone> FunctionCache<K, V> for DirectWrite<'_, K, V> {
    fn peek(&self, key: &K) -> Option<V> {
        FunctionCache::peek(self.0, key)
    }
    fn insert_if_absent(&self, key: K, value: V) {
        FunctionCache::insert_if_absent(self.0, key, value);
    }
    fn remove(&self, key: &K) -> bool {
        FunctionCache::remove(self.0, key)
    }
    fn info(&self) -> crate::CacheInfo {
        FunctionCache::info(self.0)
    }
    fn reset(&self) {
        FunctionCache::reset(self.0);
    }
}

/// What the memo of a function with a store needs of its key: what [`StoreArgKey`],
/// [`StoreSelfKey`] and [`StoreKeyExpr`] check at the user's tokens, so never reported itself.
#[cfg(feature = "stores")]
pub trait StoredKey: Hash + Eq + Send + Sync + Serialize + 'static {}
#[cfg(feature = "stores")]
impl<T: Hash + Eq + Send + Sync + Serialize + 'static> StoredKey for T {}

/// What the memo of a function with a store needs of its key (the `stores` feature is off).
#[cfg(not(feature = "stores"))]
pub trait StoredKey: Hash + Eq + Send + Sync + 'static {}
#[cfg(not(feature = "stores"))]
impl<T: Hash + Eq + Send + Sync + 'static> StoredKey for T {}

/// What the memo of a function with a store needs of its value: what [`StoreCachedValue`]
/// checks at the return type.
#[cfg(feature = "stores")]
pub trait StoredValue: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}
#[cfg(feature = "stores")]
impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> StoredValue for T {}

/// What the memo of a function with a store needs of its value (the `stores` feature is off).
#[cfg(not(feature = "stores"))]
pub trait StoredValue: Clone + Send + Sync + 'static {}
#[cfg(not(feature = "stores"))]
impl<T: Clone + Send + Sync + 'static> StoredValue for T {}

/// The memo of type `StoreMemo<K, V>` kept for one function with a store in `caches`, one per
/// `Tag` (as `memo_by_type`), made by `make` on first use.
#[inline]
pub fn store_memo_by_type<T, K, V, S>(
    caches: &'static TypeCaches,
    name: impl FnOnce() -> S,
    make: impl FnOnce(Params) -> StoreMemo<K, V>,
    tag: crate::__private::Tag<T>,
    key: PhantomData<K>,
    value: PhantomData<V>,
) -> &'static StoreMemo<K, V>
where
    T: 'static,
    K: StoredKey,
    V: StoredValue,
    StoreMemo<K, V>: ErasedMemo,
    S: AsRef<str>,
{
    let _ = (key, value);
    let make = |params| {
        crate::caches::register_generic(caches, name().as_ref());
        make(params)
    };
    tagged_memo(caches, make, tag)
}

/// An argument's part of the key of a function with a store whose memo is a typed static.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of the key of a memoized function with a store",
    label = "this argument is part of the key",
    note = "with `store = ...` a key is stored owned (`&str` as `String`, `&T` as `T`) and as JSON: \
            it must be `Hash + Eq + Send + Sync + serde::Serialize`; leave an argument out with \
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

/// The value of a function with a store whose memo is a typed static.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached as the value of a memoized function with a store",
    label = "the cached value",
    note = "with `store = ...` a cached value is stored serialized: it must be \
            `Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned`"
)]
pub trait StoreValue {
    /// `Self`.
    type Value;
    /// A clone of the value.
    fn clone_value(&self) -> Self::Value;
}

/// An argument's part of the key of a function with a store whose memo is not a typed static:
/// `ArgKey` with the store's bounds.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of the key of a memoized function with a store",
    label = "this argument is part of the key",
    note = "with `store = ...` a key is stored owned (`&str` as `String`, `&T` as `T`) and as JSON: \
            it must be `Hash + Eq + Send + Sync + serde::Serialize` and cloneable; a type \
            parameter needs these bounds (`T: Hash + Eq + Clone + Send + Sync + Serialize + \
            'static`); leave an argument out with `#[memoize(ignore = [name])]`, or give a key \
            with `#[memoize(key = ...)]`"
)]
pub trait StoreArgKey<M> {
    /// The stored form.
    type Key;
    /// What a lookup hashes and serializes: as [`StoreArgKey::Key`] does.
    type Probe: ?Sized;
    /// The argument as a lookup hashes it.
    fn probe(&self) -> &Self::Probe;
    /// Whether a stored key equals the argument.
    fn key_eq(key: &Self::Key, arg: &Self) -> bool;
    /// The stored form of the argument.
    fn to_key(&self) -> Self::Key;
}

/// `self` as part of the key of a method with a store: `SelfKey` with the store's bounds.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is part of the key of this memoized method with a store, so it must be `Hash + Eq + Clone + Send + Sync + serde::Serialize + 'static`",
    label = "`self` is part of the key",
    note = "leave `self` out of the key with `#[memoize(ignore = [self])]` or give a key with \
            `#[memoize(key = ...)]`"
)]
pub trait StoreSelfKey<M> {
    /// The stored form.
    type Key;
    /// `self` as the key it is stored as, to hash and compare a lookup.
    fn as_key(&self) -> &Self::Key;
    /// Whether two keys are equal.
    fn key_eq(key: &Self::Key, arg: &Self::Key) -> bool;
    /// An owned copy of a key.
    fn to_key(key: &Self::Key) -> Self::Key;
}

/// The value of the `key = ...` expression of a function with a store: `KeyExpr` with the
/// store's bounds.
#[diagnostic::on_unimplemented(
    message = "the `key` expression's type `{Self}` cannot key a memoized function with a store",
    label = "this key is `{Self}`",
    note = "with `store = ...` a key must be `Hash + Eq + Send + Sync + serde::Serialize + \
            'static` and own its data, e.g. `key = city.to_lowercase()`"
)]
pub trait StoreKeyExpr<M> {
    /// `Self`.
    type Key;
    /// The key, as it is stored.
    fn into_key(self) -> Self::Key;
}

/// A cached value of a function with a store whose memo is not a typed static: `CachedValue`
/// with the store's bounds.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached as the value of a memoized function with a store",
    label = "the cached value",
    note = "with `store = ...` a cached value is stored serialized: it must be \
            `Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned`; a type \
            parameter needs these bounds"
)]
pub trait StoreCachedValue<M>: Sized {
    /// The stored form: `Self`.
    type Value;
    /// A clone of the value, to store.
    fn clone_value(&self) -> Self::Value;
    /// The value, to store.
    fn into_value(self) -> Self::Value;
    /// A stored value, to return.
    fn from_value(value: Self::Value) -> Self;
}

/// The impls of a family of bound traits (`MemoKey`, `MemoValue`) and checked traits (`ArgKey`,
/// `SelfKey`, `KeyExpr`, `CachedValue`, each with its `Met` impl and its `Unmet` one), with
/// `$key` added to the bounds of keys and `$value` to those of values: nothing for the
/// in-memory family (in `__private`), serde's traits for the store's family here. One body for
/// both, so that the two families cannot drift apart.
macro_rules! checked_impls {
    (
        traits: [$MemoKey:ident, $MemoValue:ident, $ArgKey:ident, $SelfKey:ident,
                 $KeyExpr:ident, $CachedValue:ident],
        key: [$($key:tt)*],
        value: [$($value:tt)*] $(,)?
    ) => {
        impl<T> $MemoKey for T
        where
            T: ?Sized + ToOwned + PartialEq $($key)*,
            <T as ToOwned>::Owned: ::core::hash::Hash + Eq + Send + Sync $($key)*,
        {
            type Key = <T as ToOwned>::Owned;
            #[inline]
            fn key_eq(key: &Self::Key, arg: &Self) -> bool {
                ::core::borrow::Borrow::<T>::borrow(key) == arg
            }
            #[inline]
            fn to_key(&self) -> Self::Key {
                self.to_owned()
            }
        }

        impl<T: Clone + Send + Sync $($value)*> $MemoValue for T {
            type Value = T;
            #[inline]
            fn clone_value(&self) -> T {
                self.clone()
            }
        }

        #[diagnostic::do_not_recommend]
        impl<T> $ArgKey<$crate::__private::Met> for T
        where
            T: ?Sized + ToOwned + PartialEq + ::core::hash::Hash $($key)*,
            <T as ToOwned>::Owned: ::core::hash::Hash + Eq + Send + Sync $($key)*,
        {
            type Key = <T as ToOwned>::Owned;
            type Probe = T;
            #[inline]
            fn probe(&self) -> &T {
                self
            }
            #[inline]
            fn key_eq(key: &Self::Key, arg: &Self) -> bool {
                ::core::borrow::Borrow::<T>::borrow(key) == arg
            }
            #[inline]
            fn to_key(&self) -> Self::Key {
                self.to_owned()
            }
        }

        #[diagnostic::do_not_recommend]
        impl<T: ?Sized + $crate::__private::Unsatisfiable> $ArgKey<$crate::__private::Unmet> for T {
            type Key = ::core::convert::Infallible;
            type Probe = ();
            fn probe(&self) -> &() {
                self.absurd()
            }
            fn key_eq(key: &Self::Key, _: &Self) -> bool {
                match *key {}
            }
            fn to_key(&self) -> Self::Key {
                self.absurd()
            }
        }

        #[diagnostic::do_not_recommend]
        impl<T: Clone + ::core::hash::Hash + Eq + Send + Sync + 'static $($key)*>
            $SelfKey<$crate::__private::Met> for T
        {
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

        #[diagnostic::do_not_recommend]
        impl<T: ?Sized + $crate::__private::Unsatisfiable> $SelfKey<$crate::__private::Unmet> for T {
            type Key = ::core::convert::Infallible;
            fn as_key(&self) -> &Self::Key {
                self.absurd()
            }
            fn key_eq(key: &Self::Key, _: &Self::Key) -> bool {
                match *key {}
            }
            fn to_key(key: &Self::Key) -> Self::Key {
                *key
            }
        }

        #[diagnostic::do_not_recommend]
        impl<T: ::core::hash::Hash + Eq + Send + Sync + 'static $($key)*>
            $KeyExpr<$crate::__private::Met> for T
        {
            type Key = T;
            #[inline]
            fn into_key(self) -> T {
                self
            }
        }

        #[diagnostic::do_not_recommend]
        impl<T: $crate::__private::Unsatisfiable> $KeyExpr<$crate::__private::Unmet> for T {
            type Key = ::core::convert::Infallible;
            fn into_key(self) -> Self::Key {
                self.absurd()
            }
        }

        #[diagnostic::do_not_recommend]
        impl<T: Clone + Send + Sync $($value)*> $CachedValue<$crate::__private::Met> for T {
            type Value = T;
            #[inline]
            fn clone_value(&self) -> T {
                self.clone()
            }
            #[inline]
            fn into_value(self) -> T {
                self
            }
            #[inline]
            fn from_value(value: T) -> T {
                value
            }
        }

        #[diagnostic::do_not_recommend]
        impl<T: $crate::__private::Unsatisfiable> $CachedValue<$crate::__private::Unmet> for T {
            type Value = ::core::convert::Infallible;
            fn clone_value(&self) -> Self::Value {
                self.absurd()
            }
            fn into_value(self) -> Self::Value {
                self.absurd()
            }
            fn from_value(value: Self::Value) -> Self {
                match value {}
            }
        }
    };
}
pub(crate) use checked_impls;

#[cfg(feature = "stores")]
checked_impls!(
    traits: [StoreKey, StoreValue, StoreArgKey, StoreSelfKey, StoreKeyExpr, StoreCachedValue],
    key: [+ Serialize],
    value: [+ Serialize + DeserializeOwned],
);
#[cfg(not(feature = "stores"))]
checked_impls!(
    traits: [StoreKey, StoreValue, StoreArgKey, StoreSelfKey, StoreKeyExpr, StoreCachedValue],
    key: [],
    value: [],
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memo::FunctionCache;
    use crate::Policy;

    const PARAMS: Params = Params {
        maxsize: Some(2),
        ttl: None,
        ttl_jitter: 0.0,
        policy: Policy::Lru,
        negative_ttl: None,
    };

    #[test]
    fn store_memo_of_an_unregistered_store_caches_in_memory() {
        let memo: StoreMemo<(u32,), String> =
            store_memo("stored-test-nowhere", "app::f", 7, 2, PARAMS);
        memo.cache.insert_if_absent((1,), "one".into());
        assert_eq!(
            FunctionCache::peek(&memo.cache, &(1,)).as_deref(),
            Some("one")
        );
        assert!(FunctionCache::remove(&memo.cache, &(1,)));
        assert_eq!(FunctionCache::info(&memo.cache).maxsize, Some(2));
    }

    #[test]
    fn store_memos_by_type_are_one_per_tag_and_types() {
        let caches: &'static TypeCaches = Box::leak(Box::new(TypeCaches::new(PARAMS)));
        let make = |params| store_memo("stored-test-nowhere", "app::g", 7, 1, params);
        let (key, value) = (PhantomData::<(u8,)>, PhantomData::<u8>);
        use crate::__private::{tag_of, Tag};
        let a = store_memo_by_type(caches, || "app::g", make, tag_of(0u16), key, value);
        let again = store_memo_by_type(
            caches,
            || "app::g",
            |_| unreachable!("made once"),
            tag_of(1u16),
            key,
            value,
        );
        let other = store_memo_by_type(caches, || "app::g", make, tag_of(0u32), key, value);
        let of_self = store_memo_by_type(
            caches,
            || "app::g",
            make,
            Tag::none().with_self::<str>(),
            key,
            value,
        );
        let none = store_memo_by_type(caches, || "app::g", make, Tag::none(), key, value);
        assert!(std::ptr::eq(a, again));
        assert!(!std::ptr::eq(a, other));
        assert!(
            !std::ptr::eq(of_self, none),
            "the Self type's name tells memos apart"
        );
        a.cache.insert((1,), 1);
        assert_eq!(caches.info().currsize, 1);
        caches.reset();
        assert_eq!(caches.info().currsize, 0);
    }
}
