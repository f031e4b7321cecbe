//! `LockService`: the one trait every lock backend implements.

use std::future::Future;
use std::time::Duration;

use keel_core::Instant;

use crate::{Lease, LockError};

/// A service that grants named leases with strictly increasing fencing tokens.
///
/// - [`try_acquire`](LockService::try_acquire) grants the lock if nobody holds it, at once;
/// - [`acquire`](LockService::acquire) waits for it up to a limit;
/// - [`extend`](LockService::extend) and [`release`](LockService::release) succeed only for
///   the current holder: they compare the lease's token with the service's, never timings,
///   so a holder whose lease ran out and was taken over cannot touch the new holder's lease.
///   An expired lease cannot be extended, even if nobody has taken the lock since.
///
/// Implementations: [`InMemoryLockService`](crate::InMemoryLockService) (one process) and,
/// with the `redis` feature, `RedisLockService`; `&S`, `Box<S>` and `Arc<S>` forward to `S`.
///
/// The methods return `impl Future`, so a call costs no allocation, but the trait cannot be
/// a trait object. To choose a backend at run time, use its object-safe twin
/// [`DynLockService`](crate::DynLockService): every `LockService` is one, and
/// `Arc<dyn DynLockService>` is a `LockService` again. Wrap a lease in a
/// [`LeaseGuard`](crate::LeaseGuard) (through [`KeepAlive`](crate::KeepAlive)) to renew it in
/// the background and learn at once when it is lost.
///
/// # Example
///
/// Code generic over the backend:
///
/// ```
/// use keel_lock::{InMemoryLockService, LockError, LockService};
/// use std::time::Duration;
///
/// async fn run_exclusively<S: LockService>(service: &S) -> Result<u64, LockError> {
///     let lease = service.acquire("nightly-report", Duration::from_secs(30), Duration::from_secs(5)).await?;
///     let token = lease.token().get(); // send this with every write
///     service.release(&lease).await?;
///     Ok(token)
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let service = InMemoryLockService::new();
/// let first = run_exclusively(&service).await?;
/// let second = run_exclusively(&service).await?;
/// assert!(second > first);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait LockService: Send + Sync {
    /// Grants `name` for `ttl` if nobody holds it, without waiting; `Ok(None)` if it is held.
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidTtl`], [`LockError::EmptyName`], and the service's own failures
    /// ([`LockError::Timeout`], [`LockError::Backend`]).
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service = InMemoryLockService::new();
    /// let ttl = Duration::from_secs(10);
    /// let lease = service.try_acquire("sync", ttl).await?.ok_or("held")?;
    /// assert_eq!(lease.name(), "sync");
    /// assert!(service.try_acquire("sync", ttl).await?.is_none()); // held: `None`, no waiting
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn try_acquire(
        &self,
        name: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Lease>, LockError>> + Send;

    /// Grants `name` for `ttl`, waiting up to `wait` for the current holder to release it or
    /// for its lease to run out.
    ///
    /// # Errors
    ///
    /// [`LockError::Busy`] when `wait` passes with the lock still held; otherwise as
    /// [`try_acquire`](LockService::try_acquire).
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_lock::{InMemoryLockService, LockError, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let service = InMemoryLockService::with_clock(TokioClock::new());
    /// let first = service.acquire("sync", Duration::from_secs(10), Duration::ZERO).await?;
    /// let busy = service.acquire("sync", Duration::from_secs(10), Duration::from_secs(3)).await;
    /// assert!(matches!(busy, Err(LockError::Busy { waited, .. }) if waited == Duration::from_secs(3)));
    /// // Waiting past the holder's expiry (paused time) gets the lock.
    /// let second = service.acquire("sync", Duration::from_secs(10), Duration::from_secs(30)).await?;
    /// assert!(second.token() > first.token());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn acquire(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<Lease, LockError>> + Send;

    /// Gives the current holder `ttl` more from now, keeping its token.
    ///
    /// # Errors
    ///
    /// [`LockError::NotHeld`] when the lease expired, was released or was taken over;
    /// [`LockError::InvalidTtl`] and the service's own failures.
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service = InMemoryLockService::new();
    /// let lease = service.acquire("sync", Duration::from_secs(10), Duration::ZERO).await?;
    /// let longer = service.extend(&lease, Duration::from_secs(60)).await?;
    /// assert_eq!(longer.token(), lease.token());
    /// assert!(longer.expires_at() > lease.expires_at());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn extend(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> impl Future<Output = Result<Lease, LockError>> + Send;

    /// Ends the lease so another holder can acquire at once.
    ///
    /// # Errors
    ///
    /// [`LockError::NotHeld`] when the lease had already expired, been released or been
    /// taken over (nothing is changed then), and the service's own failures.
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service = InMemoryLockService::new();
    /// let lease = service.acquire("sync", Duration::from_secs(10), Duration::ZERO).await?;
    /// service.release(&lease).await?;
    /// assert!(service.try_acquire("sync", Duration::from_secs(10)).await?.is_some());
    /// assert!(service.release(&lease).await.unwrap_err().is_not_held());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<(), LockError>> + Send;

    /// A reading of the clock that lease expiries are expressed in.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_lock::{InMemoryLockService, LockService};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let service = InMemoryLockService::with_clock(clock.clone());
    /// let lease = service.try_acquire_now("sync", Duration::from_secs(10))?.ok_or("held")?;
    /// clock.advance(Duration::from_secs(4));
    /// assert_eq!(lease.remaining(service.now()), Duration::from_secs(6));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn now(&self) -> Instant;
}
