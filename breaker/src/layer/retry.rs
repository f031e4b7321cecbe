//! `RetryLayer`: retries failed requests under a [`Retry`] policy.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use keel_core::Clock;
use tower_layer::Layer;
use tower_service::Service;

use super::{AnyError, BoxFuture, ByClone, CloneRequest, RetryPredicate};
use crate::Retry;

/// Retries requests that fail with a transient error, waiting on tokio's timer between
/// attempts, within the policy's attempts, time limit and [`RetryBudget`](crate::RetryBudget).
/// Each further attempt sends a copy made by a [`CloneRequest`] policy before the attempt
/// before it: by default the request's `Clone`; with
/// [`with_request_cloner`](Self::with_request_cloner), any function, so requests that are
/// not `Clone` (an `http::Request`) are retried too, in the shape of tower's
/// `Policy::clone_request`. The inner service is cloned per request, as tower's own `Retry`
/// does. The response error is the last attempt's.
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
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Send,
    Req: Send + 'static,
    C: Clock + 'static,
    P: RetryPredicate<S::Error> + Clone + Send + Sync + 'static,
    Q: CloneRequest<Req> + Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        // The ready service makes the first attempt; a fresh clone makes ready for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // Each attempt's copy is made before the attempt, which consumes its request.
        let cloner = self.cloner.clone();
        let mut spare = cloner.clone_request(&request);
        let first = inner.call(request);
        let retry = self.retry.clone();
        let predicate = self.predicate.clone();
        Box::pin(async move {
            let mut attempts = retry.start();
            let mut call = first;
            loop {
                let error = match call.await {
                    Ok(response) => return Ok(response),
                    Err(error) => error,
                };
                // A request that cannot be copied is not retried, and takes no retry token.
                let Some(request) = spare.take() else {
                    return Err(error);
                };
                match attempts.next_delay(predicate.is_transient(&error)) {
                    Ok(delay) => tokio::time::sleep(delay).await,
                    Err(_) => return Err(error),
                }
                std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                spare = cloner.clone_request(&request);
                call = inner.call(request);
            }
        })
    }
}
