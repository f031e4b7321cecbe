//! Errors of guarded calls: the breaker's rejection or the bulkhead's refusal, or the call's own error.

use std::fmt;
use std::time::Duration;

use crate::{BulkheadFull, State};

/// A call the breaker turned away without running it.
///
/// ```
/// use keel_breaker::{CallError, CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// breaker.force_open();
/// let Err(CallError::Rejected(rejected)) = breaker.call(|| Ok::<_, ()>(())) else {
///     panic!("a forced-open breaker rejects every call");
/// };
/// assert_eq!(rejected.state(), State::ForcedOpen);
/// assert_eq!(rejected.to_string(), "circuit breaker is forced open, call rejected");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    state: State,
    retry_after: Option<Duration>,
}

impl Rejected {
    pub(crate) fn new(state: State, retry_after: Option<Duration>) -> Rejected {
        Rejected { state, retry_after }
    }

    /// The state that rejected the call: open, half-open (every probe slot taken) or forced
    /// open.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(1).build()?;
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// assert_eq!(breaker.try_acquire().unwrap_err().state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until an open breaker lets a probe through, if it is open on a timer.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, OpenWait};
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .consecutive_failures(1)
    ///     .open_wait(OpenWait::Fixed(Duration::from_secs(30)))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// clock.advance(Duration::from_secs(10));
    /// let rejected = breaker.try_acquire().unwrap_err();
    /// assert_eq!(rejected.retry_after(), Some(Duration::from_secs(20)));
    /// assert_eq!(rejected.to_string(), "circuit breaker is open, call rejected; next probe in 20s");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker is {}, call rejected", self.state)?;
        if let Some(after) = self.retry_after {
            write!(f, "; next probe in {after:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

/// The error of a call guarded by a breaker: rejected, or run and failed with `E`.
///
/// ```
/// use keel_breaker::{CallError, CircuitBreaker};
///
/// let breaker = CircuitBreaker::builder().consecutive_failures(1).build()?;
/// let first = breaker.call(|| Err::<(), _>("connection refused"));
/// assert_eq!(first, Err(CallError::Inner("connection refused")));
/// let second = breaker.call(|| Err::<(), _>("connection refused"));
/// assert!(matches!(second, Err(CallError::Rejected(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError<E> {
    /// The breaker did not run the call.
    Rejected(Rejected),
    /// The call ran and returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// The call's own error, if it ran.
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(1).build()?;
    /// let failed = breaker.call(|| Err::<(), _>("timeout")).unwrap_err();
    /// assert_eq!(failed.into_inner(), Some("timeout"));
    /// let rejected = breaker.call(|| Err::<(), _>("timeout")).unwrap_err();
    /// assert_eq!(rejected.into_inner(), None); // the call never ran
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Inner(error) => Some(error),
            CallError::Rejected(_) => None,
        }
    }

    /// Whether the breaker rejected the call.
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(1).build()?;
    /// assert!(!breaker.call(|| Err::<(), _>("timeout")).unwrap_err().is_rejected());
    /// assert!(breaker.call(|| Err::<(), _>("timeout")).unwrap_err().is_rejected());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_rejected(&self) -> bool {
        matches!(self, CallError::Rejected(_))
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(rejected) => rejected.fmt(f),
            CallError::Inner(error) => error.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(rejected) => Some(rejected),
            CallError::Inner(error) => Some(error),
        }
    }
}

impl<E> From<Rejected> for CallError<E> {
    fn from(rejected: Rejected) -> Self {
        CallError::Rejected(rejected)
    }
}

/// The error of a call through a bulkhead that keeps the call's own error type: refused for
/// want of a slot, or run and failed with `E`. The tower `BulkheadService` (feature `tower`)
/// returns it, as the breaker's service returns [`CallError`], so stacked layers keep the
/// inner service's error instead of boxing it.
///
/// ```
/// use keel_breaker::{Bulkhead, BulkheadError};
///
/// let bulkhead = Bulkhead::new(1)?;
/// let guarded = |work: fn() -> Result<u32, &'static str>| -> Result<u32, BulkheadError<&str>> {
///     let _slot = bulkhead.try_acquire()?; // `BulkheadFull` converts
///     work().map_err(BulkheadError::Inner)
/// };
/// assert_eq!(guarded(|| Err("timeout")), Err(BulkheadError::Inner("timeout")));
/// let _held = bulkhead.try_acquire()?;
/// let refused = guarded(|| Ok(1)).unwrap_err();
/// assert!(refused.is_full());
/// assert_eq!(refused.to_string(), "bulkhead full: all 1 concurrent slots are taken");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkheadError<E> {
    /// Every slot was taken (after the bulkhead's bounded wait, if it has one): the call did
    /// not run.
    Full(BulkheadFull),
    /// The call ran and returned this error.
    Inner(E),
}

impl<E> BulkheadError<E> {
    /// The call's own error, if it ran.
    ///
    /// ```
    /// use keel_breaker::{Bulkhead, BulkheadError};
    ///
    /// assert_eq!(BulkheadError::Inner("reset").into_inner(), Some("reset"));
    /// let bulkhead = Bulkhead::new(1)?;
    /// let _held = bulkhead.try_acquire()?;
    /// let full: BulkheadError<&str> = bulkhead.try_acquire().unwrap_err().into();
    /// assert_eq!(full.into_inner(), None); // the call never ran
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            BulkheadError::Inner(error) => Some(error),
            BulkheadError::Full(_) => None,
        }
    }

    /// Whether the bulkhead refused the call.
    ///
    /// ```
    /// use keel_breaker::{Bulkhead, BulkheadError};
    ///
    /// let bulkhead = Bulkhead::new(1)?;
    /// let _held = bulkhead.try_acquire()?;
    /// let full: BulkheadError<()> = bulkhead.try_acquire().unwrap_err().into();
    /// assert!(full.is_full());
    /// assert!(!BulkheadError::Inner(()).is_full());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, BulkheadError::Full(_))
    }
}

impl<E: fmt::Display> fmt::Display for BulkheadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BulkheadError::Full(full) => full.fmt(f),
            BulkheadError::Inner(error) => error.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for BulkheadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BulkheadError::Full(full) => Some(full),
            BulkheadError::Inner(error) => Some(error),
        }
    }
}

impl<E> From<BulkheadFull> for BulkheadError<E> {
    fn from(full: BulkheadFull) -> Self {
        BulkheadError::Full(full)
    }
}
