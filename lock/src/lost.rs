//! `LostLease`: the signal that a held lease can no longer be relied on.

use std::fmt;
use std::sync::Arc;
// std's, not keel_core::sync's: loom checks the lease table and the fence, not this cell,
// and a loom atomic cannot be used outside a loom model.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_core::Instant;
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

/// The lock-free side of a guard's state: the latest expiry and the service's clock, so
/// whether the lease still holds is decided by reading the clock, not by what the renewal
/// task last managed to write.
pub(crate) struct Validity {
    /// The latest expiry in nanoseconds on the service's clock; [`LOST`] once lost.
    expires_at: AtomicU64,
    now: Box<dyn Fn() -> Instant + Send + Sync>,
}

/// No lease expires at instant zero (its TTL is above zero), so zero marks a lost lease.
const LOST: u64 = 0;

impl Validity {
    pub(crate) fn new(lease: &Lease, now: Box<dyn Fn() -> Instant + Send + Sync>) -> Validity {
        Validity {
            expires_at: AtomicU64::new(lease.expires_at().as_nanos().max(1)),
            now,
        }
    }

    /// Time left before the lease's expiry on the service's clock; zero once lost.
    pub(crate) fn remaining(&self) -> Duration {
        match self.expires_at.load(Ordering::Acquire) {
            LOST => Duration::ZERO,
            nanos => Instant::from_nanos(nanos) - (self.now)(),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        (self.now)()
    }

    /// The latest expiry; `None` once marked lost.
    pub(crate) fn expires_at(&self) -> Option<Instant> {
        match self.expires_at.load(Ordering::Acquire) {
            LOST => None,
            nanos => Some(Instant::from_nanos(nanos)),
        }
    }

    /// A renewal moved the expiry; a lease already lost stays lost.
    pub(crate) fn renewed(&self, lease: &Lease) {
        let nanos = lease.expires_at().as_nanos().max(1);
        let _ = self
            .expires_at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (current != LOST).then_some(nanos)
            });
    }

    pub(crate) fn lose(&self) {
        self.expires_at.store(LOST, Ordering::Release);
    }
}

impl fmt::Debug for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validity")
            .field("remaining", &self.remaining())
            .finish()
    }
}

/// Marks the lease lost for the watchers and where [`LostLease::is_lost`] reads it; the first
/// reason stays. Both change under the channel's write lock, so a reader holding a borrow
/// sees them agree.
pub(crate) fn mark_lost(status: &watch::Sender<Status>, validity: &Validity, reason: LostReason) {
    status.send_modify(|status| {
        validity.lose();
        status.lost.get_or_insert(reason);
    });
}

/// A handle that fires when a [`LeaseGuard`](crate::LeaseGuard)'s lease is lost: a renewal
/// failed, the service said the lease is gone, its expiry passed, it was released, or the
/// renewal task stopped (its runtime shut down).
///
/// **Validity reads the clock.** [`is_lost`](LostLease::is_lost),
/// [`reason`](LostLease::reason) and [`wait`](LostLease::wait) compare the lease's latest
/// expiry with the lock service's [`Clock`](keel_core::Clock) on every call. A holder that
/// stalls past its TTL (a GC pause, a stopped VM, a blocked runtime) sees the lease lost the
/// moment it wakes, before the renewal task has had a chance to run and notice.
/// `is_lost` is lock-free: one atomic load and one clock reading.
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
    validity: Arc<Validity>,
}

impl LostLease {
    pub(crate) fn new(status: watch::Receiver<Status>, validity: Arc<Validity>) -> LostLease {
        LostLease { status, validity }
    }

    /// Whether the lease is lost: its expiry has passed on the service's clock, or the
    /// guard learned that it is gone, or the guard was released or dropped.
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
        self.validity.remaining().is_zero() || self.status.has_changed().is_err()
    }

    /// Time left before the lease's expiry on the service's clock, as last renewed; zero
    /// once the lease is lost. Work that must finish under the lease checks that it fits.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let clock = ManualClock::new();
    /// let service = InMemoryLockService::with_clock(clock.clone());
    /// let lease = service.acquire("backup", Duration::from_secs(30), Duration::ZERO).await?;
    /// let guard = KeepAlive::new().start(service.clone(), lease)?;
    /// let lost = guard.lost();
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(lost.remaining(), Duration::from_secs(25));
    /// clock.advance(Duration::from_secs(25)); // a stall past the TTL: no renewal ran
    /// assert_eq!(lost.remaining(), Duration::ZERO);
    /// assert!(lost.is_lost());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remaining(&self) -> Duration {
        if self.status.has_changed().is_err() {
            return Duration::ZERO;
        }
        self.validity.remaining()
    }

    /// The lease's latest expiry on the service's clock, or `None` once the lease is known
    /// lost for a reason other than the clock (released, taken over, a failed renewal, the
    /// renewal task stopped). Lock-free: for callers that compare it with a clock reading
    /// they already have, such as a check made before every ID.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let clock = ManualClock::new();
    /// let service = InMemoryLockService::with_clock(clock.clone());
    /// let lease = service.acquire("backup", Duration::from_secs(30), Duration::ZERO).await?;
    /// let guard = KeepAlive::new().start(service.clone(), lease.clone())?;
    /// let lost = guard.lost();
    /// assert_eq!(lost.expires_at(), Some(lease.expires_at()));
    /// guard.release().await?;
    /// assert_eq!(lost.expires_at(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expires_at(&self) -> Option<Instant> {
        if self.status.has_changed().is_err() {
            return None;
        }
        self.validity.expires_at()
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
        let status = self.status.borrow();
        match &status.lost {
            Some(reason) => Some(reason.clone()),
            // Every sender gone: the guard was dropped.
            None if self.status.has_changed().is_err() => Some(LostReason::Released),
            // The clock passed the expiry before any renewal task could say so (read under
            // the borrow, so a reason being written is not missed).
            None if self.validity.remaining().is_zero() => Some(LostReason::Expired),
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
        loop {
            if let Some(reason) = self.reason() {
                return reason;
            }
            // Wakes at a change, or when the clock should have reached the expiry.
            let remaining = self.validity.remaining();
            tokio::select! {
                changed = status.changed() => {
                    if changed.is_err() {
                        return self.reason().unwrap_or(LostReason::Released);
                    }
                }
                () = tokio::time::sleep(remaining) => {}
            }
        }
    }
}
