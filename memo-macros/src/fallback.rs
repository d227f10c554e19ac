//! The expansion of a function that cannot be memoized as written: the function unchanged, so its
//! call sites keep compiling, plus `cache_info()` and `cache_clear()` over an empty cache, so they
//! keep resolving. The only errors the user sees are the ones that explain what is wrong.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Function;
use crate::attr::Options;
use crate::companions;

/// The untouched function and its minimal companions.
pub(crate) fn expand(options: &Options, function: &Function) -> TokenStream {
    let Function {
        attrs,
        vis,
        sig,
        block,
        ..
    } = function;
    let companions = companions::fallback(options, function);
    quote!(#(#attrs)* #vis #sig #block #companions)
}
