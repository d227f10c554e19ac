//! Code generation from the checked model: the wrapper that looks the key up before running the
//! body, and the companions that own the cache ([`crate::companions`]).
//!
//! ```text
//! fn f(city: &str, day: u32) -> Result<f64, E> {          // the user's attributes, visibility
//!     let memo = f::__memo_cache();                         // &'static Memo<(String, u32), f64>
//!     if let Some(v) = memo.cache.get_by(&(city, &day), |k| /* k == (city, day) */) { return Ok(v); }
//!     let leader = match memo.flights.join(&memo.cache, &(city, &day), ..) {
//!         Joined::Ready(v) => return Ok(v),                 // another caller computed it meanwhile
//!         Joined::Lead(leader) => leader,
//!     };
//!     let ret = leader.call(|| f::uncached(city, day));    // the user's body
//!     if let Ok(v) = &ret { leader.complete(&memo.cache, v.clone()); }
//!     ret
//! }
//! enum f {}                                                 // the companions' namespace
//! impl f { fn uncached(..); fn cache_info(); fn cache_clear(); fn cache_invalidate(..);
//!          fn cache_prime(.., value); fn __memo_cache() -> &'static Memo<..> }
//! ```
//!
//! A method's companions are associated functions beside it (`Self::f_cache_info()`), its body is
//! `Self::f_uncached(self, ..)`, and its caches are kept by type (one per key and value types,
//! and per instantiation of a generic function or, under `#[memoize]` on the block, of a
//! generic `impl`: see `Plan::tag`), or in a field of the instance (`cache_field`).
//!
//! Every bound the cache needs (`Hash + Eq + Send + Sync` keys, `Clone + Send + Sync` values) is checked once,
//! at the user's token. A static's memo is typed with `<T as MemoKey>::Key` and
//! `<T as MemoValue>::Value` projections spanned at each argument's or the return type, so a
//! failed bound is reported at the type and makes the static's type an error. Every other memo
//! (generic functions, methods, `key = ...`) takes its types from the checked traits
//! `ArgKey<_>`, `SelfKey<_>`, `KeyExpr<_>` and `CachedValue<_>` (see `Plan::checked`): one error
//! per mistake, and no bound on the wrapper that its call sites would have to meet.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::{Expr, Item, Path, Type};

use crate::ast::{self, Arg, Function, Output, Passing, Place};
use crate::attr::{self, Maxsize, Options};
use crate::error::Errors;
use crate::{companions, fallback, impl_block, valid};

/// The whole expansion: options, model, checks, code, and every error found on the way.
pub(crate) fn memoize(args: TokenStream, item: TokenStream) -> TokenStream {
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(item)) => function(args, item, &Context::default()),
        Ok(Item::Impl(item)) => impl_block::expand(args, item),
        parsed => {
            let mut errors = Errors::default();
            if let Err(error) = attr::parse(args) {
                errors.push(error);
            }
            errors.push(match parsed {
                Ok(other) => not_a_function(&other),
                Err(_) => syn::Error::new(
                    Span::call_site(),
                    "`#[memoize]` can only be applied to a function or an `impl` block",
                ),
            });
            with_errors(item, &errors)
        }
    }
}

/// What the attribute knows of a function beyond its tokens.
#[derive(Default)]
pub(crate) struct Context {
    /// The function is an item of an `impl` block (`#[memoize]` on the block said so).
    pub(crate) in_impl: bool,
    /// The block has type or const parameters.
    pub(crate) generic_impl: bool,
    /// The block's `crate = "..."`, for the functions that do not give their own.
    pub(crate) krate: Option<Path>,
}

