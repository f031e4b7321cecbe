//! A worker id, optionally held under a lease that a generator checks before every ID.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_core::{Clock, Instant};

use crate::GenerateError;

/// The worker field a generator stamps into its IDs, and the lease it is held under, if any.
///
/// A plain `u64` converts into a `WorkerId` with no lease. A [`WorkerIdProvider`] that leases
/// ids (such as the Redis lease) returns one with a [`LeaseValidity`], and a generator built from it
/// stops issuing IDs ([`GenerateError::LeaseExpired`](crate::GenerateError::LeaseExpired))
/// once the lease's deadline has passed.
///
/// [`WorkerIdProvider`]: crate::WorkerIdProvider
///
/// # Example
///
/// ```
/// use keel_core::{Clock, ManualClock};
/// use keel_idgen::{GenerateError, Layout, LeaseValidity, Snowflake, WorkerId};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let lease = LeaseValidity::new(clock.clone());
/// lease.extend_to(clock.now() + Duration::from_secs(10));
/// let worker = WorkerId::leased(6, lease);
/// let generator = Snowflake::builder(Layout::twitter(), worker).clock(clock.clone()).build()?;
/// assert_eq!(generator.decode(generator.next_id()?).worker, 6);
/// clock.advance(Duration::from_secs(10));
/// assert_eq!(generator.next_id(), Err(GenerateError::LeaseExpired));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct WorkerId {
    id: u64,
    lease: Option<LeaseValidity>,
}

impl WorkerId {
    /// A worker id with no lease: valid for as long as the process runs.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::WorkerId;
    ///
    /// let worker = WorkerId::fixed(12);
    /// assert_eq!(worker.id(), 12);
    /// assert!(worker.lease().is_none());
    /// assert_eq!(WorkerId::from(12).id(), 12);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn fixed(id: u64) -> WorkerId {
        WorkerId { id, lease: None }
    }

    /// A worker id valid while `lease` is.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::{LeaseValidity, WorkerId};
    ///
    /// let lease = LeaseValidity::new(ManualClock::new());
    /// let worker = WorkerId::leased(7, lease);
    /// assert_eq!(worker.id(), 7);
    /// // The lease is not valid until extended.
    /// assert_eq!(worker.lease().map(LeaseValidity::is_valid), Some(false));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn leased(id: u64, lease: LeaseValidity) -> WorkerId {
        WorkerId {
            id,
            lease: Some(lease),
        }
    }

    /// The id.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::WorkerId;
    ///
    /// assert_eq!(WorkerId::fixed(31).id(), 31);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn id(&self) -> u64 {
        self.id
    }

    /// The lease the id is held under, if any.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::{LeaseValidity, WorkerId};
    ///
    /// assert!(WorkerId::fixed(1).lease().is_none());
    /// let leased = WorkerId::leased(1, LeaseValidity::new(ManualClock::new()));
    /// assert!(leased.lease().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lease(&self) -> Option<&LeaseValidity> {
        self.lease.as_ref()
    }
}

impl From<u64> for WorkerId {
    fn from(id: u64) -> WorkerId {
        WorkerId::fixed(id)
    }
}

/// The validity of a leased worker id, checked by the generator before every ID.
///
/// Two kinds:
///
/// - **A deadline** ([`LeaseValidity::new`]): a time on a monotonic [`Clock`], moved forward by
///   [`extend_to`](LeaseValidity::extend_to) and ended by [`revoke`](LeaseValidity::revoke), for a lease
///   kept by code of your own. The holder extends it only to a time it knows the lease still
///   holds (the time a renewal was *sent* plus the lease's TTL, minus a safety margin), so
///   the generator stops before any other process can be granted the id.
/// - **A keel-lock lease** (from `WorkerLease`, feature `lease`): valid from one TTL after
///   the grant until the lock lease's expiry (as renewed by its keep-alive) minus a safety
///   margin, read on the lock service's clock, and invalid at once when keel-lock's lost
///   signal fires.
///
/// Clones share the state. A check costs a clock reading and one or two atomic loads.
///
/// # Example
///
/// ```
/// use keel_core::{Clock, ManualClock};
/// use keel_idgen::LeaseValidity;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let lease = LeaseValidity::new(clock.clone());
/// assert!(!lease.is_valid());
/// lease.extend_to(clock.now() + Duration::from_secs(10));
/// assert!(lease.is_valid());
/// clock.advance(Duration::from_secs(10));
/// assert!(!lease.is_valid());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct LeaseValidity {
    shared: Arc<LeaseState>,
}

