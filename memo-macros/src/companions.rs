//! The companions of a memoized function, typed with its own arguments: `uncached` (the body),
//! `cache_info`, `cache_clear`, `cache_invalidate`, `cache_prime`, and the hidden accessor of its
//! memo. Beside a free function `f` they are associated functions of an uninhabited `enum f {}`
//! (types and functions live in different namespaces, so `f::cache_info()` reads as Python's
//! `f.cache_info()`); unlike a module, an `impl` sees everything the function sees, items local
//! to a block included, with the same paths, so nothing is rewritten. Beside a method `m` they
//! are associated functions `m_cache_info`, ... of `Self`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Attribute, GenericParam, Generics};

use crate::ast::{Function, Place};
use crate::attr::Options;
use crate::expand::{self, Plan, Storage};

/// Every companion of `plan`'s function, in the place its function stands.
pub(crate) fn expand(plan: &Plan<'_>) -> TokenStream {
    let items = [
        storage(plan),
        uncached(plan),
        info_and_clear(plan),
        invalidate(plan),
        prime(plan),
    ];
    let beside = static_memo(plan);
    let placed = place(plan.function, quote!(#(#items)*));
    quote!(#beside #placed)
}

/// The `static` beside a [`Storage::Static`] function that holds its memo.
fn static_memo(plan: &Plan<'_>) -> TokenStream {
    let Storage::Static = plan.storage else {
        return TokenStream::new();
    };
    let memo = &plan.memo;
    let name = plan.static_ident();
    let (key, value) = (plan.key_type(), plan.value_type());
    let memo_type = plan.memo_of(&key, &value);
    let new_memo = match plan.fresh() {
        true if plan.options.store.is_some() => plan.fresh_store_memo(plan.params()),
        true => {
            let (name, params, freshness) = (plan.name(), plan.params(), plan.freshness());
            quote!(#memo::__private::Memo::fresh(#name, #params, #freshness))
        }
        false => plan.new_memo(plan.params()),
    };
    let new_memo = crate::expand::weighed(plan, new_memo);
    // Registered for `memo::caches()` by its initializer: nothing on the hit path.
    let path = plan.name();
    let static_type = plan.static_type(&memo_type);
    let cfgs = plan
        .function
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"));
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_upper_case_globals, clippy::type_complexity)]
        static #name: #static_type = #memo::__private::LazyLock::new(|| {
            #memo::__private::registered(#path, &#name, #new_memo)
        });
    }
}

/// The companions of a function that cannot be memoized as written: `cache_info()` and
/// `cache_clear()` over a cache that stays empty, so that their call sites keep resolving.
pub(crate) fn fallback(options: &Options, function: &Function) -> TokenStream {
    let plan = Plan::new(options, function);
    let memo = &plan.memo;
    let hidden = plan.hidden("__memo_cache");
    let (info, clear) = (plan.companion("cache_info"), plan.companion("cache_clear"));
    let name = function.sig.ident.to_string();
    let vis = &function.vis;
    let attrs: Vec<&Attribute> = kept_attrs(&function.attrs).collect();
    let params = plan.params();
    let items = quote! {
        #[doc(hidden)]
        #[allow(dead_code)]
        #(#attrs)*
        fn #hidden() -> &'static #memo::__private::Memo<(), ()> {
            static __MEMO: #memo::__private::LazyLock<#memo::__private::Memo<(), ()>> =
                #memo::__private::LazyLock::new(|| #memo::__private::Memo::new(#name, #params));
            &__MEMO
        }
        #[doc = " The statistics of the cache (empty: the function could not be memoized)."]
        #[must_use]
        #[allow(dead_code)]
        #(#attrs)*
        #vis fn #info() -> #memo::__private::CacheInfo {
            Self::#hidden().cache.info()
        }
        #[doc = " Empties the cache (empty: the function could not be memoized)."]
        #[allow(dead_code)]
        #(#attrs)*
        #vis fn #clear() {
            Self::#hidden().cache.reset();
        }
    };
    place(function, items)
}

