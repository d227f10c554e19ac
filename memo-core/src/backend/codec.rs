//! Values as bytes: a serde format, then optional compression of large values.
//!
//! The bytes are self-describing without a header of ours: a compressed value is a standard zstd
//! or LZ4 frame (recognized by its magic number) of the encoded value, and an encoded value never
//! begins with either magic (JSON text begins with a printable character; a MessagePack value
//! beginning with byte 0x28 or 0x04 is that one-byte integer). So a value written as plain JSON
//! is readable as is by programs in other languages, and a compressed one by `zstd -d` or
//! `lz4 -d` first.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The serde format of stored values.
///
/// ```
/// use memo::stores::Codec;
///
/// let bytes = Codec::Json.encode(&("Paris", 21.5))?;
/// assert_eq!(bytes, br#"["Paris",21.5]"#);
/// let back: (String, f64) = Codec::Json.decode(&bytes)?;
/// assert_eq!(back, ("Paris".to_string(), 21.5));
/// # Ok::<(), memo::stores::CodecError>(())
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
    /// assert_eq!(memo::stores::Codec::Json.encode(&[1, 2]).unwrap(), b"[1,2]");
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
    /// use memo::stores::Codec;
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
/// use memo::stores::Compression;
///
/// let text = "all work and no play ".repeat(100);
/// let packed = Compression::None.compress(text.as_bytes().to_vec())?;
/// assert_eq!(packed.len(), text.len());
/// # #[cfg(feature = "zstd")] {
/// let packed = Compression::Zstd { level: 3, min_size: 1024 }.compress(text.as_bytes().to_vec())?;
/// assert!(packed.len() < text.len() / 10);
/// assert_eq!(Compression::decompress(packed)?, text.as_bytes());
/// # }
/// # Ok::<(), memo::stores::CodecError>(())
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
    /// use memo::stores::Compression;
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
    /// otherwise; at most [`DEFAULT_MAX_DECODED_SIZE`] (64 MiB) decompressed, as
    /// [`decompress_at_most`](Compression::decompress_at_most). A frame whose feature is off is
    /// an error (a miss, then overwritten).
    ///
    /// ```
    /// use memo::stores::Compression;
    /// assert_eq!(Compression::decompress(b"[1,2]".to_vec()).unwrap(), b"[1,2]");
    /// ```
    pub fn decompress(stored: Vec<u8>) -> Result<Vec<u8>, CodecError> {
        Self::decompress_at_most(stored, DEFAULT_MAX_DECODED_SIZE)
    }

    /// The encoded value in `stored`, an error if it is (or decompresses to) more than
    /// `max_size` bytes. A zstd frame that declares a larger size is refused before any
    /// decoding, and any other frame is decoded as a stream that stops one byte past the bound,
    /// with its window limited to the bound: a small bomb never inflates.
    ///
    /// ```
    /// use memo::stores::Compression;
    /// let err = Compression::decompress_at_most(b"[1,2,3]".to_vec(), 4).unwrap_err();
    /// assert!(err.to_string().contains("more than 4 bytes"));
    /// ```
    pub fn decompress_at_most(stored: Vec<u8>, max_size: u64) -> Result<Vec<u8>, CodecError> {
        if stored.starts_with(&ZSTD_MAGIC) {
            #[cfg(feature = "zstd")]
            {
                if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(&stored)
                    && declared > max_size
                {
                    return Err(CodecError::too_large(max_size));
                }
                let mut decoder =
                    zstd::stream::read::Decoder::new(&stored[..]).map_err(CodecError::new)?;
                // A window no larger than the bound (a value that fits never needs more).
                let window_log = (64 - max_size.max(1).leading_zeros()).clamp(10, 31);
                decoder
                    .window_log_max(window_log)
                    .map_err(CodecError::new)?;
                return read_at_most(decoder, max_size);
            }
            #[cfg(not(feature = "zstd"))]
            return Err(CodecError::new(
                "a zstd frame, but the `zstd` feature is off",
            ));
        }
        if stored.starts_with(&LZ4_MAGIC) {
            #[cfg(feature = "lz4")]
            return read_at_most(lz4_flex::frame::FrameDecoder::new(&stored[..]), max_size);
            #[cfg(not(feature = "lz4"))]
            return Err(CodecError::new(
                "an LZ4 frame, but the `lz4` feature is off",
            ));
        }
        if stored.len() as u64 > max_size {
            return Err(CodecError::too_large(max_size));
        }
        Ok(stored)
    }
}

/// All of `reader`, or an error as soon as it gives more than `max_size` bytes.
#[cfg(any(feature = "lz4", feature = "zstd"))]
fn read_at_most(reader: impl std::io::Read, max_size: u64) -> Result<Vec<u8>, CodecError> {
    use std::io::Read;
    let mut out = Vec::new();
    reader
        .take(max_size.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(CodecError::new)?;
    if out.len() as u64 > max_size {
        return Err(CodecError::too_large(max_size));
    }
    Ok(out)
}

/// The default bound on a stored value once decompressed: 64 MiB
/// ([`StoreOptions::max_decoded_size`](super::StoreOptions::max_decoded_size)).
///
/// ```
/// assert_eq!(memo::stores::DEFAULT_MAX_DECODED_SIZE, 64 << 20);
/// ```
pub const DEFAULT_MAX_DECODED_SIZE: u64 = 64 << 20;

/// A value that could not be encoded, decoded, compressed or decompressed.
///
/// ```
/// let err = memo::stores::Codec::Json.decode::<u8>(b"300").unwrap_err();
/// assert!(err.to_string().contains("expected u8"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError {
    message: String,
    too_large: bool,
}

