//! The options of `#[memoize(...)]`, parsed with [`syn::meta::parser`], each value kept with the
//! span of the tokens that set it.
//!
//! To add an option: a field in [`Options`] and in [`OptionParser`], its name in [`OPTION_NAMES`],
//! and an arm in [`OptionParser::option`] that parses its value and hands it to the shared
//! [`Setting::set`] (which reports duplicates).

use std::time::Duration;

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned as _;
use syn::{Expr, ExprLit, Lit, LitInt, Path};

use crate::error::Errors;
use crate::store::{self, StoreName};

/// Every option, in the order error messages list them.
const OPTION_NAMES: &[&str] = &[
    "maxsize",
    "maxweight",
    "ttl",
    "ttl_jitter",
    "err_ttl",
    "none_ttl",
    "refresh",
    "stale_while_revalidate",
    "stale_if_error",
    "policy",
    "key",
    "ignore",
    "single_flight",
    "cache_field",
    "store",
    "version",
    "local",
    "local_ttl",
    "crate",
];

/// The names `policy = "..."` accepts, with the `memo::Policy` variant each one names: the names
/// of `memo_core::Policy::name()` (this crate cannot depend on memo-core to ask it).
pub(crate) const POLICIES: &[(&str, &str)] = &[
    ("lru", "Lru"),
    ("fifo", "Fifo"),
    ("lfu", "Lfu"),
    ("mru", "Mru"),
    ("adaptive", "Adaptive"),
];

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
    /// `maxweight = "64MiB"`: the bound on the total `memo::Weigh` weight of the cached values.
    pub(crate) maxweight: Option<Spanned<u64>>,
    /// `ttl = "30s"`, never zero; `None` here means not given (no expiry).
    pub(crate) ttl: Option<Spanned<Duration>>,
    /// `ttl_jitter = "10%"`: the fraction of the ttl over which deadlines are spread, in
    /// `(0, 1]` (spanned at its value).
    pub(crate) ttl_jitter: Option<Spanned<f64>>,
    /// `err_ttl = "5s"`: how long an `Err` is cached (spanned at `err_ttl`); `None`: not cached.
    pub(crate) err_ttl: Option<Spanned<Duration>>,
    /// `none_ttl = "5s"`: how long a `None` is cached (spanned at `none_ttl`); `None`: not cached.
    pub(crate) none_ttl: Option<Spanned<Duration>>,
    /// `refresh = "25s"`: the age from which a hit recomputes the entry in the background
    /// (spanned at the duration).
    pub(crate) refresh: Option<Spanned<Duration>>,
    /// `stale_while_revalidate = "1m"`: how long after `ttl` a hit returns the stale value while
    /// it is recomputed (spanned at the option's name).
    pub(crate) stale_while_revalidate: Option<Spanned<Duration>>,
    /// `stale_if_error = "10m"`: how long after `ttl` a failing call returns the stale value
    /// (spanned at the option's name).
    pub(crate) stale_if_error: Option<Spanned<Duration>>,
    /// `policy = "lru"`: the `Policy` variant's name.
    pub(crate) policy: Option<Spanned<&'static str>>,
    /// `key = <expr>`: the key computed from the arguments.
    pub(crate) key: Option<Spanned<Expr>>,
    /// `ignore = [a, self]`: arguments left out of the key.
    pub(crate) ignore: Option<Spanned<Vec<Ident>>>,
    /// `single_flight = false`; on when not given.
    pub(crate) single_flight: Option<Spanned<bool>>,
    /// `cache_field = name`: the `InstanceCache` field of `self` that holds a method's cache.
    pub(crate) cache_field: Option<Spanned<Ident>>,
    /// `store = "shared"`: the named store that holds the cache ([`crate::store`]).
    pub(crate) store: Option<Spanned<StoreName>>,
    /// `version = 2`: part of the keys in the store.
    pub(crate) version: Option<Spanned<u32>>,
    /// `local = 1000`: a near cache of that many values in front of the store.
    pub(crate) local: Option<Spanned<usize>>,
    /// `local_ttl = "5s"`: how long the near cache keeps a value (spanned at `local_ttl`).
    pub(crate) local_ttl: Option<Spanned<Duration>>,
    /// `crate = "my_memo"`: the path of the facade when it is renamed.
    pub(crate) krate: Option<Spanned<Path>>,
}

