//! `#[memoize]` on an inherent `impl` block: every function of the block that carries its own
//! `#[memoize(...)]` (or `#[memo::memoize(...)]`, or `#[<crate>::memoize]` with the block's
//! `crate = "..."`) is expanded as an item of the `impl`, its companions associated functions of
//! the type (`Type::f_cache_info()`).
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
    if let Some((_, trait_path, for_token)) = &item.trait_ {
        errors.push(syn::Error::new_spanned(
            quote!(#trait_path #for_token),
            "`#[memoize]` does not expand trait `impl` blocks: the companions of a memoized \
             function (`Type::f_cache_info()`, ...) cannot be items of a trait; memoize a function \
             of an inherent `impl` block and call it from the trait's",
        ));
    }
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
    let trait_ = trait_.map(|(bang, path, for_token)| quote!(#bang #path #for_token));
    let where_clause = &generics.where_clause;
    let items = items.into_iter().map(|item| match item {
        ImplItem::Fn(function) => {
            expand_function(function, &context, trait_.is_some(), &mut errors)
        }
        other => other.into_token_stream(),
    });
    let items: Vec<TokenStream> = items.collect();
    let errors = errors.to_compile_errors();
    quote! {
        #(#attrs)*
        #defaultness #unsafety #impl_token #generics #trait_ #self_ty #where_clause {
            #(#items)*
        }
        #errors
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
    in_trait_impl: bool,
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
    if in_trait_impl {
        // Reported once for the block; the function stays as written.
        return function.into_token_stream();
    }
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
    fn trait_impls_are_one_error_and_stay_as_written() {
        let item: ItemImpl = parse_quote! {
            impl Iterator for S {
                type Item = u8;
                #[memoize]
                fn next(&mut self) -> Option<u8> {
                    None
                }
            }
        };
        let text = expand(TokenStream::new(), item).to_string();
        assert_eq!(text.matches("compile_error").count(), 1, "{text}");
        assert!(text.contains("fn next (& mut self)"), "{text}");
        assert!(!text.contains("next_cache_info"), "{text}");
    }
}
