//! `Lease`: what a lock service grants.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keel_core::Instant;

use crate::FencingToken;
use crate::slot::Slot;

/// A time-limited grant of a named lock, with its fencing token.
///
/// A lease is plain data: cloning it does not duplicate the lock, and dropping it does not
/// release it (a [`LeaseGuard`](crate::LeaseGuard) does). One that
/// [`InMemoryLockService`](crate::InMemoryLockService) granted by name holds a reference to
/// the name's state, so the service keeps the name while the lease lives. It is valid until
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
#[derive(Clone)]
pub struct Lease {
    origin: Origin,
    token: FencingToken,
    expires_at: Instant,
    ttl: Duration,
}

/// The id of a lease no in-memory lock state granted: its name decides whose it is.
pub(crate) const NOT_GRANTED_HERE: u64 = 0;

/// Where a lease keeps its name, and which in-memory lock state granted it, so a release on
/// that state knows the lease is its own without comparing names, and a lease of another
/// service is never taken for one.
#[derive(Clone)]
pub(crate) enum Origin {
    /// Its own copy of the name, and the id of the state that granted it: a
    /// [`LockHandle`](crate::LockHandle)'s grant, which holds the state itself, so its leases
    /// count no shared reference. [`NOT_GRANTED_HERE`] when [`Lease::new`] built it (as
    /// Redis and etcd services do).
    Own { name: LeaseName, granted_by: u64 },
    /// The state that granted it by name, which holds the name. A grant writes a pointer
    /// instead of copying the name, and a release or extend by name goes straight to the
    /// state instead of taking the name table's lock to look the name up (which cost as
    /// much as the rest of an uncontended acquire and release together). It keeps the name
    /// in the table while the lease lives.
    State(Arc<Slot>),
}

/// How long a name may be to live inline.
const INLINE: usize = 22;

/// A lock's name, as a handle's lease and a name's state keep it: a short one inline, so a
/// handle's grant copies bytes rather than counting a shared reference (two atomic
/// read-modify-writes, as much as a whole uncontended mutex).
#[derive(Clone)]
pub(crate) enum LeaseName {
    /// The first `len` bytes are the name (a whole `str`), the rest zero.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Shared(Arc<str>),
}

impl LeaseName {
    /// `name`, inline when it fits, else in a new shared string.
    pub(crate) fn new(name: &str) -> LeaseName {
        let mut bytes = [0; INLINE];
        match (bytes.get_mut(..name.len()), u8::try_from(name.len())) {
            (Some(prefix), Ok(len)) => {
                prefix.copy_from_slice(name.as_bytes());
                LeaseName::Inline { len, bytes }
            }
            _ => LeaseName::Shared(Arc::from(name)),
        }
    }

    /// The name's UTF-8 bytes.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            LeaseName::Inline { len, bytes } => &bytes[..usize::from(*len)],
            LeaseName::Shared(name) => name.as_bytes(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Always valid: the bytes were copied whole from a `str`.
            LeaseName::Inline { .. } => std::str::from_utf8(self.bytes()).unwrap_or_default(),
            LeaseName::Shared(name) => name,
        }
    }

    /// The name as a shared string (a new one for an inline name).
    pub(crate) fn to_shared(&self) -> Arc<str> {
        match self {
            LeaseName::Inline { .. } => Arc::from(self.as_str()),
            LeaseName::Shared(name) => name.clone(),
        }
    }

    /// Whether the two are the same name; for inline names a compare of two small arrays.
    #[inline]
    pub(crate) fn same(&self, other: &LeaseName) -> bool {
        match (self, other) {
            (
                LeaseName::Inline { len, bytes },
                LeaseName::Inline {
                    len: other_len,
                    bytes: other_bytes,
                },
            ) => len == other_len && bytes == other_bytes,
            (LeaseName::Shared(name), LeaseName::Shared(other)) => {
                Arc::ptr_eq(name, other) || name == other
            }
            _ => self.bytes() == other.bytes(),
        }
    }

    /// Whether this is the name whose UTF-8 bytes are `name`.
    #[inline]
    pub(crate) fn is(&self, name: &[u8]) -> bool {
        match self {
            LeaseName::Inline { len, bytes } => {
                usize::from(*len) == name.len()
                    && bytes
                        .get(..name.len())
                        .is_some_and(|own| short_eq(own, name))
            }
            LeaseName::Shared(own) => own.as_bytes() == name,
        }
    }
}

