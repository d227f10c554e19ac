//! Values as bytes: a serde format, then optional compression of large values.
//!
//! The bytes are self-describing without a header of ours: a compressed value is a standard zstd
//! or LZ4 frame (recognized by its magic number) of the encoded value, and an encoded value never
//! begins with either magic (JSON text begins with a printable character; a MessagePack value
//! beginning with byte 0x28 or 0x04 is that one-byte integer). So a value written as plain JSON
//! is readable as is by programs in other languages, and a compressed one by `zstd -d` or
//! `lz4 -d` first.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The serde format of stored values.
///
/// ```
/// use memo_core::stores::Codec;
///
/// let bytes = Codec::Json.encode(&("Paris", 21.5))?;
/// assert_eq!(bytes, br#"["Paris",21.5]"#);
/// let back: (String, f64) = Codec::Json.decode(&bytes)?;
/// assert_eq!(back, ("Paris".to_string(), 21.5));
/// # Ok::<(), memo_core::stores::CodecError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// JSON text: readable with `redis-cli`, shareable with programs in any language.
    #[default]
    Json,
    /// MessagePack (feature `msgpack`): compact and fast, and still readable from other
    /// languages. Structs are written as arrays of their fields, so all programs must agree on
    /// the field order.
    #[cfg(feature = "msgpack")]
    MessagePack,
}

impl Codec {
    /// The bytes of `value`.
    ///
    /// ```
    /// assert_eq!(memo_core::stores::Codec::Json.encode(&[1, 2]).unwrap(), b"[1,2]");
    /// ```
    pub fn encode<V: Serialize + ?Sized>(self, value: &V) -> Result<Vec<u8>, CodecError> {
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(CodecError::new),
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => rmp_serde::to_vec(value).map_err(CodecError::new),
        }
    }

    /// The value in `bytes`; an error if they are not a `V` in this format.
    ///
    /// ```
    /// use memo_core::stores::Codec;
    /// assert_eq!(Codec::Json.decode::<u32>(b"7").unwrap(), 7);
    /// assert!(Codec::Json.decode::<u32>(b"\"seven\"").is_err());
    /// ```
    pub fn decode<V: DeserializeOwned>(self, bytes: &[u8]) -> Result<V, CodecError> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(CodecError::new),
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => rmp_serde::from_slice(bytes).map_err(CodecError::new),
        }
    }
}

/// Whether and how values are compressed before they are stored.
///
/// Values shorter than `min_size` bytes once encoded are stored as they are, and so is a value
/// that compression would not make shorter. Reading recognizes compressed values by their frame,
/// whatever the setting, so it can be changed without emptying the store.
///
/// ```
/// use memo_core::stores::Compression;
///
/// let text = "all work and no play ".repeat(100);
/// let packed = Compression::None.compress(text.as_bytes().to_vec())?;
/// assert_eq!(packed.len(), text.len());
/// # #[cfg(feature = "zstd")] {
/// let packed = Compression::Zstd { level: 3, min_size: 1024 }.compress(text.as_bytes().to_vec())?;
/// assert!(packed.len() < text.len() / 10);
/// assert_eq!(Compression::decompress(packed)?, text.as_bytes());
/// # }
/// # Ok::<(), memo_core::stores::CodecError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// Values are stored as encoded.
    #[default]
    None,
    /// An LZ4 frame (feature `lz4`, pure Rust): very fast, about half the size of JSON text.
    #[cfg(feature = "lz4")]
    Lz4 {
        /// Values shorter than this are not compressed.
        min_size: usize,
    },
    /// A zstd frame (feature `zstd`): smaller than LZ4 at a little more CPU.
    #[cfg(feature = "zstd")]
    Zstd {
        /// The zstd level, 1 (fast) to 19 (small); 3 is zstd's default.
        level: i32,
        /// Values shorter than this are not compressed.
        min_size: usize,
    },
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4D, 0x18];