impl Options {
    /// The path of the facade crate that every generated path starts with.
    pub(crate) fn crate_path(&self) -> Path {
        match &self.krate {
            Some(path) => path.value.clone(),
            None => syn::parse_quote!(::memo),
        }
    }

    /// The `Policy` variant, `Lru` when not given.
    pub(crate) fn policy_variant(&self) -> Ident {
        match &self.policy {
            Some(policy) => Ident::new(policy.value, policy.span),
            None => Ident::new("Lru", Span::call_site()),
        }
    }

    /// Whether concurrent misses of one key run the function once.
    pub(crate) fn single_flight(&self) -> bool {
        self.single_flight.as_ref().is_none_or(|on| on.value)
    }

    /// The bound on the number of entries, the default when not given (none with `maxweight`).
    pub(crate) fn maxsize(&self) -> Maxsize {
        let default = match self.maxweight {
            Some(_) => Maxsize::Unbounded,
            None => Maxsize::Bounded(DEFAULT_MAXSIZE),
        };
        self.maxsize.as_ref().map_or(default, |m| m.value)
    }
}

/// Parses the attribute's arguments. Every mistake is reported, not only the first.
pub(crate) fn parse(args: TokenStream) -> syn::Result<Options> {
    let mut parser = OptionParser::default();
    let parsed = syn::meta::parser(|meta| parser.option(meta)).parse2(args);
    if let Err(error) = parsed {
        parser.errors.push(error);
    }
    let errors = std::mem::take(&mut parser.errors);
    errors.finish()?;
    Ok(parser.into_options())
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
    maxweight: Setting<u64>,
    ttl: Setting<Duration>,
    ttl_jitter: Setting<f64>,
    err_ttl: Setting<Duration>,
    none_ttl: Setting<Duration>,
    refresh: Setting<Duration>,
    stale_while_revalidate: Setting<Duration>,
    stale_if_error: Setting<Duration>,
    policy: Setting<&'static str>,
    key: Setting<Expr>,
    ignore: Setting<Vec<Ident>>,
    single_flight: Setting<bool>,
    cache_field: Setting<Ident>,
    store: Setting<StoreName>,
    version: Setting<u32>,
    local: Setting<usize>,
    local_ttl: Setting<Duration>,
    krate: Setting<Path>,
    errors: Errors,
}

impl Default for OptionParser {
    fn default() -> Self {
        OptionParser {
            maxsize: Setting::new("maxsize"),
            maxweight: Setting::new("maxweight"),
            ttl: Setting::new("ttl"),
            ttl_jitter: Setting::new("ttl_jitter"),
            err_ttl: Setting::new("err_ttl"),
            none_ttl: Setting::new("none_ttl"),
            refresh: Setting::new("refresh"),
            stale_while_revalidate: Setting::new("stale_while_revalidate"),
            stale_if_error: Setting::new("stale_if_error"),
            policy: Setting::new("policy"),
            key: Setting::new("key"),
            ignore: Setting::new("ignore"),
            single_flight: Setting::new("single_flight"),
            cache_field: Setting::new("cache_field"),
            store: Setting::new("store"),
            version: Setting::new("version"),
            local: Setting::new("local"),
            local_ttl: Setting::new("local_ttl"),
            krate: Setting::new("crate"),
            errors: Errors::default(),
        }
    }
}

