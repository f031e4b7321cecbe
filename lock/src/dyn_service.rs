//! `DynLockService`: the object-safe twin of `LockService`, for a backend chosen at run time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use keel_core::Instant;

use crate::{Lease, LockError, LockService};

/// The boxed future a [`DynLockService`] method returns.
///
/// ```
/// use keel_lock::{DynLockService, InMemoryLockService, Lease, LockFuture};
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let service = InMemoryLockService::new();
/// let grant: LockFuture<'_, Option<Lease>> = service.try_acquire_dyn("jobs", Duration::from_secs(5));
/// assert!(grant.await?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type LockFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LockError>> + Send + 'a>>;

/// [`LockService`] in a form that can be used as `dyn`: each method returns a boxed future.
///
/// [`LockService`] returns `impl Future`, so it costs nothing per call but cannot be a trait
/// object. This trait is its object-safe twin:
///
/// - every `LockService` is a `DynLockService` (a blanket impl), so any backend turns into a
///   `Box<dyn DynLockService>` or `Arc<dyn DynLockService>`;
/// - `dyn DynLockService`, and so `Box<dyn DynLockService>`, `Arc<dyn DynLockService>` and
///   `&dyn DynLockService`, is a `LockService` again, so a backend chosen at run time plugs
///   into everything generic over `S: LockService`, such as
///   [`KeepAlive::start`](crate::KeepAlive::start).
///
/// The cost is one allocation (the boxed future) and one indirect call per operation. The
/// method names end in `_dyn` so that they never clash with `LockService`'s when both traits
/// are in scope; code normally calls the `LockService` methods on the `Box` or `Arc`.
///
/// # Example
///
/// The backend is picked from configuration; the rest of the program does not know which:
///
/// ```
/// use keel_lock::{DynLockService, InMemoryLockService, KeepAlive, LockService};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// fn from_config(backend: &str) -> Result<Arc<dyn DynLockService>, String> {
///     match backend {
///         "memory" => Ok(Arc::new(InMemoryLockService::new())),
///         // "redis" => Ok(Arc::new(RedisLockService::connect(url).await?)), with feature `redis`
///         other => Err(format!("unknown lock backend {other:?}")),
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let locks = from_config("memory")?;
/// let lease = locks.acquire("nightly", Duration::from_secs(30), Duration::ZERO).await?;
/// // `Arc<dyn DynLockService>` is a `LockService`: keep-alive takes it like any backend.
/// let guard = KeepAlive::new().start(locks.clone(), lease)?;
/// assert!(locks.try_acquire("nightly", Duration::from_secs(30)).await?.is_none());
/// guard.release().await?;
/// assert!(from_config("zookeeper").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait DynLockService: Send + Sync {
    /// [`LockService::try_acquire`], boxed.
    ///
    /// # Errors
    ///
    /// As [`LockService::try_acquire`].
    ///
    /// ```
    /// use keel_lock::{DynLockService, InMemoryLockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service: Box<dyn DynLockService> = Box::new(InMemoryLockService::new());
    /// let ttl = Duration::from_secs(5);
    /// assert!(service.try_acquire_dyn("jobs", ttl).await?.is_some());
    /// assert!(service.try_acquire_dyn("jobs", ttl).await?.is_none()); // held
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn try_acquire_dyn<'a>(&'a self, name: &'a str, ttl: Duration)
    -> LockFuture<'a, Option<Lease>>;

    /// [`LockService::acquire`], boxed.
    ///
    /// # Errors
    ///
    /// As [`LockService::acquire`].
    ///
    /// ```
    /// use keel_lock::{DynLockService, InMemoryLockService, LockError};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service: Box<dyn DynLockService> = Box::new(InMemoryLockService::new());
    /// let ttl = Duration::from_secs(5);
    /// let lease = service.acquire_dyn("jobs", ttl, Duration::ZERO).await?;
    /// assert_eq!(lease.name(), "jobs");
    /// let busy = service.acquire_dyn("jobs", ttl, Duration::ZERO).await;
    /// assert!(matches!(busy, Err(LockError::Busy { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn acquire_dyn<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
        wait: Duration,
    ) -> LockFuture<'a, Lease>;

    /// [`LockService::extend`], boxed.
    ///
    /// # Errors
    ///
    /// As [`LockService::extend`].
    ///
    /// ```
    /// use keel_lock::{DynLockService, InMemoryLockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service: Box<dyn DynLockService> = Box::new(InMemoryLockService::new());
    /// let lease = service.acquire_dyn("jobs", Duration::from_secs(5), Duration::ZERO).await?;
    /// let longer = service.extend_dyn(&lease, Duration::from_secs(60)).await?;
    /// assert_eq!(longer.token(), lease.token());
    /// assert!(longer.expires_at() > lease.expires_at());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn extend_dyn<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> LockFuture<'a, Lease>;

    /// [`LockService::release`], boxed.
    ///
    /// # Errors
    ///
    /// As [`LockService::release`].
    ///
    /// ```
    /// use keel_lock::{DynLockService, InMemoryLockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service: Box<dyn DynLockService> = Box::new(InMemoryLockService::new());
    /// let lease = service.acquire_dyn("jobs", Duration::from_secs(5), Duration::ZERO).await?;
    /// service.release_dyn(&lease).await?;
    /// assert!(service.release_dyn(&lease).await.unwrap_err().is_not_held());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn release_dyn<'a>(&'a self, lease: &'a Lease) -> LockFuture<'a, ()>;

    /// [`LockService::now`]: a reading of the clock lease expiries are expressed in.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_lock::{DynLockService, InMemoryLockService};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let service: Box<dyn DynLockService> = Box::new(InMemoryLockService::with_clock(clock.clone()));
    /// clock.advance(Duration::from_secs(3));
    /// assert_eq!(service.now_dyn(), clock.now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn now_dyn(&self) -> Instant;
}

