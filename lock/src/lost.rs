//! `LostLease`: the signal that a held lease can no longer be relied on.

use std::fmt;

use tokio::sync::watch;

use crate::{Lease, LockError};

/// Why a [`LeaseGuard`](crate::LeaseGuard)'s lease can no longer be relied on.
///
/// ```
/// use keel_core::TokioClock;
/// use keel_lock::{InMemoryLockService, KeepAlive, LockService, LostReason};
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
/// let service = InMemoryLockService::with_clock(TokioClock::new());
/// let ttl = Duration::from_secs(30);
/// let lease = service.acquire("backup", ttl, Duration::ZERO).await?;
/// let guard = KeepAlive::new().start(service.clone(), lease.clone())?;
/// // Someone shortens it: it runs out at 1 s, before the guard's renewal at 10 s.
/// service.extend(&lease, Duration::from_secs(1)).await?;
/// let reason = guard.lost().wait().await;
/// assert!(matches!(reason, LostReason::NotHeld));
/// assert_eq!(reason.to_string(), "the lock service no longer holds the lease");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LostReason {
    /// The lease's expiry passed before a renewal succeeded.
    Expired,
    /// The service said the lease is not held: it expired on the server, or another holder
    /// took over.
    NotHeld,
    /// A renewal failed (the server did not answer in time, or answered with an error). The
    /// lease may still exist on the server, but it is not being renewed, so it is treated as
    /// lost at once rather than at its expiry.
    RenewFailed(LockError),
    /// The guard released the lease, or was dropped.
    Released,
    /// The renewal task stopped without a verdict: its runtime shut down, or it panicked (as
    /// on a runtime built without timers). The lease is no longer renewed.
    Stopped,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Expired => write!(f, "the lease expired before it could be renewed"),
            LostReason::NotHeld => write!(f, "the lock service no longer holds the lease"),
            LostReason::RenewFailed(error) => write!(f, "renewing the lease failed: {error}"),
            LostReason::Released => write!(f, "the lease was released"),
            LostReason::Stopped => write!(f, "the renewal task stopped"),
        }
    }
}

/// What a guard's watchers see: the latest lease, and why it was lost once it is.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    pub(crate) lease: Lease,
    pub(crate) lost: Option<LostReason>,
}

/// A handle that fires when a [`LeaseGuard`](crate::LeaseGuard)'s lease is lost: a renewal
/// failed, the service said the lease is gone, its expiry passed, it was released, or the
/// renewal task stopped (its runtime shut down).
///
/// Guarded work races its own future against [`wait`](LostLease::wait) (in `tokio::select!`)
/// or checks [`is_lost`](LostLease::is_lost) between steps, so it stops as soon as the lease
/// is known to be in doubt, before its expiry lets another holder in. Clones watch the same
/// lease; each can wait independently.
///
/// # Example
///
/// ```
/// use keel_lock::{InMemoryLockService, KeepAlive, LockService, LostReason};
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let service = InMemoryLockService::new();
/// let lease = service.acquire("compaction", Duration::from_secs(30), Duration::ZERO).await?;
/// let guard = KeepAlive::new().start(service.clone(), lease)?;
/// let lost = guard.lost();
/// assert!(!lost.is_lost());
///
/// guard.release().await?;
/// assert!(matches!(lost.wait().await, LostReason::Released));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LostLease {
    status: watch::Receiver<Status>,
}

impl LostLease {
    pub(crate) fn new(status: watch::Receiver<Status>) -> LostLease {
        LostLease { status }
    }

    /// Whether the lease is lost.
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service = InMemoryLockService::new();
    /// let lease = service.acquire("backup", Duration::from_secs(30), Duration::ZERO).await?;
    /// let guard = KeepAlive::new().start(service.clone(), lease)?;
    /// let lost = guard.lost();
    /// assert!(!lost.is_lost()); // check between steps of the work
    /// drop(guard);
    /// assert!(lost.is_lost());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_lost(&self) -> bool {
        self.status.borrow().lost.is_some() || self.status.has_changed().is_err()
    }

    /// Why the lease was lost, or `None` while it is held.
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService, LostReason};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let service = InMemoryLockService::new();
    /// let lease = service.acquire("backup", Duration::from_secs(30), Duration::ZERO).await?;
    /// let guard = KeepAlive::new().start(service.clone(), lease)?;
    /// let lost = guard.lost();
    /// assert!(lost.reason().is_none());
    /// guard.release().await?;
    /// assert!(matches!(lost.reason(), Some(LostReason::Released)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reason(&self) -> Option<LostReason> {
        let reason = self.status.borrow().lost.clone();
        match reason {
            Some(reason) => Some(reason),
            // Every sender gone: the guard was dropped.
            None if self.status.has_changed().is_err() => Some(LostReason::Released),
            None => None,
        }
    }

    /// The lease as last granted or renewed (its expiry moves with each renewal).
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let service = InMemoryLockService::with_clock(TokioClock::new());
    /// let lease = service.acquire("backup", Duration::from_secs(30), Duration::ZERO).await?;
    /// let guard = KeepAlive::new().start(service.clone(), lease.clone())?;
    /// let lost = guard.lost();
    /// assert_eq!(lost.lease(), lease);
    /// tokio::time::sleep(Duration::from_secs(11)).await; // paused time: renewed at 10 s
    /// assert_eq!(lost.lease().token(), lease.token());
    /// assert!(lost.lease().expires_at() > lease.expires_at());
    /// # guard.release().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lease(&self) -> Lease {
        self.status.borrow().lease.clone()
    }

    /// Waits until the lease is lost and says why; returns at once if it already is.
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService, LostReason};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let service = InMemoryLockService::with_clock(TokioClock::new());
    /// let lease = service.acquire("backup", Duration::from_secs(30), Duration::ZERO).await?;
    /// let guard = KeepAlive::new().start(service.clone(), lease.clone())?;
    /// let lost = guard.lost();
    /// service.release(&lease).await?; // the lease is gone; the guard finds out at its next renewal
    /// let work = tokio::time::sleep(Duration::from_secs(60)); // a long job
    /// let outcome = tokio::select! {
    ///     reason = lost.wait() => Err(reason),
    ///     () = work => Ok("finished"),
    /// };
    /// assert!(matches!(outcome, Err(LostReason::NotHeld))); // stopped at 10 s, not 60
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn wait(&self) -> LostReason {
        let mut status = self.status.clone();
        match status.wait_for(|status| status.lost.is_some()).await {
            Ok(status) => status.lost.clone().unwrap_or(LostReason::Released),
            Err(_closed) => LostReason::Released,
        }
    }
}
