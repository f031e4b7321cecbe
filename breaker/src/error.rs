//! Errors of guarded calls: the breaker's rejection, or the call's own error.

use std::fmt;
use std::time::Duration;

use crate::State;

/// A call the breaker turned away without running it.
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
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until an open breaker lets a probe through, if it is open on a timer.
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker did not run the call.
    Rejected(Rejected),
    /// The call ran and returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// The call's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Inner(error) => Some(error),
            CallError::Rejected(_) => None,
        }
    }

    /// Whether the breaker rejected the call.
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
