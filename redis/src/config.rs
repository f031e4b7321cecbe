//! `RedisConfigError`: a setting of the seam that cannot work.

use std::fmt;

/// A setting given to [`Redis::new`](crate::Redis::new) or [`KeyBuilder::new`](crate::KeyBuilder::new)
/// that cannot work.
///
/// ```
/// use keel_redis::{RedisConfigError, KeyBuilder};
///
/// let err = KeyBuilder::new("}").unwrap_err();
/// assert_eq!(err, RedisConfigError::BraceInPrefix { prefix: "}".into() });
/// assert_eq!(RedisConfigError::ZeroTimeout.to_string(), "redis call timeout must be > 0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisConfigError {
    /// The call timeout was zero.
    ZeroTimeout,
    /// The key prefix held `{` or `}`, which would take the hash tag away from the name.
    BraceInPrefix {
        /// The prefix given.
        prefix: String,
    },
}

impl fmt::Display for RedisConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisConfigError::ZeroTimeout => f.write_str("redis call timeout must be > 0"),
            RedisConfigError::BraceInPrefix { prefix } => {
                write!(f, "key prefix {prefix:?} must not contain '{{' or '}}'")
            }
        }
    }
}

impl std::error::Error for RedisConfigError {}
