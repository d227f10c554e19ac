//! `#[memoize(store = ...)]` without a store feature is one error, at the `store` token, saying
//! to enable the feature, on a free function and on a method. This test compiles
//! `tests/store-feature-off`, a crate that depends on memo without features (its own workspace, so
//! that no feature of this one is unified into it), with cargo.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn store_without_the_feature_is_one_error_at_the_store_token() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // target/<profile>/deps/<this test>: its own directory beside them, kept between runs.
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the target directory")
        .join("store-feature-off");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "check",
            "--quiet",
            "--keep-going",
            "--message-format=short",
            "--manifest-path",
        ])
        .arg(root.join("tests/store-feature-off/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it compiled: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("error") && !line.starts_with("error: could not compile"))
        .collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    for at in [
        "store-without-feature.rs:3:11",
        "store-without-feature-on-a-method.rs:7:15",
    ] {
        let expected = format!("{at}: error: `store = ...` needs a store feature of `memo`");
        assert!(
            errors.iter().any(|error| error.contains(&expected)),
            "no {expected:?} in {stderr}"
        );
    }
}
