//! The options of `#[memoize(...)]`, parsed with [`syn::meta::parser`], each value kept with the
//! span of the tokens that set it.
//!
//! To add an option: a field in [`Options`] and in [`OptionParser`], its name in [`OPTION_NAMES`],
//! and an arm in [`OptionParser::option`] that parses its value and hands it to the shared
//! [`Setting::set`] (which reports duplicates).

use std::time::Duration;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned as _;
use syn::{Expr, ExprLit, Lit, LitInt, Path};

use crate::error::Errors;

/// Every option, in the order error messages list them.
const OPTION_NAMES: &[&str] = &["maxsize", "ttl"];

/// The bound used when `maxsize` is not given: `functools.lru_cache`'s.
pub(crate) const DEFAULT_MAXSIZE: usize = 128;

/// A value with the span of the tokens it was parsed from.
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// The bound on the number of entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Maxsize {
    /// At most this many entries (`0` stores nothing).
    Bounded(usize),
    /// `maxsize = None`.
    Unbounded,
}

/// The checked options of one `#[memoize(...)]`.
#[derive(Default)]
pub(crate) struct Options {
    /// `maxsize = N` or `maxsize = None`; `None` here means not given.
    pub(crate) maxsize: Option<Spanned<Maxsize>>,
    /// `ttl = "30s"`, never zero; `None` here means not given (no expiry).
    pub(crate) ttl: Option<Spanned<Duration>>,
}

impl Options {
    /// The path of the facade crate that every generated path starts with.
    pub(crate) fn crate_path(&self) -> Path {
        syn::parse_quote!(::memo)
    }

    /// The bound on the number of entries, the default when not given.
    pub(crate) fn maxsize(&self) -> Maxsize {
        self.maxsize
            .as_ref()
            .map_or(Maxsize::Bounded(DEFAULT_MAXSIZE), |m| m.value)
    }
}

/// Parses the attribute's arguments. Every mistake is reported, not only the first.
pub(crate) fn parse(args: TokenStream) -> syn::Result<Options> {
    let mut parser = OptionParser::default();
    let parsed = syn::meta::parser(|meta| parser.option(meta)).parse2(args);
    if let Err(error) = parsed {
        parser.errors.push(error);
    }
    parser.errors.finish()?;
    Ok(Options {
        maxsize: parser.maxsize.value,
        ttl: parser.ttl.value,
    })
}

/// One option's value, set at most once.
struct Setting<T> {
    name: &'static str,
    seen: bool,
    value: Option<Spanned<T>>,
}

impl<T> Setting<T> {
    fn new(name: &'static str) -> Self {
        Setting {
            name,
            seen: false,
            value: None,
        }
    }

    /// Records the value parsed for `key`; a second occurrence is an error at its key.
    fn set(&mut self, errors: &mut Errors, key: &Path, value: syn::Result<Spanned<T>>) {
        if self.seen {
            let message = format!(
                "duplicate memoize option `{}`; give each option once",
                self.name
            );
            errors.push(syn::Error::new_spanned(key, message));
            return;
        }
        self.seen = true;
        match value {
            Ok(value) => self.value = Some(value),
            Err(error) => errors.push(error),
        }
    }
}

struct OptionParser {
    maxsize: Setting<Maxsize>,
    ttl: Setting<Duration>,
    errors: Errors,
}

impl Default for OptionParser {
    fn default() -> Self {
        OptionParser {
            maxsize: Setting::new("maxsize"),
            ttl: Setting::new("ttl"),
            errors: Errors::default(),
        }
    }
}

