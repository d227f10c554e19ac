//! Resolved, not built, by tests/coexist.rs.
fn main() {}