/// An example of each option, for the message when its value is missing.
fn example(name: &str) -> &'static str {
    match name {
        "maxsize" => "`maxsize = 128` or `maxsize = None`",
        "maxweight" => "`maxweight = \"64MiB\"`",
        "ttl" => "`ttl = \"30s\"`",
        "ttl_jitter" => "`ttl_jitter = \"10%\"`",
        "err_ttl" => "`err_ttl = \"5s\"`",
        "none_ttl" => "`none_ttl = \"5s\"`",
        "refresh" => "`refresh = \"25s\"`",
        "stale_while_revalidate" => "`stale_while_revalidate = \"1m\"`",
        "stale_if_error" => "`stale_if_error = \"10m\"`",
        "policy" => "`policy = \"lru\"`",
        "key" => "`key = city.to_lowercase()`",
        "ignore" => "`ignore = [client]`",
        "single_flight" => "`single_flight = false`",
        "cache_field" => "`cache_field = lookups`",
        "store" => "`store = \"shared\"`",
        "version" => "`version = 2`",
        "local" => "`local = 1000`",
        "local_ttl" => "`local_ttl = \"5s\"`",
        _ => "`crate = \"my_memo\"`",
    }
}

impl OptionParser {
    /// Parses one `name = value`; records its errors and goes on with the next option.
    fn option(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let name = meta.path.get_ident().map(ToString::to_string);
        let Some(name) = OPTION_NAMES
            .iter()
            .find(|known| name.as_deref() == Some(**known))
        else {
            self.errors.push(unknown_option(&meta.path));
            return skip_value(&meta);
        };
        let value = if meta.input.peek(syn::Token![=]) {
            meta.value()?.parse::<Expr>()
        } else {
            skip_value(&meta)?;
            let message = format!(
                "memoize option `{name}` needs a value, e.g. {}",
                example(name)
            );
            Err(syn::Error::new_spanned(&meta.path, message))
        };
        let (errors, key) = (&mut self.errors, &meta.path);
        match *name {
            "maxsize" => self
                .maxsize
                .set(errors, key, value.and_then(|e| maxsize_value(&e))),
            "maxweight" => {
                let value = value.and_then(|e| weight_value(&e));
                self.maxweight.set(errors, key, value);
            }
            "ttl" => self.ttl.set(errors, key, value.and_then(|e| ttl_value(&e))),
            "ttl_jitter" => {
                let value = value.and_then(|e| jitter_value(&e));
                self.ttl_jitter.set(errors, key, value);
            }
            "err_ttl" | "none_ttl" => {
                let value = value.and_then(|e| negative_ttl_value(&e, name, key.span()));
                let setting = if *name == "err_ttl" {
                    &mut self.err_ttl
                } else {
                    &mut self.none_ttl
                };
                setting.set(errors, key, value);
            }
            "refresh" | "stale_while_revalidate" | "stale_if_error" => {
                let value = value.and_then(|e| fresh_value(&e, name, key.span()));
                let setting = match *name {
                    "refresh" => &mut self.refresh,
                    "stale_while_revalidate" => &mut self.stale_while_revalidate,
                    _ => &mut self.stale_if_error,
                };
                setting.set(errors, key, value);
            }
            "policy" => self
                .policy
                .set(errors, key, value.and_then(|e| policy_value(&e))),
            "key" => self.key.set(errors, key, value.map(key_value)),
            "ignore" => self
                .ignore
                .set(errors, key, value.and_then(|e| ignore_value(&e))),
            "single_flight" => {
                let value = value.and_then(|e| bool_value(&e, "single_flight"));
                self.single_flight.set(errors, key, value);
            }
            "cache_field" => {
                let value = value.and_then(|e| cache_field_value(&e));
                self.cache_field.set(errors, key, value);
            }
            "store" => {
                let value = value.and_then(|e| store::name_value(&e, key.span()));
                self.store.set(errors, key, value);
            }
            "version" => {
                let value = value.and_then(|e| store::version_value(&e));
                self.version.set(errors, key, value);
            }
            "local" => {
                let value = value.and_then(|e| local_value(&e));
                self.local.set(errors, key, value);
            }
            "local_ttl" => {
                let value = value.and_then(|e| {
                    let hint = "remove `local` to keep no near cache";
                    let parsed = duration_value(&e, "local_ttl", hint)?;
                    Ok(Spanned {
                        value: parsed.value,
                        span: key.span(),
                    })
                });
                self.local_ttl.set(errors, key, value);
            }
            _ => self
                .krate
                .set(errors, key, value.and_then(|e| crate_value(&e))),
        }
        Ok(())
    }

