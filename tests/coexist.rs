//! An application on the newest redis (1.8), rusqlite (0.43, `bundled`), hashbrown (0.17) and
//! parking_lot (0.13) can add memo with every store: `tests/coexist-app` is such an app, which
//! uses its own redis client and SQLite connection beside memo's stores. Cargo resolves it with
//! one copy of each (rusqlite's `libsqlite3-sys` links `sqlite3`, so two would be an error; two
//! redis would be two clients), and it compiles (`cargo check`: type-checked against those
//! versions, build scripts and the bundled C libraries built).
//!
//! Cost: the check builds into a target directory of its own, `target/coexist-app` (a nested
//! cargo cannot use the workspace's, which `cargo test` holds locked), kept between runs like
//! `target/store-feature-off`: the first run compiles the bundled SQLite and zstd (about 85 s of
//! CPU, 2 min on two loaded cores), later ones take under a second. It runs `--offline` (the
//! crates a previous run or the workspace's build fetched), and online only when that fails, so
//! a warm run makes no request; the app has no Cargo.lock, so the newest versions known locally
//! in memo's ranges are the ones checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `cargo <args> --manifest-path tests/coexist-app/Cargo.toml`, offline first, then online if
/// offline failed (a first run, or an index that lacks what the ranges now select).
fn cargo(root: &Path, args: &[&str], target: Option<&Path>) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let run = |offline: bool| {
        let mut command = Command::new(&cargo);
        command
            .args(args)
            .arg("--manifest-path")
            .arg(root.join("tests/coexist-app/Cargo.toml"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS");
        if let Some(target) = target {
            command.arg("--target-dir").arg(target);
        }
        if offline {
            command.arg("--offline");
        }
        command.output().expect("run cargo")
    };
    let offline = run(true);
    if offline.status.success() {
        return offline;
    }
    run(false)
}

#[test]
fn an_app_on_the_newest_dependencies_resolves_one_copy_of_each_and_compiles() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Resolved afresh: a lock file of an earlier run would pin what it selected then.
    let _ = std::fs::remove_file(root.join("tests/coexist-app/Cargo.lock"));
    // target/<profile>/deps/<this test>: its own directory beside them, kept between runs.
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the target directory")
        .join("coexist-app");
    let check = cargo(
        &root,
        &["check", "--quiet", "--message-format=short"],
        Some(&target),
    );
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "the app does not compile: {stderr}");

    let tree = cargo(
        &root,
        &["tree", "--edges", "normal", "--prefix", "none"],
        None,
    );
    let stdout = String::from_utf8_lossy(&tree.stdout);
    let stderr = String::from_utf8_lossy(&tree.stderr);
    assert!(tree.status.success(), "cargo could not resolve: {stderr}");
    for (name, major) in [
        ("redis", "v1."),
        ("rusqlite", "v0.43."),
        ("libsqlite3-sys", "v0."),
        ("hashbrown", "v0.17."),
        ("parking_lot", "v0.13."),
    ] {
        let mut versions: Vec<&str> = stdout
            .lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .filter_map(|rest| rest.split_whitespace().next())
            .collect();
        versions.sort_unstable();
        versions.dedup();
        assert_eq!(versions.len(), 1, "{name}: {versions:?}\n{stdout}");
        assert!(versions[0].starts_with(major), "{name}: {versions:?}");
    }
}
