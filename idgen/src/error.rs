//! The errors of building and running a generator.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A failure of a store a generator relies on (the worker-id lease's lock service, a
/// [`MarkStore`](crate::MarkStore)), with its cause kept as a typed error.
///
/// It displays as its cause and [`source`](Error::source) leads on from the cause's own
/// source; [`get_ref`](StoreError::get_ref) and [`downcast_ref`](StoreError::downcast_ref)
/// reach the cause itself. It is `Clone` (the cause is shared), and two `StoreError`s are
/// equal when they share the same cause, not when their messages match.
///
/// # Example
///
/// ```
/// use keel_idgen::StoreError;
/// use std::io;
///
/// let error = StoreError::new(io::Error::new(io::ErrorKind::TimedOut, "no answer in 1s"));
/// assert_eq!(error.to_string(), "no answer in 1s");
/// let io = error.downcast_ref::<io::Error>().ok_or("an io::Error")?;
/// assert_eq!(io.kind(), io::ErrorKind::TimedOut);
/// assert_eq!(error.clone(), error); // clones share the cause
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct StoreError {
    cause: Arc<dyn Error + Send + Sync>,
}

impl StoreError {
    /// Wraps the store's own error.
    ///
    /// ```
    /// use keel_idgen::StoreError;
    /// use std::io;
    ///
    /// let error = StoreError::new(io::Error::other("disk full"));
    /// assert!(error.get_ref().is::<io::Error>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(cause: impl Error + Send + Sync + 'static) -> StoreError {
        StoreError {
            cause: Arc::new(cause),
        }
    }

    /// The cause.
    ///
    /// ```
    /// use keel_idgen::StoreError;
    /// use std::io;
    ///
    /// let error = StoreError::new(io::Error::other("disk full"));
    /// assert_eq!(error.get_ref().to_string(), "disk full");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.cause
    }

    /// The cause as an `E`, if it is one.
    ///
    /// ```
    /// use keel_idgen::StoreError;
    /// use std::io;
    ///
    /// let error = StoreError::new(io::Error::from(io::ErrorKind::PermissionDenied));
    /// assert_eq!(error.downcast_ref::<io::Error>().map(io::Error::kind), Some(io::ErrorKind::PermissionDenied));
    /// assert!(error.downcast_ref::<std::fmt::Error>().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.cause.downcast_ref::<E>()
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreError").field(&self.cause).finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cause, f)
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.source()
    }
}

impl PartialEq for StoreError {
    fn eq(&self, other: &StoreError) -> bool {
        Arc::ptr_eq(&self.cause, &other.cause)
    }
}

impl Eq for StoreError {}

/// A layout or generator configuration that cannot work, from a builder.
///
/// The message says what is wrong, for example `worker id 1200 does not fit in 10 bits`.
///
/// # Example
///
/// ```
/// use keel_idgen::{IdConfigError, Layout, Snowflake};
///
/// let error = Snowflake::builder(Layout::twitter(), 1_200).build().unwrap_err();
/// assert_eq!(error, IdConfigError::WorkerTooLarge { worker: 1_200, bits: 10 });
/// assert_eq!(error.to_string(), "worker id 1200 does not fit in 10 bits");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdConfigError {
    /// The timestamp, worker and sequence fields need more than 64 bits.
    TooManyBits {
        /// The sum of the three widths.
        total: u32,
    },
    /// A field that must have at least one bit has none.
    EmptyField {
        /// `"timestamp"` or `"sequence"`.
        field: &'static str,
    },
    /// The time unit is zero or not a whole number of milliseconds.
    BadTimeUnit {
        /// The unit given.
        unit: Duration,
    },
    /// A worker id is larger than the worker field can hold.
    WorkerTooLarge {
        /// The id given.
        worker: u64,
        /// The width of the worker field.
        bits: u8,
    },
    /// A bound that must be positive is zero, or two settings contradict each other.
    Invalid {
        /// What is wrong.
        reason: &'static str,
    },
    /// The clock reads earlier than the layout's epoch, so no ID could be stamped.
    EpochInFuture {
        /// The layout's epoch, in milliseconds since the Unix epoch.
        epoch: u64,
        /// The clock's reading, in milliseconds since the Unix epoch.
        unix_millis: u64,
    },
    /// The clock reads past the last time the layout's timestamp field can hold.
    LifetimeOver {
        /// The first millisecond (since the Unix epoch) the timestamp field cannot hold.
        ended: u64,
        /// The clock's reading, in milliseconds since the Unix epoch.
        unix_millis: u64,
    },
    /// The high-water mark could not be loaded.
    HighWaterMark {
        /// The store's error.
        source: StoreError,
    },
}

