//! [`Weigh`]: the weight of a value, for caches bounded by weight.

use std::hash::Hash;
use std::mem::size_of;
use std::sync::Arc;

use crate::memo::{ErasedMemo, Memo, Params, TypeCaches};
use crate::refresh::Stamped;
use crate::InstanceCache;

/// The approximate number of bytes a value holds: its own size plus what it owns on the heap.
/// A weighted cache ([`CacheBuilder::weigher`](crate::CacheBuilder::weigher)) can use it as
/// its weigher. Implemented for strings, vectors, boxes and `Arc`s of weighable values,
/// `Option` and `Result` of them, and the primitive types; implement it for your own types
/// (the weight of their fields, say).
///
/// Capacity counts (a `String` with room for 100 bytes weighs 100 more than its struct, what it
/// holds allocated), and an `Arc`'s contents count in full for every holder.
///
/// ```
/// use memo::{Cache, Weigh};
///
/// assert_eq!(String::from("hello").weight(), 24 + 5);
/// assert_eq!(vec![1u32, 2, 3].weight(), 24 + 3 * 4);
///
/// struct Page { title: String, body: Vec<u8> }
/// impl Weigh for Page {
///     fn weight(&self) -> u64 {
///         self.title.weight() + self.body.weight()
///     }
/// }
///
/// let cache: Cache<u32, std::sync::Arc<Page>> = Cache::builder()
///     .weigher(|_, page: &std::sync::Arc<Page>| page.weight())
///     .max_weight(64 << 20)
///     .build()?;
/// # Ok::<(), memo::BuildError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `memo::Weigh`, so `maxweight` cannot weigh it",
    label = "the cached value must implement `memo::Weigh`",
    note = "implement `memo::Weigh` for it (`fn weight(&self) -> u64`, its size in bytes), or \
            remove `maxweight`"
)]
pub trait Weigh {
    /// The value's weight, in bytes.
    fn weight(&self) -> u64;
}

macro_rules! weigh_by_size {
    ($($t:ty),*) => {$(
        impl Weigh for $t {
            #[inline]
            fn weight(&self) -> u64 {
                size_of::<$t>() as u64
            }
        }
    )*};
}

weigh_by_size!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64
);

impl Weigh for str {
    fn weight(&self) -> u64 {
        self.len() as u64
    }
}

/// A reference to a string in the program: its size only (it owns nothing).
impl Weigh for &'static str {
    fn weight(&self) -> u64 {
        size_of::<&str>() as u64
    }
}

impl Weigh for String {
    fn weight(&self) -> u64 {
        (size_of::<String>() + self.capacity()) as u64
    }
}

impl<T: Weigh> Weigh for [T] {
    fn weight(&self) -> u64 {
        self.iter().map(Weigh::weight).sum()
    }
}

impl<T: Weigh> Weigh for Vec<T> {
    fn weight(&self) -> u64 {
        let spare = (self.capacity() - self.len()) * size_of::<T>();
        (size_of::<Vec<T>>() + spare) as u64 + self.as_slice().weight()
    }
}

impl<T: Weigh + ?Sized> Weigh for Box<T> {
    fn weight(&self) -> u64 {
        size_of::<Box<T>>() as u64 + (**self).weight()
    }
}

impl<T: Weigh + ?Sized> Weigh for Arc<T> {
    /// The pointer, the two counts, and the contents.
    fn weight(&self) -> u64 {
        (size_of::<Arc<T>>() + 2 * size_of::<usize>()) as u64 + (**self).weight()
    }
}

impl<T: Weigh> Weigh for Option<T> {
    fn weight(&self) -> u64 {
        let outer = (size_of::<Option<T>>() - size_of::<T>()) as u64;
        outer + self.as_ref().map_or(size_of::<T>() as u64, Weigh::weight)
    }
}

impl<T: Weigh, E: Weigh> Weigh for Result<T, E> {
    fn weight(&self) -> u64 {
        let inner = match self {
            Ok(t) => (t.weight(), size_of::<T>()),
            Err(e) => (e.weight(), size_of::<E>()),
        };
        (size_of::<Self>() - inner.1) as u64 + inner.0
    }
}

/// The weigher of one `#[memoize(maxweight = ...)]` function: the bound and how a value is
/// weighed (`<T as Weigh>::weight`), given by the macro where the value's type is written and
/// carried to the memo made for each storage (a static, each instantiation, each instance), so
/// that the options shared by every instantiation ([`Params`]) need not know the type.
#[doc(hidden)]
pub struct Weigher<V> {
    max: u64,
    weigh: fn(&V) -> u64,
}

impl<V> Clone for Weigher<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Weigher<V> {}

impl<V> Weigher<V> {
    /// Values weighing `weigh` of them, `max` in all.
    #[inline]
    pub fn new(max: u64, weigh: fn(&V) -> u64) -> Self {
        Weigher { max, weigh }
    }

    /// The bound.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The weight of `value`.
    #[inline]
    pub fn weigh(&self, value: &V) -> u64 {
        (self.weigh)(value)
    }
}