/// `items` beside a method, or in the `impl` of a companion type beside a free function.
fn place(function: &Function, items: TokenStream) -> TokenStream {
    match function.place {
        Place::Associated => items,
        Place::Free => {
            let ident = &function.sig.ident;
            let vis = &function.vis;
            let attrs = kept_attrs(&function.attrs);
            let doc = format!(
                " Cache companions of the memoized function [`{0}`](fn@{0}): `{0}::cache_info()`, \
                 `{0}::cache_clear()`, `{0}::cache_invalidate(..)`, `{0}::cache_prime(.., value)` \
                 and `{0}::uncached(..)`.",
                syn::ext::IdentExt::unraw(ident)
            );
            let cfgs = function
                .attrs
                .iter()
                .filter(|attr| attr.path().is_ident("cfg"));
            quote! {
                #(#attrs)*
                #[doc = #doc]
                #[allow(non_camel_case_types)]
                #vis enum #ident {}
                #(#cfgs)*
                impl #ident {
                    #items
                }
            }
        }
    }
}

/// The function's attributes that its companions share: `cfg`, lint levels and `doc(hidden)`.
fn kept_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| {
        let path = attr.path();
        if ["cfg", "allow", "warn", "deny", "forbid"]
            .iter()
            .any(|name| path.is_ident(name))
        {
            return true;
        }
        match &attr.meta {
            syn::Meta::List(list) if list.path.is_ident("doc") => {
                list.tokens.to_string().trim() == "hidden"
            }
            _ => false,
        }
    })
}

