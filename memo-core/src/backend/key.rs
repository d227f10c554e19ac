//! Keys: a namespace per function and version, then the arguments as JSON, hashed when long.
//!
//! ```text
//! memo:app::weather::temperature:v1.9c1f0a2b4d6e8f00   the namespace: prefix, path, version, signature
//! ["Paris",3]                                          the key: the arguments as JSON
//! ~[[null],"Lyon"]                                     (Some(None), "Lyon"): tagged JSON, marked '~'
//! #5f2a...(64 hex digits)                              or '#' and the SHA-256 of that text
//! ```
//!
//! The arguments' JSON, not Rust's `Hash`, identifies a call: it is the same in every process
//! and on every machine (the std hasher is seeded per process), and it is readable.
//!
//! **Injective for a fixed type** (the function's signature is part of the namespace): two
//! different keys of one type never share a text. Plain JSON is not (`None` and `Some(None)` are
//! both `null`, as are `Some(())` and `None`, and every non-finite float), so keys are written
//! as JSON (serde's data model, as `serde_json` writes it: numbers, strings, arrays for
//! sequences and tuples, objects for structs and maps, `"Variant"` for an empty enum variant and
//! `{"Variant":..}` for the others, `null` for `()` and unit structs) except for:
//!
//! - `Option`: `None` is `null`, `Some(x)` is `[x]` (so `Some(None)` is `[null]`);
//! - a non-finite float: `"NaN:0x<its 16 hex bits>"`, `"inf"` or `"-inf"` (JSON has no such
//!   number; `-0.0` and `0.0` are already distinct: `-0.0`, `0.0`);
//! - a map key that is neither a string nor an integer (JSON keys are strings): the call is not
//!   cached (as before), never confused with another.
//!
//! **Versioned**: a key whose text differs from the plain JSON that older versions wrote (it
//! holds an `Option` or a non-finite float) begins with `~`, which neither JSON nor a hashed key
//! (`#`) begins with, so entries that older versions stored for such keys, under texts that
//! could collide, are never read: they are misses. Every other key keeps its text, which was
//! injective already, so its entries stay valid.

use std::fmt::Write;

use serde::ser::{self, Serialize};
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
    Ok(fit(namespace, encode(args)?))
}

/// The injective text of `value` (see the module's doc): its JSON, with `Option`s and
/// non-finite floats tagged, marked `~` when that makes it differ from plain JSON.
pub(crate) fn encode<Q: Serialize + ?Sized>(value: &Q) -> Result<String, serde_json::Error> {
    let mut text = Text {
        out: String::new(),
        tagged: false,
    };
    value.serialize(&mut text)?;
    if text.tagged {
        text.out.insert(0, '~');
    }
    Ok(text.out)
}

/// The serializer that writes a key's text.
struct Text {
    out: String,
    /// An `Option` or a non-finite float was written: the text is not plain JSON.
    tagged: bool,
}

impl Text {
    fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        self.out.push_str(&serde_json::to_string(value)?);
        Ok(())
    }

    fn float(&mut self, value: f64, bits: u64) -> Result<(), serde_json::Error> {
        if value.is_finite() {
            return self.json(&value);
        }
        self.tagged = true;
        let tag = if value.is_nan() {
            format!("NaN:0x{bits:016x}")
        } else if value > 0.0 {
            "inf".to_owned()
        } else {
            "-inf".to_owned()
        };
        self.json(&tag)
    }
}

/// A sequence, tuple, struct or map being written: whether an element was written yet, and
/// whether the compound closes an enum variant's object too.
struct Compound<'a> {
    text: &'a mut Text,
    first: bool,
    close: &'static str,
}

impl Compound<'_> {
    fn separate(&mut self) {
        if !self.first {
            self.text.out.push(',');
        }
        self.first = false;
    }

    fn field(&mut self, name: &str) -> Result<(), serde_json::Error> {
        self.separate();
        self.text.json(name)?;
        self.text.out.push(':');
        Ok(())
    }

    fn end(self) -> Result<(), serde_json::Error> {
        self.text.out.push_str(self.close);
        Ok(())
    }
}

macro_rules! plain {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, value: $ty) -> Result<(), serde_json::Error> {
            self.json(&value)
        })*
    };
}

impl Text {
    /// Writes `open` and starts a sequence or map whose end writes `close`.
    fn open(&mut self, open: &str, close: &'static str) -> Compound<'_> {
        self.out.push_str(open);
        Compound {
            text: self,
            first: true,
            close,
        }
    }

    /// `{"variant":` then [`Text::open`]: a tuple or struct variant, externally tagged.
    fn open_variant(
        &mut self,
        variant: &str,
        open: &str,
        close: &'static str,
    ) -> Result<Compound<'_>, serde_json::Error> {
        self.out.push('{');
        self.json(variant)?;
        self.out.push(':');
        Ok(self.open(open, close))
    }
}

