//! `Lease`: what a lock service grants.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keel_core::Instant;

use crate::FencingToken;

/// A time-limited grant of a named lock, with its fencing token.
///
/// A lease is plain data: cloning it does not duplicate the lock, and dropping it does not
/// release it (a [`LeaseGuard`](crate::LeaseGuard) does). It is valid until
/// [`expires_at`](Lease::expires_at), a reading of the granting service's clock
/// ([`LockService::now`](crate::LockService::now)), unless it is released or extended first.
///
/// For a remote service the expiry is the holder's conservative estimate: the clock is read
/// before the request is sent, so the server's own expiry is never earlier (as long as the
/// two clocks run at the same rate). A holder should still stop before it, and send its
/// [`token`](Lease::token) with every write so the resource's [`Fence`](crate::Fence) can
/// reject it once it is late.
///
/// # Example
///
/// ```
/// use keel_lock::{InMemoryLockService, LockService};
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let service = InMemoryLockService::new();
/// let lease = service.try_acquire("orders", Duration::from_secs(10)).await?.ok_or("held")?;
/// assert_eq!(lease.name(), "orders");
/// assert_eq!(lease.ttl(), Duration::from_secs(10));
/// assert!(lease.remaining(service.now()) <= Duration::from_secs(10));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    name: Arc<str>,
    token: FencingToken,
    expires_at: Instant,
    ttl: Duration,
}

impl Lease {
    /// Builds a lease. Services call this; a user gets leases from a service.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_lock::{FencingToken, Lease};
    /// use std::time::Duration;
    ///
    /// // A custom `LockService` builds its grants like this.
    /// let clock = ManualClock::new();
    /// let ttl = Duration::from_secs(30);
    /// let lease = Lease::new("reports".into(), FencingToken::new(9), clock.now() + ttl, ttl);
    /// assert_eq!((lease.name(), lease.token().get()), ("reports", 9));
    /// assert_eq!(lease.remaining(clock.now()), ttl);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(name: Arc<str>, token: FencingToken, expires_at: Instant, ttl: Duration) -> Lease {
        Lease {
            name,
            token,
            expires_at,
            ttl,
        }
    }

    /// The lock's name.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let lease = service.try_acquire_now("invoices", Duration::from_secs(5))?.ok_or("held")?;
    /// assert_eq!(lease.name(), "invoices");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lock's name, shared.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let lease = service.try_acquire_now("invoices", Duration::from_secs(5))?.ok_or("held")?;
    /// let name: Arc<str> = lease.shared_name().clone(); // no copy of the string
    /// assert_eq!(&*name, "invoices");
    /// assert!(Arc::ptr_eq(&name, lease.clone().shared_name()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// The fencing token of this grant; extending keeps it.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let service = InMemoryLockService::with_clock(clock.clone());
    /// let ttl = Duration::from_secs(5);
    /// let lease = service.try_acquire_now("jobs", ttl)?.ok_or("held")?;
    /// assert_eq!(service.extend_now(&lease, ttl)?.token(), lease.token()); // extending keeps it
    /// service.release_now(&lease)?;
    /// let next = service.try_acquire_now("jobs", ttl)?.ok_or("held")?;
    /// assert!(next.token() > lease.token()); // a new grant gets a higher one
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// When the lease ends, on the granting service's clock.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let service = InMemoryLockService::with_clock(clock.clone());
    /// let lease = service.try_acquire_now("jobs", Duration::from_secs(5))?.ok_or("held")?;
    /// assert_eq!(lease.expires_at(), clock.now() + Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// The time to live it was granted (or last extended) with.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let lease = service.try_acquire_now("jobs", Duration::from_secs(5))?.ok_or("held")?;
    /// assert_eq!(lease.ttl(), Duration::from_secs(5));
    /// let extended = service.extend_now(&lease, Duration::from_secs(60))?;
    /// assert_eq!(extended.ttl(), Duration::from_secs(60));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Time left at `now` (a reading of the service's clock); zero once expired.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let service = InMemoryLockService::with_clock(clock.clone());
    /// let lease = service.try_acquire_now("jobs", Duration::from_secs(5))?.ok_or("held")?;
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(lease.remaining(clock.now()), Duration::from_secs(3));
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(lease.remaining(clock.now()), Duration::ZERO);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at - now
    }

    /// Whether the lease has run out at `now` (a reading of the service's clock).
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let service = InMemoryLockService::with_clock(clock.clone());
    /// let lease = service.try_acquire_now("jobs", Duration::from_secs(5))?.ok_or("held")?;
    /// assert!(!lease.is_expired(clock.now()));
    /// clock.advance(Duration::from_secs(5));
    /// assert!(lease.is_expired(clock.now()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires_at
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("name", &&*self.name)
            .field("token", &self.token.get())
            .field("expires_at", &self.expires_at)
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_arithmetic() {
        let lease = Lease::new(
            "a".into(),
            FencingToken::new(1),
            Instant::from_nanos(100),
            Duration::from_nanos(100),
        );
        assert_eq!(
            lease.remaining(Instant::from_nanos(40)),
            Duration::from_nanos(60)
        );
        assert_eq!(lease.remaining(Instant::from_nanos(400)), Duration::ZERO);
        assert!(!lease.is_expired(Instant::from_nanos(99)));
        assert!(lease.is_expired(Instant::from_nanos(100)));
        assert!(format!("{lease:?}").contains("token: 1"));
    }
}