/// The hidden accessors of the memo: nothing beside a `static`, else a `TypeCaches` per
/// function or a field of `self`, and an accessor over it whose key and value types are inferred
/// at its call from witnesses (see [`Plan::checked`]), with the bounds the cache needs.
fn storage(plan: &Plan<'_>) -> TokenStream {
    let memo = &plan.memo;
    let accessor = plan.hidden("__memo_cache");
    let caches = plan.hidden("__memo_caches");
    let (params, name) = (plan.params(), plan.name());
    let (key, value) = (
        Ident::new("__MemoKey", Span::call_site()),
        Ident::new("__MemoValue", Span::call_site()),
    );
    let generics = with_key_and_value(plan, &key, &value);
    let where_clause = plan.where_clause();
    let witnesses = {
        let (k, v) = (
            Ident::new("__memo_key", Span::mixed_site()),
            Ident::new("__memo_value", Span::mixed_site()),
        );
        let phantom = quote!(::core::marker::PhantomData);
        (
            quote!(#k: #phantom<#key>, #v: #phantom<#value>),
            quote!(#k, #v),
        )
    };
    let (mut witness_params, witness_args) = witnesses;
    let memo_type = plan.memo_of(&quote!(#key), &plan.stored_type(quote!(#value)));
    let tag = plan.tag();
    let weigher = expand::weigher_param(plan, &value);
    if let Some((name, ty)) = &weigher {
        witness_params.extend(quote!(, #name: #ty));
    }
    let by_type = match plan.options.store {
        _ if weigher.is_some() => {
            let weighed = weighed_by_type(plan, &weigher.as_ref().unwrap().0);
            quote!({ let _ = (#witness_args); #weighed })
        }
        Some(_) => {
            let new_memo = match plan.fresh() {
                true => plan.fresh_store_memo(quote!(__memo_params)),
                false => plan.new_memo(quote!(__memo_params)),
            };
            quote!(#memo::__private::store_memo_by_type(
                Self::#caches(), || #name, |__memo_params| #new_memo, #tag, #witness_args,
            ))
        }
        None if plan.fresh() => {
            let freshness = plan.freshness();
            quote!(#memo::__private::memo_by_type_with(
                Self::#caches(), || #name,
                |__memo_name, __memo_params| #memo::__private::Memo::fresh(
                    __memo_name, __memo_params, #freshness,
                ),
                #tag, #witness_args,
            ))
        }
        None => {
            quote!(#memo::__private::memo_by_type(Self::#caches(), || #name, #tag, #witness_args))
        }
    };
    let attrs = quote!(#[doc(hidden)] #[allow(dead_code, clippy::type_complexity)]);
    let kept = kept_attrs(&plan.function.attrs);
    let attrs = quote!(#attrs #(#kept)*);
    match &plan.storage {
        Storage::Static => TokenStream::new(),
        Storage::ByType => quote! {
            #attrs
            fn #caches() -> &'static #memo::__private::TypeCaches {
                static __MEMO_CACHES: #memo::__private::LazyLock<#memo::__private::TypeCaches> =
                    #memo::__private::LazyLock::new(|| #memo::__private::TypeCaches::new(#params));
                &__MEMO_CACHES
            }
            #attrs
            fn #accessor #generics(#witness_params) -> &'static #memo_type #where_clause {
                #by_type
            }
        },
        Storage::Field(field) => {
            let field_accessor = plan.hidden("__memo_field");
            // With `refresh` or a stale window, a memo shared with the background refreshes.
            let (field_memo, in_field) = match plan.fresh() {
                true => {
                    let freshness = plan.freshness();
                    (
                        quote!(#memo::__private::FieldMemo<#key, #value>),
                        quote!(#memo::__private::fresh_memo_in_field::<__MemoOwner, _, _, _>(
                            Self::#field_accessor(self), || #name, #params, #freshness, #witness_args,
                        )),
                    )
                }
                false => (
                    memo_type.clone(),
                    quote!(#memo::__private::memo_in_field::<__MemoOwner, _, _, _>(
                        Self::#field_accessor(self), || #name, #params, #witness_args,
                    )),
                ),
            };
            let field_span = quote_spanned!(field.span()=> &self.#field);
            let in_field = match &weigher {
                Some((weigher, _)) => {
                    let make = match plan.fresh() {
                        true => {
                            let freshness = plan.freshness();
                            quote!(|__memo_name, __memo_params| #memo::__private::FieldMemo::new(
                                __memo_name, __memo_params, #freshness,
                            ))
                        }
                        false => quote!(|__memo_name, __memo_params| {
                            #memo::__private::Memo::new(__memo_name, __memo_params)
                        }),
                    };
                    quote!({
                        let _ = (#witness_args);
                        #memo::__private::weighed_memo_in_field::<__MemoOwner, _, _, _>(
                            Self::#field_accessor(self), || #name, #params, #make, #weigher,
                        )
                    })
                }
                None => in_field,
            };
            quote! {
                #attrs
                fn #field_accessor(&self) -> &#memo::__private::InstanceCache {
                    #field_span
                }
                #attrs
                fn #accessor #generics(&self, #witness_params) -> &#field_memo #where_clause {
                    struct __MemoOwner;
                    #in_field
                }
            }
        }
    }
}

/// The memo of a `maxweight` function kept per instantiation: made as without it (with a
/// store, by `store_memo_by_type`), then bounded by the accessor's `weigher`.
fn weighed_by_type(plan: &Plan<'_>, weigher: &Ident) -> TokenStream {
    let memo = &plan.memo;
    let caches = plan.hidden("__memo_caches");
    let (name, tag) = (plan.name(), plan.tag());
    let params = quote!(__memo_params);
    if plan.options.store.is_some() {
        let new_memo = plan.new_memo(params.clone());
        let new_memo = expand::weighed_by(plan, new_memo, params.clone(), quote!(#weigher));
        let witnesses = quote!(::core::marker::PhantomData, ::core::marker::PhantomData);
        return quote!(#memo::__private::store_memo_by_type(
            Self::#caches(), || #name, |#params| #new_memo, #tag, #witnesses,
        ));
    }
    let make = match plan.fresh() {
        true => {
            let freshness = plan.freshness();
            quote!(#memo::__private::Memo::fresh(__memo_name, #params, #freshness))
        }
        false => quote!(#memo::__private::Memo::new(__memo_name, #params)),
    };
    quote!(#memo::__private::weighed_memo_by_type(
        Self::#caches(), || #name, #tag, |__memo_name, #params| #make, #weigher,
    ))
}

/// The function's generics with the memo's key and value types as two more type parameters,
/// bounded as the cache needs them (with a store, also as serde does: `StoredKey`,
/// `StoredValue`).
fn with_key_and_value(plan: &Plan<'_>, key: &Ident, value: &Ident) -> TokenStream {
    let mut generics: Generics = plan.function.sig.generics.clone();
    if plan.options.store.is_some() {
        let memo = &plan.memo;
        generics.params.push(GenericParam::Type(syn::parse_quote!(
            #key: #memo::__private::StoredKey
        )));
        generics.params.push(GenericParam::Type(syn::parse_quote!(
            #value: #memo::__private::StoredValue
        )));
        let (params, _, _) = generics.split_for_impl();
        return quote!(#params);
    }
    generics.params.push(GenericParam::Type(syn::parse_quote!(
        #key: ::core::hash::Hash + ::core::cmp::Eq + ::core::marker::Send + ::core::marker::Sync + 'static
    )));
    generics.params.push(GenericParam::Type(syn::parse_quote!(
        #value: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static
    )));
    let (params, _, _) = generics.split_for_impl();
    quote!(#params)
}

/// `uncached`: the user's body under the user's signature.
fn uncached(plan: &Plan<'_>) -> TokenStream {
    let function = plan.function;
    let sig = &function.sig;
    let name = plan.companion("uncached");
    let vis = &function.vis;
    let attrs = kept_attrs(&function.attrs);
    let (asyncness, generics, inputs, output) =
        (&sig.asyncness, &sig.generics, &sig.inputs, &sig.output);
    let where_clause = &sig.generics.where_clause;
    let block = &function.block;
    let doc = format!(
        " Calls the body of `{}` without looking at its cache or storing in it, as `functools`' \
         `__wrapped__`.",
        syn::ext::IdentExt::unraw(&sig.ident)
    );
    quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        #(#attrs)*
        #vis #asyncness fn #name #generics(#inputs) #output #where_clause #block
    }
}

/// `cache_info()` and `cache_clear()`.
fn info_and_clear(plan: &Plan<'_>) -> TokenStream {
    let memo = &plan.memo;
    let vis = &plan.function.vis;
    let attrs: Vec<&Attribute> = kept_attrs(&plan.function.attrs).collect();
    let (info, clear) = (plan.companion("cache_info"), plan.companion("cache_clear"));
    let caches = plan.hidden("__memo_caches");
    let (this, info_body, clear_body) = match &plan.storage {
        Storage::Static => {
            let name = plan.static_ident();
            (None, quote!(#name.info()), quote!(#name.clear()))
        }
        Storage::ByType => (
            None,
            quote!(Self::#caches().info()),
            quote!(Self::#caches().reset()),
        ),
        Storage::Field(_) => {
            let params = plan.params();
            let field_accessor = plan.hidden("__memo_field");
            let field_ref = quote!(Self::#field_accessor(self));
            (
                Some(quote!(&self)),
                quote!(#memo::__private::InstanceCache::__info(#field_ref, #params)),
                quote!(#memo::__private::InstanceCache::clear(#field_ref)),
            )
        }
    };
    let name = syn::ext::IdentExt::unraw(&plan.function.sig.ident);
    let per_type = match plan.storage {
        Storage::ByType => {
            " Summed over every instantiation (every `Self` type and type argument)."
        }
        _ => "",
    };
    let info_doc = format!(
        " The statistics of the cache of `{name}`: hits, misses, maxsize, current size, policy \
         and ttl, as `functools`' `cache_info()`.{per_type}"
    );
    let clear_doc = format!(
        " Empties the cache of `{name}` and zeroes its statistics, as `functools`' `cache_clear()`."
    );
    quote! {
        #[doc = #info_doc]
        #[must_use]
        #[allow(dead_code)]
        #(#attrs)*
        #vis fn #info(#this) -> #memo::__private::CacheInfo {
            #info_body
        }
        #[doc = #clear_doc]
        #[allow(dead_code)]
        #(#attrs)*
        #vis fn #clear(#this) {
            #clear_body
        }
    }
}

/// The signature parts shared by `cache_invalidate` and `cache_prime`: generics, then the
/// receiver and the arguments as the wrapper binds them, but only those the key is made of (an
/// ignored `client` is not asked for): all of them with `key = ...`, whose expression may read
/// any; the receiver when `self` is part of the key or holds the cache (`cache_field`).
fn typed_params(plan: &Plan<'_>) -> (TokenStream, TokenStream) {
    let function = plan.function;
    let all = plan.key_expr.is_some();
    let receiver = function
        .receiver
        .as_ref()
        .filter(|_| all || plan.self_keyed || matches!(plan.storage, Storage::Field(_)))
        .map(|receiver| quote!(#receiver,));
    let params = function
        .args
        .iter()
        .filter(|arg| all || plan.keyed.iter().any(|keyed| std::ptr::eq(*keyed, *arg)))
        .map(|arg| {
            let (name, ty) = (&arg.name, &arg.ty);
            quote!(#name: #ty)
        });
    let generics = &function.sig.generics;
    (quote!(#generics), quote!(#receiver #(#params,)*))
}

/// `let memo = ...;` and the owned key, for the companions that take the arguments.
fn memo_and_key(plan: &Plan<'_>) -> (TokenStream, Ident) {
    let locals = expand::Locals::new();
    let (memo, key) = (locals.memo, locals.key);
    let tokens = match plan.key_expr {
        Some(expr) => {
            let get = plan.memo_binding(&memo, Some(&key));
            let value = plan.key_expr_value(expr);
            quote!(let #key = #value; #get)
        }
        None => {
            let get = plan.memo_binding(&memo, None);
            let owned = plan.owned_key();
            quote!(#get let #key = #owned;)
        }
    };
    (tokens, memo)
}

/// `cache_invalidate(args) -> bool`: removes the entry of these arguments.
fn invalidate(plan: &Plan<'_>) -> TokenStream {
    let vis = &plan.function.vis;
    let attrs = kept_attrs(&plan.function.attrs);
    let name = plan.companion("cache_invalidate");
    let (generics, params) = typed_params(plan);
    let where_clause = plan.where_clause();
    let (lookup, memo) = memo_and_key(plan);
    let key = expand::Locals::new().key;
    // Through the flights: a computation of the key running now neither stores its value nor
    // is joined after this returns.
    let removed = quote!(#memo.invalidate(&#key));
    let doc = format!(
        " Removes the cached value of `{}` for these arguments; `true` when there was one.",
        syn::ext::IdentExt::unraw(&plan.function.sig.ident)
    );
    quote! {
        #[doc = #doc]
        #[allow(dead_code, unused_variables)]
        #(#attrs)*
        #vis fn #name #generics(#params) -> bool #where_clause {
            #lookup
            #removed
        }
    }
}

/// `cache_prime(args, value)`: stores `value` as the result of these arguments.
fn prime(plan: &Plan<'_>) -> TokenStream {
    let vis = &plan.function.vis;
    let attrs = kept_attrs(&plan.function.attrs);
    let name = plan.companion("cache_prime");
    let (generics, params) = typed_params(plan);
    let where_clause = plan.where_clause();
    let (lookup, memo) = memo_and_key(plan);
    let key = expand::Locals::new().key;
    let value = Ident::new("value", Span::mixed_site());
    let value_type = plan.function.output.cached_type();
    let primed = plan.primed_value(&value);
    let stored = plan.primed_stored(&memo, primed);
    let doc = format!(
        " Stores `value` as the result of `{}` for these arguments (replacing any), e.g. to warm \
         the cache at start-up.",
        syn::ext::IdentExt::unraw(&plan.function.sig.ident)
    );
    quote! {
        #[doc = #doc]
        #[allow(dead_code, unused_variables)]
        #(#attrs)*
        #vis fn #name #generics(#params #value: #value_type) #where_clause {
            #lookup
            #memo.cache.insert(#key, #stored);
        }
    }
}