impl<'a> ser::Serializer for &'a mut Text {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    plain!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8]);

    fn serialize_f32(self, value: f32) -> Result<(), serde_json::Error> {
        if value.is_finite() {
            return self.json(&value);
        }
        self.float(f64::from(value), u64::from(value.to_bits()))
    }
    fn serialize_f64(self, value: f64) -> Result<(), serde_json::Error> {
        self.float(value, value.to_bits())
    }
    fn serialize_none(self) -> Result<(), serde_json::Error> {
        self.tagged = true;
        self.out.push_str("null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), serde_json::Error> {
        self.tagged = true;
        self.out.push('[');
        value.serialize(&mut *self)?;
        self.out.push(']');
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), serde_json::Error> {
        self.out.push_str("null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), serde_json::Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), serde_json::Error> {
        self.json(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.out.push('{');
        self.json(variant)?;
        self.out.push(':');
        value.serialize(&mut *self)?;
        self.out.push('}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, serde_json::Error> {
        Ok(self.open("[", "]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, serde_json::Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, serde_json::Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, serde_json::Error> {
        self.open_variant(variant, "[", "]}")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, serde_json::Error> {
        Ok(self.open("{", "}"))
    }
    fn serialize_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, serde_json::Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, serde_json::Error> {
        self.open_variant(variant, "{", "}}")
    }
}

macro_rules! elements {
    ($($trait:ident: $method:ident),*) => {
        $(impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = serde_json::Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
                self.separate();
                value.serialize(&mut *self.text)
            }
            fn end(self) -> Result<(), serde_json::Error> {
                Compound::end(self)
            }
        })*
    };
}

elements!(SerializeSeq: serialize_element, SerializeTuple: serialize_element,
    SerializeTupleStruct: serialize_field, SerializeTupleVariant: serialize_field);

macro_rules! fields {
    ($($trait:ident),*) => {
        $(impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = serde_json::Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                name: &'static str,
                value: &T,
            ) -> Result<(), serde_json::Error> {
                self.field(name)?;
                value.serialize(&mut *self.text)
            }
            fn end(self) -> Result<(), serde_json::Error> {
                Compound::end(self)
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = serde_json::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), serde_json::Error> {
        self.separate();
        // A JSON key is a string: a string as it is, an integer as its digits (as serde_json).
        let mut text = Text {
            out: String::new(),
            tagged: false,
        };
        key.serialize(&mut text)?;
        let integer = !text.out.is_empty()
            && text
                .out
                .strip_prefix('-')
                .unwrap_or(&text.out)
                .bytes()
                .all(|b| b.is_ascii_digit());
        if text.out.starts_with('"') && !text.tagged {
            self.text.out.push_str(&text.out);
        } else if integer {
            self.text.json(&text.out)?;
        } else {
            return Err(ser::Error::custom(
                "a map in a store's key must have string or integer keys",
            ));
        }
        self.text.out.push(':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        value.serialize(&mut *self.text)
    }
    fn end(self) -> Result<(), serde_json::Error> {
        Compound::end(self)
    }
}

/// `json` if it fits beside `namespace` and is safe, else its hash.
pub(crate) fn fit(namespace: &str, json: String) -> String {
    let room = MAX_KEY_LEN.saturating_sub(namespace.len() + RESERVED_LEN);
    // Neither JSON nor a tagged text ('~') begins with '#': a hashed key never equals another.
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

    use serde::ser::{SerializeStruct, SerializeStructVariant, SerializeTupleVariant};
    use serde::Serializer;

    /// As `#[derive(Serialize)]` writes them (memo-core's serde has no derive).
    struct Unit;

    impl Serialize for Unit {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_unit_struct("Unit")
        }
    }

    enum Shape {
        Empty,
        Other,
        Circle(u8),
        Pair(u8, u8),
        Named { side: u8 },
    }

    impl Serialize for Shape {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Shape::Empty => s.serialize_unit_variant("Shape", 0, "Empty"),
                Shape::Other => s.serialize_unit_variant("Shape", 1, "Other"),
                Shape::Circle(r) => s.serialize_newtype_variant("Shape", 2, "Circle", r),
                Shape::Pair(a, b) => {
                    let mut t = s.serialize_tuple_variant("Shape", 3, "Pair", 2)?;
                    t.serialize_field(a)?;
                    t.serialize_field(b)?;
                    t.end()
                }
                Shape::Named { side } => {
                    let mut t = s.serialize_struct_variant("Shape", 4, "Named", 1)?;
                    t.serialize_field("side", side)?;
                    t.end()
                }
            }
        }
    }

    struct City<'a> {
        name: &'a str,
        day: u32,
    }

    impl Serialize for City<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_struct("City", 2)?;
            t.serialize_field("name", self.name)?;
            t.serialize_field("day", &self.day)?;
            t.end()
        }
    }

    /// Every text of `values` is different.
    fn all_distinct<T: Serialize>(values: &[T]) -> Vec<String> {
        let texts: Vec<String> = values.iter().map(|v| encode(v).unwrap()).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), texts.len(), "{texts:?}");
        texts
    }

    #[test]
    fn nested_options_and_options_of_unit_are_told_apart() {
        let texts = all_distinct(&[None, Some(None), Some(Some(0u8)), Some(Some(1))]);
        assert_eq!(texts, ["~null", "~[null]", "~[[0]]", "~[[1]]"]);
        let texts = all_distinct(&[None, Some(())]);
        assert_eq!(texts, ["~null", "~[null]"]);
        all_distinct(&[
            (None, Some(1u8)),
            (Some(1), None),
            (Some(1), Some(1)),
            (None, None),
        ]);
        all_distinct(&[None, Some(Unit)]);
        all_distinct(&[None, Some(Vec::<u8>::new()), Some(vec![1])]);
    }

    #[test]
    fn unit_structs_and_empty_variants_have_texts_of_their_own() {
        assert_eq!(encode(&Unit).unwrap(), "null");
        assert_eq!(encode(&((), Unit)).unwrap(), "[null,null]");
        let texts = all_distinct(&[
            Shape::Empty,
            Shape::Other,
            Shape::Circle(1),
            Shape::Pair(1, 2),
            Shape::Named { side: 3 },
        ]);
        assert_eq!(
            texts,
            [
                r#""Empty""#,
                r#""Other""#,
                r#"{"Circle":1}"#,
                r#"{"Pair":[1,2]}"#,
                r#"{"Named":{"side":3}}"#
            ]
        );
    }

    #[test]
    fn floats_keep_their_sign_and_non_finite_ones_are_tagged() {
        let texts = all_distinct(&[
            0.0,
            -0.0,
            1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
        ]);
        assert_eq!(&texts[..3], ["0.0", "-0.0", "1.5"]);
        assert_eq!(texts[3], r#"~"inf""#);
        assert!(texts[5].starts_with(r#"~"NaN:0x7ff8"#), "{}", texts[5]);
        all_distinct(&[0.0f32, -0.0, f32::NAN, f32::INFINITY]);
    }

    #[test]
    fn maps_are_objects_and_refuse_keys_json_cannot_name() {
        use std::collections::BTreeMap;
        let by_name = BTreeMap::from([("a".to_owned(), 1u8), ("b".to_owned(), 2)]);
        assert_eq!(encode(&by_name).unwrap(), r#"{"a":1,"b":2}"#);
        let by_number = BTreeMap::from([(-1i32, None), (2, Some(3u8))]);
        assert_eq!(encode(&by_number).unwrap(), r#"~{"-1":null,"2":[3]}"#);
        all_distinct(&[
            BTreeMap::new(),
            BTreeMap::from([(1u8, ())]),
            BTreeMap::from([(1u8, ()), (2, ())]),
        ]);
        assert!(encode(&BTreeMap::from([((1u8, 2u8), 0u8)])).is_err());
    }

    #[test]
    fn keys_without_options_or_non_finite_floats_keep_their_plain_json() {
        for (text, json) in [
            (
                encode(&("Paris", 3, 'x', true, [1u8, 2])).unwrap(),
                serde_json::to_string(&("Paris", 3, 'x', true, [1u8, 2])).unwrap(),
            ),
            (
                encode(&City {
                    name: "Lyon",
                    day: 2,
                })
                .unwrap(),
                serde_json::to_string(&City {
                    name: "Lyon",
                    day: 2,
                })
                .unwrap(),
            ),
            (
                encode(&("quote \" and \\", -7i64, 1e300)).unwrap(),
                serde_json::to_string(&("quote \" and \\", -7i64, 1e300)).unwrap(),
            ),
        ] {
            assert_eq!(text, json);
        }
    }

    #[test]
    fn a_tagged_key_never_equals_a_plain_or_a_hashed_one() {
        // What plain JSON wrote for `Some(3)` is not what is read for it now.
        assert_eq!(serde_json::to_string(&Some(3)).unwrap(), "3");
        assert_eq!(item("ns", &(Some(3),)).unwrap(), "~[[3]]");
        let long = item("ns", &(Some("x".repeat(300)),)).unwrap();
        assert!(long.starts_with('#'));
    }

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
