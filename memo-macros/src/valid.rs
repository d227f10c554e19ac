//! What this version can expand: checks the model (and, as options grow, the options against each
//! other and against the model). Every problem is reported at its token, all of them at once.

use syn::visit::Visit;
use syn::{Lifetime, Type};

use crate::ast::{Arg, Function, Passing};
use crate::attr::Options;
use crate::error::Errors;

/// `Ok` when [`crate::expand`] can expand `function` with `options`.
pub(crate) fn check(_options: &Options, function: &Function) -> syn::Result<()> {
    let mut errors = Errors::default();
    check_signature(function, &mut errors);
    for arg in &function.args {
        check_argument(arg, &mut errors);
    }
    check_output(function, &mut errors);
    errors.finish()
}

/// Whether the function may sit in an `impl` or `trait` block, where no module can be emitted.
pub(crate) fn may_be_associated(function: &Function) -> bool {
    let mut finder = SelfFinder::default();
    finder.visit_signature(&function.sig);
    function.sig.receiver().is_some() || finder.found.is_some()
}

fn check_signature(function: &Function, errors: &mut Errors) {
    let sig = &function.sig;
    if let Some(receiver) = sig.receiver() {
        errors.push(syn::Error::new_spanned(
            receiver,
            "methods are not supported yet; `#[memoize]` applies to free functions",
        ));
    }
    let mut finder = SelfFinder::default();
    finder.visit_signature(sig);
    if let (Some(found), None) = (finder.found, sig.receiver()) {
        errors.push(syn::Error::new(
            found,
            "associated functions are not supported yet; `#[memoize]` applies to free functions",
        ));
    }
    if let Some(token) = &sig.asyncness {
        errors.push(syn::Error::new_spanned(
            token,
            "`async fn` is not supported yet; memoize a synchronous function",
        ));
    }
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            token,
            "a `const fn` cannot be memoized; remove `const`",
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            token,
            "`unsafe fn` is not supported yet; memoize a safe function that wraps the unsafe call",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "variadic functions cannot be memoized; take a slice `&[T]` instead",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "generic functions are not supported yet; use concrete types in the signature",
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "`where` clauses are not supported yet; use concrete types in the signature",
        ));
    }
}

fn check_argument(arg: &Arg, errors: &mut Errors) {
    if let Passing::Exclusive = arg.passing {
        errors.push(syn::Error::new_spanned(
            &arg.ty,
            "`&mut` arguments cannot be memoized, as a cached call would skip the mutation; \
             take the argument by value or by `&`",
        ));
        return;
    }
    let mut finder = ProblemFinder::new(Position::Argument, errors);
    finder.visit_type(arg.keyed_type());
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
                "`impl Trait` arguments cannot be memoized; use a concrete type that is `Hash + Eq`"
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

/// Finds `Self` in a signature: the function is then associated with a type.
#[derive(Default)]
struct SelfFinder {
    found: Option<proc_macro2::Span>,
}

impl<'ast> Visit<'ast> for SelfFinder {
    fn visit_path_segment(&mut self, segment: &'ast syn::PathSegment) {
        if segment.ident == "Self" && self.found.is_none() {
            self.found = Some(segment.ident.span());
        }
        syn::visit::visit_path_segment(self, segment);
    }

    fn visit_block(&mut self, _: &'ast syn::Block) {}
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

    #[test]
    fn unsupported_signatures_are_reported_each_once() {
        let found = errors(parse_quote!(
            async fn f<T>(x: T)
            where
                T: Copy,
            {
            }
        ));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("`async fn` is not supported yet"));
        assert!(found[1].starts_with("generic functions are not supported yet"));
        assert!(found[2].starts_with("`where` clauses are not supported yet"));
        let found = errors(parse_quote!(
            fn f(&self) -> Self {}
        ));
        assert_eq!(
            found,
            ["methods are not supported yet; `#[memoize]` applies to free functions"]
        );
        let found = errors(parse_quote!(
            fn f(x: u8) -> Self {}
        ));
        assert!(found[0].starts_with("associated functions are not supported yet"));
        let found = errors(parse_quote!(
            const unsafe fn f() {}
        ));
        assert_eq!(found.len(), 2, "{found:?}");
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