/// A memo whose in-process cache can be bounded by a [`Weigher`] of its values: its cache is
/// made again with the weigher, before any use. In memory, the cache itself (of stamped values
/// with `refresh` or a stale window: the value is weighed, not its stamp); with a store, the near
/// cache (`local = N`) and the in-memory fallback.
#[doc(hidden)]
pub trait Weighed<V>: Sized {
    /// This memo, made with `params`, bounded by `weigher`.
    fn weighed(self, params: Params, weigher: Weigher<V>) -> Self;
}

impl<K: Hash + Eq, V: Clone + 'static> Weighed<V> for Memo<K, V> {
    fn weighed(mut self, params: Params, weigher: Weigher<V>) -> Self {
        self.cache = Memo::<K, V>::builder(params)
            .hasher(self.flights.hasher().clone())
            .weigher(move |_, v| weigher.weigh(v))
            .max_weight(weigher.max)
            .build_clamped();
        self.with_counted_negative(params)
    }
}

impl<K: Hash + Eq, V, C> Memo<K, V, C> {
    /// The cached failures (`err_ttl`, `none_ttl`) of a weighed function: a weight bound
    /// leaves `maxsize` unset, and failures are not weighed, so they are bounded by the default
    /// `maxsize` instead of by nothing.
    fn with_counted_negative(self, params: Params) -> Self {
        match (self.negative.is_some(), params.maxsize) {
            (true, None) => self.with_negative(Params {
                maxsize: Some(crate::DEFAULT_MAXSIZE),
                ..params
            }),
            _ => self,
        }
    }
}

impl<K: Hash + Eq, V: Clone + 'static> Weighed<V> for Memo<K, Stamped<V>> {
    fn weighed(mut self, params: Params, weigher: Weigher<V>) -> Self {
        let kept = match &self.fresh {
            Some(fresh) => fresh.freshness().kept(params),
            None => params,
        };
        self.cache = Memo::<K, Stamped<V>>::builder(kept)
            .hasher(self.flights.hasher().clone())
            .weigher(move |_, stamped: &Stamped<V>| weigher.weigh(stamped.get()))
            .max_weight(weigher.max)
            .build_clamped();
        self.with_counted_negative(params)
    }
}

#[cfg(feature = "stores")]
impl<K: Hash + Eq + 'static, V: 'static> Weighed<V> for crate::stored::StoreMemo<K, V> {
    fn weighed(mut self, params: Params, weigher: Weigher<V>) -> Self {
        self.cache = self.cache.with_weigher(weigher);
        self.with_counted_negative(params)
    }
}

#[cfg(feature = "stores")]
impl<K: Hash + Eq + 'static, V: 'static> Weighed<V> for crate::stored::StoreMemo<K, Stamped<V>> {
    fn weighed(mut self, params: Params, weigher: Weigher<V>) -> Self {
        self.cache = self.cache.with_stamped_weigher(weigher);
        self.with_counted_negative(params)
    }
}

/// `memo` bounded by `weigher` (`#[memoize(maxweight = ...)]`), made with `params`.
#[doc(hidden)]
#[inline]
pub fn weighed<M: Weighed<V>, V>(memo: M, params: Params, weigher: Weigher<V>) -> M {
    memo.weighed(params, weigher)
}

/// [`memo_by_type`](crate::__private::memo_by_type) with `maxweight`: the memo made by `make`
/// (`Memo::new`, or `Memo::fresh` with its freshness), bounded by `weigher`.
#[doc(hidden)]
#[inline]
pub fn weighed_memo_by_type<T, M, V, S>(
    caches: &'static TypeCaches,
    name: impl FnOnce() -> S,
    tag: crate::__private::Tag<T>,
    make: impl FnOnce(Box<str>, Params) -> M,
    weigher: Weigher<V>,
) -> &'static M
where
    T: 'static,
    M: Weighed<V> + ErasedMemo + 'static,
    S: Into<Box<str>>,
{
    let make = |params| {
        let name: Box<str> = name().into();
        crate::caches::register_generic(caches, &name);
        make(name, params).weighed(params, weigher)
    };
    crate::__private::tagged_memo(caches, make, tag)
}

/// [`memo_in_field`](crate::__private::memo_in_field) with `maxweight`.
#[doc(hidden)]
#[inline]
pub fn weighed_memo_in_field<Owner: 'static, M, V, S>(
    field: &InstanceCache,
    name: impl Fn() -> S,
    params: Params,
    make: impl FnOnce(Box<str>, Params) -> M,
    weigher: Weigher<V>,
) -> &M
where
    M: Weighed<V> + ErasedMemo + 'static,
    S: Into<Box<str>> + std::fmt::Display,
{
    let init = || make(name().into(), params).weighed(params, weigher);
    field.__memo::<Owner, _, _>(init, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_count_the_heap_and_the_struct() {
        let s = String::with_capacity(100);
        assert_eq!(s.weight(), 24 + 100);
        assert_eq!(vec![String::from("ab"); 2].weight(), 24 + 2 * (24 + 2));
        assert_eq!(Some(7u64).weight(), 16);
        assert_eq!(None::<u64>.weight(), 16);
        assert_eq!(Box::<str>::from("abc").weight(), 16 + 3);
        assert_eq!(Arc::new(5u32).weight(), 8 + 16 + 4);
        assert_eq!(Ok::<u8, String>(1).weight(), 24);
    }
}
