//! What can be expanded: checks the model, the options against each other and against the model.
//! Every problem is reported at its token, all of them at once.

use syn::visit::Visit;
use syn::{Lifetime, Type};

use crate::ast::{Arg, Function, Output, Passing};
use crate::attr::Options;
use crate::error::Errors;

/// `Ok` when [`crate::expand`] can expand `function` with `options`.
pub(crate) fn check(options: &Options, function: &Function) -> syn::Result<()> {
    let mut errors = Errors::default();
    check_signature(function, &mut errors);
    check_receiver(function, &mut errors);
    let ignored = |arg: &Arg| {
        options.key.is_some()
            || options
                .ignore
                .as_ref()
                .is_some_and(|ignore| ignore.value.contains(&arg.name))
    };
    for arg in &function.args {
        check_argument(arg, ignored(arg), &mut errors);
    }
    check_output(function, &mut errors);
    check_options(options, function, &mut errors);
    check_fresh(options, function, &mut errors);
    errors.finish()
}

fn check_signature(function: &Function, errors: &mut Errors) {
    let sig = &function.sig;
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            token,
            "a `const fn` cannot be memoized; remove `const`",
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            token,
            "`unsafe fn` cannot be memoized; memoize a safe function that wraps the unsafe call",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "variadic functions cannot be memoized; take a slice `&[T]` instead",
        ));
    }
    if let (Some(asyncness), Some(abi)) = (&sig.asyncness, &sig.abi) {
        errors.push(syn::Error::new_spanned(
            quote::quote!(#asyncness #abi),
            "an `async fn` cannot have an `extern` ABI",
        ));
    }
}

/// `&self` is supported; the other receivers are reported with what to write instead.
fn check_receiver(function: &Function, errors: &mut Errors) {
    let Some(receiver) = &function.receiver else {
        return;
    };
    let message = if receiver.colon_token.is_some() {
        "a memoized method takes `&self`; typed receivers such as `self: Arc<Self>` are not \
         supported, take `&self`"
    } else if receiver.reference.is_none() {
        "a memoized method takes `&self`, not `self`: the key would have to be cloned before \
         the method consumes it; take `&self`"
    } else if receiver.mutability.is_some() {
        "a memoized method cannot take `&mut self`, as a cached call would skip the mutation; \
         take `&self`"
    } else {
        return;
    };
    errors.push(syn::Error::new_spanned(receiver, message));
}

fn check_options(options: &Options, function: &Function, errors: &mut Errors) {
    check_jitter(options, errors);
    check_maxweight(options, errors);
    if let Some(err_ttl) = &options.err_ttl {
        if !matches!(function.output, Output::Result { .. }) {
            errors.push(syn::Error::new(
                err_ttl.span,
                "`err_ttl` caches the `Err` of a function returning `Result`; this function \
                 does not return a `Result`: remove `err_ttl` (for `Option`, `none_ttl` caches \
                 `None`)",
            ));
        }
    }
    if let Some(none_ttl) = &options.none_ttl {
        if !matches!(function.output, Output::Option { .. }) {
            errors.push(syn::Error::new(
                none_ttl.span,
                "`none_ttl` caches the `None` of a function returning `Option`; this function \
                 does not return an `Option`: remove `none_ttl` (for `Result`, `err_ttl` caches \
                 `Err`)",
            ));
        }
    }
    if let (Some(_), Some(ignore)) = (&options.key, &options.ignore) {
        errors.push(syn::Error::new(
            ignore.span,
            "`ignore` has no effect with `key`: the key is the `key` expression alone; remove \
             `ignore`",
        ));
    }
    if let Some(ignore) = &options.ignore {
        for name in &ignore.value {
            check_ignored_name(function, name, errors);
        }
    }
    if let Some(field) = &options.cache_field {
        if function.receiver.is_none() {
            errors.push(syn::Error::new(
                field.span,
                "`cache_field` keeps a method's cache in a field of `self`; this function has no \
                 `self`: remove `cache_field` for one cache shared by every call",
            ));
        } else if !function.turbofish_params().is_empty() {
            errors.push(syn::Error::new_spanned(
                &function.sig.generics.params,
                "a generic method cannot keep its cache in a field: each instantiation needs a \
                 cache of its own and the field holds one; remove `cache_field` for one cache \
                 per instantiation",
            ));
        }
    }
}

