//! `BulkheadLayer`: caps the requests in flight through a service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Bulkhead, BulkheadError, BulkheadFull, OwnedBulkheadPermit};

/// The bulkhead's own wait for a slot, boxed: it is created only when every slot is taken.
type Acquire = Pin<Box<dyn Future<Output = Result<OwnedBulkheadPermit, BulkheadFull>> + Send>>;

/// Limits the requests in flight through a service to a [`Bulkhead`]'s slots. `poll_ready`
/// waits up to the bulkhead's `max_wait` for a slot; a request that got none fails with
/// [`BulkheadError::Full`] without reaching the service. The inner service's error is kept,
/// as [`BulkheadError::Inner`], not boxed; the future is named, [`BulkheadFuture`].
/// Outside a tokio runtime `poll_ready` cannot wait: a full bulkhead refuses at once, with
/// [`BulkheadFull::no_runtime`].
///
/// ```
/// use keel_breaker::{Bulkhead, BulkheadError, BulkheadLayer};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let bulkhead = Arc::new(Bulkhead::with_max_wait(1, Duration::from_millis(5))?);
/// let mut service = ServiceBuilder::new()
///     .layer(BulkheadLayer::new(bulkhead.clone()))
///     .service(service_fn(|n: u32| async move {
///         if n > 100 { Err(std::io::Error::other("too big")) } else { Ok(n * 2) }
///     }));
/// let held = bulkhead.try_acquire()?; // someone else holds the only slot
/// let error = service.ready().await?.call(1).await.unwrap_err();
/// assert!(matches!(error, BulkheadError::Full(_)));
/// drop(held);
/// assert_eq!(service.ready().await?.call(21).await?, 42);
/// // The inner error keeps its type.
/// let error = service.ready().await?.call(101).await.unwrap_err();
/// assert_eq!(error.into_inner().map(|e| e.kind()), Some(std::io::ErrorKind::Other));
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BulkheadLayer {
    bulkhead: Arc<Bulkhead>,
}

impl BulkheadLayer {
    /// Limits concurrency to `bulkhead`'s slots, shared by every service the layer makes.
    ///
    /// ```
    /// use keel_breaker::{Bulkhead, BulkheadLayer};
    /// use std::sync::Arc;
    /// use tower::{service_fn, Layer, Service, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bulkhead = Arc::new(Bulkhead::new(2)?);
    /// let layer = BulkheadLayer::new(bulkhead.clone());
    /// let echo = service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
    /// let (mut a, mut b) = (layer.layer(echo), layer.layer(echo));
    /// a.ready().await?;
    /// b.ready().await?; // each ready service holds a slot until its call ends
    /// assert_eq!(bulkhead.in_use(), 2);
    /// assert_eq!(a.call(1).await?, 1);
    /// assert_eq!(bulkhead.in_use(), 1);
    /// # drop(b);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub fn new(bulkhead: Arc<Bulkhead>) -> Self {
        BulkheadLayer { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
            slot: Slot::Empty,
        }
    }
}

enum Slot {
    Empty,
    Waiting(Acquire),
    Held(OwnedBulkheadPermit),
    Refused(BulkheadFull),
}

/// The service made by [`BulkheadLayer`].
///
/// ```
/// use keel_breaker::{Bulkhead, BulkheadLayer, BulkheadService};
/// use std::sync::Arc;
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bulkhead = Arc::new(Bulkhead::new(1)?);
/// let service: BulkheadService<_> = BulkheadLayer::new(bulkhead.clone())
///     .layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 10) }));
/// assert_eq!(service.oneshot(4).await?, 40);
/// assert_eq!(bulkhead.in_use(), 0); // the slot came back with the response
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }
/// ```
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Arc<Bulkhead>,
    slot: Slot,
}

impl<S: Clone> Clone for BulkheadService<S> {
    fn clone(&self) -> Self {
        // A clone starts without a slot: slots belong to the service that waited for them.
        BulkheadService {
            inner: self.inner.clone(),
            bulkhead: self.bulkhead.clone(),
            slot: Slot::Empty,
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for BulkheadService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadService")
            .field("inner", &self.inner)
            .field("bulkhead", &self.bulkhead)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = BulkheadError<S::Error>;
    type Future = BulkheadFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.slot {
                Slot::Empty => {
                    self.slot = match self.bulkhead.try_acquire_owned() {
                        Ok(permit) => Slot::Held(permit),
                        Err(_) => {
                            let bulkhead = self.bulkhead.clone();
                            Slot::Waiting(Box::pin(async move { bulkhead.acquire_owned().await }))
                        }
                    };
                }
                Slot::Waiting(acquire) => {
                    self.slot = match ready!(acquire.as_mut().poll(cx)) {
                        Ok(permit) => Slot::Held(permit),
                        Err(full) => Slot::Refused(full),
                    };
                }
                Slot::Held(_) => return self.inner.poll_ready(cx).map_err(BulkheadError::Inner),
                // `call` reports the refusal, so the service itself stays usable.
                Slot::Refused(_) => return Poll::Ready(Ok(())),
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let state = match std::mem::replace(&mut self.slot, Slot::Empty) {
            Slot::Held(permit) => FutureState::Called {
                call: self.inner.call(request),
                permit: Some(permit),
            },
            Slot::Refused(full) => FutureState::Refused { full },
            // `call` without a successful `poll_ready` breaks the Service contract; fail the
            // request rather than exceed the limit.
            Slot::Empty | Slot::Waiting(_) => FutureState::Refused {
                full: BulkheadFull::unready(self.bulkhead.max_concurrent()),
            },
        };
        BulkheadFuture { state }
    }
}

pin_project! {
    /// The future of [`BulkheadService`]: the inner call, holding its slot until the call
    /// completes or the future is dropped, or a refusal, ready at once.
    ///
    /// ```
    /// use keel_breaker::{Bulkhead, BulkheadFuture, BulkheadLayer};
    /// use std::future::Ready;
    /// use std::sync::Arc;
    /// use tower::{service_fn, Layer, Service, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bulkhead = Arc::new(Bulkhead::new(1)?);
    /// let mut service = BulkheadLayer::new(bulkhead.clone())
    ///     .layer(service_fn(|n: u32| std::future::ready(Ok::<_, std::fmt::Error>(n * 2))));
    /// let future: BulkheadFuture<Ready<Result<u32, std::fmt::Error>>> = service.ready().await?.call(4);
    /// assert_eq!(bulkhead.in_use(), 1); // the slot travels with the future
    /// assert_eq!(future.await?, 8);
    /// assert_eq!(bulkhead.in_use(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub struct BulkheadFuture<F> {
        #[pin]
        state: FutureState<F>,
    }
}

pin_project! {
    #[project = FutureStateProj]
    enum FutureState<F> {
        Refused { full: BulkheadFull },
        Called {
            #[pin]
            call: F,
            permit: Option<OwnedBulkheadPermit>,
        },
    }
}

impl<F> std::fmt::Debug for BulkheadFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            FutureState::Refused { .. } => "refused",
            FutureState::Called { .. } => "called",
        };
        f.debug_struct("BulkheadFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for BulkheadFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, BulkheadError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            FutureStateProj::Refused { full } => Poll::Ready(Err(BulkheadError::Full(*full))),
            FutureStateProj::Called { call, permit } => {
                let result = ready!(call.poll(cx));
                // The slot is free as soon as the call is done.
                permit.take();
                Poll::Ready(result.map_err(BulkheadError::Inner))
            }
        }
    }
}
