//! `RetryLayer`: retries failed requests under a [`Retry`] policy.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use keel_core::Clock;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{AnyError, ByClone, CloneRequest, RetryPredicate};
use crate::Retry;
use crate::retry::AttemptState;

/// Retries requests that fail with a transient error, waiting on tokio's timer between
/// attempts, within the policy's attempts, time limit and [`RetryBudget`](crate::RetryBudget).
/// Each further attempt sends a copy made by a [`CloneRequest`] policy before the attempt
/// before it: by default the request's `Clone`; with
/// [`with_request_cloner`](Self::with_request_cloner), any function, so requests that are
/// not `Clone` (an `http::Request`) are retried too, in the shape of tower's
/// `Policy::clone_request`. The inner service is cloned per request, as tower's own `Retry`
/// does. The response error is the last attempt's.
///
/// Outside a tokio runtime a request is not retried: it fails with its first error, and
/// spends no retry token, rather than wait without a timer. Inside a runtime built without
/// timers (no `enable_time`), tokio panics on the first wait.
///
/// ```
/// use keel_breaker::{Backoff, Retry, RetryLayer};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let retry = Retry::builder()
///     .max_attempts(4)
///     .backoff(Backoff::exponential(Duration::from_millis(10)))
///     .build()?;
/// let calls = Arc::new(AtomicU32::new(0));
/// let seen = calls.clone();
/// let service = ServiceBuilder::new()
///     .layer(RetryLayer::new(Arc::new(retry)))
///     .service(service_fn(move |_: ()| {
///         let n = seen.fetch_add(1, Ordering::SeqCst);
///         async move { if n < 2 { Err("flaky") } else { Ok(n) } }
///     }));
/// assert_eq!(service.oneshot(()).await, Ok(2));
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }
/// ```
pub struct RetryLayer<C, P = AnyError, Q = ByClone> {
    retry: Arc<Retry<C>>,
    predicate: P,
    cloner: Q,
}

// By hand: a derive would require the predicate (often a closure) to be `Debug`.
impl<C, P, Q> fmt::Debug for RetryLayer<C, P, Q>
where
    Retry<C>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("retry", &self.retry)
            .field("predicate", &std::any::type_name::<P>())
            .field("cloner", &std::any::type_name::<Q>())
            .finish()
    }
}

impl<C, P: Clone, Q: Clone> Clone for RetryLayer<C, P, Q> {
    fn clone(&self) -> Self {
        RetryLayer {
            retry: self.retry.clone(),
            predicate: self.predicate.clone(),
            cloner: self.cloner.clone(),
        }
    }
}

impl<C: Clock> RetryLayer<C, AnyError> {
    /// Retries every error.
    ///
    /// ```
    /// use keel_breaker::{Backoff, Retry, RetryLayer};
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let retry = Retry::builder()
    ///     .max_attempts(3)
    ///     .backoff(Backoff::constant(Duration::from_millis(100)))
    ///     .build()?;
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let counter = calls.clone();
    /// let service = ServiceBuilder::new()
    ///     .layer(RetryLayer::new(Arc::new(retry)))
    ///     .service(service_fn(move |_: ()| {
    ///         counter.fetch_add(1, Ordering::SeqCst);
    ///         async { Err::<(), _>("always down") }
    ///     }));
    /// assert_eq!(service.oneshot(()).await, Err("always down")); // the last attempt's error
    /// assert_eq!(calls.load(Ordering::SeqCst), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub fn new(retry: Arc<Retry<C>>) -> Self {
        RetryLayer {
            retry,
            predicate: AnyError,
            cloner: ByClone,
        }
    }
}