/// `refresh`, `stale_while_revalidate` and `stale_if_error`: against `ttl` and the return type
/// (they combine with every storage, a store, and `single_flight = false`).
fn check_fresh(options: &Options, function: &Function, errors: &mut Errors) {
    let given = [
        ("refresh", &options.refresh),
        ("stale_while_revalidate", &options.stale_while_revalidate),
        ("stale_if_error", &options.stale_if_error),
    ];
    if given.iter().all(|(_, option)| option.is_none()) {
        return;
    }
    let mut error = |span, message: String| errors.push(syn::Error::new(span, message));
    let Some(ttl) = &options.ttl else {
        for (name, option) in given {
            if let Some(option) = option {
                error(
                    option.span,
                    format!(
                        "`{name}` needs a `ttl`: entries without one never age; add e.g. \
                         `ttl = \"30s\"`"
                    ),
                );
            }
        }
        return;
    };
    if let Some(refresh) = &options.refresh {
        if refresh.value >= ttl.value {
            error(
                refresh.span,
                format!(
                    "`refresh` must be shorter than `ttl` ({}): an entry older than `refresh` is \
                     recomputed in the background while it is still served; for serving it past \
                     `ttl`, use `stale_while_revalidate`",
                    humantime::format_duration(ttl.value)
                ),
            );
        }
    }
    if let Some(stale) = &options.stale_if_error {
        if matches!(function.output, Output::Plain { .. }) {
            error(
                stale.span,
                "`stale_if_error` answers an `Err` or a `None` with the stale value; this \
                 function returns neither `Result` nor `Option`: remove `stale_if_error`"
                    .to_owned(),
            );
        }
    }
}

/// `ttl_jitter` spreads the deadlines of a ttl: it needs `ttl`. With `refresh` or a stale window
/// the refresh deadline and the ttl of each entry move by the same offset (in its stamp, also
/// in a store); with a store otherwise, each write's ttl is spread (and the near cache's).
fn check_jitter(options: &Options, errors: &mut Errors) {
    let Some(jitter) = &options.ttl_jitter else {
        return;
    };
    if options.ttl.is_none() {
        errors.push(syn::Error::new(
            jitter.span,
            "`ttl_jitter` spreads the expiry of a ttl, and this function has none: add \
             `ttl = \"30s\"` or remove `ttl_jitter`",
        ));
    }
}

/// `maxweight` bounds the values kept in this process: the cache of each storage, and with a
/// store its near cache (`local = N`), which it then needs.
fn check_maxweight(options: &Options, errors: &mut Errors) {
    let Some(maxweight) = &options.maxweight else {
        return;
    };
    let message = if options.store.is_some() && options.local.is_none() {
        "`maxweight` bounds the values kept in this process, and with a store that is its near \
         cache: add `local = 1000` (the near cache, which `maxweight` then bounds), or remove \
         `maxweight` (the store bounds itself: Redis' `maxmemory`, memcached's `-m`)"
    } else {
        return;
    };
    errors.push(syn::Error::new(maxweight.span, message));
}

fn check_ignored_name(function: &Function, name: &syn::Ident, errors: &mut Errors) {
    if name == "self" {
        if function.receiver.is_none() {
            errors.push(syn::Error::new_spanned(
                name,
                "`ignore = [self]` applies to methods; this function has no `self`",
            ));
        }
        return;
    }
    if function.args.iter().any(|arg| arg.name == *name) {
        return;
    }
    let names: Vec<String> = function
        .args
        .iter()
        .filter(|arg| !arg.name.to_string().starts_with("__memo_arg"))
        .map(|arg| format!("`{}`", arg.name))
        .collect();
    let message = if names.is_empty() {
        format!("`ignore` names `{name}`, which is not an argument of this function")
    } else {
        format!(
            "`ignore` names `{name}`, which is not an argument of this function; its arguments \
             are {}",
            names.join(", ")
        )
    };
    errors.push(syn::Error::new_spanned(name, message));
}

