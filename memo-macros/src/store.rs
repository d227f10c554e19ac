//! `store = "name"` and `version = N`: the function's cache is a `StoreCache` of the named store
//! instead of the in-memory `Cache`; everything else (single-flight, the return shapes, the
//! companions) is generated as for memory.
//!
//! What changes with a store:
//!
//! - the bound traits: `StoreKey` and `StoreValue` in place of `MemoKey` and `MemoValue` (a
//!   static's projections), and the checked traits `StoreArgKey<_>`, `StoreSelfKey<_>`,
//!   `StoreKeyExpr<_>` and `StoreCachedValue<_>` in place of `ArgKey<_>`, `SelfKey<_>`,
//!   `KeyExpr<_>` and `CachedValue<_>` (every other memo's inference); they add
//!   `serde::Serialize` (keys) and `Serialize + DeserializeOwned` (values), and are used at the
//!   same tokens, so a missing trait is one error at the argument, `&self`, the `key` expression
//!   or the return type;
//! - the memo: `StoreMemo<K, V>` (a `Memo` over a `StoreCache`), made by `store_memo` with the
//!   store's name, the function's path, the version and a hash of its signature, kept in a
//!   static or, one per instantiation, by `store_memo_by_type`;
//! - the wrapper calls `memo::__memoize_store_enabled!()`, which the facade defines as nothing
//!   with its `stores` feature and as one `compile_error!` at the `store` token without it (the
//!   rest then compiles in memory, so that error is the only one).
//!
//! The path that namespaces the keys is `module_path!()::f` for a free function and
//! `type_name::<Self>()::m` for a method (so `A::get` and `B::get` never share keys), followed
//! by `::<T, N>` with each type argument's `type_name` for a generic one.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::{Expr, ExprLit, GenericParam, Ident, Lit, LitStr};

use crate::ast::{Function, Place};
use crate::attr::{Options, Spanned};
use crate::error::Errors;
use crate::expand::Plan;

/// `store = "name"`: the name, and the span of the `store` token for the feature error.
pub(crate) struct StoreName {
    pub(crate) name: LitStr,
    pub(crate) key: Span,
}

/// Parses `store = "name"`.
pub(crate) fn name_value(expr: &Expr, key: Span) -> syn::Result<Spanned<StoreName>> {
    let wrong = |tokens: &dyn ToTokens| {
        syn::Error::new_spanned(
            tokens,
            "`store` must be the name of a registered store as a string, e.g. \
             `store = \"shared\"`",
        )
    };
    match ungroup(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit),
            attrs,
        }) if attrs.is_empty() => {
            if lit.value().is_empty() {
                return Err(wrong(lit));
            }
            Ok(Spanned {
                span: lit.span(),
                value: StoreName {
                    name: lit.clone(),
                    key,
                },
            })
        }
        other => Err(wrong(other)),
    }
}

/// Parses `version = N`: an integer from 1 to `u32::MAX`.
pub(crate) fn version_value(expr: &Expr) -> syn::Result<Spanned<u32>> {
    let wrong = |tokens: &dyn ToTokens| {
        syn::Error::new_spanned(
            tokens,
            "`version` must be a positive integer, e.g. `version = 2`; bump it when the \
             function's results change meaning",
        )
    };
    match ungroup(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int),
            attrs,
        }) if attrs.is_empty() && matches!(int.suffix(), "" | "u32") => {
            match int.base10_parse::<u32>() {
                Ok(0) | Err(_) => Err(wrong(int)),
                Ok(value) => Ok(Spanned {
                    value,
                    span: int.span(),
                }),
            }
        }
        other => Err(wrong(other)),
    }
}

fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => ungroup(&group.expr),
        Expr::Paren(paren) => ungroup(&paren.expr),
        _ => expr,
    }
}

