//! What counts as a failure (breaker) and what is worth retrying (retry), for the services.

/// Decides whether a call's result counts as a failure for a
/// [`CircuitBreakerService`](crate::CircuitBreakerService).
pub trait FailurePredicate<T, E> {
    /// Whether `result` counts against the dependency.
    fn is_failure(&self, result: &Result<T, E>) -> bool;
}

/// Every `Err` is a failure: the default [`FailurePredicate`].
#[derive(Copy, Clone, Debug, Default)]
pub struct ErrIsFailure;

impl<T, E> FailurePredicate<T, E> for ErrIsFailure {
    fn is_failure(&self, result: &Result<T, E>) -> bool {
        result.is_err()
    }
}

impl<T, E, F: Fn(&Result<T, E>) -> bool> FailurePredicate<T, E> for F {
    fn is_failure(&self, result: &Result<T, E>) -> bool {
        self(result)
    }
}

/// Decides whether an error is transient, for a [`RetryService`](crate::RetryService).
pub trait RetryPredicate<E> {
    /// Whether retrying after `error` may succeed.
    fn is_transient(&self, error: &E) -> bool;
}

/// Every error is transient: the default [`RetryPredicate`].
#[derive(Copy, Clone, Debug, Default)]
pub struct AnyError;

impl<E> RetryPredicate<E> for AnyError {
    fn is_transient(&self, _error: &E) -> bool {
        true
    }
}

impl<E, F: Fn(&E) -> bool> RetryPredicate<E> for F {
    fn is_transient(&self, error: &E) -> bool {
        self(error)
    }
}
