//! `#[memoize]` on an `impl` block: every function of the block that carries its own
//! `#[memoize(...)]` (or `#[memo::memoize(...)]`, or `#[<crate>::memoize]` with the block's
//! `crate = "..."`) is expanded as an item of the `impl`, its companions associated functions of
//! the type (`Type::f_cache_info()`). In a trait impl (`impl Repo for Pg`) the function stays in
//! the trait's block and its companions, which are no items of the trait, go to an inherent
//! `impl Pg` beside it, with the block's generics: `Pg::find_cache_info()`. That needs the type
//! to be local (Rust allows inherent impls of local types only).
//!
//! The function's attribute alone cannot know that it stands in an `impl` (a proc macro sees only
//! its own item), so an associated function that never names `Self` looks free to it, and gets a
//! companion type, which an `impl` rejects. The block's attribute knows.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::parse::Parser;
use syn::{Attribute, ImplItem, ImplItemFn, ItemFn, ItemImpl, Meta, Path};

use crate::attr;
use crate::error::Errors;
use crate::expand::{self, Context};

/// The block with each memoized function expanded in place, and every error found.
pub(crate) fn expand(args: TokenStream, item: ItemImpl) -> TokenStream {
    let mut errors = Errors::default();
    let krate = block_options(args, &mut errors);
    let generic_impl = item
        .generics
        .params
        .iter()
        .any(|param| !matches!(param, syn::GenericParam::Lifetime(_)));
    let context = Context {
        in_impl: true,
        generic_impl,
        krate,
    };
    let ItemImpl {
        attrs,
        defaultness,
        unsafety,
        impl_token,
        generics,
        trait_,
        self_ty,
        items,
        ..
    } = item;
    let in_trait_impl = trait_.is_some();
    let trait_ = trait_.map(|(bang, path, for_token)| quote!(#bang #path #for_token));
    let where_clause = &generics.where_clause;
    // In a trait impl only the functions themselves stay: their companions, which are no items
    // of the trait, go to an inherent `impl` of the same type beside it.
    let mut kept = Vec::new();
    let mut companions = Vec::new();
    for item in items {
        match item {
            ImplItem::Fn(function) => {
                let name = function.sig.ident.clone();
                let expanded = expand_function(function, &context, &mut errors);
                if in_trait_impl {
                    split_companions(expanded, &name, &mut kept, &mut companions);
                } else {
                    kept.push(expanded);
                }
            }
            other => kept.push(other.into_token_stream()),
        }
    }
    let errors = errors.to_compile_errors();
    let inherent = (!companions.is_empty()).then(|| {
        let (impl_generics, _, _) = generics.split_for_impl();
        quote! {
            #[allow(clippy::multiple_inherent_impl)]
            impl #impl_generics #self_ty #where_clause {
                #(#companions)*
            }
        }
    });
    quote! {
        #(#attrs)*
        #defaultness #unsafety #impl_token #generics #trait_ #self_ty #where_clause {
            #(#kept)*
        }
        #inherent
        #errors
    }
}

