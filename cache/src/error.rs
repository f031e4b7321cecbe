//! The error a cache builder returns for a configuration it cannot honour.

use std::fmt;

/// What is wrong with a cache's configuration.
///
/// Returned by [`Lru::new`](crate::Lru::new), [`Lru::resize`](crate::Lru::resize) and
/// [`CacheBuilder::build`](crate::CacheBuilder::build). The message says which setting is wrong
/// and why.
///
/// # Example
///
/// ```
/// use keel_cache::{BuildError, Lru};
///
/// let err = Lru::<u64, u64>::new(0).unwrap_err();
/// assert_eq!(err, BuildError::ZeroCapacity);
/// assert_eq!(err.to_string(), "capacity must be > 0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The capacity (entries or total weight) was zero: such a cache could hold nothing.
    ZeroCapacity,
    /// The capacity is larger than the cache can index.
    CapacityTooLarge {
        /// The capacity asked for.
        requested: u64,
        /// The largest capacity supported.
        max: u64,
    },
    /// The number of shards was zero, not a power of two, above 65,536 or above the
    /// capacity (a shard must be able to hold an entry).
    BadShards(usize),
    /// A time-to-live or time-to-idle of zero was given: every entry would be expired at once.
    ZeroDuration(&'static str),
    /// A write-back batch size of zero was given.
    ZeroBatch,
    /// A write-back's bound on dirty keys is below its batch size: a full dirty set would
    /// never make a batch, so with no flush interval nothing would write it.
    DirtyBelowBatch {
        /// The bound asked for ([`WriteBackBuilder::max_dirty`](crate::WriteBackBuilder::max_dirty)).
        max_dirty: usize,
        /// The batch size.
        batch_size: usize,
    },
    /// The write-back flusher could not be started: the operating system refused a
    /// thread, or `build_async` was called outside a tokio runtime.
    FlusherNotStarted(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroCapacity => f.write_str("capacity must be > 0"),
            BuildError::CapacityTooLarge { requested, max } => {
                write!(f, "capacity {requested} is larger than the maximum {max}")
            }
            BuildError::BadShards(n) => {
                write!(
                    f,
                    "shard count must be a power of two from 1 to 65536 and at most the capacity, got {n}"
                )
            }
            BuildError::ZeroDuration(what) => write!(f, "{what} must be > 0"),
            BuildError::ZeroBatch => f.write_str("write-back batch size must be > 0"),
            BuildError::DirtyBelowBatch {
                max_dirty,
                batch_size,
            } => write!(
                f,
                "write-back max_dirty {max_dirty} must be at least the batch size {batch_size}"
            ),
            BuildError::FlusherNotStarted(why) => {
                write!(f, "the write-back flusher did not start: {why}")
            }
        }
    }
}

impl std::error::Error for BuildError {}
