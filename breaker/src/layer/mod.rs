//! tower `Layer`s: a circuit breaker, retries (with a budget) and a bulkhead around any
//! `Service`.

mod breaker;
mod bulkhead;
mod predicate;
mod retry;

pub use breaker::{CircuitBreakerLayer, CircuitBreakerService};
pub use bulkhead::{BulkheadLayer, BulkheadService};
pub use predicate::{AnyError, ErrIsFailure, FailurePredicate, RetryPredicate};
pub use retry::{RetryLayer, RetryService};

/// The error of the breaker and bulkhead services: the inner service's error, a
/// [`Rejected`](crate::Rejected) or a [`BulkheadFull`](crate::BulkheadFull), boxed as tower
/// does.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed, sendable future, the services' `Future` type.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
