//! `KeepAlive`: renews a lease in the background at a fraction of its time to live.

use std::sync::Arc;

use tokio::sync::watch;

use crate::lost::{Status, Validity, mark_lost};
use crate::{Lease, LeaseGuard, LockConfigError, LockError, LockService, LostReason};

/// How a [`LeaseGuard`] renews its lease: every `fraction` of the lease's time to live.
///
/// With the default fraction of 1/3, a 30 s lease is extended every 10 s, so two renewals in
/// a row can fail or be slow before the lease runs out. The renewal task stops at the first
/// failure and fires the guard's [`LostLease`](crate::LostLease) signal: it does not retry,
/// because a lease whose renewal is in doubt is not safe to keep working under. If a renewal
/// has not answered by the lease's expiry, the signal fires at the expiry.
///
/// Give a remote service a call timeout well below `ttl * (1 - fraction)`, so a hung call
/// fails before the lease would.
///
/// # Example
///
/// ```
/// use keel_lock::{InMemoryLockService, KeepAlive, LockService};
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let service = InMemoryLockService::new();
/// let lease = service.acquire("indexer", Duration::from_secs(15), Duration::from_secs(1)).await?;
/// let guard = KeepAlive::renew_every(0.25)?.start(service.clone(), lease)?;
/// // ... work, passing guard.token() to every write, stopping if guard.lost() fires ...
/// guard.release().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct KeepAlive {
    fraction: f64,
}

impl KeepAlive {
    /// Renews every third of the time to live.
    ///
    /// ```
    /// use keel_lock::KeepAlive;
    ///
    /// assert_eq!(KeepAlive::new().fraction(), 1.0 / 3.0);
    /// assert_eq!(KeepAlive::new(), KeepAlive::default());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> KeepAlive {
        KeepAlive {
            fraction: 1.0 / 3.0,
        }
    }

    /// Renews each time `fraction` of the time to live has passed since the last grant.
    ///
    /// # Errors
    ///
    /// [`LockConfigError`] unless `0 < fraction < 1`.
    ///
    /// ```
    /// use keel_lock::KeepAlive;
    ///
    /// assert_eq!(KeepAlive::renew_every(0.25)?.fraction(), 0.25);
    /// assert!(KeepAlive::renew_every(1.0).is_err()); // would renew only as the lease ends
    /// assert!(KeepAlive::renew_every(0.0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn renew_every(fraction: f64) -> Result<KeepAlive, LockConfigError> {
        if fraction.is_finite() && fraction > 0.0 && fraction < 1.0 {
            Ok(KeepAlive { fraction })
        } else {
            Err(LockConfigError::new(format!(
                "renewal fraction must be > 0 and < 1 of the time to live, got {fraction}"
            )))
        }
    }

    /// The fraction of the time to live between renewals.
    ///
    /// ```
    /// use keel_lock::KeepAlive;
    ///
    /// let keep_alive = KeepAlive::renew_every(0.5)?;
    /// assert_eq!(keep_alive.fraction(), 0.5); // a 30 s lease renews every 15 s
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fraction(&self) -> f64 {
        self.fraction
    }

    /// Starts renewing `lease` on the current tokio runtime and returns the guard that owns
    /// it.
    ///
    /// # Errors
    ///
    /// [`LockError::NoRuntime`] when called outside a tokio runtime.
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_lock::{InMemoryLockService, KeepAlive, LockError, LockService};
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let lease = service.try_acquire_now("indexer", Duration::from_secs(10))?.ok_or("held")?;
    /// let outside = KeepAlive::new().start(service.clone(), lease);
    /// assert!(matches!(outside, Err(LockError::NoRuntime)));
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let service = InMemoryLockService::with_clock(TokioClock::new());
    /// let lease = service.acquire("indexer", Duration::from_secs(10), Duration::ZERO).await?;
    /// let guard = KeepAlive::new().start(service.clone(), lease)?;
    /// tokio::time::sleep(Duration::from_secs(60)).await; // paused time: many renewals
    /// assert!(!guard.is_lost());
    /// assert_eq!(service.holder("indexer"), Some(guard.token())); // still held after 6 TTLs
    /// # guard.release().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start<S>(&self, service: S, lease: Lease) -> Result<LeaseGuard<S>, LockError>
    where
        S: LockService + Clone + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| LockError::NoRuntime)?;
        let (sender, _) = watch::channel(Status {
            lease: lease.clone(),
            lost: None,
        });
        let status = Arc::new(sender);
        let clock = service.clone();
        let validity = Arc::new(Validity::new(&lease, Box::new(move || clock.now())));
        // Owned by the task from the start, so it fires however the task ends: unpolled and
        // dropped by a runtime shutting down, unwound by a panic, or finished.
        let stopped = Stopped(status.clone(), validity.clone());
        let renewals = renew(
            service.clone(),
            lease,
            self.fraction,
            status.clone(),
            validity.clone(),
        );
        let task = runtime.spawn(async move {
            let _stopped = stopped;
            renewals.await;
        });
        Ok(LeaseGuard::new(service, status, validity, task))
    }
}

impl Default for KeepAlive {
    fn default() -> KeepAlive {
        KeepAlive::new()
    }
}

async fn renew<S: LockService>(
    service: S,
    mut lease: Lease,
    fraction: f64,
    status: Arc<watch::Sender<Status>>,
    validity: Arc<Validity>,
) {
    let lost = |reason: LostReason| mark_lost(&status, &validity, reason);
    loop {
        let renew_at = lease.expires_at() - lease.ttl().mul_f64(1.0 - fraction);
        let now = service.now();
        if renew_at > now {
            tokio::time::sleep(renew_at - now).await;
        }
        let remaining = lease.remaining(service.now());
        if remaining.is_zero() {
            return lost(LostReason::Expired);
        }
        match tokio::time::timeout(remaining, service.extend(&lease, lease.ttl())).await {
            Err(_expired) => return lost(LostReason::Expired),
            Ok(Err(error)) if error.is_not_held() => return lost(LostReason::NotHeld),
            Ok(Err(error)) => return lost(LostReason::RenewFailed(error)),
            Ok(Ok(renewed)) => {
                lease = renewed;
                validity.renewed(&lease);
                status.send_modify(|status| status.lease = lease.clone());
            }
        }
    }
}

/// Marks the lease lost with [`LostReason::Stopped`] when the renewal task ends without
/// having set a reason.
struct Stopped(Arc<watch::Sender<Status>>, Arc<Validity>);

impl Drop for Stopped {
    fn drop(&mut self) {
        mark_lost(&self.0, &self.1, LostReason::Stopped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_is_validated() {
        assert!(KeepAlive::renew_every(0.5).is_ok());
        for bad in [0.0, 1.0, -0.1, f64::NAN, f64::INFINITY] {
            let error = KeepAlive::renew_every(bad).unwrap_err();
            assert!(error.to_string().contains("renewal fraction"), "{error}");
        }
        assert!((KeepAlive::default().fraction() - 1.0 / 3.0).abs() < 1e-12);
    }
}
