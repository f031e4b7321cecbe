//! Where a generator's worker id comes from: a fixed number, the environment, or a lease.

use std::error::Error;
use std::fmt;

use crate::{StoreError, WorkerId};

/// A source of worker ids for generators in a fleet.
///
/// Every process that issues Snowflake IDs with the same layout needs a distinct worker id.
/// Implementations: [`FixedWorkerId`] (configured by hand), [`EnvWorkerId`] (a Kubernetes
/// StatefulSet ordinal such as `web-3`, or a number), and `WorkerLease` (feature `lease`),
/// which leases a free id from any keel-lock `LockService` and stops the generator as soon
/// as the lease is in doubt.
///
/// # Example
///
/// ```
/// use keel_idgen::{FixedWorkerId, Layout, Snowflake, WorkerIdProvider};
///
/// let provider = FixedWorkerId::new(12);
/// let generator = Snowflake::builder(Layout::twitter(), provider.worker_id()?).build()?;
/// assert_eq!(generator.decode(generator.next_id()?).worker, 12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait WorkerIdProvider {
    /// The worker id to use, with its lease if it has one.
    ///
    /// # Errors
    ///
    /// A [`WorkerIdError`] saying why no id is available.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{FixedWorkerId, WorkerIdProvider};
    ///
    /// let worker = FixedWorkerId::new(9).worker_id()?;
    /// assert_eq!(worker.id(), 9);
    /// assert!(worker.lease().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn worker_id(&self) -> Result<WorkerId, WorkerIdError>;
}

/// A worker id set by configuration.
///
/// # Example
///
/// ```
/// use keel_idgen::{FixedWorkerId, WorkerIdProvider};
///
/// let provider = FixedWorkerId::new(3);
/// assert_eq!(provider.worker_id()?.id(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FixedWorkerId(u64);

impl FixedWorkerId {
    /// Always `id`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{FixedWorkerId, Layout, Snowflake, WorkerIdProvider};
    ///
    /// let generator = Snowflake::builder(Layout::twitter(), FixedWorkerId::new(4).worker_id()?).build()?;
    /// assert_eq!(generator.worker(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn new(id: u64) -> FixedWorkerId {
        FixedWorkerId(id)
    }
}

impl WorkerIdProvider for FixedWorkerId {
    fn worker_id(&self) -> Result<WorkerId, WorkerIdError> {
        Ok(WorkerId::fixed(self.0))
    }
}

/// A worker id read from an environment variable: a number (`17`) or a name ending in an
/// ordinal (`web-3`, as a Kubernetes StatefulSet names its pods and so `HOSTNAME`), plus an
/// optional offset so several StatefulSets can share a layout.
///
/// # Example
///
/// ```
/// use keel_idgen::EnvWorkerId;
///
/// assert_eq!(EnvWorkerId::parse("web-3")?, 3);
/// assert_eq!(EnvWorkerId::parse("17")?, 17);
/// assert!(EnvWorkerId::parse("web").is_err());
///
/// let provider = EnvWorkerId::new("HOSTNAME").offset(100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EnvWorkerId {
    variable: String,
    offset: u64,
}

impl EnvWorkerId {
    /// Reads the worker id from the environment variable `variable`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{EnvWorkerId, WorkerIdError, WorkerIdProvider};
    ///
    /// let provider = EnvWorkerId::new("KEEL_IDGEN_EXAMPLE_UNSET");
    /// assert_eq!(
    ///     provider.worker_id().unwrap_err(),
    ///     WorkerIdError::Missing { variable: "KEEL_IDGEN_EXAMPLE_UNSET".to_string() }
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(variable: impl Into<String>) -> EnvWorkerId {
        EnvWorkerId {
            variable: variable.into(),
            offset: 0,
        }
    }

    /// Adds `offset` to the parsed ordinal.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{EnvWorkerId, WorkerIdProvider};
    ///
    /// // Two StatefulSets share a 10-bit worker field: pods of the second start at 512.
    /// # // SAFETY: each doctest runs in its own process, and this one has no other thread.
    /// # unsafe { std::env::set_var("KEEL_IDGEN_EXAMPLE_POD", "orders-eu-3") };
    /// let provider = EnvWorkerId::new("KEEL_IDGEN_EXAMPLE_POD").offset(512);
    /// assert_eq!(provider.worker_id()?.id(), 515);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn offset(mut self, offset: u64) -> EnvWorkerId {
        self.offset = offset;
        self
    }

    /// The number in `value`: all of it if it is a number, or the digits after its last `-`
    /// if a name comes before it.
    ///
    /// # Errors
    ///
    /// [`WorkerIdError::Unparsable`] if there is no such number.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{EnvWorkerId, WorkerIdError};
    ///
    /// assert_eq!(EnvWorkerId::parse("web-3")?, 3);
    /// assert_eq!(EnvWorkerId::parse("id-gen-service-42")?, 42);
    /// assert_eq!(EnvWorkerId::parse("17")?, 17);
    /// assert_eq!(
    ///     EnvWorkerId::parse("web"),
    ///     Err(WorkerIdError::Unparsable { value: "web".to_string() })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parse(value: &str) -> Result<u64, WorkerIdError> {
        let (name, digits) = match value.rsplit_once('-') {
            Some((name, digits)) => (Some(name.trim()), digits.trim()),
            None => (None, value.trim()),
        };
        // `-5` is a negative number, not the ordinal of a pod with no name.
        let nameless = name.is_some_and(str::is_empty);
        if nameless || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WorkerIdError::Unparsable {
                value: value.to_string(),
            });
        }
        digits.parse().map_err(|_| WorkerIdError::Unparsable {
            value: value.to_string(),
        })
    }
}

