//! What can go wrong: `LockError` for operations, `LockConfigError` for builders.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{FencingToken, StaleToken};

/// An error from a lock service, a [`LeaseGuard`](crate::LeaseGuard) or a fenced write.
///
/// It is `Clone` so that a [`LostReason`](crate::LostReason) can carry the renewal error to
/// every watcher.
///
/// ```
/// use keel_core::ManualClock;
/// use keel_lock::{InMemoryLockService, LockError};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let service = InMemoryLockService::with_clock(clock.clone());
/// let lease = service.try_acquire_now("jobs", Duration::from_secs(5))?.ok_or("held")?;
/// clock.advance(Duration::from_secs(5));
/// match service.release_now(&lease) {
///     Err(LockError::NotHeld { name, token }) => {
///         assert_eq!((&*name, token), ("jobs", lease.token()));
///     }
///     other => panic!("an expired lease cannot be released: {other:?}"),
/// }
/// assert!(matches!(service.try_acquire_now("", Duration::from_secs(5)), Err(LockError::EmptyName)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LockError {
    /// The time to live is zero, or too large for the service to represent.
    InvalidTtl {
        /// The rejected time to live.
        ttl: Duration,
    },
    /// The lock name is empty.
    EmptyName,
    /// [`acquire`](crate::LockService::acquire) waited as long as it was allowed and another
    /// holder still had the lock.
    Busy {
        /// The lock's name.
        name: Arc<str>,
        /// How long it waited.
        waited: Duration,
    },
    /// Release or extend with a token that is not the current holder's: the lease expired,
    /// was released, or another holder acquired since.
    NotHeld {
        /// The lock's name.
        name: Arc<str>,
        /// The token offered.
        token: FencingToken,
    },
    /// A call to the lock server did not answer within its timeout. The operation may or may
    /// not have taken effect on the server; a lease it may have granted runs out by its TTL.
    Timeout {
        /// The operation: `"acquire"`, `"extend"`, `"release"` or `"fenced write"`.
        operation: &'static str,
        /// The timeout that ran out.
        after: Duration,
    },
    /// No fencing token is left to grant this name. In memory, names are spread over 32
    /// shards and each shard has one counter, so it runs out after 2^64 - 1 grants to all
    /// the names of the shard together; in Redis each name has its own counter, which
    /// stops at 2^53 (beyond that Lua's doubles lose precision).
    TokensExhausted {
        /// The lock's name.
        name: Arc<str>,
    },
    /// A builder's configuration is invalid.
    Config(LockConfigError),
    /// A [`KeepAlive`](crate::KeepAlive) was started, or an in-memory
    /// [`acquire`](crate::LockService::acquire) had to wait, outside a tokio runtime.
    NoRuntime,
    /// A fenced write was rejected: its token is older than one the resource has seen.
    Stale(StaleToken),
    /// The lock server failed or answered something unexpected.
    Backend(Arc<dyn Error + Send + Sync>),
}

impl LockError {
    /// Whether the lock is certainly not held by this token any more (as opposed to a
    /// failure that leaves it unknown).
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, LockError};
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let lease = service.try_acquire_now("jobs", Duration::from_secs(5))?.ok_or("held")?;
    /// service.release_now(&lease)?;
    /// assert!(service.release_now(&lease).unwrap_err().is_not_held()); // certainly gone
    /// let timeout = LockError::Timeout { operation: "extend", after: Duration::from_secs(1) };
    /// assert!(!timeout.is_not_held()); // unknown: it may still be held
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_not_held(&self) -> bool {
        matches!(self, LockError::NotHeld { .. })
    }
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::InvalidTtl { ttl } => {
                write!(f, "time to live {ttl:?} must be > 0 and fit the service")
            }
            LockError::EmptyName => write!(f, "lock name must not be empty"),
            LockError::Busy { name, waited } => {
                write!(
                    f,
                    "lock `{name}` still held by another holder after waiting {waited:?}"
                )
            }
            LockError::NotHeld { name, token } => write!(
                f,
                "lock `{name}` is not held with token {token}: the lease expired, was released or was taken over"
            ),
            LockError::Timeout { operation, after } => {
                write!(f, "lock server did not answer {operation} within {after:?}")
            }
            LockError::TokensExhausted { name } => {
                write!(f, "no fencing token left to grant lock `{name}`")
            }
            LockError::Config(error) => write!(f, "invalid configuration: {error}"),
            LockError::NoRuntime => {
                write!(
                    f,
                    "a tokio runtime is needed to keep a lease alive or to wait for a lock"
                )
            }
            LockError::Stale(stale) => fmt::Display::fmt(stale, f),
            LockError::Backend(source) => write!(f, "lock server error: {source}"),
        }
    }
}

impl Error for LockError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            LockError::Stale(stale) => Some(stale),
            LockError::Config(error) => Some(error),
            LockError::Backend(source) => Some(&**source),
            _ => None,
        }
    }
}

impl From<StaleToken> for LockError {
    fn from(stale: StaleToken) -> LockError {
        LockError::Stale(stale)
    }
}

/// A builder's configuration is invalid; the message says which setting and why.
///
/// ```
/// use keel_lock::KeepAlive;
///
/// let error = KeepAlive::renew_every(1.5).unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "renewal fraction must be > 0 and < 1 of the time to live, got 1.5"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockConfigError {
    message: String,
}

impl LockConfigError {
    pub(crate) fn new(message: impl Into<String>) -> LockConfigError {
        LockConfigError {
            message: message.into(),
        }
    }
}

impl fmt::Display for LockConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for LockConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_is_wrong() {
        let busy = LockError::Busy {
            name: "jobs".into(),
            waited: Duration::from_millis(5),
        };
        assert_eq!(
            busy.to_string(),
            "lock `jobs` still held by another holder after waiting 5ms"
        );
        let stale = LockError::from(StaleToken::new(FencingToken::new(3), FencingToken::new(4)));
        assert!(stale.source().is_some());
        assert!(!stale.is_not_held());
        fn assert_traits<T: Error + Send + Sync + Clone + 'static>() {}
        assert_traits::<LockError>();
    }
}