impl fmt::Display for IdConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdConfigError::TooManyBits { total } => write!(
                f,
                "timestamp, worker and sequence bits add up to {total}, more than 64"
            ),
            IdConfigError::EmptyField { field } => {
                write!(f, "the {field} field needs at least 1 bit")
            }
            IdConfigError::BadTimeUnit { unit } => write!(
                f,
                "time unit {unit:?} is not a whole, positive number of milliseconds"
            ),
            IdConfigError::WorkerTooLarge { worker, bits } => {
                write!(f, "worker id {worker} does not fit in {bits} bits")
            }
            IdConfigError::Invalid { reason } => f.write_str(reason),
            IdConfigError::EpochInFuture { epoch, unix_millis } => write!(
                f,
                "the layout's epoch {epoch} is after the clock's time {unix_millis} (ms since 1970)"
            ),
            IdConfigError::LifetimeOver { ended, unix_millis } => write!(
                f,
                "the layout's timestamps ran out at {ended} ms since 1970; the clock reads {unix_millis}"
            ),
            IdConfigError::HighWaterMark { source } => {
                write!(f, "cannot load the high-water mark: {source}")
            }
        }
    }
}

impl Error for IdConfigError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            IdConfigError::HighWaterMark { source } => Some(source.get_ref()),
            _ => None,
        }
    }
}

/// Why a generator did not return an ID.
///
/// No error ever means an ID was issued twice: a generator that cannot guarantee uniqueness
/// returns one of these instead.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_idgen::{ClockBackwards, GenerateError, Layout, Snowflake};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let generator = Snowflake::builder(Layout::twitter(), 1)
///     .clock(clock.clone())
///     .on_clock_backwards(ClockBackwards::Error)
///     .build()?;
/// generator.next_id()?;
/// clock.step_wall_back(Duration::from_millis(5));
/// let error = generator.next_id().unwrap_err();
/// assert_eq!(error, GenerateError::ClockMovedBack { behind: Duration::from_millis(5) });
/// assert_eq!(
///     error.to_string(),
///     "the clock is 5ms behind the last issued timestamp, more than the policy allows"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GenerateError {
    /// The wall clock is behind the last issued timestamp by more than the policy accepts.
    ClockMovedBack {
        /// How far the clock is behind the last issued timestamp.
        behind: Duration,
    },
    /// Only from the `try_` methods: an ID can be issued once the wall clock has moved on by
    /// `retry_after` (the sequence of the current tick is used up, or the clock stepped back
    /// within the policy's waiting bound).
    WouldBlock {
        /// How long until an ID can be issued, if the clock runs normally.
        retry_after: Duration,
    },
    /// A blocking call waited as long as its policy allows, measured on the monotonic clock,
    /// and the wall clock had still not caught up.
    WaitTimedOut {
        /// How long it waited.
        waited: Duration,
    },
    /// The wall clock reads earlier than the layout's epoch.
    BeforeEpoch {
        /// The clock's reading, in milliseconds since the Unix epoch.
        unix_millis: u64,
        /// The layout's epoch, in milliseconds since the Unix epoch.
        epoch: u64,
    },
    /// The timestamp no longer fits its field: the layout's lifetime is over, or the
    /// generator borrowed ahead to its last tick.
    TimestampOverflow,
    /// A ULID generator set to fail on overflow used up the random part within one
    /// millisecond.
    Overflow,
    /// The worker id's lease could not be renewed in time, or is known lost, so this
    /// generator may no longer use it.
    LeaseExpired,
    /// The worker id was newly granted and may be used only once a previous holder of it
    /// must have stopped: one lease TTL after the grant (see `WorkerLease`, feature `lease`).
    LeaseNotYetValid {
        /// How long until the id may be used, on the lease's clock.
        retry_after: Duration,
    },
    /// The high-water mark could not be persisted, so no ID beyond the last persisted mark is
    /// issued.
    HighWaterMark {
        /// The store's error.
        source: StoreError,
    },
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerateError::ClockMovedBack { behind } => write!(
                f,
                "the clock is {behind:?} behind the last issued timestamp, more than the policy allows"
            ),
            GenerateError::WouldBlock { retry_after } => {
                write!(f, "no ID can be issued for another {retry_after:?}")
            }
            GenerateError::WaitTimedOut { waited } => write!(
                f,
                "waited {waited:?} for the clock to catch up, the most the policy allows"
            ),
            GenerateError::BeforeEpoch { unix_millis, epoch } => write!(
                f,
                "the clock reads {unix_millis} ms since 1970, before the layout's epoch {epoch}"
            ),
            GenerateError::TimestampOverflow => {
                f.write_str("the timestamp no longer fits the layout's timestamp field")
            }
            GenerateError::Overflow => {
                f.write_str("the random part overflowed within one millisecond")
            }
            GenerateError::LeaseExpired => {
                f.write_str("the worker id lease expired; the generator stopped issuing")
            }
            GenerateError::LeaseNotYetValid { retry_after } => write!(
                f,
                "the worker id was just granted; a previous holder may still be using it for another {retry_after:?}"
            ),
            GenerateError::HighWaterMark { source } => {
                write!(f, "could not persist the high-water mark: {source}")
            }
        }
    }
}

