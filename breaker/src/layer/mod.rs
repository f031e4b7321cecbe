//! tower `Layer`s: a circuit breaker, retries (with a budget) and a bulkhead around any
//! `Service`.

mod breaker;
mod bulkhead;
mod predicate;
mod retry;

pub use breaker::{CircuitBreakerFuture, CircuitBreakerLayer, CircuitBreakerService};
pub use bulkhead::{BulkheadFuture, BulkheadLayer, BulkheadService};
pub use predicate::{
    AnyError, ByClone, CloneRequest, ErrIsFailure, FailurePredicate, RetryPredicate,
};
pub use retry::{RetryFuture, RetryLayer, RetryService};

/// A boxed error, as tower's `BoxError`: for the layers' examples and for services whose
/// errors are boxed anyway. The layers themselves keep the inner service's error type: the
/// breaker's service returns [`CallError<E>`](crate::CallError), the bulkhead's
/// [`BulkheadError<E>`](crate::BulkheadError), the retry's the last attempt's `E`.
///
/// ```
/// use keel_breaker::{BoxError, Bulkhead, BulkheadError, BulkheadLayer};
/// use std::sync::Arc;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let bulkhead = Arc::new(Bulkhead::new(1)?);
/// let service = BulkheadLayer::new(bulkhead).layer(service_fn(|n: u32| async move {
///     if n == 0 { Err::<u32, BoxError>("zero".into()) } else { Ok(n) }
/// }));
/// let error: BulkheadError<BoxError> = service.oneshot(0).await.unwrap_err();
/// assert_eq!(error.into_inner().map(|e| e.to_string()).as_deref(), Some("zero"));
/// # Ok::<(), BoxError>(())
/// # }
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