impl<C: Clock, P, Q> RetryLayer<C, P, Q> {
    /// Retries only errors `predicate` calls transient.
    ///
    /// ```
    /// use keel_breaker::{Backoff, Retry, RetryLayer};
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let retry = Arc::new(Retry::builder().backoff(Backoff::constant(Duration::from_millis(10))).build()?);
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let counter = calls.clone();
    /// let service = ServiceBuilder::new()
    ///     .layer(RetryLayer::new(retry).with_predicate(|status: &u16| *status >= 500))
    ///     .service(service_fn(move |_: ()| {
    ///         counter.fetch_add(1, Ordering::SeqCst);
    ///         async { Err::<(), u16>(404) }
    ///     }));
    /// assert_eq!(service.oneshot(()).await, Err(404));
    /// assert_eq!(calls.load(Ordering::SeqCst), 1); // a 404 is not retried
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub fn with_predicate<P2>(self, predicate: P2) -> RetryLayer<C, P2, Q> {
        RetryLayer {
            retry: self.retry,
            predicate,
            cloner: self.cloner,
        }
    }

    /// Copies each request for the next attempt with `cloner` instead of `Clone`, so
    /// requests that are not `Clone` can be retried; a request it returns `None` for is sent
    /// once.
    ///
    /// ```
    /// use keel_breaker::{Backoff, Retry, RetryLayer};
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    ///
    /// /// Not `Clone`, like `http::Request`.
    /// struct Request(String);
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let retry = Arc::new(Retry::builder().backoff(Backoff::constant(Duration::from_millis(10))).build()?);
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let counter = calls.clone();
    /// let service = ServiceBuilder::new()
    ///     .layer(RetryLayer::new(retry).with_request_cloner(|r: &Request| Some(Request(r.0.clone()))))
    ///     .service(service_fn(move |r: Request| {
    ///         let n = counter.fetch_add(1, Ordering::SeqCst);
    ///         async move { if n == 0 { Err("flaky") } else { Ok(r.0) } }
    ///     }));
    /// assert_eq!(service.oneshot(Request("GET /".into())).await, Ok("GET /".to_string()));
    /// assert_eq!(calls.load(Ordering::SeqCst), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub fn with_request_cloner<Q2>(self, cloner: Q2) -> RetryLayer<C, P, Q2> {
        RetryLayer {
            retry: self.retry,
            predicate: self.predicate,
            cloner,
        }
    }
}

impl<S, C, P: Clone, Q: Clone> Layer<S> for RetryLayer<C, P, Q> {
    type Service = RetryService<S, C, P, Q>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            retry: self.retry.clone(),
            predicate: self.predicate.clone(),
            cloner: self.cloner.clone(),
        }
    }
}

/// The service made by [`RetryLayer`].
///
/// ```
/// use keel_breaker::{Backoff, Retry, RetryLayer, RetryService};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let retry = Arc::new(Retry::builder().backoff(Backoff::constant(Duration::from_millis(10))).build()?);
/// let failures = Arc::new(AtomicU32::new(1));
/// let inner = service_fn(move |n: u32| {
///     let fail = failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1)).is_ok();
///     async move { if fail { Err("flaky") } else { Ok(n + 1) } }
/// });
/// let service: RetryService<_, _> = RetryLayer::new(retry).layer(inner);
/// assert_eq!(service.oneshot(41).await, Ok(42)); // failed once, then succeeded
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }
/// ```
pub struct RetryService<S, C, P = AnyError, Q = ByClone> {
    inner: S,
    retry: Arc<Retry<C>>,
    predicate: P,
    cloner: Q,
}

// By hand: a derive would require the predicate (often a closure) to be `Debug`.
impl<S: fmt::Debug, C, P, Q> fmt::Debug for RetryService<S, C, P, Q>
where
    Retry<C>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryService")
            .field("inner", &self.inner)
            .field("retry", &self.retry)
            .field("predicate", &std::any::type_name::<P>())
            .field("cloner", &std::any::type_name::<Q>())
            .finish()
    }
}

impl<S: Clone, C, P: Clone, Q: Clone> Clone for RetryService<S, C, P, Q> {
    fn clone(&self) -> Self {
        RetryService {
            inner: self.inner.clone(),
            retry: self.retry.clone(),
            predicate: self.predicate.clone(),
            cloner: self.cloner.clone(),
        }
    }
}

