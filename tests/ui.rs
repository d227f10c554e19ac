//! Compile-time behaviour of `#[memoize]`: every mistake is one error at the offending token
//! (`tests/ui/fail`, each with its reviewed `.stderr`), and what must compile does, warnings
//! denied (`tests/ui/pass`). With a store feature, `tests/ui/stores` holds the mistakes that only a
//! store makes (a key that is not `Serialize`, ...); without one, `tests/ui/no-stores` holds
//! `store = ...` itself, one error saying to enable the feature. trybuild builds the cases with
//! the features of this test, so `cargo test --test ui` runs the latter and
//! `cargo test --test ui --all-features` the former (`tests/store_feature_off.rs` checks the
//! latter in an `--all-features` run too).
//!
//! The `.stderr` files depend on the compiler's wording: after a toolchain update, regenerate them
//! with `TRYBUILD=overwrite cargo test --test ui` and review the diff. `MEMO_UI=name` runs only the
//! cases whose file name contains `name`.

#[test]
fn ui() {
    let only = std::env::var("MEMO_UI").unwrap_or_default();
    let t = trybuild::TestCases::new();
    let stores = if cfg!(feature = "stores") {
        "tests/ui/stores"
    } else {
        "tests/ui/no-stores"
    };
    for (folder, pass) in [
        ("tests/ui/fail", false),
        (stores, false),
        ("tests/ui/pass", true),
    ] {
        let mut files: Vec<_> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
            .filter(|path| path.to_string_lossy().contains(&only))
            .collect();
        files.sort();
        for file in files {
            if pass {
                t.pass(file);
            } else {
                t.compile_fail(file);
            }
        }
    }
}
