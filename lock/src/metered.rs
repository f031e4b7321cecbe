//! `Metered`: a [`LockService`] wrapper that emits grants, waits and lost leases through the
//! `metrics` facade (feature `metrics`).

use std::sync::Arc;
use std::time::Duration;

use keel_core::Instant;
use metrics::Counter;

use crate::{Lease, LockError, LockService};

/// Wraps any [`LockService`] and counts, labelled with its `name`:
///
/// - `keel_lock_grants_total`: leases granted by `try_acquire` or `acquire`;
/// - `keel_lock_waits_total`: `acquire` calls (with a non-zero wait) that found the lock
///   held and waited for it, whatever the outcome;
/// - `keel_lock_lost_leases_total`: `extend` or `release` answered
///   [`LockError::NotHeld`]: the lease had expired or been taken over. A
///   [`KeepAlive`](crate::KeepAlive) renewing through a `Metered` service counts its
///   losses the service reports; a lease it sees run out locally, with no answer from the
///   service, is not counted.
///
/// The counters are registered once, in [`new`](Metered::new). To tell whether an `acquire`
/// waits, it first tries without waiting, so a contended `acquire` costs one more call to
/// the service.
///
/// ```
/// use keel_lock::{InMemoryLockService, LockService, Metered};
/// use std::time::Duration;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let service = Metered::new(InMemoryLockService::new(), "jobs");
/// let lease = service.acquire("nightly", Duration::from_secs(10), Duration::ZERO).await?;
/// assert_eq!(lease.name(), "nightly");
/// assert_eq!(service.inner().holder("nightly"), Some(lease.token()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Metered<S> {
    inner: S,
    counters: Arc<Counters>,
}

#[derive(Debug)]
struct Counters {
    grants: Counter,
    waits: Counter,
    lost: Counter,
}

impl<S> Metered<S> {
    /// Wraps `inner`, labelling its metrics `name`.
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, Metered};
    ///
    /// let service = Metered::new(InMemoryLockService::new(), "leader-election");
    /// assert_eq!(service.inner().holder("leader"), None);
    /// ```
    pub fn new(inner: S, name: &str) -> Metered<S> {
        let counter = |metric: &'static str| metrics::counter!(metric, "name" => name.to_owned());
        Metered {
            inner,
            counters: Arc::new(Counters {
                grants: counter("keel_lock_grants_total"),
                waits: counter("keel_lock_waits_total"),
                lost: counter("keel_lock_lost_leases_total"),
            }),
        }
    }

    /// The wrapped service.
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, Metered};
    ///
    /// let service = Metered::new(InMemoryLockService::new(), "jobs");
    /// assert_eq!(service.inner().holder("any"), None);
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn granted<T>(&self, result: &Result<T, LockError>) {
        if result.is_ok() {
            self.counters.grants.increment(1);
        }
    }

    fn checked<T>(&self, result: Result<T, LockError>) -> Result<T, LockError> {
        if let Err(error) = &result
            && error.is_not_held()
        {
            self.counters.lost.increment(1);
        }
        result
    }
}

impl<S: LockService> LockService for Metered<S> {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, LockError> {
        let result = self.inner.try_acquire(name, ttl).await;
        if let Ok(Some(_)) = &result {
            self.counters.grants.increment(1);
        }
        result
    }

    async fn acquire(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Lease, LockError> {
        if !wait.is_zero() {
            if let Some(lease) = self.inner.try_acquire(name, ttl).await? {
                self.counters.grants.increment(1);
                return Ok(lease);
            }
            self.counters.waits.increment(1);
        }
        let result = self.inner.acquire(name, ttl, wait).await;
        self.granted(&result);
        result
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        self.checked(self.inner.extend(lease, ttl).await)
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        self.checked(self.inner.release(lease).await)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }
}
