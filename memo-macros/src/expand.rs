//! Code generation from the checked model: the wrapper that looks the arguments up before running
//! the body, and the companion module that owns the cache.
//!
//! ```text
//! fn f(city: &str, day: u32) -> Result<f64, E> {        // the user's attributes, visibility
//!     fn __memo_body(city: &str, day: u32) -> Result<f64, E> { /* the user's body */ }
//!     let cache = &*f::__MEMO_CACHE;
//!     if let Some(v) = cache.get_by(&(city, &day), |k| /* k == (city, day) */) { return Ok(v); }
//!     let key = (city.to_owned(), day.clone());
//!     let ret = __memo_body(city, day);
//!     if let Ok(v) = &ret { cache.insert_if_absent(key, v.clone()); }
//!     ret
//! }
//! mod f { static __MEMO_CACHE: LazyLock<Cache<(String, u32), f64>>; fn cache_info(); fn cache_clear(); }
//! ```
//!
//! Every bound the cache needs (`Hash + Eq + Send` keys, `Clone + Send` values) is required by
//! one blanket impl per side, `__MemoKey` and `__MemoValue`, and every use of an argument's or of
//! the return type goes through `<T as __MemoKey>::...` spanned at that type. When a bound fails,
//! rustc reports it once at the type and normalizes the projection to an error type, which
//! silences every later use: one mistake, one error.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::{Attribute, Item, Type, Visibility};

use crate::ast::{self, Function, Output, Passing};
use crate::attr::{self, Maxsize, Options};
use crate::error::Errors;
use crate::{fallback, valid};

/// The whole expansion: options, model, checks, code, and every error found on the way.
pub(crate) fn memoize(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = attr::parse(args).unwrap_or_else(|error| {
        errors.push(error);
        Options::default()
    });
    let item = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(item)) => item,
        Ok(other) => {
            errors.push(not_a_function(&other));
            return with_errors(item, &errors);
        }
        Err(_) => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "`#[memoize]` can only be applied to a function",
            ));
            return with_errors(item, &errors);
        }
    };
    let function = Function::from_item(item);
    let expanded = match valid::check(&options, &function) {
        Ok(()) => expand(&options, &function),
        Err(error) => {
            errors.push(error);
            fallback::expand(&options, &function)
        }
    };
    with_errors(expanded, &errors)
}

