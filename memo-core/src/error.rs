//! Errors of the cache builder.

use std::fmt;

/// Why [`CacheBuilder::build`](crate::CacheBuilder::build) refused a configuration.
///
/// ```
/// use memo::{BuildError, Cache};
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
    /// A cache holds at most [`MAX_MAXSIZE`](crate::MAX_MAXSIZE) entries.
    MaxsizeTooLarge(usize),
    /// A cache has at most [`MAX_SHARDS`](crate::MAX_SHARDS) shards.
    TooManyShards(usize),
    /// A ttl jitter is a fraction of the ttl, from 0 to 1.
    InvalidJitter,
    /// A ttl jitter spreads the expiry of a ttl: it needs one.
    JitterWithoutTtl,
    /// A weigher weighs entries against a `max_weight`, which is missing.
    WeigherWithoutMaxWeight,
    /// A `max_weight` bounds what a weigher reports, which is missing.
    MaxWeightWithoutWeigher,
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
                "maxsize {n} is too large: a cache holds at most {} entries",
                crate::MAX_MAXSIZE
            ),
            BuildError::TooManyShards(n) => write!(
                f,
                "{n} shards are too many: a cache has at most {}",
                crate::MAX_SHARDS
            ),
            BuildError::InvalidJitter => f.write_str("ttl jitter must be a fraction from 0 to 1"),
            BuildError::JitterWithoutTtl => f.write_str("ttl jitter needs a ttl"),
            BuildError::WeigherWithoutMaxWeight => f.write_str("a weigher needs a max_weight"),
            BuildError::MaxWeightWithoutWeigher => f.write_str("a max_weight needs a weigher"),
        }
    }
}

impl std::error::Error for BuildError {}
