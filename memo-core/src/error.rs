//! Errors of the cache builder.

use std::fmt;

/// Why [`CacheBuilder::build`](crate::CacheBuilder::build) refused a configuration.
///
/// ```
/// use memo_core::{BuildError, Cache};
///
/// let err = Cache::<u32, u32>::builder().shards(3).build().unwrap_err();
/// assert_eq!(err, BuildError::ShardsNotPowerOfTwo(3));
/// assert_eq!(err.to_string(), "shard count must be a power of two, got 3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The shard count was zero or not a power of two.
    ShardsNotPowerOfTwo(usize),
    /// A ttl of zero would expire every entry as it is stored.
    ZeroTtl,
    /// One shard can hold at most `u32::MAX - 1` entries.
    MaxsizeTooLarge(usize),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ShardsNotPowerOfTwo(n) => {
                write!(f, "shard count must be a power of two, got {n}")
            }
            BuildError::ZeroTtl => f.write_str("ttl must be greater than zero"),
            BuildError::MaxsizeTooLarge(n) => write!(
                f,
                "maxsize {n} is too large: a shard holds at most {} entries",
                u32::MAX - 1
            ),
        }
    }
}

impl std::error::Error for BuildError {}