impl<S: LockService> DynLockService for S {
    fn try_acquire_dyn<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
    ) -> LockFuture<'a, Option<Lease>> {
        Box::pin(self.try_acquire(name, ttl))
    }

    fn acquire_dyn<'a>(
        &'a self,
        name: &'a str,
        ttl: Duration,
        wait: Duration,
    ) -> LockFuture<'a, Lease> {
        Box::pin(self.acquire(name, ttl, wait))
    }

    fn extend_dyn<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> LockFuture<'a, Lease> {
        Box::pin(self.extend(lease, ttl))
    }

    fn release_dyn<'a>(&'a self, lease: &'a Lease) -> LockFuture<'a, ()> {
        Box::pin(self.release(lease))
    }

    fn now_dyn(&self) -> Instant {
        self.now()
    }
}

/// A trait object is a `LockService` again (each call awaits the boxed future), so `Box<dyn DynLockService>`,
/// `Arc<dyn DynLockService>` and `&dyn DynLockService` work wherever a backend is generic.
impl LockService for dyn DynLockService + '_ {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, LockError> {
        self.try_acquire_dyn(name, ttl).await
    }

    async fn acquire(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Lease, LockError> {
        self.acquire_dyn(name, ttl, wait).await
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        self.extend_dyn(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        self.release_dyn(lease).await
    }

    fn now(&self) -> Instant {
        self.now_dyn()
    }
}

/// Forwards every method of a pointer to the service it points to.
macro_rules! forward {
    ($($pointer:ty),*) => {$(
        impl<S: LockService + ?Sized> LockService for $pointer {
            fn try_acquire(
                &self,
                name: &str,
                ttl: Duration,
            ) -> impl Future<Output = Result<Option<Lease>, LockError>> + Send {
                (**self).try_acquire(name, ttl)
            }

            fn acquire(
                &self,
                name: &str,
                ttl: Duration,
                wait: Duration,
            ) -> impl Future<Output = Result<Lease, LockError>> + Send {
                (**self).acquire(name, ttl, wait)
            }

            fn extend(
                &self,
                lease: &Lease,
                ttl: Duration,
            ) -> impl Future<Output = Result<Lease, LockError>> + Send {
                (**self).extend(lease, ttl)
            }

            fn release(&self, lease: &Lease) -> impl Future<Output = Result<(), LockError>> + Send {
                (**self).release(lease)
            }

            fn now(&self) -> Instant {
                (**self).now()
            }
        }
    )*};
}

forward!(&S, Box<S>, Arc<S>);

// Fails to compile if a change makes the trait unusable as an object.
const _: Option<&dyn DynLockService> = None;