/// Reports the options that only make sense with a store, or not with one, and drops them:
/// `version` without `store`, and `store` with `cache_field` (a store is shared by every
/// instance). The function is then expanded without them, so the error is the only one.
pub(crate) fn check(options: &mut Options, errors: &mut Errors) {
    check_local(options, errors);
    if options.store.is_none() {
        if let Some(version) = options.version.take() {
            errors.push(syn::Error::new(
                version.span,
                "`version` applies to keys in a store; add `store = \"name\"` or remove `version`",
            ));
        }
    } else if options.cache_field.is_some() {
        if let Some(store) = options.store.take() {
            errors.push(syn::Error::new(
                store.value.key,
                "a store is shared by every instance and process, and `cache_field` keeps a \
                 cache per instance; remove `store` or `cache_field`",
            ));
        }
        options.version = None;
        options.local = None;
        options.local_ttl = None;
    }
}

/// `local` and `local_ttl` (the near cache): `local` needs a store, `local_ttl` needs `local`.
fn check_local(options: &mut Options, errors: &mut Errors) {
    let had_local = options.local.is_some();
    if options.store.is_none() {
        if let Some(local) = options.local.take() {
            errors.push(syn::Error::new(
                local.span,
                "`local` keeps values of a store in this process (a near cache); add \
                 `store = \"name\"` or remove `local`",
            ));
        }
    }
    if !had_local {
        if let Some(ttl) = options.local_ttl.take() {
            errors.push(syn::Error::new(
                ttl.span,
                "`local_ttl` is how long the near cache keeps a value; add `local = N` (and \
                 `store = \"name\"`) or remove `local_ttl`",
            ));
        }
    }
}