/// Sorts the items of one expanded function of a trait impl: the function named `name` (the
/// trait's) stays, every other item (its companions, its errors) goes to the inherent `impl`.
fn split_companions(
    expanded: TokenStream,
    name: &syn::Ident,
    kept: &mut Vec<TokenStream>,
    companions: &mut Vec<TokenStream>,
) {
    let parsed = syn::parse2::<ItemImpl>(quote!(impl __MemoCompanions { #expanded }));
    let Ok(block) = parsed else {
        kept.push(expanded);
        return;
    };
    for item in block.items {
        match &item {
            ImplItem::Fn(function) if function.sig.ident == *name => {
                kept.push(item.into_token_stream());
            }
            _ => companions.push(item.into_token_stream()),
        }
    }
}

/// The block's own options: none but `crate = "..."`. Every other option is an error at its
/// name: options belong to each function's attribute.
fn block_options(args: TokenStream, errors: &mut Errors) -> Option<Path> {
    let mut only_crate = true;
    let scan = syn::meta::parser(|meta| {
        if !meta.path.is_ident("crate") {
            only_crate = false;
            let name = meta.path.to_token_stream().to_string().replace(' ', "");
            errors.push(meta.error(format!(
                "`#[memoize]` on an `impl` block takes no option but `crate = \"...\"`; give \
                 `{name}` to the functions it applies to: `#[memoize({name} = ...)] fn ...`"
            )));
        }
        if meta.input.peek(syn::Token![=]) {
            meta.value()?.parse::<syn::Expr>()?;
        }
        Ok(())
    });
    if let Err(error) = scan.parse2(args.clone()) {
        errors.push(error);
        return None;
    }
    if !only_crate {
        return None;
    }
    match attr::parse(args) {
        Ok(options) => options.krate.map(|krate| krate.value),
        Err(error) => {
            errors.push(error);
            None
        }
    }
}

/// One function of the block: expanded when it carries `#[memoize]`, else left as it is.
fn expand_function(
    mut function: ImplItemFn,
    context: &Context,
    errors: &mut Errors,
) -> TokenStream {
    let mut found = None;
    let mut kept = Vec::with_capacity(function.attrs.len());
    for attr in std::mem::take(&mut function.attrs) {
        if !is_memoize(&attr, context.krate.as_ref()) {
            kept.push(attr);
        } else if found.is_some() {
            errors.push(syn::Error::new_spanned(
                &attr,
                "`#[memoize]` is given twice to this function; merge the options into one",
            ));
        } else {
            found = Some(attr);
        }
    }
    function.attrs = kept;
    let Some(attr) = found else {
        return function.into_token_stream();
    };
    let args = match attr.meta {
        Meta::Path(_) => TokenStream::new(),
        Meta::List(list) => list.tokens,
        Meta::NameValue(name_value) => {
            errors.push(syn::Error::new_spanned(
                &name_value,
                "write the options of `#[memoize]` in parentheses: `#[memoize(maxsize = 64)]`",
            ));
            TokenStream::new()
        }
    };
    if let Some(default) = &function.defaultness {
        errors.push(syn::Error::new_spanned(
            default,
            "a `default fn` cannot be memoized; remove `default`",
        ));
        return function.into_token_stream();
    }
    let ImplItemFn {
        attrs,
        vis,
        sig,
        block,
        ..
    } = function;
    let item = ItemFn {
        attrs,
        vis,
        sig,
        block: Box::new(block),
    };
    expand::function(args, item, context)
}

/// Whether `attr` is `#[memoize]`, `#[memo::memoize]`, `#[::memo::memoize]`, or
/// `#[<crate>::memoize]` for the block's `crate = "..."`.
fn is_memoize(attr: &Attribute, krate: Option<&Path>) -> bool {
    let path = attr.path();
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let Some((last, prefix)) = names.split_last() else {
        return false;
    };
    if last != "memoize" {
        return false;
    }
    if prefix.is_empty() {
        return path.leading_colon.is_none();
    }
    let facade: Vec<String> = match krate {
        Some(krate) => krate.segments.iter().map(|s| s.ident.to_string()).collect(),
        None => vec!["memo".to_owned()],
    };
    prefix == facade.as_slice() || prefix == ["memo"]
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn recognises_the_attribute_by_its_paths() {
        let renamed: Path = parse_quote!(my_memo);
        let cases: [(Attribute, Option<&Path>, bool); 7] = [
            (parse_quote!(#[memoize]), None, true),
            (parse_quote!(#[memoize(maxsize = 4)]), None, true),
            (parse_quote!(#[memo::memoize]), None, true),
            (parse_quote!(#[::memo::memoize]), None, true),
            (parse_quote!(#[my_memo::memoize]), Some(&renamed), true),
            (parse_quote!(#[other::memoize]), None, false),
            (parse_quote!(#[inline]), None, false),
        ];
        for (attr, krate, expected) in cases {
            let text = attr.to_token_stream().to_string();
            assert_eq!(is_memoize(&attr, krate), expected, "{text}");
        }
    }

    #[test]
    fn expands_the_marked_functions_as_associated_items() {
        let item: ItemImpl = parse_quote! {
            impl Stats {
                #[memoize(maxsize = 8)]
                fn mean(xs: &[u64]) -> u64 {
                    xs.iter().sum::<u64>() / xs.len() as u64
                }
                fn plain() -> u8 {
                    1
                }
            }
        };
        let text = expand(TokenStream::new(), item).to_string();
        assert!(text.starts_with("impl Stats {"), "{text}");
        assert!(text.contains("fn mean_cache_info ()"), "{text}");
        assert!(text.contains("fn mean_uncached (xs : & [u64])"), "{text}");
        assert!(text.contains("fn plain () -> u8 { 1 }"), "{text}");
        assert!(text.contains("Some (8)"), "{text}");
        assert!(!text.contains("enum"), "{text}");
        assert!(!text.contains("# [memoize"), "{text}");
        assert!(!text.contains("compile_error"), "{text}");
    }

    #[test]
    fn block_options_other_than_crate_are_errors_at_their_name() {
        let item: ItemImpl = parse_quote!(
            impl S {}
        );
        let text = expand(quote!(maxsize = 4, crate = "m"), item.clone()).to_string();
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
        assert!(text.contains("give `maxsize` to the functions"), "{text}");
        let text = expand(quote!(crate = "my_memo"), item).to_string();
        assert!(!text.contains("compile_error"), "{text}");
    }

    #[test]
    fn the_block_crate_reaches_every_function() {
        let item: ItemImpl = parse_quote! {
            impl S {
                #[my_memo::memoize]
                fn f(x: u8) -> u8 {
                    x
                }
            }
        };
        let text = expand(quote!(crate = "my_memo"), item).to_string();
        assert!(text.contains("my_memo :: __private"), "{text}");
        assert!(!text.contains(":: memo ::"), "{text}");
    }

    #[test]
    fn trait_impls_keep_the_function_and_move_its_companions_to_an_inherent_impl() {
        let item: ItemImpl = parse_quote! {
            impl<T: Clone> Repo for Pg<T> where T: Send {
                type Row = u8;
                #[memoize]
                fn find(&self, id: u32) -> Option<u8> {
                    None
                }
                fn plain(&self) {}
            }
        };
        let text = expand(TokenStream::new(), item).to_string();
        assert!(!text.contains("compile_error"), "{text}");
        let (trait_block, inherent) = text.split_once("impl < T : Clone > Pg < T >").unwrap();
        assert!(trait_block.contains("Repo for Pg < T >"), "{text}");
        assert!(
            trait_block.contains("fn find (& self , id : u32)"),
            "{text}"
        );
        assert!(trait_block.contains("fn plain"), "{text}");
        assert!(!trait_block.contains("find_cache_info"), "{text}");
        assert!(inherent.starts_with(" where T : Send {"), "{inherent}");
        assert!(inherent.contains("fn find_cache_info ()"), "{inherent}");
        assert!(
            inherent.contains("fn find_uncached (& self , id : u32)"),
            "{inherent}"
        );
        assert!(!inherent.contains("fn find ("), "{inherent}");
    }
}
