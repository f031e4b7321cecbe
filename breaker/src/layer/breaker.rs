//! `CircuitBreakerLayer`: rejects requests while the breaker is open.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use keel_core::Clock;
use tower_layer::Layer;
use tower_service::Service;

use super::{BoxError, BoxFuture, ErrIsFailure, FailurePredicate};
use crate::CircuitBreaker;

/// Wraps a service in a [`CircuitBreaker`]: while it is open, requests fail at once with a
/// boxed [`Rejected`](crate::Rejected) without reaching the service.
///
/// ```
/// use keel_breaker::{CircuitBreaker, CircuitBreakerLayer, Rejected};
/// use std::sync::Arc;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let breaker = Arc::new(CircuitBreaker::builder().consecutive_failures(1).build()?);
/// let service = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker))
///     .service(service_fn(|_: ()| async { Err::<(), _>("down") }));
/// assert!(service.clone().oneshot(()).await.is_err()); // trips the breaker
/// let error = service.oneshot(()).await.unwrap_err();
/// assert!(error.is::<Rejected>());
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// # }
/// ```
pub struct CircuitBreakerLayer<C, P = ErrIsFailure> {
    breaker: Arc<CircuitBreaker<C>>,
    predicate: P,
}

// By hand: a derive would require the predicate (often a closure) to be `Debug`.
impl<C, P> fmt::Debug for CircuitBreakerLayer<C, P>
where
    CircuitBreaker<C>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("breaker", &self.breaker)
            .field("predicate", &std::any::type_name::<P>())
            .finish()
    }
}

// By hand: a derive would also require `C: Clone`, and the layer only holds an `Arc<_>` of it.
impl<C, P: Clone> Clone for CircuitBreakerLayer<C, P> {
    fn clone(&self) -> Self {
        CircuitBreakerLayer {
            breaker: self.breaker.clone(),
            predicate: self.predicate.clone(),
        }
    }
}

impl<C: Clock> CircuitBreakerLayer<C, ErrIsFailure> {
    /// Counts every `Err` of the inner service as a failure.
    ///
    /// ```
    /// use keel_breaker::{BoxError, CircuitBreaker, CircuitBreakerLayer, State};
    /// use std::sync::Arc;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), BoxError> {
    /// let breaker = Arc::new(CircuitBreaker::builder().consecutive_failures(2).build()?);
    /// let service = ServiceBuilder::new()
    ///     .layer(CircuitBreakerLayer::new(breaker.clone()))
    ///     .service(service_fn(|ok: bool| async move { if ok { Ok(1) } else { Err("down") } }));
    /// assert_eq!(service.clone().oneshot(true).await?, 1);
    /// for _ in 0..2 {
    ///     let _ = service.clone().oneshot(false).await;
    /// }
    /// assert_eq!(breaker.state(), State::Open); // the layer shares the breaker
    /// # Ok::<(), BoxError>(())
    /// # }
    /// ```
    pub fn new(breaker: Arc<CircuitBreaker<C>>) -> Self {
        CircuitBreakerLayer {
            breaker,
            predicate: ErrIsFailure,
        }
    }

    /// Counts what `predicate` says is a failure (for example only 5xx responses).
    ///
    /// ```
    /// use keel_breaker::{BoxError, CircuitBreaker, CircuitBreakerLayer, State};
    /// use std::sync::Arc;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), BoxError> {
    /// let breaker = Arc::new(CircuitBreaker::builder().consecutive_failures(1).build()?);
    /// let layer = CircuitBreakerLayer::new(breaker.clone())
    ///     .with_predicate(|result: &Result<u16, BoxError>| matches!(result, Ok(s) if *s >= 500));
    /// let service = ServiceBuilder::new()
    ///     .layer(layer)
    ///     .service(service_fn(|status: u16| async move { Ok::<_, BoxError>(status) }));
    /// assert_eq!(service.clone().oneshot(404).await?, 404);
    /// assert_eq!(breaker.state(), State::Closed);
    /// assert_eq!(service.clone().oneshot(503).await?, 503); // an `Ok` that counts as a failure
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), BoxError>(())
    /// # }
    /// ```
    pub fn with_predicate<P>(self, predicate: P) -> CircuitBreakerLayer<C, P> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            predicate,
        }
    }
}

impl<S, C: Clock, P: Clone> Layer<S> for CircuitBreakerLayer<C, P> {
    type Service = CircuitBreakerService<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            predicate: self.predicate.clone(),
        }
    }
}

/// The service made by [`CircuitBreakerLayer`].
///
/// ```
/// use keel_breaker::{BoxError, CircuitBreaker, CircuitBreakerLayer, CircuitBreakerService};
/// use std::sync::Arc;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let breaker = Arc::new(CircuitBreaker::builder().build()?);
/// let inner = service_fn(|name: &'static str| async move { Ok::<_, BoxError>(name.len()) });
/// let service: CircuitBreakerService<_, _> = CircuitBreakerLayer::new(breaker).layer(inner);
/// assert_eq!(service.oneshot("keel").await?, 4);
/// # Ok::<(), BoxError>(())
/// # }
/// ```
pub struct CircuitBreakerService<S, C, P = ErrIsFailure> {
    inner: S,
    breaker: Arc<CircuitBreaker<C>>,
    predicate: P,
}

// By hand: a derive would require the predicate (often a closure) to be `Debug`.
impl<S: fmt::Debug, C, P> fmt::Debug for CircuitBreakerService<S, C, P>
where
    CircuitBreaker<C>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker)
            .field("predicate", &std::any::type_name::<P>())
            .finish()
    }
}

impl<S: Clone, C, P: Clone> Clone for CircuitBreakerService<S, C, P> {
    fn clone(&self) -> Self {
        CircuitBreakerService {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            predicate: self.predicate.clone(),
        }
    }
}

impl<S, Req, C, P> Service<Req> for CircuitBreakerService<S, C, P>
where
    S: Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    C: Clock + 'static,
    P: FailurePredicate<S::Response, S::Error> + Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Err(rejected) => Box::pin(std::future::ready(Err(rejected.into()))),
            Ok(permit) => {
                let call = self.inner.call(request);
                let predicate = self.predicate.clone();
                // Dropping this future drops the permit unreported: a probe slot comes back.
                Box::pin(async move {
                    let result = call.await;
                    permit.record(predicate.is_failure(&result));
                    result.map_err(Into::into)
                })
            }
        }
    }
}