/// How long the near cache keeps a value when `local_ttl` is not given.
const DEFAULT_LOCAL_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl Plan<'_> {
    /// The `__private` trait named `memory` (`MemoKey`, ...), or its counterpart with a store.
    pub(crate) fn bound_trait(&self, memory: &str) -> TokenStream {
        let memo = &self.memo;
        let name = match (self.options.store.is_some(), memory) {
            (false, _) => memory,
            (true, "MemoKey") => "StoreKey",
            (true, "MemoValue") => "StoreValue",
            (true, "ArgKey") => "StoreArgKey",
            (true, "SelfKey") => "StoreSelfKey",
            (true, "KeyExpr") => "StoreKeyExpr",
            (true, "CachedValue") => "StoreCachedValue",
            (true, other) => other,
        };
        let ident = syn::Ident::new(name, Span::call_site());
        quote!(#memo::__private::#ident)
    }

    /// A checked trait (`ArgKey`, `SelfKey`, `KeyExpr`, `CachedValue`, or its counterpart with a
    /// store) with its parameter left to inference: `Trait<_>`.
    pub(crate) fn checked_trait(&self, memory: &str) -> TokenStream {
        let path = self.bound_trait(memory);
        quote!(#path<_>)
    }

    /// `Memo<K, V>`, or `StoreMemo<K, V>` with a store.
    pub(crate) fn memo_of(&self, key: &TokenStream, value: &TokenStream) -> TokenStream {
        let memo = &self.memo;
        match self.options.store {
            Some(_) => quote!(#memo::__private::StoreMemo<#key, #value>),
            None => quote!(#memo::__private::Memo<#key, #value>),
        }
    }

    /// The type of the static that holds a free function's memo: `LazyLock<memo_type>`. With a
    /// store, `LazyLock<` and `>` are spanned at the return type: the static's `Sync` check then
    /// reports a value that is not `DeserializeOwned` where the value's own use does, and rustc
    /// shows the two as one error.
    pub(crate) fn static_type(&self, memo_type: &TokenStream) -> TokenStream {
        let memo = &self.memo;
        if self.options.store.is_none() {
            return quote!(#memo::__private::LazyLock<#memo_type>);
        }
        let (first, last) = crate::ast::span_range(self.function.output.cached_type());
        let open = respan(quote!(#memo::__private::LazyLock<), first);
        let close = respan(quote!(>), last);
        quote!(#open #memo_type #close)
    }

    /// An expression making the memo from `params` (a `Params` expression).
    pub(crate) fn new_memo(&self, params: TokenStream) -> TokenStream {
        let memo = &self.memo;
        let Some(store) = &self.options.store else {
            let name = self.name();
            return quote!(#memo::__private::Memo::new(#name, #params));
        };
        let store = &store.value.name;
        let path = self.store_path();
        let signature = signature_hash(self.options, self.function);
        let signature = syn::LitInt::new(&format!("{signature:#x}u64"), Span::call_site());
        let version = self.options.version.as_ref().map_or(1, |v| v.value);
        if let Some(local) = &self.options.local {
            let size = syn::LitInt::new(&format!("{}usize", local.value), Span::call_site());
            let ttl = self
                .options
                .local_ttl
                .as_ref()
                .map_or(DEFAULT_LOCAL_TTL, |t| t.value);
            let nanos = ttl.as_nanos().min(u128::from(u64::MAX)) as u64;
            let nanos = syn::LitInt::new(&format!("{nanos}u64"), Span::call_site());
            return quote!(#memo::__private::store_memo_local(
                #store, #path, #signature, #version, #params,
                #size, ::core::time::Duration::from_nanos(#nanos)
            ));
        }
        quote!(#memo::__private::store_memo(#store, #path, #signature, #version, #params))
    }

    /// Whether the function keeps a near cache in front of its store (`local = N`).
    fn local(&self) -> bool {
        self.options.local.is_some() && self.options.store.is_some()
    }

    /// Whether the function is an `async fn` with a store: it then awaits its lookups (on the
    /// store's I/O threads) and queues its writes, never blocking the executor thread.
    pub(crate) fn store_async(&self) -> bool {
        self.options.store.is_some() && self.function.sig.asyncness.is_some()
    }

    /// Whether a miss without single-flight reuses its lookup's hash for its insert
    /// (`memo.get_by_hashing`, then `memo.store_since_hashed`): a function without a store
    /// and without `key = ...`, whose memo's cache is the in-memory `Cache`.
    pub(crate) fn hashing(&self) -> bool {
        self.options.store.is_none() && self.key_expr.is_none() && !self.single_flight
    }

    /// The lookup by a borrowed probe: `cache.get_by(probe, is_match)`, awaited through the
    /// store for an `async fn` with a store.
    pub(crate) fn lookup_by(
        &self,
        memo: &Ident,
        probe: &TokenStream,
        is_match: &TokenStream,
    ) -> TokenStream {
        if self.local() {
            let owned = self.owned_key();
            return self.keeping(memo, probe, is_match, &quote!(|| #owned));
        }
        self.sync_or_awaited(
            quote!(#memo.cache.get_by(#probe, #is_match)),
            quote!(#memo.cache.get_by_async(#probe, #is_match)),
        )
    }

    /// The lookup by an owned key (`key = ...`): `cache.get(&key)`, or awaited.
    pub(crate) fn lookup_key(&self, memo: &Ident, key: &Ident) -> TokenStream {
        if self.local() {
            let probe = quote!(&#key);
            let k = Ident::new("__memo_k", Span::mixed_site());
            let is_match = quote!(|#k| ::core::cmp::PartialEq::eq(#k, &#key));
            let owned = quote!(|| ::core::clone::Clone::clone(&#key));
            return self.keeping(memo, &probe, &is_match, &owned);
        }
        self.sync_or_awaited(
            quote!(#memo.cache.get(&#key)),
            quote!(#memo.cache.get_async(&#key)),
        )
    }

    /// The lookup of a function with a near cache: `cache.get_by_keeping(probe, is_match,
    /// owned)` (a value found in the store is kept in this process under the key `owned`
    /// makes), or awaited; with the `stores` feature off, `InMemoryLocal` gives the in-memory
    /// cache the same methods.
    fn keeping(
        &self,
        memo: &Ident,
        probe: &TokenStream,
        is_match: &TokenStream,
        owned: &TokenStream,
    ) -> TokenStream {
        let path = &self.memo;
        let call = if self.store_async() {
            quote!(#memo.cache.get_by_keeping_async(#probe, #is_match, #owned).await)
        } else {
            quote!(#memo.cache.get_by_keeping(#probe, #is_match, #owned))
        };
        quote!({
            #[allow(unused_imports)]
            use #path::__private::InMemoryLocal as _;
            #call
        })
    }

    /// `sync`, or for an `async fn` with a store `asynchronous.await`: a method call, as the
    /// sync one, so that a key that is not `Serialize` is one error; with the `stores` feature
    /// off, `InMemoryAsync` gives the in-memory cache the same methods.
    fn sync_or_awaited(&self, sync: TokenStream, asynchronous: TokenStream) -> TokenStream {
        if !self.store_async() {
            return sync;
        }
        let path = &self.memo;
        quote!({
            #[allow(unused_imports)]
            use #path::__private::InMemoryAsync as _;
            #asynchronous.await
        })
    }

    /// The leader's completion: `flights.complete(leader, &cache, value);`, or, for an `async
    /// fn` with a store, into a cache that keeps the write, awaited once the flight is done.
    pub(crate) fn complete_leader(
        &self,
        memo: &Ident,
        leader: &Ident,
        value: &TokenStream,
    ) -> TokenStream {
        let path = &self.memo;
        if self.store_async() {
            quote! {
                let __memo_write = #path::__private::store_write_behind(&#memo.cache);
                #memo.flights.complete(#leader, &__memo_write, #value);
                __memo_write.flush().await;
            }
        } else {
            quote!(#memo.flights.complete(#leader, &#memo.cache, #value);)
        }
    }

    /// With a store, the facade's check that its `stores` feature is on, at the `store` token.
    pub(crate) fn store_feature_check(&self) -> TokenStream {
        let memo = &self.memo;
        match &self.options.store {
            // Every token at `store`, the path too: rustc reports the error at the call.
            Some(store) => respan(quote!(#memo::__memoize_store_enabled!();), store.value.key),
            None => TokenStream::new(),
        }
    }

    /// The path that namespaces the keys, a `String` expression (see the module's docs).
    fn store_path(&self) -> TokenStream {
        let name = self.function.sig.ident.unraw().to_string();
        let (mut format, base) = match self.function.place {
            Place::Free => (
                "{}".to_owned(),
                quote!(::core::concat!(::core::module_path!(), "::", #name)),
            ),
            Place::Associated => (
                format!("{{}}::{name}"),
                quote!(::core::any::type_name::<Self>()),
            ),
        };
        let generics: Vec<TokenStream> = self
            .function
            .sig
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(ty) => {
                    let ident = &ty.ident;
                    Some(quote!(::core::any::type_name::<#ident>()))
                }
                GenericParam::Const(konst) => {
                    let ident = &konst.ident;
                    Some(quote!(#ident))
                }
                GenericParam::Lifetime(_) => None,
            })
            .collect();
        if !generics.is_empty() {
            format.push_str(&format!("::<{}>", vec!["{}"; generics.len()].join(",")));
        }
        quote!(::std::format!(#format, #base, #(#generics),*))
    }
}

/// `tokens` with every token at `span` (groups are not respanned inside: callers pass none).
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            tree.set_span(span);
            tree
        })
        .collect()
}

/// A hash of what decides the meaning of a stored value: the argument and return types, the
/// generics, the receiver, the `key` expression and the ignored arguments (FNV-1a, stable across
/// compilers and platforms, unlike `std`'s hasher).
pub(crate) fn signature_hash(options: &Options, function: &Function) -> u64 {
    let sig = &function.sig;
    let mut text = String::new();
    let generics = &sig.generics;
    let where_clause = &generics.where_clause;
    text.push_str(&quote!(#generics #where_clause).to_string());
    if let Some(receiver) = &function.receiver {
        text.push_str(&format!(" self {}", receiver.to_token_stream()));
    }
    for arg in &function.args {
        let ty = &arg.ty;
        text.push_str(&format!(" , {}", quote!(#ty)));
    }
    let output = &sig.output;
    text.push_str(&format!(" {}", quote!(#output)));
    if let Some(key) = &options.key {
        let key = &key.value;
        text.push_str(&format!(" key {}", quote!(#key)));
    }
    if let Some(ignore) = &options.ignore {
        for name in &ignore.value {
            text.push_str(&format!(" ignore {name}"));
        }
    }
    // `refresh` or a stale window: values stored with their write time (`Stamped`), never read
    // as the plain values of the same function without them, nor the other way round.
    if options.fresh() {
        text.push_str(" stamped");
    }
    fnv1a(text.as_bytes())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr;
    use quote::quote;

    fn errors(args: TokenStream) -> Vec<String> {
        match attr::parse(args) {
            Ok(mut options) => {
                let mut errors = Errors::default();
                check(&mut options, &mut errors);
                match errors.finish() {
                    Ok(()) => Vec::new(),
                    Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
                }
            }
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn hash(args: TokenStream, item: TokenStream) -> u64 {
        let options = attr::parse(args).unwrap();
        let function = Function::from_item(syn::parse2(item).unwrap());
        signature_hash(&options, &function)
    }

    #[test]
    fn store_and_version_are_parsed() {
        let options = attr::parse(quote!(store = "shared", version = 2)).unwrap();
        assert_eq!(options.store.unwrap().value.name.value(), "shared");
        assert_eq!(options.version.unwrap().value, 2);
        assert!(errors(quote!(store = "shared", version = 7u32)).is_empty());
    }

    #[test]
    fn store_must_be_a_non_empty_string() {
        for value in [quote!(shared), quote!(1), quote!("")] {
            assert_eq!(
                errors(quote!(store = #value)),
                [
                    "`store` must be the name of a registered store as a string, e.g. \
                  `store = \"shared\"`"
                ],
                "for {value}"
            );
        }
    }

    #[test]
    fn version_must_be_a_positive_integer_with_a_store() {
        for value in [quote!(0), quote!("2"), quote!(1.5), quote!(-1), quote!(2u8)] {
            let found = errors(quote!(store = "s", version = #value));
            assert_eq!(found.len(), 1, "for {value}");
            assert!(found[0].starts_with("`version` must be a positive integer"));
        }
        assert_eq!(
            errors(quote!(version = 2)),
            ["`version` applies to keys in a store; add `store = \"name\"` or remove `version`"]
        );
        assert!(errors(quote!(store = "s", cache_field = c))[0]
            .starts_with("a store is shared by every instance and process"));
        let mut options = attr::parse(quote!(store = "s", cache_field = c, version = 3)).unwrap();
        check(&mut options, &mut Errors::default());
        assert!(options.store.is_none() && options.version.is_none());
        assert!(options.cache_field.is_some());
    }

    #[test]
    fn signature_hash_follows_types_and_key_not_names_or_bodies() {
        let base = hash(
            quote!(),
            quote!(
                fn f(a: u32) -> u64 {
                    1
                }
            ),
        );
        assert_eq!(
            base,
            hash(
                quote!(),
                quote!(
                    fn f(b: u32) -> u64 {
                        2
                    }
                )
            )
        );
        assert_ne!(
            base,
            hash(
                quote!(),
                quote!(
                    fn f(a: u64) -> u64 {
                        1
                    }
                )
            )
        );
        assert_ne!(
            base,
            hash(
                quote!(),
                quote!(
                    fn f(a: u32) -> u32 {
                        1
                    }
                )
            )
        );
        assert_ne!(
            base,
            hash(
                quote!(key = a),
                quote!(
                    fn f(a: u32) -> u64 {
                        1
                    }
                )
            )
        );
        assert_ne!(
            base,
            hash(
                quote!(),
                quote!(
                    fn f(&self, a: u32) -> u64 {
                        1
                    }
                )
            )
        );
        assert_ne!(
            base,
            hash(
                quote!(),
                quote!(
                    fn f<T>(a: u32) -> u64 {
                        1
                    }
                )
            )
        );
    }

    #[test]
    fn a_store_swaps_every_bound_trait_and_the_memo() {
        let expand =
            |args: TokenStream, item: TokenStream| crate::expand::memoize(args, item).to_string();
        // A static: the projections and the memo type.
        let text = expand(
            quote!(store = "s"),
            quote!(
                fn f(x: &str) -> u8 {
                    1
                }
            ),
        );
        for part in ["StoreKey >", "StoreValue >", "StoreMemo <", "store_memo ("] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(!text.contains("MemoKey"), "{text}");
        // A method, a generic function, a key expression: the checked traits, inferred.
        let text = expand(
            quote!(store = "s"),
            quote!(
                fn m(&self, x: u8) -> u8 {
                    x
                }
            ),
        );
        for part in [
            "StoreSelfKey < _ >",
            "StoreArgKey < _ >",
            "StoreCachedValue < _ >",
            "store_memo_by_type (",
            "StoredKey",
            "type_name :: < Self > ()",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(!text.contains("__private :: ArgKey"), "{text}");
        assert!(!text.contains("__private :: memo_by_type"), "{text}");
        let text = expand(
            quote!(store = "s"),
            quote!(
                fn g<T: 'static>(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(text.contains("tag_of (g :: uncached :: < T >)"), "{text}");
        assert!(text.contains("type_name :: < T > ()"), "{text}");
        let text = expand(
            quote!(store = "s", key = x % 2),
            quote!(
                fn k(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(text.contains("StoreKeyExpr < _ >"), "{text}");
    }

    #[test]
    fn an_async_fn_with_a_store_awaits_its_lookups_and_writes() {
        let expand =
            |args: TokenStream, item: TokenStream| crate::expand::memoize(args, item).to_string();
        let text = expand(
            quote!(store = "s"),
            quote!(
                async fn f(x: u8) -> u8 {
                    x
                }
            ),
        );
        for part in [
            "__memo . cache . get_by_async (",
            ". await",
            "store_write_behind (& __memo . cache)",
            "__memo_write . flush () . await",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        let text = expand(
            quote!(store = "s", single_flight = false, key = x),
            quote!(
                async fn g(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(text.contains("__memo . cache . get_async (&"), "{text}");
        assert!(text.contains("store_since (& __memo_write"), "{text}");
        // A sync function, or an async one without a store, keeps the direct calls.
        let text = expand(
            quote!(),
            quote!(
                async fn h(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(!text.contains("get_by_async"), "{text}");
        let text = expand(
            quote!(store = "s"),
            quote!(
                fn k(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(!text.contains("get_by_async"), "{text}");
    }

    #[test]
    fn local_and_local_ttl_are_parsed_and_need_a_store() {
        let options = attr::parse(quote!(store = "s", local = 1000, local_ttl = "5s")).unwrap();
        assert_eq!(options.local.unwrap().value, 1000);
        assert_eq!(
            options.local_ttl.unwrap().value,
            std::time::Duration::from_secs(5)
        );
        for value in [
            quote!(0),
            quote!("10"),
            quote!(1.5),
            quote!(-1),
            quote!(4294967296),
        ] {
            let found = errors(quote!(store = "s", local = #value));
            assert_eq!(found.len(), 1, "for {value}");
            assert!(
                found[0].starts_with("`local` must be a positive integer"),
                "{found:?}"
            );
        }
        assert!(errors(quote!(store = "s", local = 1, local_ttl = "0s"))[0]
            .starts_with("`local_ttl` must be longer than zero"));
        assert!(errors(quote!(local = 10))[0].starts_with("`local` keeps values of a store"));
        assert_eq!(errors(quote!(local = 10, local_ttl = "1s")).len(), 1);
        assert!(errors(quote!(store = "s", local_ttl = "1s"))[0]
            .starts_with("`local_ttl` is how long the near cache keeps a value"));
        let mut options = attr::parse(quote!(store = "s", cache_field = c, local = 3)).unwrap();
        check(&mut options, &mut Errors::default());
        assert!(options.local.is_none());
    }

    #[test]
    fn a_near_cache_keeps_what_the_store_lookup_finds() {
        let expand =
            |args: TokenStream, item: TokenStream| crate::expand::memoize(args, item).to_string();
        let text = expand(
            quote!(store = "s", local = 10, local_ttl = "250ms"),
            quote!(
                fn f(x: &str) -> u8 {
                    1
                }
            ),
        );
        for part in [
            "store_memo_local (",
            "10usize",
            "from_nanos (250000000u64)",
            "__memo . cache . get_by_keeping (",
            "InMemoryLocal",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        let text = expand(
            quote!(store = "s", local = 10, key = x),
            quote!(
                async fn g(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(
            text.contains("get_by_keeping_async (& __memo_key"),
            "{text}"
        );
        assert!(
            text.contains("from_nanos (60000000000u64)"),
            "the default: {text}"
        );
        let text = expand(
            quote!(store = "s"),
            quote!(
                fn h(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(!text.contains("keeping"), "{text}");
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