    fn into_options(self) -> Options {
        Options {
            maxsize: self.maxsize.value,
            maxweight: self.maxweight.value,
            ttl: self.ttl.value,
            ttl_jitter: self.ttl_jitter.value,
            err_ttl: self.err_ttl.value,
            none_ttl: self.none_ttl.value,
            refresh: self.refresh.value,
            stale_while_revalidate: self.stale_while_revalidate.value,
            stale_if_error: self.stale_if_error.value,
            policy: self.policy.value,
            key: self.key.value,
            ignore: self.ignore.value,
            single_flight: self.single_flight.value,
            cache_field: self.cache_field.value,
            store: self.store.value,
            version: self.version.value,
            local: self.local.value,
            local_ttl: self.local_ttl.value,
            krate: self.krate.value,
        }
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

/// `local = 1000`: the near cache's size, an integer from 1 to [`MAX_MAXSIZE`].
fn local_value(expr: &Expr) -> syn::Result<Spanned<usize>> {
    let expr = ungroup(expr);
    let wrong = || {
        syn::Error::new_spanned(
            expr,
            format!(
                "`local` must be a positive integer up to {MAX_MAXSIZE}, the number of values \
                 kept in this process in front of the store, e.g. `local = 1000`"
            ),
        )
    };
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int),
            attrs,
        }) if attrs.is_empty() && matches!(int.suffix(), "" | "usize") => {
            match int.base10_parse::<u64>() {
                Ok(value) if (1..=MAX_MAXSIZE).contains(&value) => Ok(Spanned {
                    value: value as usize,
                    span: int.span(),
                }),
                _ => Err(wrong()),
            }
        }
        _ => Err(wrong()),
    }
}

/// The largest `maxsize` the store accepts: keep in step with `memo_core::MAX_MAXSIZE` (the
/// ui case `maxsize-too-large` fails if the store's limit is lower than this).
pub(crate) const MAX_MAXSIZE: u64 = 1 << 31;

fn parse_usize(int: &LitInt) -> syn::Result<usize> {
    let too_large = || {
        syn::Error::new(
            int.span(),
            format!(
                "`maxsize` is too large: a cache holds at most {MAX_MAXSIZE} entries; \
                 use `maxsize = None` for an unbounded cache"
            ),
        )
    };
    let value = int.base10_parse::<u64>().map_err(|_| too_large())?;
    if value > MAX_MAXSIZE {
        return Err(too_large());
    }
    usize::try_from(value).map_err(|_| too_large())
}

/// `ttl = "30s"`: a humantime duration, longer than zero.
fn ttl_value(expr: &Expr) -> syn::Result<Spanned<Duration>> {
    duration_value(
        expr,
        "ttl",
        "remove `ttl` to keep entries until they are evicted",
    )
}

