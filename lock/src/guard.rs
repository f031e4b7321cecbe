//! `LeaseGuard`: a lease being kept alive, released on drop.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::lost::{Status, Validity, mark_lost};
use crate::{FencingToken, Lease, LockError, LockService, LostLease, LostReason};

/// A held lease, renewed in the background by [`KeepAlive`](crate::KeepAlive), with a
/// [`LostLease`] signal for the guarded work.
///
/// # Dropping releases on a best-effort basis
///
/// Dropping the guard stops the renewals and fires the lost signal, then tries to release
/// the lease so the next holder need not wait for its expiry: it starts the release at once
/// (an in-memory service finishes it there and then), and if the release has to wait for a
/// server, spawns the rest on the current tokio runtime. "Best effort" means the release may
/// not happen: outside a runtime, when the runtime shuts down first, or when the server does
/// not answer. Nothing unsafe follows; the lock stays unavailable until the lease's TTL runs
/// out. Call [`release`](LeaseGuard::release) to release for certain and see its result.
///
/// # Example
///
/// ```
/// use keel_lock::{InMemoryLockService, KeepAlive, LockService};
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let service = InMemoryLockService::new();
/// let ttl = Duration::from_secs(10);
/// let lease = service.acquire("migrations", ttl, Duration::ZERO).await?;
/// {
///     let guard = KeepAlive::new().start(service.clone(), lease)?;
///     assert!(!guard.is_lost());
/// } // dropped: released
/// assert!(service.try_acquire("migrations", ttl).await?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LeaseGuard<S: LockService + Clone + 'static> {
    service: S,
    status: Arc<watch::Sender<Status>>,
    validity: Arc<Validity>,
    renewals: JoinHandle<()>,
    released: bool,
}

impl<S: LockService + Clone + 'static> LeaseGuard<S> {
    pub(crate) fn new(
        service: S,
        status: Arc<watch::Sender<Status>>,
        validity: Arc<Validity>,
        renewals: JoinHandle<()>,
    ) -> LeaseGuard<S> {
        LeaseGuard {
            service,
            status,
            validity,
            renewals,
            released: false,
        }
    }

    /// The fencing token to send with every write.
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service = InMemoryLockService::new();
    /// let lease = service.acquire("ledger", Duration::from_secs(10), Duration::ZERO).await?;
    /// let token = lease.token();
    /// let guard = KeepAlive::new().start(service.clone(), lease)?;
    /// assert_eq!(guard.token(), token); // renewals keep the token
    /// # guard.release().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token(&self) -> FencingToken {
        self.status.borrow().lease.token()
    }

    /// The lease as last granted or renewed.
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let service = InMemoryLockService::with_clock(TokioClock::new());
    /// let lease = service.acquire("ledger", Duration::from_secs(30), Duration::ZERO).await?;
    /// let first_expiry = lease.expires_at();
    /// let guard = KeepAlive::new().start(service.clone(), lease)?;
    /// tokio::time::sleep(Duration::from_secs(11)).await; // paused time: one renewal at 10 s
    /// assert_eq!(guard.lease().expires_at(), first_expiry + Duration::from_secs(10));
    /// # guard.release().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lease(&self) -> Lease {
        self.status.borrow().lease.clone()
    }

    /// A signal that fires when the lease is lost.
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService, LostReason};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let service = InMemoryLockService::with_clock(TokioClock::new());
    /// let lease = service.acquire("ledger", Duration::from_secs(30), Duration::ZERO).await?;
    /// let guard = KeepAlive::new().start(service.clone(), lease.clone())?;
    /// let lost = guard.lost();
    /// service.release(&lease).await?; // taken away behind the guard's back
    /// // The next renewal (at 10 s, paused time) finds the lease gone.
    /// assert!(matches!(lost.wait().await, LostReason::NotHeld));
    /// assert!(guard.is_lost());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lost(&self) -> LostLease {
        LostLease::new(self.status.subscribe(), self.validity.clone())
    }

    /// Whether the lease is lost (see [`LostReason`]). Like [`LostLease::is_lost`], it reads
    /// the service's clock: past the lease's expiry it is `true` at once, whether or not the
    /// renewal task has run.
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let service = InMemoryLockService::with_clock(TokioClock::new());
    /// let lease = service.acquire("ledger", Duration::from_secs(30), Duration::ZERO).await?;
    /// let guard = KeepAlive::new().start(service.clone(), lease.clone())?;
    /// assert!(!guard.is_lost());
    /// service.release(&lease).await?;
    /// guard.lost().wait().await;
    /// assert!(guard.is_lost());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_lost(&self) -> bool {
        self.validity.remaining().is_zero()
    }

    /// Stops renewing and releases the lease; the lost signal fires with
    /// [`LostReason::Released`].
    ///
    /// # Errors
    ///
    /// As [`LockService::release`]: [`LockError::NotHeld`] if the lease was already gone.
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService, LostReason};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service = InMemoryLockService::new();
    /// let lease = service.acquire("ledger", Duration::from_secs(10), Duration::ZERO).await?;
    /// let guard = KeepAlive::new().start(service.clone(), lease)?;
    /// let lost = guard.lost();
    /// guard.release().await?;
    /// assert!(matches!(lost.reason(), Some(LostReason::Released)));
    /// assert_eq!(service.holder("ledger"), None); // free for the next holder at once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn release(mut self) -> Result<(), LockError> {
        self.released = true;
        let lease = self.stop();
        self.service.release(&lease).await
    }

    /// Stops the renewal task, marks the lease released, and returns the last lease.
    fn stop(&mut self) -> Lease {
        // Marked before the abort, so the task's own stop marker finds a reason already set.
        mark_lost(&self.status, &self.validity, LostReason::Released);
        self.renewals.abort();
        self.status.borrow().lease.clone()
    }
}

impl<S: LockService + Clone + 'static> Drop for LeaseGuard<S> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let lease = self.status.borrow().lease.clone();
        let known_gone = matches!(
            self.status.borrow().lost,
            Some(LostReason::Expired | LostReason::NotHeld)
        ) || lease.is_expired(self.validity.now());
        let lease = self.stop();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if known_gone {
            return;
        }
        let service = self.service.clone();
        let mut release = Box::pin(async move {
            // Nobody to report to: a failed release leaves the lease to its TTL.
            let _ = service.release(&lease).await;
        });
        // Start it here; only a release that waits on a server is left to the runtime.
        let mut context = Context::from_waker(Waker::noop());
        if release.as_mut().poll(&mut context).is_pending() {
            runtime.spawn(release);
        }
    }
}

impl<S: LockService + Clone + 'static> fmt::Debug for LeaseGuard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status.borrow();
        f.debug_struct("LeaseGuard")
            .field("lease", &status.lease)
            .field("lost", &status.lost)
            .finish()
    }
}
