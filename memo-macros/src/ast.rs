//! A typed model of the memoized function: where it stands (free or in an `impl`), its receiver,
//! its arguments (how each is passed, hence keyed) and the shape of its return type (what is
//! cached). Built from any `fn` item; [`crate::valid`] decides which models can be expanded.

use proc_macro2::Span;
use quote::{format_ident, ToTokens};
use syn::visit::Visit;
use syn::{
    Attribute, Block, FnArg, GenericArgument, GenericParam, ItemFn, Pat, PathArguments, Receiver,
    ReturnType, Signature, Type, TypePath, Visibility,
};

/// The function under `#[memoize]`.
pub(crate) struct Function {
    /// Its attributes (doc comments, `#[inline]`, lints, `cfg`), kept on the wrapper.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    /// The signature as written: the body keeps it, patterns included.
    pub(crate) sig: Signature,
    pub(crate) block: Box<Block>,
    /// `self`, `&self`, `&mut self` or `self: T`, if any.
    pub(crate) receiver: Option<Receiver>,
    /// The arguments after the receiver, if any.
    pub(crate) args: Vec<Arg>,
    pub(crate) output: Output,
    /// Where the function stands.
    pub(crate) place: Place,
    /// `Self` has type or const parameters (known when `#[memoize]` is on the `impl` block).
    pub(crate) generic_self: bool,
}

/// Where the function stands, as far as its tokens tell.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Place {
    /// A free function: its companions go into a type of the same name beside it.
    Free,
    /// A method or associated function (it has a receiver, or names `Self`): its companions are
    /// associated functions beside it.
    Associated,
}

/// One argument, which becomes one element of the key tuple.
pub(crate) struct Arg {
    /// The name the wrapper binds it to: the user's identifier, or a generated one in place of a
    /// pattern such as `(a, b)`, `mut x` stays `x`.
    pub(crate) name: syn::Ident,
    /// The type as written.
    pub(crate) ty: Type,
    pub(crate) passing: Passing,
}

/// How an argument is passed, which decides its key type.
pub(crate) enum Passing {
    /// `x: T`: keyed by a clone of `T`, probed with `&x`.
    ByValue,
    /// `x: &T`: keyed by `<T as ToOwned>::Owned`, probed with `x`.
    Shared {
        /// The `T` of `&T`.
        referent: Box<Type>,
    },
    /// `x: &mut T`: never supported.
    Exclusive,
}

impl Arg {
    /// The type the key is made from: `T` of `x: T` and of `x: &T`.
    pub(crate) fn keyed_type(&self) -> &Type {
        match &self.passing {
            Passing::Shared { referent } => referent,
            Passing::ByValue | Passing::Exclusive => &self.ty,
        }
    }
}

/// What the function returns, which decides what is cached.
pub(crate) enum Output {
    /// Any other type (`()` when there is none): every value is cached.
    Plain {
        /// The return type.
        ty: Type,
    },
    /// A type whose last path segment is `Result` with one or two type arguments: only `Ok`
    /// values are cached.
    Result {
        /// The `T` of `Result<T, E>`.
        ok: Type,
    },
    /// `Option<T>`: only `Some` values are cached.
    Option {
        /// The `T` of `Option<T>`.
        some: Type,
    },
}

impl Output {
    /// The type of the cached values.
    pub(crate) fn cached_type(&self) -> &Type {
        match self {
            Output::Plain { ty } => ty,
            Output::Result { ok } => ok,
            Output::Option { some } => some,
        }
    }
}

