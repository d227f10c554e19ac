//! The expansion of a function this version cannot memoize: the function unchanged, so its call
//! sites keep compiling, plus companions over an empty cache, so `f::cache_info()` keeps
//! resolving. The only errors the user sees are the ones that explain what is unsupported.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::Function;
use crate::attr::Options;
use crate::{expand, valid};

/// The untouched function, and its companions where a module may stand.
pub(crate) fn expand(options: &Options, function: &Function) -> TokenStream {
    let Function {
        attrs,
        vis,
        sig,
        block,
        ..
    } = function;
    let original = quote!(#(#attrs)* #vis #sig #block);
    if valid::may_be_associated(function) {
        return original;
    }
    let memo = options.crate_path();
    let cache_type = quote!(#memo::__private::Cache<(), ()>);
    let companions = expand::companions(options, function, &cache_type, TokenStream::new());
    quote!(#original #companions)
}