impl Compression {
    /// `encoded`, compressed if the setting and its size ask for it.
    ///
    /// ```
    /// use memo_core::stores::Compression;
    /// assert_eq!(Compression::None.compress(b"abc".to_vec()).unwrap(), b"abc");
    /// ```
    pub fn compress(self, encoded: Vec<u8>) -> Result<Vec<u8>, CodecError> {
        match self.pack(&encoded)? {
            Some(packed) if packed.len() < encoded.len() => Ok(packed),
            _ => Ok(encoded),
        }
    }

    /// `encoded` compressed, or `None` if the setting or its size say not to.
    fn pack(self, encoded: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        let _ = encoded; // unused without a compression feature
        match self {
            #[cfg(feature = "lz4")]
            Compression::Lz4 { min_size } if encoded.len() >= min_size => {
                use std::io::Write;
                let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
                encoder.write_all(encoded).map_err(CodecError::new)?;
                encoder.finish().map(Some).map_err(CodecError::new)
            }
            #[cfg(feature = "zstd")]
            Compression::Zstd { level, min_size } if encoded.len() >= min_size => {
                zstd::bulk::compress(encoded, level)
                    .map(Some)
                    .map_err(CodecError::new)
            }
            _ => Ok(None),
        }
    }

    /// The encoded value in `stored`: decompressed if it is a zstd or LZ4 frame, as is
    /// otherwise. A frame whose feature is off is an error (a miss, then overwritten).
    ///
    /// ```
    /// use memo_core::stores::Compression;
    /// assert_eq!(Compression::decompress(b"[1,2]".to_vec()).unwrap(), b"[1,2]");
    /// ```
    pub fn decompress(stored: Vec<u8>) -> Result<Vec<u8>, CodecError> {
        if stored.starts_with(&ZSTD_MAGIC) {
            #[cfg(feature = "zstd")]
            {
                use std::io::Read;
                let mut out = Vec::new();
                let mut decoder = zstd::stream::read::Decoder::new(&stored[..])
                    .map_err(CodecError::new)?
                    .take(MAX_DECOMPRESSED);
                decoder.read_to_end(&mut out).map_err(CodecError::new)?;
                return Ok(out);
            }
            #[cfg(not(feature = "zstd"))]
            return Err(CodecError::new(
                "a zstd frame, but the `zstd` feature is off",
            ));
        }
        if stored.starts_with(&LZ4_MAGIC) {
            #[cfg(feature = "lz4")]
            {
                use std::io::Read;
                let mut out = Vec::new();
                let mut decoder =
                    lz4_flex::frame::FrameDecoder::new(&stored[..]).take(MAX_DECOMPRESSED);
                decoder.read_to_end(&mut out).map_err(CodecError::new)?;
                return Ok(out);
            }
            #[cfg(not(feature = "lz4"))]
            return Err(CodecError::new(
                "an LZ4 frame, but the `lz4` feature is off",
            ));
        }
        Ok(stored)
    }
}

/// Decompressed values longer than this (1 GiB) are cut, hence fail to decode: a miss.
#[cfg(any(feature = "lz4", feature = "zstd"))]
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// A value that could not be encoded, decoded, compressed or decompressed.
///
/// ```
/// let err = memo_core::stores::Codec::Json.decode::<u8>(b"300").unwrap_err();
/// assert!(err.to_string().contains("expected u8"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError(String);

impl CodecError {
    fn new(error: impl fmt::Display) -> Self {
        CodecError(error.to_string())
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// How one store turns values into bytes: a codec, then compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Format {
    pub codec: Codec,
    pub compression: Compression,
}

impl Format {
    pub fn encode<V: Serialize + ?Sized>(self, value: &V) -> Result<Vec<u8>, CodecError> {
        self.compression.compress(self.codec.encode(value)?)
    }

    pub fn decode<V: DeserializeOwned>(self, stored: Vec<u8>) -> Result<V, CodecError> {
        self.codec.decode(&Compression::decompress(stored)?)
    }
}
