//! The wrapper of a function with `refresh`, `stale_while_revalidate` or `stale_if_error`: its
//! cache holds `Stamped` values (the value and its write time), and a hit asks the memo what the
//! entry's age calls for (`memo_core`'s `refresh.rs`).
//!
//! ```text
//! let memo = ...;                                     // &'static Memo<K, Stamped<V>>
//! let mut stale = None;
//! if let Some(found) = memo.cache.get_by(..) {
//!     match memo.age(&found) {
//!         Age::Fresh => return Ok(found.into_value()),
//!         Age::Refresh => {                           // due, or stale within the window
//!             let args = (city.to_owned(), day);     // owned, for the background
//!             memo.refresh(key, move || match f::uncached(&args.0, args.1) { Ok(v) => Some(v), _ => None });
//!             return Ok(found.into_value());
//!         }
//!         Age::Expired { usable_on_error } => if usable_on_error { stale = Some(found) },
//!     }
//! }
//! // single-flight as after a miss, over `memo.unexpired()` (an entry past ttl is absent and a
//! // computed value replaces it); an `Err` or `None` returns `stale` when there is one
//! ```

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::ast::{Output, Passing};
use crate::expand::{Locals, Plan};

impl Plan<'_> {
    /// Whether the function's values are stamped: it has `refresh` or a stale window.
    pub(crate) fn fresh(&self) -> bool {
        self.options.fresh()
    }

    /// `value`, the cached value's type, as the memo stores it: `Stamped<value>` when
    /// [`Plan::fresh`].
    pub(crate) fn stored_type(&self, value: TokenStream) -> TokenStream {
        let memo = &self.memo;
        if self.fresh() {
            quote!(#memo::__private::Stamped<#value>)
        } else {
            value
        }
    }

    /// The `Freshness` the memo is made with.
    pub(crate) fn freshness(&self) -> TokenStream {
        let memo = &self.memo;
        let duration = |d: Option<&crate::attr::Spanned<std::time::Duration>>| match d {
            Some(d) => {
                let (secs, nanos) = (d.value.as_secs(), d.value.subsec_nanos());
                quote!(::core::option::Option::Some(#memo::__private::Duration::new(#secs, #nanos)))
            }
            None => quote!(::core::option::Option::None),
        };
        let ttl = self.options.ttl.as_ref().map_or((0, 0), |ttl| {
            (ttl.value.as_secs(), ttl.value.subsec_nanos())
        });
        let (secs, nanos) = ttl;
        let refresh = duration(self.options.refresh.as_ref());
        let revalidate = duration(self.options.stale_while_revalidate.as_ref());
        let on_error = duration(self.options.stale_if_error.as_ref());
        quote! {
            #memo::__private::Freshness {
                ttl: #memo::__private::Duration::new(#secs, #nanos),
                refresh: #refresh,
                stale_while_revalidate: #revalidate,
                stale_if_error: #on_error,
            }
        }
    }

    /// The memo of a function with a store and these options, made from `params`: the store
    /// keeps its entries for the ttl and the longest window, stamped on the wall clock.
    pub(crate) fn fresh_store_memo(&self, params: TokenStream) -> TokenStream {
        let (memo, freshness) = (&self.memo, self.freshness());
        let kept = self.new_memo(quote!(#freshness.kept(#params)));
        quote!(#memo::__private::Memo::with_freshness(#kept, #freshness, (#params).ttl_jitter))
    }

    /// The value a `cache_prime` stores: stamped when [`Plan::fresh`].
    pub(crate) fn primed_stored(&self, memo: &Ident, value: TokenStream) -> TokenStream {
        if self.fresh() {
            quote!(#memo.stamp(#value))
        } else {
            value
        }
    }
}

/// The wrapper's body of a function with these options.
pub(crate) fn body(plan: &Plan<'_>, locals: &Locals) -> TokenStream {
    let Locals {
        memo,
        found,
        key,
        leader,
        ret,
        ..
    } = locals;
    let path = &plan.memo;
    let is_async = plan.function.sig.asyncness.is_some();
    let stale = Ident::new("__memo_stale", Span::mixed_site());
    let unexpired = Ident::new("__memo_unexpired", Span::mixed_site());
    let on_error = plan.options.stale_if_error.is_some();
    let hit = plan.hit(found);
    let returned = quote!({
        let #found = #found.into_value();
        return #hit;
    });
    let stale_answer = on_error.then(|| {
        quote! {
            if let ::core::option::Option::Some(#found) = #stale {
                #memo.stale_error();
                let #found = #found.into_value();
                return #hit;
            }
        }
    });
    let (binding, lookup, refresh_key, join, negative_get) = match plan.key_expr {
        Some(expr) => {
            let value = plan.key_expr_value(expr);
            let get_memo = plan.memo_binding(memo, Some(key));
            let join = if is_async {
                quote!(#memo.flights.join_owned_async(&#unexpired, #key).await)
            } else {
                quote!(#memo.flights.join_owned(&#unexpired, #key))
            };
            (
                quote!(let #key = #value; #get_memo),
                plan.lookup_key(memo, key),
                quote!(#key),
                join,
                quote!(#memo.negative_get(&#key)),
            )
        }
        None => {
            let borrowed = plan.borrowed_keys();
            let is_match = plan.is_match();
            let owned = plan.owned_key();
            let probe = quote!(&(#(#borrowed,)*));
            let join = if is_async {
                quote!(#memo.flights.join_async(&#unexpired, #probe, #is_match, || #owned).await)
            } else {
                quote!(#memo.flights.join(&#unexpired, #probe, #is_match, || #owned))
            };
            (
                plan.memo_binding(memo, None),
                plan.lookup_by(memo, &probe, &is_match),
                owned,
                join,
                quote!(#memo.negative_get_by(#probe, #is_match)),
            )
        }
    };
    let schedule = schedule(plan, memo, found, &refresh_key);
    let expired = if on_error {
        quote!(#path::__private::Age::Expired { usable_on_error } => {
            if usable_on_error {
                #stale = ::core::option::Option::Some(#found);
            }
        })
    } else {
        quote!(#path::__private::Age::Expired { .. } => {})
    };
    let stale_slot = on_error.then(|| quote!(let mut #stale = ::core::option::Option::None;));
    // `err_ttl` / `none_ttl`: a cached failure answers only a call that has no stale value.
    let negative_lookup = plan.negative().map(|_| {
        let hit = plan.negative_hit(found);
        let unanswered = match on_error {
            true => quote!(#stale.is_none()),
            false => quote!(true),
        };
        quote! {
            if #unanswered {
                if let ::core::option::Option::Some(#found) = #negative_get {
                    return #hit;
                }
            }
        }
    });
    let failed = Ident::new("__memo_failed", Span::mixed_site());
    let failed_arm = match plan.shared_return() {
        _ if plan.negative().is_some() => {
            let hit = plan.negative_hit(&failed);
            quote! {
                #path::__private::Joined::Failed(#failed) => {
                    #stale_answer
                    return #hit;
                }
            }
        }
        Some(ty) => quote! {
            #path::__private::Joined::Failed(#failed) => {
                #stale_answer
                #[allow(unused_imports)]
                use #path::__private::{ShareNoReturn as _, ShareReturn as _};
                return (&#path::__private::SharedReturn::<#ty>::new(#failed)).ret();
            }
        },
        None => quote!(#path::__private::Joined::Failed(_) => ::core::unreachable!(),),
    };
    let call = plan.body_call();
    let run = if is_async {
        quote!(#leader.run(#path::__private::pin!(#call)).await)
    } else {
        quote!(#leader.call(|| #call))
    };
    let hit_path = quote! {
        #binding
        #stale_slot
        if let ::core::option::Option::Some(#found) = #lookup {
            match #memo.age(&#found) {
                #path::__private::Age::Fresh => #returned
                #path::__private::Age::Refresh => {
                    #schedule
                    #returned
                }
                #expired
            }
        }
        #negative_lookup
    };
    if !plan.single_flight {
        let owned_key = plan
            .key_expr
            .is_none()
            .then(|| quote!(let #key = #refresh_key;));
        let alone = alone(plan, locals, stale_answer.as_ref());
        return quote!(#hit_path #owned_key #alone);
    }
    let outcome = outcome(plan, locals, &unexpired, stale_answer.as_ref());
    quote! {
        #hit_path
        let #unexpired = #memo.unexpired();
        let #leader = match #join {
            #path::__private::Joined::Ready(#found) => #returned
            #failed_arm
            #path::__private::Joined::Lead(#leader) => #leader,
        };
        let #ret = #run;
        #outcome
        #ret
    }
}

/// `memo.flights.store_since(..)` of a stamped `value` (what `single_flight = false` writes):
/// for an `async fn` with a store, through a write-behind awaited after it.
fn stored_since(
    plan: &Plan<'_>,
    memo: &Ident,
    epoch: &Ident,
    key: &Ident,
    value: &TokenStream,
) -> TokenStream {
    if plan.store_async() {
        let path = &plan.memo;
        return quote! {
            let __memo_write = #path::__private::store_write_behind(&#memo.cache);
            #memo.flights.store_since(
                &#memo.unexpired_in(&__memo_write), #epoch, #key, #memo.stamp(#value),
            );
            __memo_write.flush().await;
        };
    }
    quote!(#memo.flights.store_since(&#memo.unexpired(), #epoch, #key, #memo.stamp(#value));)
}

/// Without single-flight (`single_flight = false`): the caller runs the body; its value is
/// stamped and stored unless an invalidation came meanwhile (the flights' epoch); a failure is
/// answered by the stale value when there is one, else cached with `err_ttl` / `none_ttl`.
fn alone(plan: &Plan<'_>, locals: &Locals, stale_answer: Option<&TokenStream>) -> TokenStream {
    let Locals {
        memo,
        key,
        ret,
        stored,
        ..
    } = locals;
    let epoch = Ident::new("__memo_epoch", Span::mixed_site());
    let call = plan.body_call();
    let call = match plan.function.sig.asyncness {
        Some(_) => quote!(#call.await),
        None => call,
    };
    let store = stored_since(plan, memo, &epoch, key, &plan.clone_value(stored));
    let fail = |error: &Ident| {
        let cached = plan.negative().map(|_| {
            let failure = plan.negative_failure(error);
            quote!(#memo.store_failure_since(#epoch, #key, #failure);)
        });
        quote!(#stale_answer #cached)
    };
    let outcome = match plan.function.output {
        Output::Plain { .. } => quote!({ let #stored = &#ret; #store }),
        Output::Result { .. } => {
            let error = Ident::new("__memo_error", Span::mixed_site());
            let fail = fail(&error);
            quote! {
                match &#ret {
                    ::core::result::Result::Ok(#stored) => { #store }
                    ::core::result::Result::Err(#error) => { #fail }
                }
            }
        }
        Output::Option { .. } => {
            let fail = fail(&Ident::new("_", Span::call_site()));
            quote! {
                match &#ret {
                    ::core::option::Option::Some(#stored) => { #store }
                    ::core::option::Option::None => { #fail }
                }
            }
        }
    };
    quote! {
        let #epoch = #memo.flights.epoch();
        let #ret = #call;
        #outcome
        #ret
    }
}

/// The leader's end: a value is stamped and stored (unless invalidated meanwhile); a failure is
/// shared or releases the waiters, and is answered by the stale value when there is one.
fn outcome(
    plan: &Plan<'_>,
    locals: &Locals,
    unexpired: &Ident,
    stale_answer: Option<&TokenStream>,
) -> TokenStream {
    let Locals {
        memo,
        leader,
        ret,
        stored,
        ..
    } = locals;
    let clone = plan.clone_value(stored);
    let complete = if plan.store_async() {
        // Into the write-behind, awaited once the flight is done (as `Plan::complete_leader`).
        let path = &plan.memo;
        quote! {
            let __memo_write = #path::__private::store_write_behind(&#memo.cache);
            #memo.flights.complete(
                #leader, &#memo.unexpired_in(&__memo_write), #memo.stamp(#clone),
            );
            __memo_write.flush().await;
        }
    } else {
        quote!(#memo.flights.complete(#leader, &#unexpired, #memo.stamp(#clone));)
    };
    // A failure answered by the stale value is shared with the waiters (who answer it the same
    // way) and not cached; with `err_ttl` / `none_ttl` any other is cached.
    let fail = |error: &Ident, shared: TokenStream| {
        let answered = quote!(#memo.flights.fail(#leader, #shared); #stale_answer);
        if plan.negative().is_none() {
            return answered;
        }
        let failure = plan.negative_failure(error);
        let cached = quote!(#memo.fail_cached(#leader, #failure););
        match stale_answer {
            Some(_) => {
                let stale = Ident::new("__memo_stale", Span::mixed_site());
                quote!(if #stale.is_some() { #answered } else { #cached })
            }
            None => cached,
        }
    };
    match plan.function.output {
        Output::Plain { .. } => quote!({ let #stored = &#ret; #complete }),
        Output::Result { .. } => {
            let error = Ident::new("__memo_error", Span::mixed_site());
            let failure = plan.error_failure(&error);
            let fail = fail(&error, failure);
            quote! {
                match &#ret {
                    ::core::result::Result::Ok(#stored) => { #complete }
                    ::core::result::Result::Err(#error) => { #fail }
                }
            }
        }
        Output::Option { .. } => {
            let fail = fail(
                &Ident::new("_", Span::call_site()),
                quote!(::core::option::Option::None),
            );
            quote! {
                match &#ret {
                    ::core::option::Option::Some(#stored) => { #complete }
                    ::core::option::Option::None => { #fail }
                }
            }
        }
    }
}

/// `memo.refresh(key, &found, job)`: the body on owned copies of the arguments (`&T` as
/// `T::to_owned`, `T` moved), its value kept (`None` for an `Err` or a `None`).
fn schedule(plan: &Plan<'_>, memo: &Ident, found: &Ident, key: &TokenStream) -> TokenStream {
    let args = Ident::new("__memo_args", Span::mixed_site());
    let refresh_key = Ident::new("__memo_refresh_key", Span::mixed_site());
    let function = plan.function;
    let names: Vec<&Ident> = function.args.iter().map(|arg| &arg.name).collect();
    let owned = function.args.iter().map(|arg| {
        let name = &arg.name;
        match &arg.passing {
            // Spanned at the type: one that cannot be owned is reported there.
            Passing::Shared { referent } => crate::expand::trait_call(
                referent,
                quote!(::std::borrow::ToOwned),
                "to_owned",
                quote!(#name),
            ),
            Passing::ByValue | Passing::Exclusive => quote!(#name),
        }
    });
    let passed = function.args.iter().map(|arg| {
        let name = &arg.name;
        match &arg.passing {
            Passing::Shared { referent } => {
                quote!(::core::borrow::Borrow::<#referent>::borrow(&#name))
            }
            Passing::ByValue | Passing::Exclusive => quote!(#name),
        }
    });
    // A method's `self` is cloned, at the receiver: `Self` must be `Clone + Send + 'static`.
    let this = Ident::new("__memo_this", Span::mixed_site());
    let receiver = function.receiver.as_ref().map(|receiver| {
        let (first, _) = crate::ast::span_range(receiver);
        quote::quote_spanned!(first=> <Self as ::core::clone::Clone>::clone(self))
    });
    let (this_owned, this_name, this_passed) = match receiver {
        Some(clone) => (Some(clone), Some(&this), Some(quote!(&#this,))),
        None => (None, None, None),
    };
    let owned = this_owned.into_iter().chain(owned);
    let names: Vec<&Ident> = this_name.into_iter().chain(names).collect();
    let owner = plan.owner();
    let uncached = plan.companion("uncached");
    let turbofish = plan.turbofish();
    let is_async = function.sig.asyncness.is_some();
    let await_token = is_async.then(|| quote!(.await));
    let call = quote!(#owner::#uncached #turbofish(#this_passed #(#passed),*) #await_token);
    let value = Ident::new("__memo_value", Span::mixed_site());
    let kept = plan.primed_value(&value);
    let some = quote!(::core::option::Option::Some(#kept));
    let keep = match function.output {
        Output::Plain { .. } => quote!({ let #value = #call; #some }),
        Output::Result { .. } => quote!(match #call {
            ::core::result::Result::Ok(#value) => #some,
            ::core::result::Result::Err(_) => ::core::option::Option::None,
        }),
        Output::Option { .. } => quote!(match #call {
            ::core::option::Option::Some(#value) => #some,
            ::core::option::Option::None => ::core::option::Option::None,
        }),
    };
    let unpack = quote!(let (#(#names,)*) = #args;);
    let submit = if is_async {
        quote!(#memo.refresh_async(#refresh_key, &#found, async move { #unpack #keep });)
    } else {
        quote!(#memo.refresh(#refresh_key, &#found, move || { #unpack #keep });)
    };
    quote! {
        let #refresh_key = #key;
        let #args = (#(#owned,)*);
        #submit
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    fn expand(args: proc_macro2::TokenStream) -> String {
        let item = quote!(
            fn f(x: &str) -> Result<u8, String> {
                Ok(x.len() as u8)
            }
        );
        crate::expand::memoize(args, item).to_string()
    }

    #[test]
    fn only_functions_with_the_options_stamp_their_values() {
        let plain = expand(quote!(ttl = "30s"));
        assert!(!plain.contains("Stamped"), "{plain}");
        assert!(!plain.contains("age ("), "{plain}");
        let fresh = expand(quote!(ttl = "30s", refresh = "25s", stale_if_error = "10m"));
        assert!(fresh.contains("Stamped <"), "{fresh}");
        assert!(fresh.contains("Memo :: fresh ("), "{fresh}");
        assert!(fresh.contains(". age (&"), "{fresh}");
        assert!(fresh.contains("stale_error ()"), "{fresh}");
        assert!(fresh.contains("ToOwned > :: to_owned (x)"), "{fresh}");
        assert!(fresh.contains("Duration :: new (25u64 , 0u32)"), "{fresh}");
        assert!(!fresh.contains("compile_error"), "{fresh}");
        // Without `stale_if_error`, no stale value is kept for a failure.
        let ahead = expand(quote!(ttl = "30s", refresh = "25s"));
        assert!(!ahead.contains("__memo_stale"), "{ahead}");
    }
}