/// The expansion of one function under `#[memoize(args)]`.
pub(crate) fn function(args: TokenStream, item: syn::ItemFn, context: &Context) -> TokenStream {
    let mut errors = Errors::default();
    let mut options = attr::parse(args).unwrap_or_else(|error| {
        errors.push(error);
        Options::default()
    });
    crate::store::check(&mut options, &mut errors);
    if let (None, Some(krate)) = (&options.krate, &context.krate) {
        options.krate = Some(attr::Spanned {
            value: krate.clone(),
            span: Span::call_site(),
        });
    }
    let mut function = Function::from_item(item);
    if context.in_impl {
        function.place = Place::Associated;
        function.generic_self = context.generic_impl;
    }
    if !context.in_impl && crate::context::attribute_in_trait_impl() {
        // The companions would be items of the trait impl, each one rustc error: one error
        // here instead, and the method unchanged, so the impl stays complete.
        errors.push(in_trait_impl(&function));
        let Function {
            attrs,
            vis,
            sig,
            block,
            ..
        } = &function;
        return with_errors(quote!(#(#attrs)* #vis #sig #block), &errors);
    }
    let expanded = match valid::check(&options, &function) {
        Ok(()) => expand(&Plan::new(&options, &function)),
        Err(error) => {
            errors.push(error);
            // Expand what the options allow, so call sites and companions keep resolving.
            let defaults = Options {
                krate: options.krate,
                ..Options::default()
            };
            fallback::expand(&defaults, &function)
        }
    };
    with_errors(expanded, &errors)
}

/// The error of `#[memoize]` on a method alone in a trait impl, saying what to write instead.
fn in_trait_impl(function: &Function) -> syn::Error {
    let name = function.sig.ident.unraw();
    syn::Error::new(
        Span::call_site(),
        format!(
            "`#[memoize]` on a method of a trait impl needs `#[memoize]` on the `impl` block too: \
             write `#[memoize] impl Trait for Type {{ #[memoize] fn {name}(..) }}`, which keeps \
             `{name}` in the trait impl and puts its companions (`Type::{name}_cache_info()`, \
             ...) on the type; alone, the attribute cannot add them to the trait impl"
        ),
    )
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
        Item::Mod(item) => ("a module", keyword(&item.mod_token, &item.ident)),
        Item::Const(item) => ("a constant", keyword(&item.const_token, &item.ident)),
        Item::Static(item) => ("a static", keyword(&item.static_token, &item.ident)),
        Item::Type(item) => ("a type alias", keyword(&item.type_token, &item.ident)),
        Item::Use(item) => ("a `use` declaration", item.use_token.to_token_stream()),
        _ => ("this item", item.to_token_stream()),
    };
    let message =
        format!("`#[memoize]` can only be applied to a function or an `impl` block, not to {kind}");
    syn::Error::new_spanned(tokens, message)
}

/// Where a function's memo lives.
pub(crate) enum Storage {
    /// One `static` of a named type: a free function that is not generic, keyed by arguments.
    Static,
    /// One memo per instantiation (per `Self` type for a method), found by `TypeId`.
    ByType,
    /// A field of `self` of type `InstanceCache`.
    Field(Ident),
}

/// Everything the generated code depends on, decided once from the options and the model.
pub(crate) struct Plan<'a> {
    pub(crate) options: &'a Options,
    pub(crate) function: &'a Function,
    pub(crate) memo: Path,
    pub(crate) storage: Storage,
    /// Whether `self` is part of the key.
    pub(crate) self_keyed: bool,
    /// The arguments that form the key, in order (none with `key = ...`).
    pub(crate) keyed: Vec<&'a Arg>,
    pub(crate) key_expr: Option<&'a Expr>,
    pub(crate) single_flight: bool,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(options: &'a Options, function: &'a Function) -> Self {
        let ignored = |name: &Ident| {
            options
                .ignore
                .as_ref()
                .is_some_and(|ignore| ignore.value.iter().any(|i| i == name))
        };
        let key_expr = options.key.as_ref().map(|key| &key.value);
        let storage = match (&options.cache_field, function.place) {
            (Some(field), _) if function.receiver.is_some() => Storage::Field(field.value.clone()),
            (_, Place::Free) if key_expr.is_none() && function.sig.generics.params.is_empty() => {
                Storage::Static
            }
            _ => Storage::ByType,
        };
        let self_ident = Ident::new("self", Span::call_site());
        let self_keyed = function.receiver.is_some()
            && key_expr.is_none()
            && !matches!(storage, Storage::Field(_))
            && !ignored(&self_ident);
        let keyed = match key_expr {
            Some(_) => Vec::new(),
            None => function.args.iter().filter(|a| !ignored(&a.name)).collect(),
        };
        Plan {
            options,
            function,
            memo: options.crate_path(),
            storage,
            self_keyed,
            keyed,
            key_expr,
            single_flight: options.single_flight(),
        }
    }

    /// A companion's name: `base` itself beside a free function (`f::cache_info`), prefixed by
    /// the method's name beside a method (`Self::next_cache_info`).
    pub(crate) fn companion(&self, base: &str) -> Ident {
        let ident = &self.function.sig.ident;
        match self.function.place {
            Place::Free => Ident::new(base, ident.span()),
            Place::Associated => format_ident!("{}_{}", ident.unraw(), base, span = ident.span()),
        }
    }

    /// A hidden companion's name.
    pub(crate) fn hidden(&self, base: &str) -> Ident {
        let ident = &self.function.sig.ident;
        match self.function.place {
            Place::Free => Ident::new(base, Span::call_site()),
            Place::Associated => format_ident!("{}_{}", base, ident.unraw()),
        }
    }

    /// What the companions are reached through: the companion type or `Self`.
    pub(crate) fn owner(&self) -> TokenStream {
        match self.function.place {
            Place::Free => self.function.sig.ident.to_token_stream(),
            Place::Associated => quote!(Self),
        }
    }

    /// What tells the instantiations of a generic function (or of a function of a generic
    /// `impl`) apart when their key and value types do not: the type of its body, instantiated
    /// (`f::uncached::<T>`); `()` for the others. A method keyed by `self` is told apart by its
    /// key already, and the function's attribute alone cannot see that an `impl` is generic.
    pub(crate) fn tag(&self) -> TokenStream {
        let memo = &self.memo;
        let generic = !self.function.turbofish_params().is_empty();
        let generic_self = self.function.generic_self && !self.self_keyed;
        let tag = if !generic && !generic_self {
            quote!(#memo::__private::Tag::none())
        } else {
            let owner = self.owner();
            let uncached = self.companion("uncached");
            let turbofish = self.turbofish();
            quote!(#memo::__private::tag_of(#owner::#uncached #turbofish))
        };
        // The attribute of one function cannot see whether its `impl` is generic: unless `self`
        // is in the key, tell `Self` types apart by name (which needs no `'static`).
        match self.function.place {
            Place::Associated if !self.self_keyed => quote!(#tag.with_self::<Self>()),
            _ => tag,
        }
    }

    /// `::<T, N>` for a generic function, else nothing.
    pub(crate) fn turbofish(&self) -> TokenStream {
        let params = self.function.turbofish_params();
        if params.is_empty() {
            TokenStream::new()
        } else {
            quote!(::<#(#params),*>)
        }
    }

    /// The key type of a [`Storage::Static`] memo: `(<A as MemoKey>::Key, ...)` (the other
    /// storages infer it from the checked traits, see [`Plan::checked`]).
    pub(crate) fn key_type(&self) -> TokenStream {
        let memo_key = self.bound_trait("MemoKey");
        let args = self
            .keyed
            .iter()
            .map(|arg| projection(arg.keyed_type(), memo_key.clone(), "Key"));
        quote!((#(#args,)*))
    }

    /// The cached value's type of a [`Storage::Static`] memo: `<T as MemoValue>::Value`.
    pub(crate) fn value_type(&self) -> TokenStream {
        let ty = self.function.output.cached_type();
        self.stored_type(projection(ty, self.bound_trait("MemoValue"), "Value"))
    }

    /// `<ty as Trait>::method(args)`: a [`checked_call`] when [`Plan::checked`], else a
    /// [`trait_call`].
    fn call(
        &self,
        ty: &Type,
        trait_path: TokenStream,
        method: &str,
        args: TokenStream,
    ) -> TokenStream {
        if self.checked() {
            checked_call(ty, trait_path, method, args)
        } else {
            trait_call(ty, trait_path, method, args)
        }
    }

    /// Whether the key and value types are inferred through the checked traits
    /// (`memo::__private::ArgKey<_>`, `SelfKey<_>`, `KeyExpr<_>`, `CachedValue<_>`) rather than
    /// written: every storage but a static, whose type must be written. A bound that fails is
    /// then one error at the user's token, and the types it would have given stay unknown, so
    /// that neither the wrapper, nor the companions, nor the call sites report it again.
    pub(crate) fn checked(&self) -> bool {
        !matches!(self.storage, Storage::Static)
    }

    /// The function's own `where` clause: nothing is added, so that call sites never see a bound
    /// of the cache.
    pub(crate) fn where_clause(&self) -> TokenStream {
        let existing = &self.function.sig.generics.where_clause;
        quote!(#existing)
    }

    /// The receiver's tokens when `self` is part of the key.
    fn receiver_self(&self) -> Option<Span> {
        let receiver = self.function.receiver.as_ref()?;
        self.self_keyed.then(|| {
            let (first, _) = ast::span_range(receiver);
            first
        })
    }

    /// `Params { maxsize, ttl, policy }`.
    pub(crate) fn params(&self) -> TokenStream {
        let memo = &self.memo;
        let (maxsize, ttl) = (maxsize_tokens(self.options), ttl_tokens(self.options));
        let policy = self.options.policy_variant();
        let negative_ttl = duration_tokens(memo, self.negative());
        let ttl_jitter = jitter_tokens(self.options);
        quote! {
            #memo::__private::Params {
                maxsize: #maxsize,
                ttl: #ttl,
                ttl_jitter: #ttl_jitter,
                policy: #memo::__private::Policy::#policy,
                negative_ttl: #negative_ttl,
            }
        }
    }

    /// `err_ttl` of a `Result` function or `none_ttl` of an `Option` one: negative caching is on.
    pub(crate) fn negative(&self) -> Option<&attr::Spanned<std::time::Duration>> {
        match self.function.output {
            Output::Result { .. } => self.options.err_ttl.as_ref(),
            Output::Option { .. } => self.options.none_ttl.as_ref(),
            Output::Plain { .. } => None,
        }
    }

    /// What a call answered by the cached failure `failure` returns: `Err(e)` or `None`.
    pub(crate) fn negative_hit(&self, failure: &Ident) -> TokenStream {
        match self.function.output {
            Output::Result { .. } => quote!(::core::result::Result::Err(#failure.error())),
            _ => quote!(::core::option::Option::None),
        }
    }

    /// The failure to cache for the `Err(error)` or `None` the body returned; for an `Err`
    /// spanned at `err_ttl`, which needs the error to be `Clone + Send + Sync + 'static`.
    pub(crate) fn negative_failure(&self, error: &Ident) -> TokenStream {
        let memo = &self.memo;
        match (
            matches!(self.function.output, Output::Result { .. }),
            self.negative(),
        ) {
            (true, Some(err_ttl)) => {
                // Every token at `err_ttl`, where a failed `Clone` bound is then reported.
                let span = err_ttl.span;
                let arg = Ident::new("__memo_negative", Span::mixed_site().located_at(span));
                let call = respan(quote!(#memo::__private::negative_error), span);
                quote_spanned!(span=> { let #arg = #error; #call(#arg) })
            }
            _ => quote!(#memo::__private::Failure::new(&())),
        }
    }

    /// The function's name as the recursion panic gives it: `module::f` or `Type::method`.
    pub(crate) fn name(&self) -> TokenStream {
        let name = self.function.sig.ident.unraw().to_string();
        match self.function.place {
            Place::Free => quote!(::core::concat!(::core::module_path!(), "::", #name)),
            Place::Associated => quote!(::std::format!(
                "{}::{}",
                ::core::any::type_name::<Self>(),
                #name
            )),
        }
    }

    /// The failure a leader's `Err` (bound to `error`) hands to its waiters: the error itself,
    /// shared, when [`shared_return`](Plan::shared_return) allows it, else `None` (released).
    pub(crate) fn error_failure(&self, error: &Ident) -> TokenStream {
        let memo = &self.memo;
        match self.shared_return() {
            Some(_) => quote!({
                #[allow(unused_imports)]
                use #memo::__private::{ShareClone as _, ShareNothing as _};
                (&#memo::__private::ShareError(#error)).failure()
            }),
            None => quote!(::core::option::Option::None),
        }
    }

    /// The return type through which a waiter returns the error its leader shared: a `Result`
    /// whose type names no lifetime and no type parameter (autoref picks its impl by trait
    /// bounds, blind to lifetimes, so an error borrowing for `'a`, or an `E: Clone` not known to
    /// be `'static`, would be taken for `'static` and rejected later). Other errors release the
    /// waiters instead.
    pub(crate) fn shared_return(&self) -> Option<&Type> {
        let Output::Result { .. } = self.function.output else {
            return None;
        };
        let syn::ReturnType::Type(_, ty) = &self.function.sig.output else {
            return None;
        };
        fn has_lifetime(tokens: TokenStream) -> bool {
            tokens.into_iter().any(|tree| match tree {
                proc_macro2::TokenTree::Punct(punct) => punct.as_char() == '\'',
                proc_macro2::TokenTree::Group(group) => has_lifetime(group.stream()),
                _ => false,
            })
        }
        // A type parameter may not be `'static` either: `E: Clone` alone would pass the probe
        // and fail later. Those of the function and, under `#[memoize]` on a generic block, any.
        fn names_any(tokens: TokenStream, params: &[String]) -> bool {
            tokens.into_iter().any(|tree| match tree {
                proc_macro2::TokenTree::Ident(ident) => params.contains(&ident.to_string()),
                proc_macro2::TokenTree::Group(group) => names_any(group.stream(), params),
                _ => false,
            })
        }
        let params: Vec<String> = self
            .function
            .sig
            .generics
            .type_params()
            .map(|param| param.ident.to_string())
            .collect();
        let tokens = ty.to_token_stream();
        let shared = !has_lifetime(tokens.clone())
            && !names_any(tokens, &params)
            && !self.function.generic_self;
        shared.then_some(&**ty)
    }

    /// The hidden `static` that holds the memo of a [`Storage::Static`] function, beside it.
    pub(crate) fn static_ident(&self) -> Ident {
        format_ident!("__memo_cache_{}", self.function.sig.ident.unraw())
    }

    /// `let memo = ...;`, `key` being the computed key's name with `key = ...`.
    /// A static's type that fails a bound becomes an error type, which silences every later use
    /// (one mistake, one error); the other storages go through an accessor whose key and value
    /// types are inferred from witnesses of the checked traits ([`Plan::checked`]).
    pub(crate) fn memo_binding(&self, memo: &Ident, key: Option<&Ident>) -> TokenStream {
        if let Storage::Static = self.storage {
            let name = self.static_ident();
            return quote!(let #memo = &*#name;);
        }
        let path = &self.memo;
        let owner = self.owner();
        let accessor = self.hidden("__memo_cache");
        let params = self.function.turbofish_params();
        let turbofish = (!params.is_empty()).then(|| quote!(::<#(#params,)* _, _>));
        let this = matches!(self.storage, Storage::Field(_)).then(|| quote!(self,));
        let key_witness = match key {
            Some(key) => {
                let span = self
                    .options
                    .key
                    .as_ref()
                    .map_or_else(Span::call_site, |k| k.span);
                quote_spanned!(span=> #path::__private::witness_of(&#key))
            }
            None => {
                let owned = self.owned_key();
                quote!(#path::__private::key_witness(|| #owned))
            }
        };
        let ty = self.function.output.cached_type();
        let stored = Ident::new("__memo_stored", Span::mixed_site());
        let clone = self.call(
            ty,
            self.checked_trait("CachedValue"),
            "clone_value",
            quote!(#stored),
        );
        let value_witness = quote!(#path::__private::value_witness(|#stored: &#ty| #clone));
        let weigher = weigher(self).map(|weigher| quote!(, #weigher));
        quote!(let #memo = #owner::#accessor #turbofish(#this #key_witness, #value_witness #weigher);)
    }

    /// `key = expr` as the stored key, through `KeyExpr<_>` spanned at the expression.
    pub(crate) fn key_expr_value(&self, expr: &Expr) -> TokenStream {
        let (first, last) = ast::span_range(expr);
        let path = respan(self.checked_trait("KeyExpr"), last);
        let open = quote_spanned!(first=> <);
        let call = quote_spanned!(last=> _ as #path>::into_key);
        let args = quote_spanned!(last=> (#expr));
        quote!(#open #call #args)
    }

    /// The call of the body: `f::uncached(a, b)` or `Self::m_uncached(self, a, b)`.
    pub(crate) fn body_call(&self) -> TokenStream {
        let owner = self.owner();
        let uncached = self.companion("uncached");
        let turbofish = self.turbofish();
        let this = self.function.receiver.as_ref().map(|_| quote!(self,));
        let names = self.function.args.iter().map(|arg| &arg.name);
        quote!(#owner::#uncached #turbofish(#this #(#names),*))
    }

    /// Each keyed argument as a reference to what a lookup hashes, `self` first when keyed:
    /// `self` is hashed as its key, so that only `Self: SelfKey<_>` is required of `Self`.
    pub(crate) fn borrowed_keys(&self) -> Vec<TokenStream> {
        if !self.checked() {
            return self.key_args();
        }
        let probe = self.checked_trait("ArgKey");
        let skip = usize::from(self.self_keyed);
        let args = self
            .keyed
            .iter()
            .zip(self.key_args().into_iter().skip(skip));
        let args = args
            .map(|(arg, borrowed)| self.call(arg.keyed_type(), probe.clone(), "probe", borrowed));
        let this = self.key_args().into_iter().take(skip);
        this.chain(args).collect()
    }

    /// Each keyed argument as a reference to its keyed type, `self` first when keyed: what
    /// `to_key` and `key_eq` take.
    fn key_args(&self) -> Vec<TokenStream> {
        let this = self.receiver_self().map(|span| {
            let ty: Type = syn::parse_quote_spanned!(span=> Self);
            self.call(&ty, self.checked_trait("SelfKey"), "as_key", quote!(self))
        });
        let args = self.keyed.iter().map(|arg| {
            let name = &arg.name;
            match arg.passing {
                Passing::Shared { .. } => quote!(#name),
                Passing::ByValue | Passing::Exclusive => quote!(&#name),
            }
        });
        this.into_iter().chain(args).collect()
    }

    /// `(<A as MemoKey>::to_key(a), ...)`: the owned key, made from the borrowed arguments.
    pub(crate) fn owned_key(&self) -> TokenStream {
        let borrowed = self.key_args();
        let types = self.keyed_types();
        let parts = types
            .iter()
            .zip(&borrowed)
            .map(|((ty, trait_name), borrowed)| {
                self.call(ty, trait_name.clone(), "to_key", borrowed.clone())
            });
        quote!((#(#parts,)*))
    }

    /// `|k| <A as MemoKey>::key_eq(&k.0, a) && ...`: compares a stored key with the arguments.
    pub(crate) fn is_match(&self) -> TokenStream {
        let stored = Ident::new("__memo_k", Span::mixed_site());
        let borrowed = self.key_args();
        if borrowed.is_empty() {
            return quote!(|_| true);
        }
        let types = self.keyed_types();
        let compares =
            types
                .iter()
                .zip(&borrowed)
                .enumerate()
                .map(|(i, ((ty, trait_name), borrowed))| {
                    let index = syn::Index::from(i);
                    let args = quote!(&#stored.#index, #borrowed);
                    self.call(ty, trait_name.clone(), "key_eq", args)
                });
        quote!(|#stored| #(#compares)&&*)
    }

    /// The type and trait of each part of the key.
    fn keyed_types(&self) -> Vec<(Type, TokenStream)> {
        let this = self.receiver_self().map(|span| {
            let ty: Type = syn::parse_quote_spanned!(span=> Self);
            (ty, self.checked_trait("SelfKey"))
        });
        let arg_trait = if self.checked() {
            self.checked_trait("ArgKey")
        } else {
            self.bound_trait("MemoKey")
        };
        let args = self
            .keyed
            .iter()
            .map(|arg| (arg.keyed_type().clone(), arg_trait.clone()));
        this.into_iter().chain(args).collect()
    }

    /// The trait every use of the cached value goes through.
    fn value_trait(&self) -> TokenStream {
        if self.checked() {
            self.checked_trait("CachedValue")
        } else {
            self.bound_trait("MemoValue")
        }
    }

    /// A value given to `cache_prime`, as the cache stores it.
    pub(crate) fn primed_value(&self, value: &Ident) -> TokenStream {
        if !self.checked() {
            return quote!(#value);
        }
        let ty = self.function.output.cached_type();
        self.call(ty, self.value_trait(), "into_value", quote!(#value))
    }

    /// The expression a hit returns: the value, `Ok(value)` or `Some(value)`.
    pub(crate) fn hit(&self, found: &Ident) -> TokenStream {
        let found = if self.checked() {
            let ty = self.function.output.cached_type();
            self.call(ty, self.value_trait(), "from_value", quote!(#found))
        } else {
            quote!(#found)
        };
        match self.function.output {
            Output::Plain { .. } => quote!(#found),
            Output::Result { .. } => quote!(::core::result::Result::Ok(#found)),
            Output::Option { .. } => quote!(::core::option::Option::Some(#found)),
        }
    }

    /// `if let Ok(stored) = &ret { then }`, or the like for the return's shape.
    pub(crate) fn if_cacheable(
        &self,
        ret: &Ident,
        stored: &Ident,
        then: TokenStream,
    ) -> TokenStream {
        match self.function.output {
            Output::Plain { .. } => quote!({ let #stored = &#ret; #then }),
            Output::Result { .. } => {
                quote!(if let ::core::result::Result::Ok(#stored) = &#ret { #then })
            }
            Output::Option { .. } => {
                quote!(if let ::core::option::Option::Some(#stored) = &#ret { #then })
            }
        }
    }

    /// A clone of the cached value `stored`, through `MemoValue` (or `CachedValue<_>`) spanned
    /// at the return type.
    pub(crate) fn clone_value(&self, stored: &Ident) -> TokenStream {
        let ty = self.function.output.cached_type();
        self.call(ty, self.value_trait(), "clone_value", quote!(#stored))
    }
}

/// `<ty as Trait>::item`, spanned over `ty` so that rustc reports a failed bound at the whole of
/// the user's type.
pub(crate) fn projection(ty: &Type, trait_path: TokenStream, item: &str) -> TokenStream {
    let (first, last) = ast::span_range(ty);
    let item = Ident::new(item, last);
    let open = quote_spanned!(first=> <);
    let trait_path = respan(trait_path, last);
    let close = quote_spanned!(last=> as #trait_path>::#item);
    quote!(#open #ty #close)
}

/// `<ty as Trait>::method(args)`, the call spanned over `ty` as in [`projection`]: its
/// parentheses too, or rustc reports a failed bound at the attribute instead.
pub(crate) fn trait_call(
    ty: &Type,
    trait_path: TokenStream,
    method: &str,
    args: TokenStream,
) -> TokenStream {
    let path = projection(ty, trait_path, method);
    let (_, last) = ast::span_range(ty);
    quote_spanned!(last=> #path(#args))
}

/// `<ty as Trait<_>>::method(args)` for a checked trait ([`Plan::checked`]), spanned as
/// [`trait_call`] but with the macro's hygiene on every token, the user's type included (its
/// names still resolve where the user wrote them): rustc then reports the trait's failure
/// identically wherever it arises, so the duplicates fold into one error, and does not take the
/// call for a user's expression that borrowing would fix.
pub(crate) fn checked_call(
    ty: &Type,
    trait_path: TokenStream,
    method: &str,
    args: TokenStream,
) -> TokenStream {
    let ty: Type = syn::parse2(located(ty.to_token_stream())).unwrap_or_else(|_| ty.clone());
    let (_, last) = ast::span_range(&ty);
    let path = located(projection(&ty, trait_path, method));
    quote_spanned!(last=> #path(#args))
}

/// `tokens`, each with the macro's (mixed-site) hygiene at its own location.
fn located(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            let span = Span::mixed_site().located_at(tree.span());
            if let proc_macro2::TokenTree::Group(group) = &tree {
                let mut new = proc_macro2::Group::new(group.delimiter(), located(group.stream()));
                new.set_span(span);
                return proc_macro2::TokenTree::Group(new);
            }
            tree.set_span(span);
            tree
        })
        .collect()
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(group) = &tree {
                let mut new =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                new.set_span(span);
                return proc_macro2::TokenTree::Group(new);
            }
            tree.set_span(span);
            tree
        })
        .collect()
}

/// The wrapper and its companions.
pub(crate) fn expand(plan: &Plan<'_>) -> TokenStream {
    let wrapper = wrapper(plan);
    let companions = companions::expand(plan);
    quote!(#wrapper #companions)
}

/// The hygienic names of the wrapper's locals, which no user identifier can capture.
pub(crate) struct Locals {
    pub(crate) memo: Ident,
    pub(crate) found: Ident,
    pub(crate) key: Ident,
    pub(crate) leader: Ident,
    pub(crate) ret: Ident,
    pub(crate) stored: Ident,
}

impl Locals {
    pub(crate) fn new() -> Self {
        let local = |name: &str| Ident::new(name, Span::mixed_site());
        Locals {
            memo: local("__memo"),
            found: local("__memo_found"),
            key: local("__memo_key"),
            leader: local("__memo_leader"),
            ret: local("__memo_ret"),
            stored: local("__memo_stored"),
        }
    }
}

/// The function itself: a lookup in front of its body, which moved to `uncached`.
fn wrapper(plan: &Plan<'_>) -> TokenStream {
    let function = plan.function;
    let Function {
        attrs, vis, sig, ..
    } = function;
    let locals = Locals::new();
    let receiver = function
        .receiver
        .as_ref()
        .map(|receiver| quote!(#receiver,));
    let params = function.args.iter().map(|arg| {
        let (name, ty) = (&arg.name, &arg.ty);
        quote!(#name: #ty)
    });
    let (asyncness, abi, ident, output) = (&sig.asyncness, &sig.abi, &sig.ident, &sig.output);
    let (generics, where_clause) = (&sig.generics, plan.where_clause());
    let body = if plan.fresh() {
        crate::fresh::body(plan, &locals)
    } else if plan.single_flight {
        single_flight_body(plan, &locals)
    } else {
        plain_body(plan, &locals)
    };
    let store_check = plan.store_feature_check();
    quote! {
        #(#attrs)*
        #vis #asyncness #abi fn #ident #generics(#receiver #(#params),*) #output #where_clause {
            #store_check
            #body
        }
    }
}

/// `let memo = ...;` and the early return of a hit.
fn lookup(plan: &Plan<'_>, locals: &Locals) -> TokenStream {
    let Locals {
        memo, found, key, ..
    } = locals;
    let hit = plan.hit(found);
    // Only after a miss, and only when the function opted in: the hit path is unchanged.
    let negative_hit = plan.negative_hit(found);
    let negative_by_key = plan.negative().map(|_| {
        quote! {
            if let ::core::option::Option::Some(#found) = #memo.negative_get(&#key) {
                return #negative_hit;
            }
        }
    });
    let negative_by_probe = plan.negative().map(|_| {
        let borrowed = plan.borrowed_keys();
        let is_match = plan.is_match();
        quote! {
            if let ::core::option::Option::Some(#found) =
                #memo.negative_get_by(&(#(#borrowed,)*), #is_match)
            {
                return #negative_hit;
            }
        }
    });
    match plan.key_expr {
        Some(expr) => {
            let get_memo = plan.memo_binding(memo, Some(key));
            let value = plan.key_expr_value(expr);
            let lookup = plan.lookup_key(memo, key);
            quote! {
                let #key = #value;
                #get_memo
                if let ::core::option::Option::Some(#found) = #lookup {
                    return #hit;
                }
                #negative_by_key
            }
        }
        None => {
            let get_memo = plan.memo_binding(memo, None);
            let borrowed = plan.borrowed_keys();
            let is_match = plan.is_match();
            let probe = quote!(&(#(#borrowed,)*));
            // In memory without single-flight, the lookup's hash is kept for a miss's insert.
            let (looked, lookup) = if plan.hashing() {
                let looked = Ident::new("__memo_looked", Span::mixed_site());
                let hash = miss_hash();
                (
                    quote!(let (#looked, #hash) = #memo.get_by_hashing(#probe, #is_match);),
                    quote!(#looked),
                )
            } else {
                (quote!(), plan.lookup_by(memo, &probe, &is_match))
            };
            quote! {
                #get_memo
                #looked
                if let ::core::option::Option::Some(#found) = #lookup {
                    return #hit;
                }
                #negative_by_probe
            }
        }
    }
}

/// The hash a lookup keeps for the insert of a miss ([`Plan::hashing`]).
fn miss_hash() -> Ident {
    Ident::new("__memo_hash", Span::mixed_site())
}

/// Without single-flight: every caller that misses runs the body.
fn plain_body(plan: &Plan<'_>, locals: &Locals) -> TokenStream {
    let Locals {
        memo,
        key,
        ret,
        stored,
        ..
    } = locals;
    let lookup = lookup(plan, locals);
    let owned_key = plan.key_expr.is_none().then(|| {
        let owned = plan.owned_key();
        quote!(let #key = #owned;)
    });
    let call = plan.body_call();
    let call = match plan.function.sig.asyncness {
        Some(_) => quote!(#call.await),
        None => call,
    };
    let clone = plan.clone_value(stored);
    let epoch = Ident::new("__memo_epoch", Span::mixed_site());
    // Not stored when the key was invalidated while the body ran (see `Flights::store_since`).
    let insert = if plan.store_async() {
        // Awaited on the store's I/O threads, through a write-behind as a single-flight
        // leader's write: the epoch is checked and the write recorded under the flights' lock,
        // and an invalidation that comes during the write waits until it has ended.
        let path = &plan.memo;
        quote! {
            let __memo_write = #path::__private::store_write_behind(&#memo.cache);
            #memo.flights.store_since(&__memo_write, #epoch, #key, #clone);
            __memo_write.flush().await;
        }
    } else if plan.hashing() {
        let hash = miss_hash();
        quote!(#memo.store_since_hashed(#hash, #epoch, #key, #clone);)
    } else {
        quote!(#memo.flights.store_since(&#memo.cache, #epoch, #key, #clone);)
    };
    let mut store = plan.if_cacheable(ret, stored, insert);
    if plan.negative().is_some() {
        let error = Ident::new("__memo_error", Span::mixed_site());
        let failure = plan.negative_failure(&error);
        let pattern = match plan.function.output {
            Output::Result { .. } => quote!(if let ::core::result::Result::Err(#error) = &#ret),
            _ => quote!(),
        };
        store = quote! {
            #store else #pattern {
                #memo.store_failure_since(#epoch, #key, #failure);
            }
        };
    }
    quote! {
        #lookup
        #owned_key
        let #epoch = #memo.flights.epoch();
        let #ret = #call;
        #store
        #ret
    }
}

/// With single-flight: the first caller to miss a key runs the body, the others wait for it.
fn single_flight_body(plan: &Plan<'_>, locals: &Locals) -> TokenStream {
    let Locals {
        memo,
        found,
        key,
        leader,
        ret,
        ..
    } = locals;
    let memo_path = &plan.memo;
    let lookup = lookup(plan, locals);
    let is_async = plan.function.sig.asyncness.is_some();
    let join = match (plan.key_expr, is_async) {
        (Some(_), false) => quote!(#memo.flights.join_owned(&#memo.cache, #key)),
        (Some(_), true) => quote!(#memo.flights.join_owned_async(&#memo.cache, #key).await),
        (None, _) => {
            let borrowed = plan.borrowed_keys();
            let is_match = plan.is_match();
            let owned = plan.owned_key();
            let join = if is_async {
                quote!(join_async)
            } else {
                quote!(join)
            };
            let wait = is_async.then(|| quote!(.await));
            quote!(#memo.flights.#join(&#memo.cache, &(#(#borrowed,)*), #is_match, || #owned) #wait)
        }
    };
    let call = plan.body_call();
    let run = if is_async {
        quote!(#leader.run(#memo_path::__private::pin!(#call)).await)
    } else {
        quote!(#leader.call(|| #call))
    };
    let hit = plan.hit(found);
    let failed = Ident::new("__memo_failed", Span::mixed_site());
    let failed_arm = match plan.shared_return() {
        _ if plan.negative().is_some() => {
            let hit = plan.negative_hit(&failed);
            quote!(#memo_path::__private::Joined::Failed(#failed) => return #hit,)
        }
        Some(ty) => quote! {
            #memo_path::__private::Joined::Failed(#failed) => {
                #[allow(unused_imports)]
                use #memo_path::__private::{ShareNoReturn as _, ShareReturn as _};
                return (&#memo_path::__private::SharedReturn::<#ty>::new(#failed)).ret();
            }
        },
        None => quote!(#memo_path::__private::Joined::Failed(_) => ::core::unreachable!(),),
    };
    let store = leader_outcome(plan, locals);
    quote! {
        #lookup
        let #leader = match #join {
            #memo_path::__private::Joined::Ready(#found) => return #hit,
            #failed_arm
            #memo_path::__private::Joined::Lead(#leader) => #leader,
        };
        let #ret = #run;
        #store
        #ret
    }
}

/// The leader's end of its flight: `complete` with a value to cache, else `fail`, sharing an
/// error that is `Clone + Send + Sync + 'static` (chosen at compile time by autoref on
/// `ShareError`) and otherwise releasing the waiters to run the body each alone.
fn leader_outcome(plan: &Plan<'_>, locals: &Locals) -> TokenStream {
    let Locals {
        memo,
        leader,
        ret,
        stored,
        ..
    } = locals;
    let clone = plan.clone_value(stored);
    let complete = plan.complete_leader(memo, leader, &clone);
    let fail = |failure: TokenStream| quote!(#memo.flights.fail(#leader, #failure));
    match plan.function.output {
        Output::Plain { .. } => quote!({ let #stored = &#ret; #complete }),
        Output::Result { .. } => {
            let error = Ident::new("__memo_error", Span::mixed_site());
            let failure = plan.error_failure(&error);
            let fail = match plan.negative() {
                Some(_) => {
                    let failure = plan.negative_failure(&error);
                    quote!(#memo.fail_cached(#leader, #failure))
                }
                None => fail(failure),
            };
            quote! {
                match &#ret {
                    ::core::result::Result::Ok(#stored) => { #complete }
                    ::core::result::Result::Err(#error) => #fail,
                }
            }
        }
        Output::Option { .. } => {
            let fail = match plan.negative() {
                Some(_) => {
                    let failure = plan.negative_failure(&Ident::new("_", Span::call_site()));
                    quote!(#memo.fail_cached(#leader, #failure))
                }
                None => fail(quote!(::core::option::Option::None)),
            };
            quote! {
                match &#ret {
                    ::core::option::Option::Some(#stored) => { #complete }
                    ::core::option::Option::None => #fail,
                }
            }
        }
    }
}

pub(crate) fn maxsize_tokens(options: &Options) -> TokenStream {
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

/// `new_memo` with `maxweight`: `weighed(new_memo, params, weigher)` (see [`weigher`]), for the
/// memo of a static.
pub(crate) fn weighed(plan: &Plan<'_>, new_memo: TokenStream) -> TokenStream {
    match weigher(plan) {
        Some(weigher) => weighed_by(plan, new_memo, plan.params(), weigher),
        None => new_memo,
    }
}

/// `new_memo`, made with `params`, bounded by `weigher`: its in-memory cache, or its store's
/// near cache, made again with the weigher before any use.
pub(crate) fn weighed_by(
    plan: &Plan<'_>,
    new_memo: TokenStream,
    params: TokenStream,
    weigher: TokenStream,
) -> TokenStream {
    let memo = &plan.memo;
    quote!(#memo::__private::weighed(#new_memo, #params, #weigher))
}

/// With `maxweight`: `Weigher::new(max, <T as Weigh>::weight)`, the weigher of the cached type
/// `T` spanned at it, where a type that is not `Weigh` is reported (once: every use has the same
/// span). Made where the function's types are written (beside a static, at each use of an
/// accessor) and handed to the memo of each storage.
pub(crate) fn weigher(plan: &Plan<'_>) -> Option<TokenStream> {
    let maxweight = plan.options.maxweight.as_ref()?;
    let memo = &plan.memo;
    let ty = plan.function.output.cached_type();
    let max = syn::LitInt::new(&format!("{}u64", maxweight.value), maxweight.span);
    let span = syn::spanned::Spanned::span(ty);
    let weigh = quote_spanned!(span=> <#ty as #memo::Weigh>::weight);
    Some(quote!(#memo::__private::Weigher::new(#max, #weigh)))
}

/// The accessor's parameter that takes the weigher (with `maxweight`): its name and type.
pub(crate) fn weigher_param(plan: &Plan<'_>, value: &Ident) -> Option<(Ident, TokenStream)> {
    plan.options.maxweight.as_ref()?;
    let memo = &plan.memo;
    let name = Ident::new("__memo_weigher", Span::mixed_site());
    Some((name, quote!(#memo::__private::Weigher<#value>)))
}

/// `ttl_jitter = "10%"` as the fraction `0.1f64` (`0.0`: none).
fn jitter_tokens(options: &Options) -> TokenStream {
    let (value, span) = options
        .ttl_jitter
        .as_ref()
        .map_or((0.0, Span::call_site()), |j| (j.value, j.span));
    syn::LitFloat::new(&format!("{value:?}f64"), span).into_token_stream()
}

pub(crate) fn ttl_tokens(options: &Options) -> TokenStream {
    duration_tokens(&options.crate_path(), options.ttl.as_ref())
}

/// `Some(Duration::new(secs, nanos))` spanned at the option, or `None`.
fn duration_tokens(memo: &Path, ttl: Option<&attr::Spanned<std::time::Duration>>) -> TokenStream {
    match ttl {
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
    fn expansion_is_a_wrapper_its_companion_type_and_their_impl() {
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
                Item::Enum(_) => "enum",
                Item::Impl(_) => "impl",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["fn", "other", "enum", "impl"]);
        let text = quote!(#file).to_string();
        assert!(text.contains("Some (4)"), "{text}");
        assert!(
            text.contains("fn uncached (x : & str) -> u8 { 1 }"),
            "{text}"
        );
        assert!(text.contains("static __memo_cache_f"), "{text}");
        assert!(text.contains("join ("), "{text}");
        assert!(!text.contains("compile_error"), "{text}");
    }

    #[test]
    fn generic_functions_keep_a_memo_per_instantiation_of_their_body() {
        let text = expand_to_string(
            TokenStream::new(),
            quote!(
                fn f<T: 'static, const N: usize>(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(
            text.contains("tag_of (f :: uncached :: < T , N >)"),
            "{text}"
        );
        // Keyed by `self`, or not generic: the key and value types tell the memos apart.
        let text = expand_to_string(
            TokenStream::new(),
            quote!(
                fn m(&self, x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(!text.contains("tag_of"), "{text}");
        assert!(text.contains("Tag :: none ()"), "{text}");
        assert!(!text.contains("with_self"), "{text}");
        // Not keyed by `self`: the `Self` type's name tells the memos apart.
        let text = expand_to_string(
            quote!(ignore = [self]),
            quote!(
                fn m(&self, x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(
            text.contains("Tag :: none () . with_self :: < Self > ()"),
            "{text}"
        );
    }

    #[test]
    fn checked_storages_infer_their_types_and_bound_no_caller() {
        let text = expand_to_string(
            quote!(key = x % 2),
            quote!(
                fn m(&self, x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(text.contains("KeyExpr < _ >"), "{text}");
        assert!(text.contains("CachedValue < _ >"), "{text}");
        assert!(!text.contains("where"), "{text}");
        let text = expand_to_string(
            TokenStream::new(),
            quote!(
                fn m(&self, x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(text.contains("SelfKey < _ >"), "{text}");
        assert!(text.contains("ArgKey < _ >"), "{text}");
        assert!(!text.contains("where Self"), "{text}");
    }

    #[test]
    fn single_flight_can_be_turned_off() {
        let text = expand_to_string(
            quote!(single_flight = false),
            quote!(
                fn f(x: u8) -> u8 {
                    x
                }
            ),
        );
        // No join: only the epoch that keeps an invalidated value from being stored.
        assert!(!text.contains("join"), "{text}");
        assert!(text.contains("store_since"), "{text}");
    }

    #[test]
    fn negative_caching_is_looked_up_only_after_a_miss_and_only_when_asked_for() {
        let item = quote!(
            fn f(x: u8) -> Result<u8, String> {
                Ok(x)
            }
        );
        let off = expand_to_string(quote!(ttl = "5m"), item.clone());
        assert!(!off.contains("negative_get"), "{off}");
        assert!(!off.contains("fail_cached"), "{off}");
        assert!(
            off.contains("negative_ttl : :: core :: option :: Option :: None"),
            "{off}"
        );
        let on = expand_to_string(quote!(ttl = "5m", err_ttl = "5s"), item);
        let hit = on.find("cache . get_by").unwrap();
        let negative = on.find("negative_get_by").unwrap();
        assert!(hit < negative, "{on}");
        assert!(on.contains("fail_cached"), "{on}");
        assert!(on.contains("Duration :: new (5 , 0)"), "{on}");
    }

    #[test]
    fn methods_get_prefixed_associated_companions() {
        let text = expand_to_string(
            TokenStream::new(),
            quote!(
                fn next(&self, n: u32) -> u32 {
                    n
                }
            ),
        );
        for name in [
            "fn next (",
            "fn next_uncached (& self , n : u32)",
            "fn next_cache_info ()",
            "fn next_cache_clear ()",
            "fn next_cache_invalidate (& self , n : u32 ,)",
            "fn next_cache_prime (& self , n : u32 ,",
            "fn __memo_cache_next < __MemoKey",
        ] {
            assert!(text.contains(name), "{name} in {text}");
        }
        assert!(!text.contains("enum"), "{text}");
        assert!(text.contains("SelfKey"), "{text}");
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
        assert!(text.contains("fn uncached"), "{text}");
        assert!(text.contains("enum f"), "{text}");
        assert!(text.contains("Some (128)"), "{text}");
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
    }

    #[test]
    fn ttl_and_policy_are_emitted_exactly() {
        let text = expand_to_string(
            quote!(ttl = "1h 1ns", policy = "mru"),
            quote!(
                fn f() {}
            ),
        );
        assert!(text.contains("Duration :: new (3600 , 1)"), "{text}");
        assert!(text.contains("Policy :: Mru"), "{text}");
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
                const fn f(x: u8) -> u8 {
                    x
                }
            ),
        );
        assert!(
            text.starts_with("const fn f (x : u8) -> u8 { x }"),
            "{text}"
        );
        assert!(text.contains("enum f"), "{text}");
        assert!(!text.contains("fn uncached"), "{text}");
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
        // A method: its companions are associated functions.
        let text = expand_to_string(
            TokenStream::new(),
            quote!(
                fn f(&mut self) -> u8 {
                    1
                }
            ),
        );
        assert!(!text.contains("enum"), "{text}");
        assert!(text.contains("fn f_cache_info"), "{text}");
    }

    #[test]
    fn crate_option_replaces_every_path_to_the_facade() {
        let text = expand_to_string(
            quote!(crate = "my_memo"),
            quote!(
                fn f(x: &str) -> u8 {
                    1
                }
            ),
        );
        assert!(text.contains("my_memo :: __private"), "{text}");
        assert!(!text.contains(":: memo ::"), "{text}");
    }
}