impl Function {
    /// The model of a parsed `fn` item.
    pub(crate) fn from_item(item: ItemFn) -> Self {
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
        } = item;
        let args = sig
            .inputs
            .iter()
            .filter_map(|input| match input {
                FnArg::Typed(typed) => Some(typed),
                FnArg::Receiver(_) => None,
            })
            .enumerate()
            .map(|(index, typed)| Arg::new(index, &typed.pat, &typed.ty))
            .collect();
        let output = Output::new(&sig.output);
        let receiver = sig.receiver().cloned();
        let mut finder = SelfFinder::default();
        finder.visit_signature(&sig);
        finder.visit_block(&block);
        let place = match (&receiver, finder.found) {
            (None, None) => Place::Free,
            _ => Place::Associated,
        };
        Function {
            attrs,
            vis,
            sig,
            block,
            receiver,
            args,
            output,
            place,
            generic_self: false,
        }
    }

    /// The type and const parameters, in order: what a call spells in its turbofish.
    pub(crate) fn turbofish_params(&self) -> Vec<&syn::Ident> {
        self.sig
            .generics
            .params
            .iter()
            .filter_map(|param| match param {
                GenericParam::Type(ty) => Some(&ty.ident),
                GenericParam::Const(konst) => Some(&konst.ident),
                GenericParam::Lifetime(_) => None,
            })
            .collect()
    }
}

/// Finds `Self` in a signature or a body (not inside nested items, which have their own): the
/// function is then associated with a type.
#[derive(Default)]
pub(crate) struct SelfFinder {
    pub(crate) found: Option<Span>,
}

impl<'ast> Visit<'ast> for SelfFinder {
    fn visit_path_segment(&mut self, segment: &'ast syn::PathSegment) {
        if segment.ident == "Self" && self.found.is_none() {
            self.found = Some(segment.ident.span());
        }
        syn::visit::visit_path_segment(self, segment);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // `Self` in a macro's tokens (`vec![Self::X]`) counts too.
        let found = mac.tokens.clone().into_iter().find_map(|tree| match tree {
            proc_macro2::TokenTree::Ident(ident) if ident == "Self" => Some(ident.span()),
            _ => None,
        });
        if self.found.is_none() {
            self.found = found;
        }
        syn::visit::visit_macro(self, mac);
    }
}

impl Arg {
    fn new(index: usize, pat: &Pat, ty: &Type) -> Self {
        let name = match pat {
            Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                ident.ident.clone()
            }
            _ => format_ident!("__memo_arg{}", index, span = Span::mixed_site()),
        };
        let passing = match ungroup(ty) {
            Type::Reference(reference) if reference.mutability.is_some() => Passing::Exclusive,
            Type::Reference(reference) => Passing::Shared {
                referent: reference.elem.clone(),
            },
            _ => Passing::ByValue,
        };
        Arg {
            name,
            ty: ty.clone(),
            passing,
        }
    }
}

impl Output {
    fn new(output: &ReturnType) -> Self {
        let ty = match output {
            ReturnType::Default => {
                return Output::Plain {
                    ty: syn::parse_quote!(()),
                }
            }
            ReturnType::Type(_, ty) => ty,
        };
        let shape = match ungroup(ty) {
            Type::Path(TypePath { qself: None, path }) => path.segments.last().and_then(|last| {
                let PathArguments::AngleBracketed(args) = &last.arguments else {
                    return None;
                };
                let types: Vec<&Type> = args
                    .args
                    .iter()
                    .filter_map(|arg| match arg {
                        GenericArgument::Type(ty) => Some(ty),
                        _ => None,
                    })
                    .collect();
                match (last.ident.to_string().as_str(), types.as_slice()) {
                    ("Result", [ok] | [ok, _]) => Some(Output::Result { ok: (*ok).clone() }),
                    ("Option", [some]) => Some(Output::Option {
                        some: (*some).clone(),
                    }),
                    _ => None,
                }
            }),
            _ => None,
        };
        shape.unwrap_or_else(|| Output::Plain { ty: (**ty).clone() })
    }
}

/// Sees through the invisible groups `macro_rules!` wraps `$t:ty` fragments in, and parentheses.
pub(crate) fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup(&group.elem),
        Type::Paren(paren) => ungroup(&paren.elem),
        _ => ty,
    }
}

