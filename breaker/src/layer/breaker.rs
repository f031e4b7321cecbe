//! `CircuitBreakerLayer`: rejects requests while the breaker is open.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use keel_core::Clock;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{ErrIsFailure, FailurePredicate};
use crate::{CallError, CircuitBreaker, OwnedPermit, Rejected};

/// Wraps a service in a [`CircuitBreaker`]: while it is open, requests fail at once with
/// [`CallError::Rejected`] without reaching the service. The inner service's error is kept,
/// as [`CallError::Inner`], not boxed; the future is named, [`CircuitBreakerFuture`].
///
/// ```
/// use keel_breaker::{CallError, CircuitBreaker, CircuitBreakerLayer};
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
/// assert!(matches!(error, CallError::Rejected(_)));
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
    /// assert_eq!(service.clone().oneshot(true).await, Ok(1));
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
    /// assert_eq!(service.clone().oneshot(404).await.ok(), Some(404));
    /// assert_eq!(breaker.state(), State::Closed);
    /// assert_eq!(service.clone().oneshot(503).await.ok(), Some(503)); // an `Ok` counted as a failure
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
/// assert_eq!(service.oneshot("keel").await.ok(), Some(4));
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
    C: Clock,
    P: FailurePredicate<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = CircuitBreakerFuture<S::Future, C, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(CallError::Inner)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let state = match self.breaker.try_acquire_owned() {
            Err(rejected) => CallState::Rejected { rejected },
            Ok(permit) => CallState::Called {
                call: self.inner.call(request),
                permit: Some(permit),
                predicate: self.predicate.clone(),
            },
        };
        CircuitBreakerFuture { state }
    }
}

pin_project! {
    /// The future of [`CircuitBreakerService`]: the inner call, whose outcome it records on
    /// the breaker, or a rejection, ready at once. Dropped before it completes, it records
    /// nothing and gives a probe slot back.
    ///
    /// ```
    /// use keel_breaker::{CallError, CircuitBreaker, CircuitBreakerFuture, CircuitBreakerLayer};
    /// use std::future::Ready;
    /// use std::sync::Arc;
    /// use tower::{service_fn, Layer, Service};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let breaker = Arc::new(CircuitBreaker::builder().build()?);
    /// let mut service = CircuitBreakerLayer::new(breaker)
    ///     .layer(service_fn(|n: u32| std::future::ready(Ok::<_, std::io::Error>(n + 1))));
    /// // Named, not boxed, and the inner error type is kept.
    /// let future: CircuitBreakerFuture<Ready<Result<u32, std::io::Error>>, _> = service.call(1);
    /// let result: Result<u32, CallError<std::io::Error>> = future.await;
    /// assert_eq!(result.ok(), Some(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub struct CircuitBreakerFuture<F, C: Clock, P = ErrIsFailure> {
        #[pin]
        state: CallState<F, C, P>,
    }
}

pin_project! {
    #[project = CallStateProj]
    enum CallState<F, C: Clock, P> {
        Rejected { rejected: Rejected },
        Called {
            #[pin]
            call: F,
            permit: Option<OwnedPermit<C>>,
            predicate: P,
        },
    }
}

impl<F, C: Clock, P> fmt::Debug for CircuitBreakerFuture<F, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            CallState::Rejected { .. } => "rejected",
            CallState::Called { .. } => "called",
        };
        f.debug_struct("CircuitBreakerFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<F, T, E, C, P> Future for CircuitBreakerFuture<F, C, P>
where
    F: Future<Output = Result<T, E>>,
    C: Clock,
    P: FailurePredicate<T, E>,
{
    type Output = Result<T, CallError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            CallStateProj::Rejected { rejected } => {
                Poll::Ready(Err(CallError::Rejected(*rejected)))
            }
            CallStateProj::Called {
                call,
                permit,
                predicate,
            } => {
                let result = ready!(call.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(predicate.is_failure(&result));
                }
                Poll::Ready(result.map_err(CallError::Inner))
            }
        }
    }
}
