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
pub use retry::{RetryLayer, RetryService};

/// The error of the bulkhead service: the inner service's error or a
/// [`BulkheadFull`](crate::BulkheadFull), boxed as tower does. (The breaker service keeps the
/// inner error, in a [`CallError`](crate::CallError).)
///
/// ```
/// use keel_breaker::{BoxError, Bulkhead, BulkheadFull, BulkheadLayer};
/// use std::sync::Arc;
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let bulkhead = Arc::new(Bulkhead::new(1)?);
/// let _held = bulkhead.try_acquire()?;
/// let mut service = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(bulkhead.clone()))
///     .service(service_fn(|n: u32| async move { Ok::<_, BoxError>(n) }));
/// let error: BoxError = service.ready().await?.call(1).await.unwrap_err();
/// assert!(error.downcast_ref::<BulkheadFull>().is_some());
/// # Ok::<(), BoxError>(())
/// # }
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed, sendable future, the retry service's `Future` type.
///
/// ```
/// use keel_breaker::{BoxError, BoxFuture, Retry, RetryLayer};
/// use std::sync::Arc;
/// use tower::{service_fn, Layer, Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let retry = Arc::new(Retry::builder().build()?);
/// let mut service = RetryLayer::new(retry)
///     .layer(service_fn(|n: u32| async move { Ok::<_, BoxError>(n + 1) }));
/// let future: BoxFuture<Result<u32, BoxError>> = service.ready().await?.call(1);
/// assert_eq!(future.await?, 2);
/// # Ok::<(), BoxError>(())
/// # }
/// ```
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