struct LeaseState {
    now: Box<dyn Fn() -> Instant + Send + Sync>,
    deadline: AtomicU64,
    /// Not valid before this reading of the clock (nanoseconds).
    not_before: u64,
    #[cfg(feature = "lease")]
    held: Option<Held>,
}

/// A keel-lock lease the id is held under, and how long before its expiry to stop.
#[cfg(feature = "lease")]
struct Held {
    lost: keel_lock::LostLease,
    margin: Duration,
}

impl LeaseValidity {
    /// A lease that is not valid until [`extend_to`](LeaseValidity::extend_to) is called.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::LeaseValidity;
    /// use keel_core::Instant;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let lease = LeaseValidity::new(clock.clone());
    /// assert!(!lease.is_valid());
    /// assert_eq!(lease.deadline(), Instant::ZERO);
    /// lease.extend_to(clock.now() + Duration::from_secs(1));
    /// assert!(lease.is_valid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(clock: impl Clock + 'static) -> LeaseValidity {
        LeaseValidity {
            shared: Arc::new(LeaseState {
                now: Box::new(move || clock.now()),
                deadline: AtomicU64::new(0),
                not_before: 0,
                #[cfg(feature = "lease")]
                held: None,
            }),
        }
    }

    /// Valid from `not_before` while `lost` has not fired and its expiry is more than
    /// `margin` away, all read from `now` (the lock service's clock).
    #[cfg(feature = "lease")]
    pub(crate) fn held(
        lost: keel_lock::LostLease,
        margin: Duration,
        not_before: Instant,
        now: Box<dyn Fn() -> Instant + Send + Sync>,
    ) -> LeaseValidity {
        LeaseValidity {
            shared: Arc::new(LeaseState {
                now,
                // The keel-lock lease decides; this only records a revocation.
                deadline: AtomicU64::new(REVOKED - 1),
                not_before: not_before.as_nanos(),
                held: Some(Held { lost, margin }),
            }),
        }
    }

    /// Why no ID may be stamped now, if that is so.
    #[inline]
    pub(crate) fn check(&self) -> Result<(), GenerateError> {
        let state = &*self.shared;
        let now = (state.now)().as_nanos();
        if now < state.not_before {
            return Err(GenerateError::LeaseNotYetValid {
                retry_after: Duration::from_nanos(state.not_before - now),
            });
        }
        let deadline = state.deadline.load(Ordering::Acquire);
        if deadline == REVOKED || now >= deadline {
            return Err(GenerateError::LeaseExpired);
        }
        // One clock reading for both ends: the keel-lock lease's expiry is compared with it.
        #[cfg(feature = "lease")]
        if let Some(held) = &state.held {
            let valid = held
                .lost
                .expires_at()
                .is_some_and(|expires_at| now < expires_at.saturating_sub(held.margin).as_nanos());
            if !valid {
                return Err(GenerateError::LeaseExpired);
            }
        }
        Ok(())
    }

    /// The first reading of the lease's clock at which the id may be used: for a worker id
    /// newly granted by `WorkerLease` (feature `lease`), one TTL after the grant; for a
    /// lease made with [`LeaseValidity::new`], [`Instant::ZERO`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Instant, ManualClock};
    /// use keel_idgen::LeaseValidity;
    ///
    /// let lease = LeaseValidity::new(ManualClock::new());
    /// assert_eq!(lease.valid_from(), Instant::ZERO);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn valid_from(&self) -> Instant {
        Instant::from_nanos(self.shared.not_before)
    }

    /// Whether the id may be used now: the lease is past its start, its deadline (or the
    /// keel-lock lease's expiry minus the margin) is still ahead, and it is neither revoked
    /// nor lost.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::LeaseValidity;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let lease = LeaseValidity::new(clock.clone());
    /// lease.extend_to(clock.now() + Duration::from_millis(100));
    /// assert!(lease.is_valid());
    /// clock.advance(Duration::from_millis(99));
    /// assert!(lease.is_valid());
    /// // Valid strictly before the deadline.
    /// clock.advance(Duration::from_millis(1));
    /// assert!(!lease.is_valid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn is_valid(&self) -> bool {
        self.check().is_ok()
    }

    /// The current deadline on the lease's clock: for a keel-lock lease, its latest expiry
    /// minus the safety margin. A revoked or lost lease's deadline is [`Instant::ZERO`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, Instant, ManualClock};
    /// use keel_idgen::LeaseValidity;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let lease = LeaseValidity::new(clock.clone());
    /// let deadline = clock.now() + Duration::from_secs(3);
    /// lease.extend_to(deadline);
    /// assert_eq!(lease.deadline(), deadline);
    /// lease.revoke();
    /// assert_eq!(lease.deadline(), Instant::ZERO);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deadline(&self) -> Instant {
        let deadline = match self.shared.deadline.load(Ordering::Acquire) {
            REVOKED => return Instant::ZERO,
            nanos => Instant::from_nanos(nanos),
        };
        #[cfg(feature = "lease")]
        if let Some(held) = &self.shared.held {
            if held.lost.is_lost() {
                return Instant::ZERO;
            }
            let expires_at = held.lost.lease().expires_at();
            return expires_at.saturating_sub(held.margin);
        }
        deadline
    }

    /// The lease's clock reading, to compute deadlines from.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::LeaseValidity;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let lease = LeaseValidity::new(clock.clone());
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(lease.now(), clock.now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn now(&self) -> Instant {
        (self.shared.now)()
    }

    /// Moves the deadline to `deadline` if that is later; a revoked lease stays revoked. A
    /// keel-lock lease is renewed by its keep-alive, so this does nothing to it.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::LeaseValidity;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let lease = LeaseValidity::new(clock.clone());
    /// let later = clock.now() + Duration::from_secs(10);
    /// lease.extend_to(later);
    /// // An earlier deadline (a slow renewal's answer arriving late) does not shorten it.
    /// lease.extend_to(clock.now() + Duration::from_secs(5));
    /// assert_eq!(lease.deadline(), later);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend_to(&self, deadline: Instant) {
        let wanted = deadline.as_nanos().min(REVOKED - 1);
        let _ = self
            .shared
            .deadline
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (current != REVOKED && wanted > current).then_some(wanted)
            });
    }

    /// Ends the lease now, for good: the holder learned it no longer owns the id.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::LeaseValidity;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let lease = LeaseValidity::new(clock.clone());
    /// let generator_copy = lease.clone();
    /// lease.extend_to(clock.now() + Duration::from_secs(10));
    /// lease.revoke();
    /// // Clones share the state, and no extension brings a revoked lease back.
    /// lease.extend_to(clock.now() + Duration::from_secs(20));
    /// assert!(!generator_copy.is_valid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn revoke(&self) {
        self.shared.deadline.store(REVOKED, Ordering::Release);
    }

    /// Whether [`revoke`](LeaseValidity::revoke) was called, or a keel-lock lease's lost signal
    /// fired for a reason other than the clock passing its expiry.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::LeaseValidity;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let lease = LeaseValidity::new(clock.clone());
    /// lease.extend_to(clock.now() + Duration::from_secs(1));
    /// clock.advance(Duration::from_secs(1));
    /// // Lapsed is not revoked: a renewal may still extend it.
    /// assert!(!lease.is_valid());
    /// assert!(!lease.is_revoked());
    /// lease.revoke();
    /// assert!(lease.is_revoked());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_revoked(&self) -> bool {
        #[cfg(feature = "lease")]
        if let Some(held) = &self.shared.held
            && held
                .lost
                .reason()
                .is_some_and(|reason| !matches!(reason, keel_lock::LostReason::Expired))
        {
            return true;
        }
        self.shared.deadline.load(Ordering::Acquire) == REVOKED
    }
}

// A revoked lease must not be extended again, so revocation is a value no deadline takes.
const REVOKED: u64 = u64::MAX;

impl fmt::Debug for LeaseValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseValidity")
            .field("deadline", &self.deadline())
            .field("valid", &self.is_valid())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::ManualClock;
    use std::time::Duration;

    #[test]
    fn extend_only_moves_forward_and_revoke_is_final() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_secs(1));
        let lease = LeaseValidity::new(clock.clone());
        lease.extend_to(clock.now() + Duration::from_secs(5));
        lease.extend_to(clock.now() + Duration::from_secs(1));
        assert_eq!(lease.deadline(), clock.now() + Duration::from_secs(5));
        lease.revoke();
        assert!(!lease.is_valid());
        lease.extend_to(clock.now() + Duration::from_secs(50));
        assert!(!lease.is_valid());
        assert!(lease.is_revoked());
    }
}