impl Error for GenerateError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GenerateError::HighWaterMark { source } => Some(source.get_ref()),
            _ => None,
        }
    }
}

/// A malformed ULID or UUID string: what is wrong and where.
///
/// # Example
///
/// ```
/// use keel_idgen::{ParseError, Ulid, UuidV7};
///
/// assert_eq!(
///     "01ARZ3NDEK".parse::<Ulid>(),
///     Err(ParseError::Length { found: 10, expected: 26 })
/// );
/// assert_eq!(
///     "8ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<Ulid>(),
///     Err(ParseError::Overflow)
/// );
/// // A well-formed version 4 UUID is not a UUIDv7.
/// assert_eq!(
///     "017f22e2-79b0-4cc3-98c4-dc0c0c07398f".parse::<UuidV7>(),
///     Err(ParseError::NotV7 { version: 4 })
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The text has the wrong number of characters (bytes).
    Length {
        /// The length found.
        found: usize,
        /// The length required.
        expected: usize,
    },
    /// A character outside the alphabet, or a hyphen missing or misplaced.
    Character {
        /// Byte position of the character, from 0.
        position: usize,
        /// The character found.
        found: char,
    },
    /// The text encodes a value above the largest ULID, `7ZZZZZZZZZZZZZZZZZZZZZZZZZ`.
    Overflow,
    /// A UUID that is not version 7 with the RFC 9562 variant.
    NotV7 {
        /// The version nibble found.
        version: u8,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Length { found, expected } => {
                write!(f, "expected {expected} characters, found {found}")
            }
            ParseError::Character { position, found } => {
                write!(f, "invalid character {found:?} at position {position}")
            }
            ParseError::Overflow => {
                f.write_str("value above the largest ULID 7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
            }
            ParseError::NotV7 { version } => write!(
                f,
                "not a version 7 UUID with the RFC 9562 variant (version {version})"
            ),
        }
    }
}

impl Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_is_wrong() {
        let error = IdConfigError::WorkerTooLarge {
            worker: 1200,
            bits: 10,
        };
        assert_eq!(error.to_string(), "worker id 1200 does not fit in 10 bits");
        let parse = ParseError::Character {
            position: 3,
            found: 'U',
        };
        assert_eq!(parse.to_string(), "invalid character 'U' at position 3");
        fn is_send_sync<T: Error + Send + Sync + 'static>() {}
        is_send_sync::<IdConfigError>();
        is_send_sync::<GenerateError>();
        is_send_sync::<ParseError>();
    }
}