/// `maxweight = "64MiB"` (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB) or `maxweight = 4096` (bytes):
/// above zero.
fn weight_value(expr: &Expr) -> syn::Result<Spanned<u64>> {
    const HINT: &str = "`maxweight` must be a size above zero such as `\"64MiB\"`, `\"500KB\"` \
                        or `4096` (bytes)";
    let expr = ungroup(expr);
    let (text, span) = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => (lit.value(), lit.span()),
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) if int.suffix().is_empty() => (int.base10_digits().to_string(), int.span()),
        _ => return Err(syn::Error::new_spanned(expr, HINT)),
    };
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: Option<u64> = match unit.trim() {
        "" | "B" => Some(1),
        "KB" => Some(1_000),
        "KiB" => Some(1 << 10),
        "MB" => Some(1_000_000),
        "MiB" => Some(1 << 20),
        "GB" => Some(1_000_000_000),
        "GiB" => Some(1 << 30),
        "TB" => Some(1_000_000_000_000),
        "TiB" => Some(1 << 40),
        _ => None,
    };
    let value = number
        .parse::<u64>()
        .ok()
        .zip(scale)
        .and_then(|(n, scale)| n.checked_mul(scale))
        .filter(|&n| n > 0);
    match value {
        Some(value) => Ok(Spanned { value, span }),
        None => Err(syn::Error::new(span, format!("{HINT}, not {text:?}"))),
    }
}

/// `ttl_jitter = "10%"`: a percentage above 0 and at most 100, as a fraction.
fn jitter_value(expr: &Expr) -> syn::Result<Spanned<f64>> {
    const HINT: &str = "`ttl_jitter` must be a percentage of the ttl above 0% and at most 100%, \
                        e.g. `ttl_jitter = \"10%\"`";
    let expr = ungroup(expr);
    let Expr::Lit(ExprLit {
        lit: Lit::Str(lit),
        attrs,
    }) = expr
    else {
        return Err(syn::Error::new_spanned(expr, HINT));
    };
    let text = lit.value();
    let percent = text
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|p| *p > 0.0 && *p <= 100.0);
    match percent {
        Some(p) if attrs.is_empty() => Ok(Spanned {
            value: p / 100.0,
            span: lit.span(),
        }),
        _ => Err(syn::Error::new(lit.span(), format!("{HINT}, not {text:?}"))),
    }
}

/// `err_ttl = "5s"` or `none_ttl = "5s"`: a duration longer than zero, spanned at the option's
/// name (`at`), where a misuse of the option is reported.
fn negative_ttl_value(expr: &Expr, name: &str, at: Span) -> syn::Result<Spanned<Duration>> {
    let what = if name == "err_ttl" {
        "an `Err`"
    } else {
        "a `None`"
    };
    let hint = format!("remove `{name}` to never cache {what}");
    let parsed = duration_value(expr, name, &hint)?;
    Ok(Spanned {
        value: parsed.value,
        span: at,
    })
}

/// `refresh = "25s"` (spanned at the duration, which `valid` compares with `ttl`),
/// `stale_while_revalidate = "1m"` or `stale_if_error = "10m"` (spanned at the name, `at`).
fn fresh_value(expr: &Expr, name: &str, at: Span) -> syn::Result<Spanned<Duration>> {
    let hint = format!("remove `{name}`");
    let parsed = duration_value(expr, name, &hint)?;
    Ok(match name {
        "refresh" => parsed,
        _ => Spanned {
            value: parsed.value,
            span: at,
        },
    })
}

impl Options {
    /// Whether the function has `refresh` or a stale window: its values are then stamped with
    /// their write time (see `crate::fresh`).
    pub(crate) fn fresh(&self) -> bool {
        self.refresh.is_some()
            || self.stale_while_revalidate.is_some()
            || self.stale_if_error.is_some()
    }
}

/// A humantime duration string longer than zero, for the option `name`.
fn duration_value(expr: &Expr, name: &str, zero_hint: &str) -> syn::Result<Spanned<Duration>> {
    const EXAMPLES: &str = "`\"30s\"`, `\"500ms\"` or `\"1h 30m\"`";
    let expr = ungroup(expr);
    let lit = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit),
            attrs,
        }) if attrs.is_empty() => lit,
        _ => return Err(not_a_string(expr, name, EXAMPLES)),
    };
    let text = lit.value();
    let duration = humantime::parse_duration(&text).map_err(|error| {
        let message = format!(
            "invalid `{name}` duration {text:?}: {error}; expected a duration such as {EXAMPLES}"
        );
        syn::Error::new(lit.span(), message)
    })?;
    if duration.is_zero() {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{name}` must be longer than zero; {zero_hint}"),
        ));
    }
    Ok(Spanned {
        value: duration,
        span: lit.span(),
    })
}

fn not_a_string(expr: &Expr, name: &str, examples: &str) -> syn::Error {
    let message = format!("`{name}` must be a duration string such as {examples}");
    syn::Error::new_spanned(expr, message)
}

fn policy_names() -> String {
    let names: Vec<String> = POLICIES
        .iter()
        .map(|(name, _)| format!("`\"{name}\"`"))
        .collect();
    names.join(", ")
}

