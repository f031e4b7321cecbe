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
    pub fn new(name: Arc<str>, token: FencingToken, expires_at: Instant, ttl: Duration) -> Lease {
        Lease {
            name,
            token,
            expires_at,
            ttl,
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lock's name, shared.
    pub fn shared_name(&self) -> &Arc<str> {
        &self.name
    }

    /// The fencing token of this grant; extending keeps it.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// When the lease ends, on the granting service's clock.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// The time to live it was granted (or last extended) with.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Time left at `now` (a reading of the service's clock); zero once expired.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at - now
    }

    /// Whether the lease has run out at `now` (a reading of the service's clock).
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