impl OptionParser {
    /// Parses one `name = value`; records its errors and goes on with the next option.
    fn option(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let name = meta.path.get_ident().map(ToString::to_string);
        let (name, example) = match name.as_deref() {
            Some("maxsize") => ("maxsize", "`maxsize = 128` or `maxsize = None`"),
            Some("ttl") => ("ttl", "`ttl = \"30s\"`"),
            _ => {
                self.errors.push(unknown_option(&meta.path));
                return skip_value(&meta);
            }
        };
        let value = if meta.input.peek(syn::Token![=]) {
            meta.value()?.parse::<Expr>()
        } else {
            skip_value(&meta)?;
            let message = format!("memoize option `{name}` needs a value, e.g. {example}");
            Err(syn::Error::new_spanned(&meta.path, message))
        };
        match name {
            "maxsize" => {
                let value = value.and_then(|expr| maxsize_value(&expr));
                self.maxsize.set(&mut self.errors, &meta.path, value);
            }
            _ => {
                let value = value.and_then(|expr| ttl_value(&expr));
                self.ttl.set(&mut self.errors, &meta.path, value);
            }
        }
        Ok(())
    }
}

fn unknown_option(path: &Path) -> syn::Error {
    let name = path.to_token_stream().to_string().replace(' ', "");
    let expected = OPTION_NAMES
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let message = format!("unknown memoize option `{name}`; expected one of {expected}");
    syn::Error::new_spanned(path, message)
}

/// Consumes whatever follows an option's name up to the next `,`, so parsing can go on.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    meta.input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            match &tree {
                TokenTree::Punct(punct) if punct.as_char() == ',' => break,
                _ => rest = next,
            }
        }
        Ok(((), rest))
    })
}

/// Sees through the invisible groups that `macro_rules!` wraps `$x:expr` fragments in.
fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => ungroup(&group.expr),
        Expr::Paren(paren) => ungroup(&paren.expr),
        _ => expr,
    }
}

/// `maxsize = 128` (an unsuffixed or `usize` integer) or `maxsize = None`.
fn maxsize_value(expr: &Expr) -> syn::Result<Spanned<Maxsize>> {
    let expr = ungroup(expr);
    let wrong = || {
        syn::Error::new_spanned(
            expr,
            "`maxsize` must be a non-negative integer or `None`, e.g. `maxsize = 128`",
        )
    };
    match expr {
        Expr::Lit(lit) if lit.attrs.is_empty() => match &lit.lit {
            Lit::Int(int) if matches!(int.suffix(), "" | "usize") => {
                let value = parse_usize(int)?;
                Ok(Spanned {
                    value: Maxsize::Bounded(value),
                    span: int.span(),
                })
            }
            _ => Err(wrong()),
        },
        Expr::Path(path)
            if path.attrs.is_empty() && path.qself.is_none() && path.path.is_ident("None") =>
        {
            Ok(Spanned {
                value: Maxsize::Unbounded,
                span: path.span(),
            })
        }
        _ => Err(wrong()),
    }
}

fn parse_usize(int: &LitInt) -> syn::Result<usize> {
    int.base10_parse::<usize>().map_err(|_| {
        syn::Error::new(
            int.span(),
            "`maxsize` does not fit in a `usize`; use `maxsize = None` for an unbounded cache",
        )
    })
}

/// `ttl = "30s"`: a humantime duration, longer than zero.
fn ttl_value(expr: &Expr) -> syn::Result<Spanned<Duration>> {
    const EXAMPLES: &str = "`\"30s\"`, `\"500ms\"` or `\"1h 30m\"`";
    let expr = ungroup(expr);
    let lit = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit),
            attrs,
        }) if attrs.is_empty() => lit,
        _ => return Err(not_a_string(expr, EXAMPLES)),
    };
    let text = lit.value();
    let duration = humantime::parse_duration(&text).map_err(|error| {
        let message = format!(
            "invalid `ttl` duration {text:?}: {error}; expected a duration such as {EXAMPLES}"
        );
        syn::Error::new(lit.span(), message)
    })?;
    if duration.is_zero() {
        return Err(syn::Error::new(
            lit.span(),
            "`ttl` must be longer than zero; remove `ttl` to keep entries until they are evicted",
        ));
    }
    Ok(Spanned {
        value: duration,
        span: lit.span(),
    })
}