fn with_errors(tokens: TokenStream, errors: &Errors) -> TokenStream {
    let errors = errors.to_compile_errors();
    quote!(#tokens #errors)
}

fn not_a_function(item: &Item) -> syn::Error {
    fn keyword(token: &impl ToTokens, ident: &impl ToTokens) -> TokenStream {
        quote!(#token #ident)
    }
    let (kind, tokens) = match item {
        Item::Struct(item) => ("a struct", keyword(&item.struct_token, &item.ident)),
        Item::Enum(item) => ("an enum", keyword(&item.enum_token, &item.ident)),
        Item::Union(item) => ("a union", keyword(&item.union_token, &item.ident)),
        Item::Trait(item) => ("a trait", keyword(&item.trait_token, &item.ident)),
        Item::Impl(item) => ("an impl block", item.impl_token.to_token_stream()),
        Item::Mod(item) => ("a module", keyword(&item.mod_token, &item.ident)),
        Item::Const(item) => ("a constant", keyword(&item.const_token, &item.ident)),
        Item::Static(item) => ("a static", keyword(&item.static_token, &item.ident)),
        Item::Type(item) => ("a type alias", keyword(&item.type_token, &item.ident)),
        Item::Use(item) => ("a `use` declaration", item.use_token.to_token_stream()),
        _ => ("this item", item.to_token_stream()),
    };
    let message =
        format!("`#[memoize]` can only be applied to a function with a body, not to {kind}");
    syn::Error::new_spanned(tokens, message)
}

/// The wrapper and its companion module.
pub(crate) fn expand(options: &Options, function: &Function) -> TokenStream {
    let wrapper = wrapper(options, function);
    let cache_type = cache_type(options, function, None);
    let module = companions(options, function, &cache_type, bound_traits());
    quote!(#wrapper #module)
}

/// `Cache<(<A as __MemoKey>::Key, ...), <V as __MemoValue>::Value>`, as named in the companion
/// module (`module` is `None`: types seen from the child module) or beside the function.
fn cache_type(options: &Options, function: &Function, module: Option<&Ident>) -> TokenStream {
    let seen = |ty: &Type| match module {
        Some(_) => ty.clone(),
        None => ast::from_child_module(ty),
    };
    let keys = function
        .args
        .iter()
        .map(|arg| projection(&seen(arg.keyed_type()), module, "__MemoKey", "Key"));
    let value = seen(function.output.cached_type());
    let value = projection(&value, module, "__MemoValue", "Value");
    let memo = options.crate_path();
    quote!(#memo::__private::Cache<(#(#keys,)*), #value>)
}

/// `<ty as module::Trait>::item`, spanned over `ty` so that rustc reports a failed bound at the
/// whole of the user's type.
fn projection(ty: &Type, module: Option<&Ident>, trait_name: &str, item: &str) -> TokenStream {
    let (first, last) = ast::span_range(ty);
    let trait_ident = Ident::new(trait_name, last);
    let item = Ident::new(item, last);
    let open = quote_spanned!(first=> <);
    let module = module.map(|module| quote_spanned!(last=> #module::));
    let close = quote_spanned!(last=> as #module #trait_ident>::#item);
    quote!(#open #ty #close)
}

/// `<ty as module::Trait>::method(args)`, the call spanned over `ty` as in [`projection`]: its
/// parentheses too, or rustc reports a failed bound at the attribute instead.
fn trait_call(
    ty: &Type,
    module: &Ident,
    trait_name: &str,
    method: &str,
    args: TokenStream,
) -> TokenStream {
    let path = projection(ty, Some(module), trait_name, method);
    let (_, last) = ast::span_range(ty);
    quote_spanned!(last=> #path(#args))
}

/// The hygienic names of the wrapper's locals, which no user identifier can capture.
struct Locals {
    body: Ident,
    cache: Ident,
    found: Ident,
    stored_key: Ident,
    key: Ident,
    ret: Ident,
    stored: Ident,
}

impl Locals {
    fn new() -> Self {
        let local = |name: &str| Ident::new(name, Span::mixed_site());
        Locals {
            body: local("__memo_body"),
            cache: local("__memo_cache"),
            found: local("__memo_found"),
            stored_key: local("__memo_k"),
            key: local("__memo_key"),
            ret: local("__memo_ret"),
            stored: local("__memo_stored"),
        }
    }
}

/// The function itself: the user's body as an inner function, behind a lookup.
fn wrapper(options: &Options, function: &Function) -> TokenStream {
    let Function {
        attrs,
        vis,
        sig,
        block,
        args,
        ..
    } = function;
    let locals = Locals::new();
    let Locals {
        body,
        cache,
        key,
        ret,
        ..
    } = &locals;
    let module = &sig.ident;
    let params = args.iter().map(|arg| {
        let (name, ty) = (&arg.name, &arg.ty);
        quote!(#name: #ty)
    });
    let borrowed = borrowed_args(function);
    let lookup = lookup(function, &borrowed, &locals);
    let to_keys = args.iter().zip(&borrowed).map(|(arg, borrowed)| {
        let to_key = borrowed.clone();
        trait_call(arg.keyed_type(), module, "__MemoKey", "to_key", to_key)
    });
    let names = args.iter().map(|arg| &arg.name);
    let store = store(function, &locals);
    let (abi, ident, inputs, output) = (&sig.abi, &sig.ident, &sig.inputs, &sig.output);
    let cache_type = cache_type(options, function, Some(module));
    quote! {
        #(#attrs)*
        #vis #abi fn #ident(#(#params),*) #output {
            fn #body(#inputs) #output #block
            // Typed first: the first use of each bound, hence the one rustc reports, is spanned
            // at the user's type.
            let #cache: &#cache_type = &*#module::__MEMO_CACHE;
            #lookup
            let #key = (#(#to_keys,)*);
            let #ret = #body(#(#names),*);
            #store
            #ret
        }
    }
}

/// Each argument as a reference to its keyed type: `city` for `city: &str`, `&day` for `day: u32`.
fn borrowed_args(function: &Function) -> Vec<TokenStream> {
    let borrow = |arg: &ast::Arg| {
        let name = &arg.name;
        match arg.passing {
            Passing::Shared { .. } => quote!(#name),
            Passing::ByValue | Passing::Exclusive => quote!(&#name),
        }
    };
    function.args.iter().map(borrow).collect()
}

/// Returns early with the cached value, if any; hashes the borrowed arguments, allocates nothing.
fn lookup(function: &Function, borrowed: &[TokenStream], locals: &Locals) -> TokenStream {
    let Locals {
        cache,
        found,
        stored_key,
        ..
    } = locals;
    let module = &function.sig.ident;
    let is_match = if function.args.is_empty() {
        quote!(|_| true)
    } else {
        let compares =
            function
                .args
                .iter()
                .zip(borrowed)
                .enumerate()
                .map(|(i, (arg, borrowed))| {
                    let index = syn::Index::from(i);
                    let args = quote!(&#stored_key.#index, #borrowed);
                    trait_call(arg.keyed_type(), module, "__MemoKey", "key_eq", args)
                });
        quote!(|#stored_key| #(#compares)&&*)
    };
    let hit = match function.output {
        Output::Plain { .. } => quote!(#found),
        Output::Result { .. } => quote!(::core::result::Result::Ok(#found)),
        Output::Option { .. } => quote!(::core::option::Option::Some(#found)),
    };
    quote! {
        if let ::core::option::Option::Some(#found) = #cache.get_by(&(#(#borrowed,)*), #is_match) {
            return #hit;
        }
    }
}

/// Stores a clone of the returned value: all of it, its `Ok` or its `Some`.
fn store(function: &Function, locals: &Locals) -> TokenStream {
    let Locals {
        cache,
        key,
        ret,
        stored,
        ..
    } = locals;
    let module = &function.sig.ident;
    let value_type = function.output.cached_type();
    let clone = trait_call(
        value_type,
        module,
        "__MemoValue",
        "clone_value",
        quote!(#stored),
    );
    let insert = quote!(#cache.insert_if_absent(#key, #clone););
    match function.output {
        Output::Plain { .. } => quote!(let #stored = &#ret; #insert),
        Output::Result { .. } => {
            quote!(if let ::core::result::Result::Ok(#stored) = &#ret { #insert })
        }
        Output::Option { .. } => {
            quote!(if let ::core::option::Option::Some(#stored) = &#ret { #insert })
        }
    }
}

/// The traits whose blanket impls carry every bound the cache puts on keys and values.
fn bound_traits() -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(dead_code)]
        pub(super) trait __MemoKey {
            type Key;
            fn key_eq(key: &Self::Key, arg: &Self) -> bool;
            fn to_key(&self) -> Self::Key;
        }
        impl<T> __MemoKey for T
        where
            T: ?::core::marker::Sized + ::std::borrow::ToOwned + ::core::cmp::PartialEq,
            <T as ::std::borrow::ToOwned>::Owned:
                ::core::hash::Hash + ::core::cmp::Eq + ::core::marker::Send,
        {
            type Key = <T as ::std::borrow::ToOwned>::Owned;
            #[inline]
            fn key_eq(key: &Self::Key, arg: &Self) -> bool {
                ::core::borrow::Borrow::<T>::borrow(key) == arg
            }
            #[inline]
            fn to_key(&self) -> Self::Key {
                ::std::borrow::ToOwned::to_owned(self)
            }
        }
        #[doc(hidden)]
        #[allow(dead_code)]
        pub(super) trait __MemoValue {
            type Value;
            fn clone_value(&self) -> Self::Value;
        }
        impl<T: ::core::clone::Clone + ::core::marker::Send> __MemoValue for T {
            type Value = T;
            #[inline]
            fn clone_value(&self) -> T {
                ::core::clone::Clone::clone(self)
            }
        }
    }
}

/// The module beside the function: the cache, `cache_info()` and `cache_clear()`.
pub(crate) fn companions(
    options: &Options,
    function: &Function,
    cache_type: &TokenStream,
    support: TokenStream,
) -> TokenStream {
    let memo = options.crate_path();
    let ident = &function.sig.ident;
    let name = ident.unraw();
    let vis = &function.vis;
    let inner_vis = companion_visibility(vis);
    let attrs = function.attrs.iter().filter(|attr| kept_on_module(attr));
    let (maxsize, ttl) = (maxsize_tokens(options), ttl_tokens(options));
    let module_doc = format!(" Cache companions of the memoized function `{name}`.");
    let info_doc = format!(
        " The statistics of the cache of `{name}`: hits, misses, maxsize and current size, \
         as `functools`' `cache_info()`."
    );
    let clear_doc = format!(
        " Empties the cache of `{name}` and zeroes its statistics, as `functools`' \
         `cache_clear()`."
    );
    quote! {
        #(#attrs)*
        #[doc = #module_doc]
        #vis mod #ident {
            #[allow(unused_imports)]
            use super::*;
            #support
            #[doc(hidden)]
            #[allow(dead_code)]
            pub(super) static __MEMO_CACHE: #memo::__private::LazyLock<#cache_type> =
                #memo::__private::LazyLock::new(|| #memo::__private::memo_cache(#maxsize, #ttl));
            #[doc = #info_doc]
            #[must_use]
            #[allow(dead_code)]
            #inner_vis fn cache_info() -> #memo::__private::CacheInfo {
                __MEMO_CACHE.info()
            }
            #[doc = #clear_doc]
            #[allow(dead_code)]
            #inner_vis fn cache_clear() {
                __MEMO_CACHE.reset();
            }
        }
    }
}

/// The function's attributes that the module shares: `cfg`, lint `allow`s and `doc(hidden)`.
fn kept_on_module(attr: &Attribute) -> bool {
    let path = attr.path();
    if path.is_ident("cfg") || path.is_ident("allow") {
        return true;
    }
    match &attr.meta {
        syn::Meta::List(list) if list.path.is_ident("doc") => {
            list.tokens.to_string().trim() == "hidden"
        }
        _ => false,
    }
}

/// The visibility, inside the companion module, that gives its functions the function's own.
fn companion_visibility(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Public(token) => quote!(#token),
        Visibility::Inherited => quote!(pub(super)),
        Visibility::Restricted(restricted) if restricted.path.is_ident("crate") => {
            quote!(pub(crate))
        }
        Visibility::Restricted(restricted) => {
            let path = ast::path_from_child_module(&restricted.path);
            quote!(pub(in #path))
        }
    }
}

fn maxsize_tokens(options: &Options) -> TokenStream {
    let span = options
        .maxsize
        .as_ref()
        .map_or_else(Span::call_site, |maxsize| maxsize.span);
    match options.maxsize() {
        Maxsize::Bounded(n) => {
            let n = syn::LitInt::new(&n.to_string(), span);
            quote!(::core::option::Option::Some(#n))
        }
        Maxsize::Unbounded => quote!(::core::option::Option::None),
    }
}

fn ttl_tokens(options: &Options) -> TokenStream {
    let memo = options.crate_path();
    match &options.ttl {
        Some(ttl) => {
            let secs = syn::LitInt::new(&ttl.value.as_secs().to_string(), ttl.span);
            let nanos = syn::LitInt::new(&ttl.value.subsec_nanos().to_string(), ttl.span);
            quote!(::core::option::Option::Some(#memo::__private::Duration::new(#secs, #nanos)))
        }
        None => quote!(::core::option::Option::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_to_string(args: TokenStream, item: TokenStream) -> String {
        memoize(args, item).to_string()
    }

    #[test]
    fn expansion_is_a_wrapper_and_its_companion_module() {
        let out = memoize(
            quote!(maxsize = 4),
            quote!(
                pub fn f(x: &str) -> u8 {
                    1
                }
            ),
        );
        let file: syn::File = syn::parse2(out).unwrap();
        let kinds: Vec<&str> = file
            .items
            .iter()
            .map(|item| match item {
                Item::Fn(_) => "fn",
                Item::Mod(_) => "mod",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["fn", "mod"]);
        let text = quote!(#file).to_string();
        assert!(text.contains("Some (4)"), "{text}");
        assert!(
            text.contains("fn __memo_body (x : & str) -> u8 { 1 }"),
            "{text}"
        );
        assert!(!text.contains("compile_error"), "{text}");
    }

    #[test]
    fn bad_options_expand_with_the_defaults_plus_the_error() {
        let text = expand_to_string(
            quote!(maxsize = "big"),
            quote!(
                fn f(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(text.contains("fn __memo_body"), "{text}");
        assert!(text.contains("mod f"), "{text}");
        assert!(text.contains("Some (128)"), "{text}");
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
    }

    #[test]
    fn ttl_is_emitted_as_an_exact_duration() {
        let text = expand_to_string(
            quote!(ttl = "1h 1ns"),
            quote!(
                fn f() {}
            ),
        );
        assert!(text.contains("Duration :: new (3600 , 1)"), "{text}");
    }

    #[test]
    fn not_a_function_is_returned_untouched_with_the_error() {
        let item = quote!(
            struct S {
                x: u8,
            }
        );
        let text = expand_to_string(TokenStream::new(), item.clone());
        assert!(text.starts_with(&item.to_string()), "{text}");
        assert!(text.contains("not to a struct"), "{text}");
    }

    #[test]
    fn unsupported_functions_keep_their_body_and_companions() {
        let text = expand_to_string(
            TokenStream::new(),
            quote!(
                async fn f(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(
            text.starts_with("async fn f (x : u8) -> u8 { x }"),
            "{text}"
        );
        assert!(text.contains("mod f"), "{text}");
        assert!(!text.contains("__memo_body"), "{text}");
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
        // A method: no module can stand in an `impl` block.
        let text = expand_to_string(
            TokenStream::new(),
            quote!(
                fn f(&self) -> u8 {
                    1
                }
            ),
        );
        assert!(!text.contains("mod f"), "{text}");
    }

    #[test]
    fn companion_visibility_matches_the_function() {
        let cases = [
            (quote!(), "pub (super)"),
            (quote!(pub), "pub"),
            (quote!(pub(crate)), "pub (crate)"),
            (quote!(pub(super)), "pub (in super :: super)"),
            (quote!(pub(in crate::a)), "pub (in crate :: a)"),
            (quote!(pub(self)), "pub (in super)"),
        ];
        for (vis, expected) in cases {
            let vis: Visibility = syn::parse2(vis).unwrap();
            assert_eq!(companion_visibility(&vis).to_string(), expected);
        }
    }
}