impl WorkerIdProvider for EnvWorkerId {
    fn worker_id(&self) -> Result<WorkerId, WorkerIdError> {
        let value = std::env::var(&self.variable).map_err(|_| WorkerIdError::Missing {
            variable: self.variable.clone(),
        })?;
        self.id_from(&value)
    }
}

impl EnvWorkerId {
    /// The worker id a value of the variable gives: its number plus the offset.
    fn id_from(&self, value: &str) -> Result<WorkerId, WorkerIdError> {
        let ordinal = EnvWorkerId::parse(value)?;
        let id = ordinal
            .checked_add(self.offset)
            .ok_or(WorkerIdError::OffsetOverflow {
                ordinal,
                offset: self.offset,
            })?;
        Ok(WorkerId::fixed(id))
    }
}

/// Why a [`WorkerIdProvider`] has no id to give.
///
/// # Example
///
/// ```
/// use keel_idgen::{EnvWorkerId, WorkerIdError};
///
/// let error = EnvWorkerId::parse("web-x").unwrap_err();
/// assert_eq!(error, WorkerIdError::Unparsable { value: "web-x".to_string() });
/// assert_eq!(
///     error.to_string(),
///     "\"web-x\" is neither a worker number nor a name ending in -<number>"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerIdError {
    /// The environment variable is not set (or not Unicode).
    Missing {
        /// The variable.
        variable: String,
    },
    /// The value holds no worker number.
    Unparsable {
        /// The value found.
        value: String,
    },
    /// Every id of the range is leased by another process.
    NoFreeId {
        /// How many ids the range has.
        ids: u64,
    },
    /// The lease store (the lock service) failed.
    Store {
        /// The store's error; with keel-lock, a `keel_lock::LockError`.
        source: StoreError,
    },
    /// The lease could not be confirmed: it expired or was taken by another process.
    Lost {
        /// The worker id.
        id: u64,
    },
    /// The provider's configuration is invalid.
    Config {
        /// What is wrong.
        reason: &'static str,
    },
    /// The worker number plus the provider's offset does not fit a `u64`.
    OffsetOverflow {
        /// The worker number read.
        ordinal: u64,
        /// The offset added to it.
        offset: u64,
    },
}

impl fmt::Display for WorkerIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerIdError::Missing { variable } => {
                write!(f, "environment variable {variable} is not set")
            }
            WorkerIdError::Unparsable { value } => write!(
                f,
                "{value:?} is neither a worker number nor a name ending in -<number>"
            ),
            WorkerIdError::NoFreeId { ids } => {
                write!(f, "all {ids} worker ids are leased by other processes")
            }
            WorkerIdError::Store { source } => write!(f, "worker id lease store: {source}"),
            WorkerIdError::Lost { id } => write!(f, "the lease on worker id {id} was lost"),
            WorkerIdError::Config { reason } => f.write_str(reason),
            WorkerIdError::OffsetOverflow { ordinal, offset } => write!(
                f,
                "worker number {ordinal} plus offset {offset} does not fit a u64"
            ),
        }
    }
}

impl Error for WorkerIdError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            WorkerIdError::Store { source } => Some(source.get_ref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_past_u64_is_reported_as_such() {
        let provider = EnvWorkerId::new("UNUSED").offset(u64::MAX);
        assert_eq!(provider.id_from("web-0").map(|id| id.id()), Ok(u64::MAX));
        let error = provider.id_from("web-2").unwrap_err();
        assert_eq!(
            error,
            WorkerIdError::OffsetOverflow {
                ordinal: 2,
                offset: u64::MAX
            }
        );
        assert_eq!(
            error.to_string(),
            format!(
                "worker number 2 plus offset {} does not fit a u64",
                u64::MAX
            )
        );
    }

    #[test]
    fn ordinals_parse_and_garbage_does_not() {
        assert_eq!(EnvWorkerId::parse("web-0"), Ok(0));
        assert_eq!(EnvWorkerId::parse("id-gen-service-42"), Ok(42));
        assert!(EnvWorkerId::parse("").is_err());
        assert!(EnvWorkerId::parse("web-").is_err());
        assert!(EnvWorkerId::parse("web-3a").is_err());
        assert!(EnvWorkerId::parse("99999999999999999999999").is_err());
        // A negative number is not the ordinal 5 of a nameless pod.
        assert!(EnvWorkerId::parse("-5").is_err());
        assert!(EnvWorkerId::parse(" -5").is_err());
    }

    #[test]
    fn a_missing_variable_is_named() {
        let provider = EnvWorkerId::new("KEEL_IDGEN_SURELY_UNSET_VARIABLE");
        assert_eq!(
            provider.worker_id().unwrap_err().to_string(),
            "environment variable KEEL_IDGEN_SURELY_UNSET_VARIABLE is not set"
        );
    }
}
