//! What counts as a failure (breaker) and what is worth retrying (retry), for the services.

/// Decides whether a call's result counts as a failure for a
/// [`CircuitBreakerService`](crate::CircuitBreakerService).
///
/// ```
/// use keel_breaker::{ErrIsFailure, FailurePredicate};
///
/// #[derive(Clone)]
/// struct ServerErrors;
///
/// impl FailurePredicate<u16, std::io::Error> for ServerErrors {
///     fn is_failure(&self, result: &Result<u16, std::io::Error>) -> bool {
///         // A transport error or a 5xx is the dependency's fault; a 4xx is the caller's.
///         !matches!(result, Ok(status) if *status < 500)
///     }
/// }
///
/// assert!(!ServerErrors.is_failure(&Ok(404)));
/// assert!(ServerErrors.is_failure(&Ok(503)));
/// assert!(FailurePredicate::<u16, &str>::is_failure(&ErrIsFailure, &Err("down")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait FailurePredicate<T, E> {
    /// Whether `result` counts against the dependency.
    ///
    /// ```
    /// use keel_breaker::FailurePredicate;
    ///
    /// // Any closure over the result is a predicate.
    /// let only_timeouts = |result: &Result<(), &str>| matches!(result, Err("timeout"));
    /// assert!(only_timeouts.is_failure(&Err("timeout")));
    /// assert!(!only_timeouts.is_failure(&Err("not found")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn is_failure(&self, result: &Result<T, E>) -> bool;
}

/// Every `Err` is a failure: the default [`FailurePredicate`].
///
/// ```
/// use keel_breaker::{ErrIsFailure, FailurePredicate};
///
/// assert!(FailurePredicate::<(), &str>::is_failure(&ErrIsFailure, &Err("down")));
/// assert!(!FailurePredicate::<(), &str>::is_failure(&ErrIsFailure, &Ok(())));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// ```
/// use keel_breaker::RetryPredicate;
/// use std::io::{Error, ErrorKind};
///
/// #[derive(Clone)]
/// struct Transient;
///
/// impl RetryPredicate<Error> for Transient {
///     fn is_transient(&self, error: &Error) -> bool {
///         matches!(error.kind(), ErrorKind::TimedOut | ErrorKind::ConnectionReset)
///     }
/// }
///
/// assert!(Transient.is_transient(&Error::from(ErrorKind::TimedOut)));
/// assert!(!Transient.is_transient(&Error::from(ErrorKind::PermissionDenied)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait RetryPredicate<E> {
    /// Whether retrying after `error` may succeed.
    ///
    /// ```
    /// use keel_breaker::RetryPredicate;
    ///
    /// // Any closure over the error is a predicate.
    /// let server_errors = |status: &u16| *status >= 500;
    /// assert!(server_errors.is_transient(&503));
    /// assert!(!server_errors.is_transient(&404));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn is_transient(&self, error: &E) -> bool;
}

/// Every error is transient: the default [`RetryPredicate`].
///
/// ```
/// use keel_breaker::{AnyError, RetryPredicate};
///
/// assert!(AnyError.is_transient(&"anything at all"));
/// assert!(AnyError.is_transient(&404));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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

/// Makes the copy of a request that the next attempt sends, as tower's
/// `Policy::clone_request` does, so requests that are not `Clone` (an `http::Request`) can be
/// retried: clone what can be cloned, or return `None` to send the request once.
///
/// Implemented by [`ByClone`] (the default, for `Req: Clone`) and by any
/// `Fn(&Req) -> Option<Req>`.
///
/// ```
/// use keel_breaker::CloneRequest;
///
/// // Not `Clone`: say how to copy it, and which requests may be sent twice.
/// struct Request { method: &'static str, body: Vec<u8> }
/// let idempotent = |r: &Request| {
///     (r.method != "POST").then(|| Request { method: r.method, body: r.body.clone() })
/// };
/// let get = Request { method: "GET", body: Vec::new() };
/// assert!(idempotent.clone_request(&get).is_some());
/// let post = Request { method: "POST", body: b"order".to_vec() };
/// assert!(idempotent.clone_request(&post).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait CloneRequest<Req> {
    /// A copy of `request` for one more attempt, or `None` if it cannot be sent again; then
    /// the attempt in flight is the last, whatever its error.
    ///
    /// ```
    /// use keel_breaker::{ByClone, CloneRequest};
    ///
    /// assert_eq!(ByClone.clone_request(&"GET /"), Some("GET /"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn clone_request(&self, request: &Req) -> Option<Req>;
}

/// Copies requests with their `Clone`: the default [`CloneRequest`].
///
/// ```
/// use keel_breaker::{ByClone, CloneRequest};
///
/// assert_eq!(ByClone.clone_request(&vec![1, 2]), Some(vec![1, 2]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default)]
pub struct ByClone;

impl<Req: Clone> CloneRequest<Req> for ByClone {
    fn clone_request(&self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

impl<Req, F: Fn(&Req) -> Option<Req>> CloneRequest<Req> for F {
    fn clone_request(&self, request: &Req) -> Option<Req> {
        self(request)
    }
}
