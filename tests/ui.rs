//! Compile-time behaviour of `#[memoize]`: every mistake is one error at the offending token
//! (`tests/ui/fail`, each with its reviewed `.stderr`), and what must compile does, warnings
//! denied (`tests/ui/pass`).
//!
//! The `.stderr` files depend on the compiler's wording: after a toolchain update, regenerate them
//! with `TRYBUILD=overwrite cargo test --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
