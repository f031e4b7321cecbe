//! `RetryLayer`: retries failed requests under a [`Retry`] policy.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use keel_core::Clock;
use tower_layer::Layer;
use tower_service::Service;

use super::{AnyError, BoxFuture, RetryPredicate};
use crate::Retry;

/// Retries requests that fail with a transient error, waiting on tokio's timer between
/// attempts, within the policy's attempts, time limit and [`RetryBudget`](crate::RetryBudget).
/// The request must be `Clone`; the inner service is cloned per request, as tower's own
/// `Retry` does. The response error is the last attempt's.
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
pub struct RetryLayer<C, P = AnyError> {
    retry: Arc<Retry<C>>,
    predicate: P,
}

// By hand: a derive would require the predicate (often a closure) to be `Debug`.
impl<C, P> fmt::Debug for RetryLayer<C, P>
where
    Retry<C>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("retry", &self.retry)
            .field("predicate", &std::any::type_name::<P>())
            .finish()
    }
}

impl<C, P: Clone> Clone for RetryLayer<C, P> {
    fn clone(&self) -> Self {
        RetryLayer {
            retry: self.retry.clone(),
            predicate: self.predicate.clone(),
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
        }
    }

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
    pub fn with_predicate<P>(self, predicate: P) -> RetryLayer<C, P> {
        RetryLayer {
            retry: self.retry,
            predicate,
        }
    }
}

impl<S, C, P: Clone> Layer<S> for RetryLayer<C, P> {
    type Service = RetryService<S, C, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            retry: self.retry.clone(),
            predicate: self.predicate.clone(),
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
pub struct RetryService<S, C, P = AnyError> {
    inner: S,
    retry: Arc<Retry<C>>,
    predicate: P,
}

// By hand: a derive would require the predicate (often a closure) to be `Debug`.
impl<S: fmt::Debug, C, P> fmt::Debug for RetryService<S, C, P>
where
    Retry<C>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryService")
            .field("inner", &self.inner)
            .field("retry", &self.retry)
            .field("predicate", &std::any::type_name::<P>())
            .finish()
    }
}

impl<S: Clone, C, P: Clone> Clone for RetryService<S, C, P> {
    fn clone(&self) -> Self {
        RetryService {
            inner: self.inner.clone(),
            retry: self.retry.clone(),
            predicate: self.predicate.clone(),
        }
    }
}

impl<S, Req, C, P> Service<Req> for RetryService<S, C, P>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Send,
    Req: Clone + Send + 'static,
    C: Clock + 'static,
    P: RetryPredicate<S::Error> + Clone + Send + Sync + 'static,
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
        let first = inner.call(request.clone());
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
                match attempts.next_delay(predicate.is_transient(&error)) {
                    Ok(delay) => tokio::time::sleep(delay).await,
                    Err(_) => return Err(error),
                }
                std::future::poll_fn(|cx| inner.poll_ready(cx)).await?;
                call = inner.call(request.clone());
            }
        })
    }
}