fn check_argument(arg: &Arg, ignored: bool, errors: &mut Errors) {
    if let Passing::Exclusive = arg.passing {
        errors.push(syn::Error::new_spanned(
            &arg.ty,
            "`&mut` arguments cannot be memoized, as a cached call would skip the mutation; \
             take the argument by value or by `&`",
        ));
        return;
    }
    if ignored {
        // Not part of the key: any type the function can take will do.
        return;
    }
    if let Some(float) = float_type(arg.keyed_type()) {
        let name = syn::ext::IdentExt::unraw(&arg.name);
        errors.push(syn::Error::new_spanned(
            &arg.ty,
            format!(
                "`{float}` cannot be part of the key: floats are neither `Hash` nor `Eq` (NaN is \
                 not equal to itself); key the call by the float's bits with \
                 `#[memoize(key = {name}.to_bits())]` (with the other arguments of the key in a \
                 tuple), or leave it out with `ignore = [{name}]`"
            ),
        ));
        return;
    }
    let mut finder = ProblemFinder::new(Position::Argument, errors);
    finder.visit_type(arg.keyed_type());
}

/// `f32` or `f64` when `ty` is one, by name.
fn float_type(ty: &Type) -> Option<String> {
    let Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let ident = path.path.get_ident()?;
    (ident == "f32" || ident == "f64").then(|| ident.to_string())
}

fn check_output(function: &Function, errors: &mut Errors) {
    if let syn::ReturnType::Type(_, ty) = &function.sig.output {
        ProblemFinder::new(Position::Return, errors).visit_type(ty);
    }
}

#[derive(Clone, Copy)]
enum Position {
    Argument,
    Return,
}

/// Finds what a cache cannot hold in an argument's key type or in the return type: `impl Trait`,
/// borrows (which the cache would outlive), `!`.
struct ProblemFinder<'e> {
    position: Position,
    /// Inside `Fn(&T)` sugar or `fn(&T)`, where elided lifetimes are higher-ranked, not borrows.
    in_fn_sugar: usize,
    errors: &'e mut Errors,
}

impl<'e> ProblemFinder<'e> {
    fn new(position: Position, errors: &'e mut Errors) -> Self {
        ProblemFinder {
            position,
            in_fn_sugar: 0,
            errors,
        }
    }

    fn borrow(&mut self, tokens: &dyn quote::ToTokens) {
        if self.in_fn_sugar > 0 {
            return;
        }
        let message = match self.position {
            Position::Argument => {
                "a memoized argument cannot hold a borrow, which its cached key would outlive; \
                 use an owned type such as `String` or `Vec<T>`"
            }
            Position::Return => {
                "a memoized function cannot return a borrow, which its cached value would \
                 outlive; return an owned type such as `String`, or an `Arc`"
            }
        };
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }
}