impl CodecError {
    fn new(error: impl fmt::Display) -> Self {
        CodecError {
            message: error.to_string(),
            too_large: false,
        }
    }

    fn too_large(max_size: u64) -> Self {
        CodecError {
            message: format!("the value decodes to more than {max_size} bytes"),
            too_large: true,
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodecError {}

/// How one store turns values into bytes: a codec, then compression; and the bound on what
/// a stored value may decode to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Format {
    pub codec: Codec,
    pub compression: Compression,
    pub max_decoded_size: u64,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            codec: Codec::default(),
            compression: Compression::default(),
            max_decoded_size: DEFAULT_MAX_DECODED_SIZE,
        }
    }
}

/// Whether a value over the decoded-size bound was warned about in this process.
static WARNED_TOO_LARGE: AtomicBool = AtomicBool::new(false);

impl Format {
    pub fn encode<V: Serialize + ?Sized>(self, value: &V) -> Result<Vec<u8>, CodecError> {
        self.compression.compress(self.codec.encode(value)?)
    }

    /// The value in `stored`; past the bound a miss (an error), with one warning per process.
    pub fn decode<V: DeserializeOwned>(self, stored: Vec<u8>) -> Result<V, CodecError> {
        let encoded = Compression::decompress_at_most(stored, self.max_decoded_size)
            .inspect_err(|error| {
                if error.too_large && !WARNED_TOO_LARGE.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        max = self.max_decoded_size,
                        "a stored value decodes to more than {} bytes; treated as a miss                          (raise the bound with StoreOptions::max_decoded_size)",
                        self.max_decoded_size
                    );
                }
            })?;
        self.codec.decode(&encoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zstd frame of `blocks` RLE blocks of 128 KiB of zeros, 4 bytes each: 8192 blocks are
    /// a 32 KB frame of 1 GiB. `declare` writes the content size into the frame header.
    #[cfg(feature = "zstd")]
    fn zstd_bomb(blocks: usize, declare: bool) -> Vec<u8> {
        const BLOCK: u32 = 128 << 10;
        let mut frame = ZSTD_MAGIC.to_vec();
        // Frame header: content size field of 8 bytes or none; a 128 KiB window.
        frame.push(if declare { 0xC0 } else { 0x00 });
        frame.push(7 << 3);
        if declare {
            frame.extend_from_slice(&(blocks as u64 * u64::from(BLOCK)).to_le_bytes());
        }
        for i in 0..blocks {
            let last = u32::from(i + 1 == blocks);
            let header = (BLOCK << 3) | (1 << 1) | last; // an RLE block
            frame.extend_from_slice(&header.to_le_bytes()[..3]);
            frame.push(0);
        }
        frame
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn a_small_zstd_frame_of_rle_blocks_is_a_valid_frame() {
        let frame = zstd_bomb(16, false);
        let out = Compression::decompress_at_most(frame, 4 << 20).unwrap();
        assert_eq!(out.len(), 2 << 20);
        assert!(out.iter().all(|&b| b == 0));
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn a_32kb_zstd_bomb_of_1gib_is_refused_at_the_default_bound() {
        for declare in [false, true] {
            let bomb = zstd_bomb(8192, declare);
            assert!(bomb.len() < 33_000, "{}", bomb.len());
            let err = Compression::decompress(bomb).unwrap_err();
            assert!(err.too_large, "{err}");
            assert!(
                err.to_string().contains("more than 67108864 bytes"),
                "{err}"
            );
        }
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn a_zstd_frame_within_the_bound_decodes() {
        let text = "all work and no play ".repeat(5000);
        let packed = Compression::Zstd {
            level: 3,
            min_size: 0,
        }
        .compress(text.clone().into_bytes())
        .unwrap();
        let bound = text.len() as u64;
        assert_eq!(
            Compression::decompress_at_most(packed.clone(), bound).unwrap(),
            text.as_bytes()
        );
        assert!(Compression::decompress_at_most(packed, bound - 1).is_err());
    }

    #[cfg(feature = "lz4")]
    #[test]
    fn an_lz4_bomb_stops_one_byte_past_the_bound() {
        let zeros = vec![0u8; 8 << 20];
        let packed = Compression::Lz4 { min_size: 0 }.compress(zeros).unwrap();
        assert!(packed.len() < 64 << 10, "{}", packed.len());
        let err = Compression::decompress_at_most(packed.clone(), 1 << 20).unwrap_err();
        assert!(err.too_large, "{err}");
        assert_eq!(
            Compression::decompress_at_most(packed, 8 << 20)
                .unwrap()
                .len(),
            8 << 20
        );
    }

    #[test]
    fn an_uncompressed_value_over_the_bound_is_refused_too() {
        let format = Format {
            max_decoded_size: 3,
            ..Format::default()
        };
        assert_eq!(format.decode::<u32>(b"123".to_vec()).unwrap(), 123);
        let err = format.decode::<u32>(b"1234".to_vec()).unwrap_err();
        assert!(err.too_large);
    }
}