/// `policy = "lru"`: one of [`POLICIES`].
fn policy_value(expr: &Expr) -> syn::Result<Spanned<&'static str>> {
    let lit = match ungroup(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit),
            attrs,
        }) if attrs.is_empty() => lit,
        other => {
            let message = format!("`policy` must be a string, one of {}", policy_names());
            return Err(syn::Error::new_spanned(other, message));
        }
    };
    let text = lit.value();
    match POLICIES.iter().find(|(name, _)| *name == text) {
        Some((_, variant)) => Ok(Spanned {
            value: variant,
            span: lit.span(),
        }),
        None => {
            let message = format!(
                "unknown policy {text:?}; expected one of {}",
                policy_names()
            );
            Err(syn::Error::new(lit.span(), message))
        }
    }
}

/// `key = <expr>`: any expression; the compiler checks its type.
fn key_value(expr: Expr) -> Spanned<Expr> {
    Spanned {
        span: expr.span(),
        value: expr,
    }
}

/// A single identifier (`self` included), as `ignore` and `cache_field` take.
fn ident_of(expr: &Expr) -> Option<Ident> {
    match ungroup(expr) {
        Expr::Path(path) if path.attrs.is_empty() && path.qself.is_none() => {
            path.path.get_ident().cloned()
        }
        _ => None,
    }
}

/// `ignore = [client, self]`: argument names, each once.
fn ignore_value(expr: &Expr) -> syn::Result<Spanned<Vec<Ident>>> {
    let wrong = |tokens: &dyn ToTokens| {
        syn::Error::new_spanned(
            tokens,
            "`ignore` takes a list of argument names, e.g. `ignore = [client]` or `ignore = [self]`",
        )
    };
    let Expr::Array(array) = ungroup(expr) else {
        return Err(wrong(expr));
    };
    let mut names: Vec<Ident> = Vec::new();
    let mut errors = Errors::default();
    for elem in &array.elems {
        match ident_of(elem) {
            Some(name) if names.contains(&name) => errors.push(syn::Error::new_spanned(
                &name,
                format!("`{name}` is ignored twice; name each argument once"),
            )),
            Some(name) => names.push(name),
            None => errors.push(wrong(elem)),
        }
    }
    errors.finish()?;
    Ok(Spanned {
        value: names,
        span: array.span(),
    })
}

/// `single_flight = true` or `false`.
fn bool_value(expr: &Expr, name: &str) -> syn::Result<Spanned<bool>> {
    match ungroup(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(lit),
            attrs,
        }) if attrs.is_empty() => Ok(Spanned {
            value: lit.value,
            span: lit.span(),
        }),
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{name}` must be `true` or `false`"),
        )),
    }
}

/// `cache_field = lookups`: a field name of `self`.
fn cache_field_value(expr: &Expr) -> syn::Result<Spanned<Ident>> {
    match ident_of(expr) {
        Some(name) if name != "self" => Ok(Spanned {
            span: name.span(),
            value: name,
        }),
        _ => Err(syn::Error::new_spanned(
            expr,
            "`cache_field` must name a field of `self` whose type is `memo::InstanceCache`, \
             e.g. `cache_field = lookups`",
        )),
    }
}

/// `crate = "my_memo"` or `crate = my_memo`: the path the facade is known by.
fn crate_value(expr: &Expr) -> syn::Result<Spanned<Path>> {
    let wrong = |tokens: &dyn ToTokens| {
        syn::Error::new_spanned(
            tokens,
            "`crate` must be the path of the `memo` crate as renamed, e.g. `crate = \"my_memo\"`",
        )
    };
    match ungroup(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit),
            attrs,
        }) if attrs.is_empty() => {
            let path: Path = lit.parse().map_err(|_| wrong(lit))?;
            let span = lit.span();
            let path = respan(path, span);
            Ok(Spanned { value: path, span })
        }
        Expr::Path(path) if path.attrs.is_empty() && path.qself.is_none() => Ok(Spanned {
            span: path.span(),
            value: path.path.clone(),
        }),
        other => Err(wrong(other)),
    }
}