impl<'ast> Visit<'ast> for ProblemFinder<'_> {
    fn visit_type_impl_trait(&mut self, ty: &'ast syn::TypeImplTrait) {
        let message = match self.position {
            Position::Argument => {
                "`impl Trait` arguments cannot be memoized, as the cache needs a type to store; \
                 name a type parameter instead: `fn f<T: Hash + Eq + Clone + Send + Sync + 'static>(x: T)`"
            }
            Position::Return => {
                "`impl Trait` return types cannot be memoized; return a concrete type that is `Clone`"
            }
        };
        self.errors.push(syn::Error::new_spanned(ty, message));
    }

    fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
        match &reference.lifetime {
            Some(lifetime) if lifetime.ident == "static" => {}
            _ => return self.borrow(reference),
        }
        self.visit_type(&reference.elem);
    }

    fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
        if lifetime.ident != "static" {
            self.borrow(lifetime);
        }
    }

    fn visit_bound_lifetimes(&mut self, _: &'ast syn::BoundLifetimes) {
        // `for<'a>` declares higher-ranked lifetimes, which borrow nothing.
    }

    fn visit_type_never(&mut self, never: &'ast syn::TypeNever) {
        if let Position::Return = self.position {
            self.errors.push(syn::Error::new_spanned(
                never,
                "a function returning `!` has no value to cache; remove `#[memoize]`",
            ));
        }
    }

    fn visit_parenthesized_generic_arguments(
        &mut self,
        args: &'ast syn::ParenthesizedGenericArguments,
    ) {
        self.in_fn_sugar += 1;
        syn::visit::visit_parenthesized_generic_arguments(self, args);
        self.in_fn_sugar -= 1;
    }

    fn visit_type_bare_fn(&mut self, bare_fn: &'ast syn::TypeBareFn) {
        self.in_fn_sugar += 1;
        syn::visit::visit_type_bare_fn(self, bare_fn);
        self.in_fn_sugar -= 1;
    }

    fn visit_type(&mut self, ty: &'ast Type) {
        // A `dyn Trait + 'a` bound is a lifetime too, and is no borrow of an argument.
        if let Type::TraitObject(object) = ty {
            for bound in &object.bounds {
                if let syn::TypeParamBound::Trait(bound) = bound {
                    self.visit_trait_bound(bound);
                }
            }
            return;
        }
        syn::visit::visit_type(self, ty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::{parse_quote, ItemFn};

    fn errors(item: ItemFn) -> Vec<String> {
        let function = Function::from_item(item);
        match check(&Options::default(), &function) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn plain_free_functions_are_supported() {
        let supported: [ItemFn; 6] = [
            parse_quote!(
                fn f() {}
            ),
            parse_quote!(
                pub fn f(a: &str, b: &[u8], (c, d): (u8, u8), mut e: u32) -> String {
                    todo!()
                }
            ),
            parse_quote!(
                fn f(a: &'static str) -> Result<&'static str, E> {
                    todo!()
                }
            ),
            parse_quote!(
                fn f(a: fn(&str) -> u8, b: Box<dyn Fn(&str) + Send>) -> u8 {
                    0
                }
            ),
            parse_quote!(
                extern "C" fn f(a: u8) -> u8 {
                    a
                }
            ),
            parse_quote!(
                fn f(a: Vec<String>) -> Option<std::sync::Arc<[u8]>> {
                    None
                }
            ),
        ];
        for item in supported {
            let name = quote::quote!(#item).to_string();
            assert_eq!(errors(item), Vec::<String>::new(), "{name}");
        }
    }

    fn errors_with(options: proc_macro2::TokenStream, item: ItemFn) -> Vec<String> {
        let options = crate::attr::parse(options).unwrap();
        let function = Function::from_item(item);
        match check(&options, &function) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn refresh_and_stale_windows_are_checked_against_ttl_the_return_and_other_options() {
        let plain: ItemFn = parse_quote!(
            fn f(x: u8) -> u8 {
                x
            }
        );
        let result: ItemFn = parse_quote!(
            fn f(x: u8) -> Result<u8, String> {
                Ok(x)
            }
        );
        let ok = errors_with(
            quote::quote!(ttl = "30s", refresh = "25s", stale_while_revalidate = "1m"),
            plain.clone(),
        );
        assert_eq!(ok, Vec::<String>::new());
        let ok = errors_with(
            quote::quote!(ttl = "30s", stale_if_error = "10m"),
            result.clone(),
        );
        assert_eq!(ok, Vec::<String>::new());
        let found = errors_with(quote::quote!(ttl = "30s", refresh = "30s"), plain.clone());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("`refresh` must be shorter than `ttl` (30s)"));
        let found = errors_with(
            quote::quote!(refresh = "5s", stale_while_revalidate = "1m"),
            plain.clone(),
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[1].starts_with("`stale_while_revalidate` needs a `ttl`"));
        let found = errors_with(quote::quote!(ttl = "1s", stale_if_error = "1m"), plain);
        assert!(found[0].starts_with("`stale_if_error` answers an `Err` or a `None`"));
        let found = errors_with(
            quote::quote!(
                ttl = "1s",
                refresh = "500ms",
                err_ttl = "1s",
                store = "shared",
                local = 10,
                single_flight = false
            ),
            result,
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn methods_async_and_generic_functions_are_supported() {
        let supported: [ItemFn; 4] = [
            parse_quote!(
                async fn f<T: Clone>(x: T) -> T
                where
                    T: Copy,
                {
                    x
                }
            ),
            parse_quote!(
                fn f(&self, n: u8) -> Self {
                    todo!()
                }
            ),
            parse_quote!(
                fn f<'a>(&'a self, n: &'a str) -> usize {
                    n.len()
                }
            ),
            parse_quote!(
                fn f<const N: usize>(x: [u8; N]) -> usize {
                    N
                }
            ),
        ];
        for item in supported {
            let name = quote::quote!(#item).to_string();
            assert_eq!(errors(item), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn unsupported_signatures_are_reported_each_once() {
        for (item, start) in [
            (
                parse_quote!(
                    fn f(&mut self) {}
                ),
                "a memoized method cannot take `&mut self`",
            ),
            (
                parse_quote!(
                    fn f(self) {}
                ),
                "a memoized method takes `&self`, not `self`",
            ),
            (
                parse_quote!(
                    fn f(self: Arc<Self>) {}
                ),
                "a memoized method takes `&self`; typed",
            ),
        ] {
            let found = errors(item);
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(found[0].starts_with(start), "{found:?}");
        }
        let found = errors(parse_quote!(
            const unsafe fn f() {}
        ));
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn options_are_checked_against_the_signature() {
        let found = errors_with(
            quote::quote!(ignore = [clinet]),
            parse_quote!(
                fn f(client: u8, city: &str) {}
            ),
        );
        assert_eq!(
            found,
            ["`ignore` names `clinet`, which is not an argument of this function; its arguments are `client`, `city`"]
        );
        let found = errors_with(
            quote::quote!(ignore = [self]),
            parse_quote!(
                fn f(x: u8) {}
            ),
        );
        assert_eq!(
            found,
            ["`ignore = [self]` applies to methods; this function has no `self`"]
        );
        let found = errors_with(
            quote::quote!(key = x, ignore = [x]),
            parse_quote!(
                fn f(x: u8) {}
            ),
        );
        assert!(
            found[0].starts_with("`ignore` has no effect with `key`"),
            "{found:?}"
        );
        let found = errors_with(
            quote::quote!(cache_field = c),
            parse_quote!(
                fn f(x: u8) {}
            ),
        );
        assert!(
            found[0].starts_with("`cache_field` keeps a method's cache in a field"),
            "{found:?}"
        );
        let found = errors_with(
            quote::quote!(cache_field = c),
            parse_quote!(
                fn f<T>(&self, x: T) {}
            ),
        );
        assert!(
            found[0].starts_with("a generic method cannot keep its cache in a field"),
            "{found:?}"
        );
        // An ignored argument need not be keyable.
        let found = errors_with(
            quote::quote!(ignore = [log]),
            parse_quote!(
                fn f(log: &mut Vec<u8>, x: u8) {}
            ),
        );
        assert_eq!(found.len(), 1, "{found:?}"); // `&mut` is still refused
        let found = errors_with(
            quote::quote!(ignore = [client]),
            parse_quote!(
                fn f(client: Cow<'_, str>, x: u8) {}
            ),
        );
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn arguments_the_cache_cannot_own_are_reported() {
        let found = errors(parse_quote!(
            fn f(a: &mut Vec<u8>, b: impl Hash, c: &[&str], d: Cow<'_, str>) {}
        ));
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("`&mut` arguments cannot be memoized"));
        assert!(found[1].starts_with("`impl Trait` arguments cannot be memoized"));
        assert!(found[2].starts_with("a memoized argument cannot hold a borrow"));
        assert!(found[3].starts_with("a memoized argument cannot hold a borrow"));
    }

    #[test]
    fn returns_the_cache_cannot_hold_are_reported() {
        let found = errors(parse_quote!(
            fn f(a: &str) -> &str {
                a
            }
        ));
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("a memoized function cannot return a borrow"));
        let found = errors(parse_quote!(
            fn f() -> Option<impl Fn()> {
                None
            }
        ));
        assert!(found[0].starts_with("`impl Trait` return types cannot be memoized"));
        let found = errors(parse_quote!(
            fn f() -> ! {
                loop {}
            }
        ));
        assert!(found[0].starts_with("a function returning `!` has no value to cache"));
    }
}
