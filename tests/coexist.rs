//! An application on the newest redis (1.8), rusqlite (0.43, `bundled`), hashbrown (0.17) and
//! parking_lot (0.13) can add memo with every store: `tests/coexist-app` is such an app, and Cargo
//! resolves it with one copy of each (rusqlite's `libsqlite3-sys` links `sqlite3`, so two would
//! be an error; two redis would be two clients). Resolution only, which is where such an app
//! failed (`redis = "~1.1"` could not be selected beside 1.8); the build of the newest versions
//! is the workspace's own, whose Cargo.lock holds the tops of memo's ranges.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn an_app_on_the_newest_dependencies_resolves_one_copy_of_each() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
        ])
        .arg(root.join("tests/coexist-app/Cargo.toml"))
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cargo could not resolve: {stderr}");
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
