//! Runs the store's shuttle tests (`memo-core/src/tests/shuttle.rs`), which need the crate built
//! with `--cfg memo_shuttle` (shuttle's atomics and mutex in place of std's), as part of the
//! ordinary `cargo test`: it builds that variant in a target directory of its own and checks
//! that every shuttle test ran and passed.

use std::process::Command;

#[test]
fn the_concurrent_core_passes_its_shuttle_tests() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("shuttle");
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.is_empty() => format!("{flags} --cfg memo_shuttle"),
        _ => "--cfg memo_shuttle".to_string(),
    };
    let output = Command::new(cargo)
        // The schedules run about 8 times faster with the crate and shuttle optimized, for the
        // same build time (what the build takes is in the dependencies, unoptimized).
        .args(["test", "-p", "memo-core", "--lib"])
        .args(["--config", "profile.dev.package.memo-core.opt-level=1"])
        .args(["--config", "profile.dev.package.shuttle.opt-level=2"])
        .args(["--", "shuttle"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUSTFLAGS", rustflags)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "shuttle tests failed:\n{stdout}\n{stderr}"
    );
    let passed = stdout
        .lines()
        .filter(|l| l.contains("shuttle_") && l.ends_with("... ok"))
        .count();
    assert!(passed >= 5, "expected the shuttle tests to run:\n{stdout}");
}
