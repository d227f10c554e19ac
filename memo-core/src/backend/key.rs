//! Keys: a namespace per function and version, then the arguments as JSON, hashed when long.
//!
//! ```text
//! memo:app::weather::temperature:v1.9c1f0a2b4d6e8f00   the namespace: prefix, path, version, signature
//! ["Paris",3]                                          the key: the arguments as JSON
//! #5f2a...(64 hex digits)                              or '#' and the SHA-256 of that JSON
//! ```
//!
//! The arguments' JSON, not Rust's `Hash`, identifies a call: it is the same in every process
//! and on every machine (the std hasher is seeded per process), and it is readable.

use std::fmt::Write;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Memcached's limit on a key, which every store keeps.
pub(crate) const MAX_KEY_LEN: usize = 250;

/// Namespaces longer than this are shortened: a readable head and a hash.
pub(crate) const MAX_NAMESPACE_LEN: usize = 160;

/// Bytes kept free for a store's own part between namespace and key (Memcached's generation).
pub(crate) const RESERVED_LEN: usize = 24;

/// The namespace of one function: `prefix:path:v<version>.<signature as 16 hex digits>`.
///
/// The signature is a hash of the function's argument and return types, so changing them
/// changes every key; `version` is the user's `version = N` (Django's `VERSION`), default 1.
pub(crate) fn namespace(prefix: &str, path: &str, version: u32, signature: u64) -> String {
    let full = format!("{prefix}:{path}:v{version}.{signature:016x}");
    if full.len() <= MAX_NAMESPACE_LEN && is_safe(&full) {
        return full;
    }
    // A readable head with unsafe characters replaced, then the hash of the whole.
    let mut head = String::new();
    for c in full.chars() {
        if head.len() + c.len_utf8() > 90 {
            break;
        }
        head.push(if is_safe_char(c) { c } else { '_' });
    }
    format!("{head}~{}", sha256_hex(full.as_bytes()))
}

/// The key of one call in `namespace`: the JSON of `args`, or `#` and its SHA-256 when it is too
/// long, has a space or a control character, or begins with `#`.
pub(crate) fn item<Q: Serialize + ?Sized>(
    namespace: &str,
    args: &Q,
) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(args)?;
    Ok(fit(namespace, json))
}

/// `json` if it fits beside `namespace` and is safe, else its hash.
pub(crate) fn fit(namespace: &str, json: String) -> String {
    let room = MAX_KEY_LEN.saturating_sub(namespace.len() + RESERVED_LEN);
    // JSON never begins with '#', so a hashed key never equals a plain one.
    if json.len() <= room && is_safe(&json) {
        json
    } else {
        format!("#{}", sha256_hex(json.as_bytes()))
    }
}

/// Lowercase hex of the SHA-256 of `bytes`: 64 characters.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// No space, no control character (Memcached's rule); UTF-8 beyond ASCII is fine.
pub(crate) fn is_safe(s: &str) -> bool {
    s.chars().all(is_safe_char)
}

fn is_safe_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_prefix_path_version_and_signature() {
        assert_eq!(
            namespace("memo", "app::weather::get", 2, 0xabc),
            "memo:app::weather::get:v2.0000000000000abc"
        );
    }

    #[test]
    fn functions_of_the_same_name_in_two_modules_get_two_namespaces() {
        assert_ne!(
            namespace("memo", "a::get", 1, 7),
            namespace("memo", "b::get", 1, 7)
        );
    }

    #[test]
    fn long_or_unsafe_namespace_is_shortened_with_a_hash() {
        let long = "m::".repeat(100);
        let ns = namespace("memo", &long, 1, 0);
        assert!(ns.len() <= MAX_NAMESPACE_LEN, "{ns}");
        assert!(is_safe(&ns));
        assert_ne!(ns, namespace("memo", &format!("{long}x"), 1, 0));
        let spaced = namespace("my prefix", "f", 1, 0);
        assert!(
            is_safe(&spaced) && spaced.starts_with("my_prefix:f:v1."),
            "{spaced}"
        );
    }

    #[test]
    fn short_arguments_are_their_json() {
        assert_eq!(item("ns", &("Paris", 3)).unwrap(), r#"["Paris",3]"#);
        assert_eq!(item("ns", &(&"Paris", &3u8)).unwrap(), r#"["Paris",3]"#);
    }

    #[test]
    fn long_or_spaced_arguments_are_hashed_and_fit() {
        let ns = namespace("memo", &"m::".repeat(100), 1, 0);
        for args in [
            "x".repeat(300),
            "New York".to_string(),
            "em\u{2003}space".to_string(),
        ] {
            let key = item(&ns, &(args.as_str(),)).unwrap();
            assert!(key.starts_with('#') && key.len() == 65, "{key}");
            assert!(ns.len() + 1 + RESERVED_LEN + key.len() <= MAX_KEY_LEN);
        }
        assert_ne!(
            item("ns", &("a b",)).unwrap(),
            item("ns", &("a  b",)).unwrap()
        );
    }

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
