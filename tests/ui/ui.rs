//! Compile-time behaviour of `#[memoize]`: every mistake is one error at the offending token
//! (`fail/`, each with its reviewed `.stderr`), the mistakes that only a store makes (a key that is
//! not `Serialize`, ...) too (`stores/`), and what must compile does, warnings denied (`pass/`).
//! trybuild builds the cases against memo with its `stores` feature (this package's dependency);
//! `store = ...` without a store feature is checked by `tests/store_feature_off.rs`.
//!
//! The `.stderr` files depend on the compiler's wording: after a toolchain update, regenerate them
//! with `TRYBUILD=overwrite cargo test -p memo-ui-tests` and review the diff. `MEMO_UI=name` runs
//! only the cases whose file name contains `name`.

#[test]
fn ui() {
    let only = std::env::var("MEMO_UI").unwrap_or_default();
    let t = trybuild::TestCases::new();
    for (folder, pass) in [("fail", false), ("stores", false), ("pass", true)] {
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