/// Whether `a` and `b`, of one length up to 32 bytes, are equal, compared as two words
/// (overlapping where the length is not twice a word's): a few loads, no call to `memcmp`,
/// whose cost for a short name depends on where the bytes lie in their page.
#[inline]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    /// The first and last `N` bytes of each, which cover them whole for a length up to 2N.
    fn ends_eq<const N: usize>(a: &[u8], b: &[u8]) -> bool {
        a.first_chunk::<N>() == b.first_chunk::<N>() && a.last_chunk::<N>() == b.last_chunk::<N>()
    }
    debug_assert_eq!(a.len(), b.len());
    match a.len() {
        0 => true,
        1 => a.first() == b.first(),
        2..=3 => ends_eq::<2>(a, b),
        4..=7 => ends_eq::<4>(a, b),
        8..=15 => ends_eq::<8>(a, b),
        16..=32 => ends_eq::<16>(a, b),
        _ => a == b,
    }
}

// Who granted a lease is not part of it: a lease rebuilt with `Lease::new` from a granted
// one's parts equals it.
impl PartialEq for Lease {
    fn eq(&self, other: &Lease) -> bool {
        self.lease_name().same(other.lease_name())
            && (self.token, self.expires_at, self.ttl) == (other.token, other.expires_at, other.ttl)
    }
}

impl Eq for Lease {}

impl std::hash::Hash for Lease {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
        (self.token, self.expires_at, self.ttl).hash(state);
    }
}