/// `path` with every token at `span`.
fn respan(path: Path, span: Span) -> Path {
    let tokens: TokenStream = path
        .to_token_stream()
        .into_iter()
        .map(|mut tree| {
            tree.set_span(span);
            tree
        })
        .collect();
    syn::parse2(tokens).unwrap_or(path)
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
        for value in [quote!(100000000000000000000000), quote!(5000000000)] {
            let found = errors(quote!(maxsize = #value));
            assert!(
                found[0].starts_with("`maxsize` is too large: a cache holds at most 2147483648")
            );
        }
        let options = parse(quote!(maxsize = 2147483648)).unwrap();
        assert_eq!(options.maxsize(), Maxsize::Bounded(1 << 31));
    }

    #[test]
    fn ttl_is_parsed_at_expansion() {
        let options = parse(quote!(ttl = "1h 30m", maxsize = 4)).unwrap();
        assert_eq!(options.ttl.unwrap().value, Duration::from_secs(5400));
        let options = parse(quote!(ttl = "500ms")).unwrap();
        assert_eq!(options.ttl.unwrap().value, Duration::from_millis(500));
    }

    #[test]
    fn negative_ttls_are_parsed_and_spanned_at_their_names() {
        let options = parse(quote!(err_ttl = "5s", none_ttl = "250ms")).unwrap();
        assert_eq!(options.err_ttl.unwrap().value, Duration::from_secs(5));
        assert_eq!(options.none_ttl.unwrap().value, Duration::from_millis(250));
        let found = errors(quote!(err_ttl = "0s"));
        assert_eq!(
            found,
            ["`err_ttl` must be longer than zero; remove `err_ttl` to never cache an `Err`"]
        );
        let found = errors(quote!(none_ttl = 5));
        assert!(found[0].starts_with("`none_ttl` must be a duration string"));
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
    fn maxweight_is_a_size_in_bytes() {
        let options = parse(quote!(maxweight = "64MiB")).unwrap();
        assert_eq!(options.maxweight.unwrap().value, 64 << 20);
        let options = parse(quote!(maxweight = "500 KB")).unwrap();
        assert_eq!(options.maxweight.unwrap().value, 500_000);
        let options = parse(quote!(maxweight = 4096)).unwrap();
        assert_eq!(options.maxweight.unwrap().value, 4096);
        for bad in ["0", "12 parsecs", "MiB", "-1KB", "99999999999TiB"] {
            let found = errors(quote!(maxweight = #bad));
            assert!(
                found[0].starts_with("`maxweight` must be a size"),
                "{found:?}"
            );
        }
    }

    #[test]
    fn ttl_jitter_is_a_percentage_above_zero_up_to_a_hundred() {
        let options = parse(quote!(ttl = "30s", ttl_jitter = "10%")).unwrap();
        assert_eq!(options.ttl_jitter.unwrap().value, 0.1);
        let options = parse(quote!(ttl_jitter = "2.5 %")).unwrap();
        assert_eq!(options.ttl_jitter.unwrap().value, 0.025);
        for bad in ["150%", "0%", "10", "-5%", "x%"] {
            let found = errors(quote!(ttl_jitter = #bad));
            assert!(
                found[0].starts_with("`ttl_jitter` must be a percentage"),
                "{found:?}"
            );
        }
        let found = errors(quote!(ttl_jitter = 0.1));
        assert!(found[0].starts_with("`ttl_jitter` must be a percentage"));
    }

    #[test]
    fn unknown_option_lists_the_valid_ones() {
        let found = errors(quote!(maxsise = 3));
        assert_eq!(
            found,
            [
                "unknown memoize option `maxsise`; expected one of `maxsize`, `maxweight`, `ttl`, \
              `ttl_jitter`, `err_ttl`, `none_ttl`, `refresh`, `stale_while_revalidate`, \
              `stale_if_error`, `policy`, `key`, `ignore`, `single_flight`, `cache_field`, \
              `store`, `version`, `local`, `local_ttl`, `crate`"
            ]
        );
        let found = errors(quote!(a::b(c, d), maxsize = 3));
        assert_eq!(
            found,
            [
                "unknown memoize option `a::b`; expected one of `maxsize`, `maxweight`, `ttl`, \
              `ttl_jitter`, `err_ttl`, `none_ttl`, `refresh`, `stale_while_revalidate`, \
              `stale_if_error`, `policy`, `key`, `ignore`, `single_flight`, `cache_field`, \
              `store`, `version`, `local`, `local_ttl`, `crate`"
            ]
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

    #[test]
    fn policy_names_a_variant() {
        for (name, variant) in POLICIES {
            let options = parse(quote!(policy = #name)).unwrap();
            assert_eq!(options.policy_variant(), *variant);
        }
        assert_eq!(parse(TokenStream::new()).unwrap().policy_variant(), "Lru");
        let found = errors(quote!(policy = "lfru"));
        assert_eq!(
            found,
            [
                "unknown policy \"lfru\"; expected one of `\"lru\"`, `\"fifo\"`, `\"lfu\"`, \
              `\"mru\"`, `\"adaptive\"`"
            ]
        );
        assert!(errors(quote!(policy = Lru))[0].starts_with("`policy` must be a string"));
    }

    #[test]
    fn key_ignore_and_flags() {
        let options = parse(quote!(key = city.to_lowercase(), single_flight = false)).unwrap();
        assert!(options.key.is_some());
        assert!(!options.single_flight());
        assert!(parse(TokenStream::new()).unwrap().single_flight());
        let options = parse(quote!(ignore = [client, self], cache_field = lookups)).unwrap();
        let ignored: Vec<String> = options
            .ignore
            .unwrap()
            .value
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ignored, ["client", "self"]);
        assert_eq!(options.cache_field.unwrap().value, "lookups");
        assert_eq!(
            errors(quote!(ignore = [a, a])),
            ["`a` is ignored twice; name each argument once"]
        );
        assert!(
            errors(quote!(ignore = a))[0].starts_with("`ignore` takes a list of argument names")
        );
        assert!(errors(quote!(ignore = [a.b]))[0].starts_with("`ignore` takes a list"));
        assert_eq!(
            errors(quote!(single_flight = 1)),
            ["`single_flight` must be `true` or `false`"]
        );
        assert!(
            errors(quote!(cache_field = self))[0].starts_with("`cache_field` must name a field")
        );
    }

    #[test]
    fn crate_takes_a_string_or_a_path() {
        let options = parse(quote!(crate = "my_memo")).unwrap();
        assert_eq!(
            options.crate_path().to_token_stream().to_string(),
            "my_memo"
        );
        let options = parse(quote!(crate = ::renamed::memo)).unwrap();
        assert_eq!(
            options.crate_path().to_token_stream().to_string(),
            ":: renamed :: memo"
        );
        assert_eq!(
            parse(TokenStream::new())
                .unwrap()
                .crate_path()
                .to_token_stream()
                .to_string(),
            ":: memo"
        );
        assert!(errors(quote!(crate = "not a path"))[0].starts_with("`crate` must be the path"));
    }
}