/// The spans of the first and last tokens of `tokens`, so that generated code wrapped around a
/// user's type (`<T as Trait>::Key`) is reported by rustc at the whole of that type.
pub(crate) fn span_range(tokens: &impl ToTokens) -> (Span, Span) {
    let mut trees = tokens.to_token_stream().into_iter();
    let first = trees
        .next()
        .map_or_else(Span::call_site, |tree| tree.span());
    let last = trees.last().map_or(first, |tree| tree.span());
    (first, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn type_to_string(ty: &Type) -> String {
        ty.to_token_stream().to_string()
    }

    fn function(item: ItemFn) -> Function {
        Function::from_item(item)
    }

    fn shape(output: &Output) -> (&'static str, String) {
        let kind = match output {
            Output::Plain { .. } => "plain",
            Output::Result { .. } => "result",
            Output::Option { .. } => "option",
        };
        (kind, type_to_string(output.cached_type()))
    }

    #[test]
    fn return_shapes() {
        let cases: [(ItemFn, (&str, &str)); 8] = [
            (
                parse_quote!(
                    fn f() {}
                ),
                ("plain", "()"),
            ),
            (
                parse_quote!(
                    fn f() -> u32 {
                        1
                    }
                ),
                ("plain", "u32"),
            ),
            (
                parse_quote!(
                    fn f() -> Result<u32, E> {
                        1
                    }
                ),
                ("result", "u32"),
            ),
            (
                parse_quote!(
                    fn f() -> std::io::Result<Vec<u8>> {
                        1
                    }
                ),
                ("result", "Vec < u8 >"),
            ),
            (
                parse_quote!(
                    fn f() -> Option<String> {
                        1
                    }
                ),
                ("option", "String"),
            ),
            (
                parse_quote!(
                    fn f() -> core::option::Option<(u8, u8)> {
                        1
                    }
                ),
                ("option", "(u8 , u8)"),
            ),
            (
                parse_quote!(
                    fn f() -> fmt::Result {
                        1
                    }
                ),
                ("plain", "fmt :: Result"),
            ),
            (
                parse_quote!(
                    fn f() -> Option<A, B> {
                        1
                    }
                ),
                ("plain", "Option < A , B >"),
            ),
        ];
        for (item, (kind, ty)) in cases {
            let f = function(item);
            assert_eq!(shape(&f.output), (kind, ty.to_string()));
        }
    }

    #[test]
    fn arguments_are_classified_and_named() {
        let f = function(parse_quote! {
            fn f(city: &str, (a, b): (u32, u32), mut n: u64, _: u8, r: &mut Vec<u8>, ref x: u8) {}
        });
        let names: Vec<String> = f.args.iter().map(|a| a.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "city",
                "__memo_arg1",
                "n",
                "__memo_arg3",
                "r",
                "__memo_arg5"
            ]
        );
        assert!(
            matches!(&f.args[0].passing, Passing::Shared { referent } if type_to_string(referent) == "str")
        );
        assert!(matches!(f.args[1].passing, Passing::ByValue));
        assert!(matches!(f.args[4].passing, Passing::Exclusive));
        assert_eq!(type_to_string(f.args[0].keyed_type()), "str");
        assert_eq!(type_to_string(f.args[1].keyed_type()), "(u32 , u32)");
    }

    #[test]
    fn receivers_are_not_arguments() {
        let f = function(parse_quote!(
            fn f(&self, n: u8) {}
        ));
        assert_eq!(f.args.len(), 1);
        assert_eq!(f.args[0].name, "n");
    }

    #[test]
    fn place_is_associated_when_self_is_named() {
        let place = |item: ItemFn| function(item).place;
        assert_eq!(
            place(parse_quote!(
                fn f(x: u8) -> u8 {
                    x
                }
            )),
            Place::Free
        );
        assert_eq!(
            place(parse_quote!(
                fn f(&self) -> u8 {
                    1
                }
            )),
            Place::Associated
        );
        assert_eq!(
            place(parse_quote!(
                fn f() -> Self {
                    todo!()
                }
            )),
            Place::Associated
        );
        assert_eq!(
            place(parse_quote!(
                fn f() -> u8 {
                    Self::X
                }
            )),
            Place::Associated
        );
        assert_eq!(
            place(parse_quote!(
                fn f() -> u8 {
                    vec![Self::X].len() as u8
                }
            )),
            Place::Associated
        );
        // A nested impl has its own `Self`.
        assert_eq!(
            place(parse_quote!(
                fn f() -> u8 {
                    struct A;
                    impl A {
                        fn g() -> Self {
                            A
                        }
                    }
                    1
                }
            )),
            Place::Free
        );
    }
}