impl Lease {
    /// Builds a lease. Services call this; a user gets leases from a service.
    ///
    /// Unlike a lease [`InMemoryLockService`](crate::InMemoryLockService) grants, which
    /// remembers the service's state for its name that granted it, a lease built here is
    /// judged by its name and token alone. Equality is by name, token, expiry and TTL.
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
        let origin = Origin::Own {
            name: LeaseName::Shared(name),
            granted_by: NOT_GRANTED_HERE,
        };
        Lease::granted(origin, token, expires_at, ttl)
    }

    #[inline]
    pub(crate) fn granted(
        origin: Origin,
        token: FencingToken,
        expires_at: Instant,
        ttl: Duration,
    ) -> Lease {
        Lease {
            origin,
            token,
            expires_at,
            ttl,
        }
    }

    /// The id of the in-memory lock state that granted it, or [`NOT_GRANTED_HERE`].
    #[inline]
    pub(crate) fn granted_by(&self) -> u64 {
        match &self.origin {
            Origin::Own { granted_by, .. } => *granted_by,
            Origin::State(slot) => slot.id,
        }
    }

    /// The in-memory lock state that granted it, if it holds it (a grant by name).
    #[inline]
    pub(crate) fn granting_state(&self) -> Option<&Arc<Slot>> {
        match &self.origin {
            Origin::State(slot) => Some(slot),
            Origin::Own { .. } => None,
        }
    }

    /// The lock's name, from the lease's copy or from the state that holds it.
    #[inline]
    pub(crate) fn lease_name(&self) -> &LeaseName {
        match &self.origin {
            Origin::Own { name, .. } => name,
            Origin::State(slot) => &slot.name,
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
        self.lease_name().as_str()
    }

    /// The lock's name as a shared string: the lease's own for a name given as an `Arc<str>`
    /// ([`Lease::new`]) or longer than 22 bytes, else a new one. The in-memory service keeps
    /// short names inline (in a handle's leases, and in the name's state that a lease granted
    /// by name holds), so that a grant counts no shared reference for the name.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let lease = service.try_acquire_now("invoices", Duration::from_secs(5))?.ok_or("held")?;
    /// let name: Arc<str> = lease.shared_name();
    /// assert_eq!(&*name, "invoices");
    ///
    /// let given: Arc<str> = "invoices".into();
    /// let built = keel_lock::Lease::new(given.clone(), lease.token(), lease.expires_at(), lease.ttl());
    /// assert!(Arc::ptr_eq(&built.shared_name(), &given)); // no copy of the string
    /// assert_eq!(built, lease); // the same name, token and expiry
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shared_name(&self) -> Arc<str> {
        self.lease_name().to_shared()
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
            .field("name", &self.name())
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

    #[test]
    fn names_inline_or_shared_compare_by_their_text() {
        let long = "a name longer than twenty-two bytes";
        for name in ["", "a", "exactly 22 bytes long!", long, "ünïcödé"] {
            let kept = LeaseName::new(name);
            assert_eq!(kept.as_str(), name);
            assert!(kept.is(name.as_bytes()));
            assert!(!kept.is(b"other"));
            assert_eq!(
                matches!(kept, LeaseName::Inline { .. }),
                name.len() <= INLINE
            );
            let shared = LeaseName::Shared(name.into());
            assert!(kept.same(&shared) && shared.same(&kept) && kept.same(&kept.clone()));
            assert!(!kept.same(&LeaseName::new("other")));
            assert_eq!(&*kept.to_shared(), name);
        }
        assert!(!LeaseName::new("ab").same(&LeaseName::new("a")));
        assert!(!LeaseName::new("ab").is(b"a") && !LeaseName::new("a").is(b"ab"));

        let at = |origin: Origin| {
            Lease::granted(
                origin,
                FencingToken::new(1),
                Instant::ZERO,
                Duration::from_secs(1),
            )
        };
        let own = |name: LeaseName| Origin::Own {
            name,
            granted_by: NOT_GRANTED_HERE,
        };
        let inline = at(own(LeaseName::new("a")));
        let shared = at(own(LeaseName::Shared("a".into())));
        let slot = Arc::new(Slot::new(LeaseName::new("a"), 0, 0));
        let by_state = at(Origin::State(slot.clone()));
        assert_eq!((inline.name(), by_state.name()), ("a", "a"));
        assert_eq!(by_state.granted_by(), slot.id);
        let state = std::hash::RandomState::new();
        for lease in [&shared, &by_state] {
            assert_eq!(&inline, lease);
            assert_eq!(
                std::hash::BuildHasher::hash_one(&state, &inline),
                std::hash::BuildHasher::hash_one(&state, lease)
            );
        }
        let other = at(Origin::State(Arc::new(Slot::new(
            LeaseName::new("b"),
            0,
            0,
        ))));
        assert_ne!(inline, other);
        // A name too long to live inline: the state's shared copy, or a new one.
        let long = "a name longer than twenty-two bytes";
        let slot = Arc::new(Slot::new(LeaseName::new(long), 0, 0));
        let by_state = at(Origin::State(slot));
        let built = at(own(LeaseName::Shared(long.into())));
        assert_eq!((by_state.name(), &*by_state.shared_name()), (long, long));
        assert_eq!(by_state, built);
        assert_eq!(
            std::hash::BuildHasher::hash_one(&state, &by_state),
            std::hash::BuildHasher::hash_one(&state, &built)
        );
    }

    #[test]
    fn short_names_compare_at_every_length_and_position() {
        let text: Vec<u8> = (b'a'..=b'z').chain(b'A'..=b'Z').collect();
        for len in 0..=40 {
            let name = &text[..len];
            assert!(short_eq(name, name), "{len}");
            for at in 0..len {
                let mut other = name.to_vec();
                other[at] ^= 1;
                assert!(!short_eq(name, &other), "{len} bytes, differing at {at}");
                let inline = LeaseName::new(std::str::from_utf8(name).expect("ascii"));
                assert!(inline.is(name) && !inline.is(&other));
            }
        }
    }
}