fn not_a_string(expr: &Expr, examples: &str) -> syn::Error {
    let message = format!("`ttl` must be a duration string such as {examples}");
    syn::Error::new_spanned(expr, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn errors(args: TokenStream) -> Vec<String> {
        match parse(args) {
            Ok(_) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn no_options_gives_the_defaults() {
        let options = parse(TokenStream::new()).unwrap();
        assert_eq!(options.maxsize(), Maxsize::Bounded(128));
        assert!(options.ttl.is_none());
    }

    #[test]
    fn maxsize_accepts_integers_and_none() {
        let options = parse(quote!(maxsize = 1_024)).unwrap();
        assert_eq!(options.maxsize(), Maxsize::Bounded(1024));
        let options = parse(quote!(maxsize = 0usize)).unwrap();
        assert_eq!(options.maxsize(), Maxsize::Bounded(0));
        let options = parse(quote!(maxsize = None,)).unwrap();
        assert_eq!(options.maxsize(), Maxsize::Unbounded);
    }

    #[test]
    fn maxsize_rejects_anything_else() {
        for value in [
            quote!("big"),
            quote!(-1),
            quote!(1.5),
            quote!(12u8),
            quote!(Some(3)),
        ] {
            let found = errors(quote!(maxsize = #value));
            assert_eq!(
                found,
                ["`maxsize` must be a non-negative integer or `None`, e.g. `maxsize = 128`"],
                "for {value}"
            );
        }
        let found = errors(quote!(maxsize = 100000000000000000000000));
        assert!(found[0].starts_with("`maxsize` does not fit in a `usize`"));
    }

    #[test]
    fn ttl_is_parsed_at_expansion() {
        let options = parse(quote!(ttl = "1h 30m", maxsize = 4)).unwrap();
        assert_eq!(options.ttl.unwrap().value, Duration::from_secs(5400));
        let options = parse(quote!(ttl = "500ms")).unwrap();
        assert_eq!(options.ttl.unwrap().value, Duration::from_millis(500));
    }

    #[test]
    fn ttl_rejects_bad_zero_and_non_string_durations() {
        let found = errors(quote!(ttl = "30 parsecs"));
        assert!(found[0].starts_with("invalid `ttl` duration \"30 parsecs\": unknown time unit"));
        let found = errors(quote!(ttl = "0s"));
        assert_eq!(
            found,
            ["`ttl` must be longer than zero; remove `ttl` to keep entries until they are evicted"]
        );
        let found = errors(quote!(ttl = 30));
        assert!(found[0].starts_with("`ttl` must be a duration string"));
    }

    #[test]
    fn unknown_option_lists_the_valid_ones() {
        let found = errors(quote!(maxsise = 3));
        assert_eq!(
            found,
            ["unknown memoize option `maxsise`; expected one of `maxsize`, `ttl`"]
        );
        let found = errors(quote!(a::b(c, d), maxsize = 3));
        assert_eq!(
            found,
            ["unknown memoize option `a::b`; expected one of `maxsize`, `ttl`"]
        );
    }

    #[test]
    fn duplicate_is_reported_once_at_the_second() {
        let found = errors(quote!(maxsize = 3, maxsize = 4, maxsize = 5));
        assert_eq!(
            found,
            [
                "duplicate memoize option `maxsize`; give each option once",
                "duplicate memoize option `maxsize`; give each option once"
            ]
        );
        // A bad first value still counts as given.
        let found = errors(quote!(ttl = "x", ttl = "1s"));
        assert_eq!(found.len(), 2);
        assert!(found[1].starts_with("duplicate memoize option `ttl`"));
    }

    #[test]
    fn every_mistake_is_reported() {
        let found = errors(quote!(maxsize = "big", colour = red, ttl = "0s", maxsize));
        assert_eq!(found.len(), 4, "{found:?}");
        let found = errors(quote!(maxsize));
        assert_eq!(
            found,
            ["memoize option `maxsize` needs a value, e.g. `maxsize = 128` or `maxsize = None`"]
        );
    }
}