impl<S, Req, C, P, Q> Service<Req> for RetryService<S, C, P, Q>
where
    S: Service<Req> + Clone,
    C: Clock,
    P: RetryPredicate<S::Error> + Clone,
    Q: CloneRequest<Req> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RetryFuture<S, Req, C, P, Q>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The ready service makes the first attempt; a fresh clone makes ready for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // Each attempt's copy is made before the attempt, which consumes its request.
        let spare = self.cloner.clone_request(&request);
        let call = inner.call(request);
        RetryFuture {
            state: State::Calling { call },
            inner,
            attempts: self.retry.begin(),
            retry: self.retry.clone(),
            predicate: self.predicate.clone(),
            cloner: self.cloner.clone(),
            spare,
            sleep: None,
        }
    }
}

pin_project! {
    /// The future of [`RetryService`]: the current attempt's call, then, after a transient
    /// error, a wait on tokio's timer and the next attempt, until one succeeds or the policy
    /// gives up with the last attempt's error. A plain state machine, not a boxed `async`
    /// block: a request that succeeds at once allocates nothing; each retry boxes its timer.
    ///
    /// ```
    /// use keel_breaker::{Backoff, Retry, RetryFuture, RetryLayer};
    /// use std::future::Ready;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use tower::{service_fn, Layer, Service, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let retry = Arc::new(Retry::builder().backoff(Backoff::constant(Duration::from_millis(5))).build()?);
    /// let inner = service_fn(|n: u32| std::future::ready(Ok::<_, std::fmt::Error>(n + 1)));
    /// let mut service = RetryLayer::new(retry).layer(inner);
    /// let future: RetryFuture<_, u32, _> = service.ready().await?.call(1);
    /// assert_eq!(future.await?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub struct RetryFuture<S, Req, C, P = AnyError, Q = ByClone>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        inner: S,
        retry: Arc<Retry<C>>,
        attempts: AttemptState,
        predicate: P,
        cloner: Q,
        // The copy of the request for the next attempt; `None`: it could not be copied.
        spare: Option<Req>,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // An attempt is in flight.
        Calling { #[pin] call: F },
        // Sleeping off the backoff before the next attempt.
        Waiting,
        // Waiting for the inner service to be ready for the next attempt.
        Readying,
    }
}

impl<S, Req, C, P, Q> fmt::Debug for RetryFuture<S, Req, C, P, Q>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Calling { .. } => "calling",
            State::Waiting => "waiting",
            State::Readying => "readying",
        };
        f.debug_struct("RetryFuture")
            .field("state", &state)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<S, Req, C, P, Q> Future for RetryFuture<S, Req, C, P, Q>
where
    S: Service<Req>,
    C: Clock,
    P: RetryPredicate<S::Error>,
    Q: CloneRequest<Req>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { call } => {
                    let error = match ready!(call.poll(cx)) {
                        Ok(response) => return Poll::Ready(Ok(response)),
                        Err(error) => error,
                    };
                    // A request that cannot be copied is not retried, and takes no retry token.
                    if this.spare.is_none() {
                        return Poll::Ready(Err(error));
                    }
                    let transient = this.predicate.is_transient(&error);
                    match this
                        .retry
                        .next_delay_of(this.attempts, transient, crate::has_runtime)
                    {
                        Ok(delay) => {
                            *this.sleep = Some(Box::pin(tokio::time::sleep(delay)));
                            this.state.set(State::Waiting);
                        }
                        Err(_) => return Poll::Ready(Err(error)),
                    }
                }
                StateProj::Waiting => {
                    if let Some(sleep) = this.sleep.as_mut() {
                        ready!(sleep.as_mut().poll(cx));
                    }
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    ready!(this.inner.poll_ready(cx))?;
                    let Some(request) = this.spare.take() else {
                        unreachable!("a retry is scheduled only with a spare request");
                    };
                    *this.spare = this.cloner.clone_request(&request);
                    let call = this.inner.call(request);
                    this.state.set(State::Calling { call });
                }
            }
        }
    }
}
