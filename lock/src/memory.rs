//! `InMemoryLockService`: leases for the tasks and threads of one process.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::ops::DerefMut;
use std::pin::pin;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use keel_core::sync::Mutex;
use keel_core::{Clock, Instant, SystemClock};
use tokio::sync::Notify;

use crate::{FencingToken, Lease, LockError, LockService};

/// Shards of the name table; a power of two so a hash picks one with a mask.
const SHARDS: usize = 32;
/// A shard sweeps expired entries after at least this many new names.
const MIN_SWEEP_INTERVAL: usize = 64;
/// How long a released lock is kept for the acquirers that were waiting for it.
const HANDOFF: Duration = Duration::from_millis(10);

/// A lock service inside one process: leases on names, with strictly increasing fencing tokens.
///
/// Names are spread over 32 shards, each a small mutex-guarded table, so unrelated names
/// rarely contend and every decision (grant, extend, release) is one short critical section
/// with one hash lookup (foldhash, randomly seeded) that reads the clock, compares and writes:
/// no allocation once a name has been seen, and nothing held across an `.await`. A release
/// wakes waiters only when some acquirer in the shard is waiting. Tokens come from a counter
/// per shard, so
/// they are strictly increasing per name (a name always maps to the same shard) and never
/// reused, also after a name's entry is swept away.
///
/// Expiry is read from the [`Clock`]: a lease whose `expires_at` has passed is free for the
/// next acquirer, and can be neither extended nor released. Expired and released entries
/// are swept lazily (a shard sweeps once it has added as many new names as it kept at its
/// last sweep), so memory stays proportional to the names held recently.
///
/// [`acquire`](LockService::acquire) waits without polling: it sleeps until a release in its
/// shard wakes it, or until the holder's lease runs out, or until its own limit. Waiting
/// needs a tokio runtime with timers: an `acquire` that has to wait anywhere else fails with
/// [`LockError::NoRuntime`].
///
/// A lock released while acquirers wait for it is handed to them: for up to 10 ms only an
/// acquirer that was already waiting may take it (the first of them to run wins), so a holder
/// that releases and at once acquires again cannot starve the waiters. During that window
/// [`try_acquire`](LockService::try_acquire) by anyone else finds the lock busy. A lease that
/// simply expires is not handed over. Those
/// sleeps use tokio's timer, so with a [`ManualClock`](keel_core::ManualClock) the service
/// only wakes on releases; use `TokioClock` (keel-core feature `tokio`) with paused tokio time
/// to test waiting for expiry.
///
/// Besides the async [`LockService`] methods, which never wait except in `acquire`, the
/// service has synchronous twins ([`try_acquire_now`](InMemoryLockService::try_acquire_now),
/// [`extend_now`](InMemoryLockService::extend_now),
/// [`release_now`](InMemoryLockService::release_now)) for code outside a runtime.
///
/// Clones share the same table.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_lock::{InMemoryLockService, LockService};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let service = InMemoryLockService::with_clock(clock.clone());
/// let ttl = Duration::from_secs(10);
///
/// let first = service.try_acquire_now("jobs", ttl)?.ok_or("held")?;
/// assert!(service.try_acquire_now("jobs", ttl)?.is_none()); // held
///
/// clock.advance(ttl); // the holder stalls past its lease
/// let second = service.try_acquire_now("jobs", ttl)?.ok_or("held")?;
/// assert!(second.token() > first.token());
/// assert!(service.extend_now(&first, ttl).is_err()); // the old holder cannot come back
/// service.release_now(&second)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct InMemoryLockService<C: Clock = SystemClock> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    clock: C,
    shards: Box<[Shard]>,
}

struct Shard {
    table: Mutex<Table>,
    released: Notify,
}

#[derive(Default)]
struct Table {
    held: HashMap<Arc<str>, Held, foldhash::fast::RandomState>,
    /// The last token issued for a name in this shard.
    last_token: u64,
    new_names_since_sweep: usize,
    /// Sweep after this many new names: the size after the last sweep, so a sweep's cost is
    /// paid for by the inserts before it.
    sweep_after: usize,
}

/// A name's last grant. Released entries stay (with `expires_at` zero) until a sweep, so
/// acquire and release each take one lookup.
struct Held {
    name: Arc<str>,
    token: u64,
    expires_at: Instant,
    /// Acquirers waiting for this name.
    waiting: u32,
    /// Releases that found acquirers waiting; a waiter that registered before the latest one
    /// is owed the lock.
    handoffs: u64,
    /// Until then, only a waiter owed the lock may take it (zero: no handoff).
    handoff_until: Instant,
}

/// An acquirer waiting in [`LockService::acquire`]: counted on its name until it returns or
/// is dropped.
struct Waiter<'a> {
    shard: &'a Shard,
    name: &'a str,
    /// The name's `handoffs` when it started waiting; `None` before its first failed attempt.
    since: Option<u64>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.since.is_none() {
            return;
        }
        let mut table = lock(&self.shard.table);
        if let Some(held) = table.held.get_mut(self.name) {
            held.waiting = held.waiting.saturating_sub(1);
            if held.waiting == 0 {
                // Nobody left to hand the lock to.
                held.handoff_until = Instant::ZERO;
            }
        }
    }
}

/// What one attempt found.
enum Attempt {
    Granted(Lease),
    HeldUntil(Instant),
}

impl InMemoryLockService<SystemClock> {
    /// A service on the system clock.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let lease = service.try_acquire_now("jobs", Duration::from_secs(5))?;
    /// assert!(lease.is_some());
    /// let shared = service.clone(); // clones share the table
    /// assert!(shared.try_acquire_now("jobs", Duration::from_secs(5))?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> InMemoryLockService<SystemClock> {
        InMemoryLockService::with_clock(SystemClock)
    }
}

impl Default for InMemoryLockService<SystemClock> {
    fn default() -> InMemoryLockService<SystemClock> {
        InMemoryLockService::new()
    }
}

impl<C: Clock> InMemoryLockService<C> {
    /// A service reading time from `clock`.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let service = InMemoryLockService::with_clock(clock.clone());
    /// service.try_acquire_now("jobs", Duration::from_secs(5))?.ok_or("held")?;
    /// clock.advance(Duration::from_secs(5)); // expiry without waiting
    /// assert_eq!(service.holder("jobs"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_clock(clock: C) -> InMemoryLockService<C> {
        let shards = (0..SHARDS)
            .map(|_| Shard {
                table: Mutex::new(Table::default()),
                released: Notify::new(),
            })
            .collect();
        InMemoryLockService {
            inner: Arc::new(Inner { clock, shards }),
        }
    }

    /// The service's clock.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_lock::{InMemoryLockService, LockService};
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::with_clock(ManualClock::new());
    /// service.clock().advance(Duration::from_secs(1));
    /// assert_eq!(service.clock().now(), service.now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// [`LockService::try_acquire`], synchronously: it never waits.
    ///
    /// # Errors
    ///
    /// [`LockError::EmptyName`], [`LockError::InvalidTtl`] (zero, or past the clock's range),
    /// and [`LockError::TokensExhausted`].
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, LockError};
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let ttl = Duration::from_secs(5);
    /// let lease = service.try_acquire_now("jobs", ttl)?.ok_or("held")?;
    /// assert_eq!(lease.name(), "jobs");
    /// assert!(service.try_acquire_now("jobs", ttl)?.is_none()); // held: no waiting
    /// assert!(matches!(service.try_acquire_now("jobs", Duration::ZERO), Err(LockError::InvalidTtl { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire_now(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, LockError> {
        check_name(name)?;
        check_ttl(ttl)?;
        match self.attempt(name, ttl, None)? {
            Attempt::Granted(lease) => Ok(Some(lease)),
            Attempt::HeldUntil(_) => Ok(None),
        }
    }

    /// [`LockService::extend`], synchronously.
    ///
    /// # Errors
    ///
    /// [`LockError::NotHeld`] when the lease expired, was released or was taken over, and
    /// [`LockError::InvalidTtl`].
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let service = InMemoryLockService::with_clock(clock.clone());
    /// let lease = service.try_acquire_now("jobs", Duration::from_secs(5))?.ok_or("held")?;
    /// clock.advance(Duration::from_secs(4));
    /// let extended = service.extend_now(&lease, Duration::from_secs(5))?;
    /// assert_eq!(extended.expires_at(), clock.now() + Duration::from_secs(5));
    /// clock.advance(Duration::from_secs(5));
    /// assert!(service.extend_now(&extended, Duration::from_secs(5)).unwrap_err().is_not_held());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend_now(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        check_ttl(ttl)?;
        let shard = self.shard(lease.name());
        let mut table = lock(&shard.table);
        let now = self.inner.clock.now();
        let expires_at = now.checked_add(ttl).ok_or(LockError::InvalidTtl { ttl })?;
        match table.held.get_mut(lease.name()) {
            Some(held) if held.token == lease.token().get() && now < held.expires_at => {
                held.expires_at = expires_at;
                Ok(Lease::new(
                    lease.shared_name().clone(),
                    lease.token(),
                    expires_at,
                    ttl,
                ))
            }
            _ => Err(not_held(lease)),
        }
    }

    /// [`LockService::release`], synchronously; wakes the shard's waiting acquirers.
    ///
    /// # Errors
    ///
    /// [`LockError::NotHeld`] when the lease had already expired, been released or been
    /// taken over.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let ttl = Duration::from_secs(5);
    /// let lease = service.try_acquire_now("jobs", ttl)?.ok_or("held")?;
    /// service.release_now(&lease)?;
    /// assert!(service.try_acquire_now("jobs", ttl)?.is_some()); // free at once
    /// assert!(service.release_now(&lease).unwrap_err().is_not_held()); // the new holder's, not ours
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release_now(&self, lease: &Lease) -> Result<(), LockError> {
        let shard = self.shard(lease.name());
        let mut table = lock(&shard.table);
        let now = self.inner.clock.now();
        match table.held.get_mut(lease.name()) {
            Some(held) if held.token == lease.token().get() && now < held.expires_at => {
                held.expires_at = Instant::ZERO;
                if held.waiting > 0 {
                    // Keep it for the waiters, so the releaser cannot barge straight back in.
                    held.handoffs += 1;
                    held.handoff_until = now + HANDOFF;
                    drop(table);
                    shard.released.notify_waiters();
                }
                Ok(())
            }
            _ => Err(not_held(lease)),
        }
    }

    /// The token of the live lease on `name`, if any.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// assert_eq!(service.holder("jobs"), None);
    /// let lease = service.try_acquire_now("jobs", Duration::from_secs(5))?.ok_or("held")?;
    /// assert_eq!(service.holder("jobs"), Some(lease.token()));
    /// service.release_now(&lease)?;
    /// assert_eq!(service.holder("jobs"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn holder(&self, name: &str) -> Option<FencingToken> {
        let table = lock(&self.shard(name).table);
        let now = self.inner.clock.now();
        table
            .held
            .get(name)
            .filter(|held| now < held.expires_at)
            .map(|held| FencingToken::new(held.token))
    }

    fn shard(&self, name: &str) -> &Shard {
        // A fixed seed: shard choice must not vary between runs (loom replays them).
        let hash = foldhash::fast::FixedState::default().hash_one(name);
        &self.inner.shards[(hash as usize) & (SHARDS - 1)]
    }

    fn attempt(
        &self,
        name: &str,
        ttl: Duration,
        waiter: Option<&mut Waiter<'_>>,
    ) -> Result<Attempt, LockError> {
        let shard = self.shard(name);
        let mut table = lock(&shard.table);
        // Read inside the critical section, so readings follow the order of decisions.
        let now = self.inner.clock.now();
        let expires_at = now.checked_add(ttl).ok_or(LockError::InvalidTtl { ttl })?;
        if let Some(held) = table.held.get_mut(name) {
            let owed = waiter
                .as_ref()
                .and_then(|waiter| waiter.since)
                .is_some_and(|since| since < held.handoffs);
            let busy_until = if now < held.expires_at {
                Some(held.expires_at)
            } else if now < held.handoff_until && !owed {
                Some(held.handoff_until)
            } else {
                None
            };
            if let Some(busy_until) = busy_until {
                if let Some(waiter) = waiter.filter(|waiter| waiter.since.is_none()) {
                    waiter.since = Some(held.handoffs);
                    held.waiting += 1;
                }
                return Ok(Attempt::HeldUntil(busy_until));
            }
        }
        let token = table
            .last_token
            .checked_add(1)
            .ok_or_else(|| LockError::TokensExhausted { name: name.into() })?;
        table.last_token = token;
        let name = match table.held.get_mut(name) {
            Some(held) => {
                held.token = token;
                held.expires_at = expires_at;
                held.handoff_until = Instant::ZERO;
                held.name.clone()
            }
            None => {
                table.new_names_since_sweep += 1;
                if table.new_names_since_sweep >= table.sweep_after.max(MIN_SWEEP_INTERVAL) {
                    table
                        .held
                        .retain(|_, held| now < held.expires_at || held.waiting > 0);
                    table.new_names_since_sweep = 0;
                    table.sweep_after = table.held.len();
                }
                let name: Arc<str> = Arc::from(name);
                let held = Held {
                    name: name.clone(),
                    token,
                    expires_at,
                    waiting: 0,
                    handoffs: 0,
                    handoff_until: Instant::ZERO,
                };
                table.held.insert(name.clone(), held);
                name
            }
        };
        Ok(Attempt::Granted(Lease::new(
            name,
            FencingToken::new(token),
            expires_at,
            ttl,
        )))
    }
}

impl<C: Clock> LockService for InMemoryLockService<C> {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, LockError> {
        self.try_acquire_now(name, ttl)
    }

    async fn acquire(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Lease, LockError> {
        check_name(name)?;
        check_ttl(ttl)?;
        let clock = &self.inner.clock;
        let shard = self.shard(name);
        let start = clock.now();
        let deadline = start.saturating_add(wait);
        let mut waiter = Waiter {
            shard,
            name,
            since: None,
        };
        loop {
            // Registered before the attempt, so a release right after it is not missed.
            let mut released = pin!(shard.released.notified());
            released.as_mut().enable();
            let held_until = match self.attempt(name, ttl, Some(&mut waiter))? {
                Attempt::Granted(lease) => return Ok(lease),
                Attempt::HeldUntil(expires_at) => expires_at,
            };
            let now = clock.now();
            if now >= deadline {
                return Err(LockError::Busy {
                    name: name.into(),
                    waited: now - start,
                });
            }
            // Waiting needs tokio's timer; under another executor, say so instead of panicking.
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(LockError::NoRuntime);
            }
            let wake = held_until.min(deadline);
            tokio::select! {
                () = released => {}
                () = tokio::time::sleep(wake - now) => {}
            }
        }
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        self.extend_now(lease, ttl)
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        self.release_now(lease)
    }

    fn now(&self) -> Instant {
        self.inner.clock.now()
    }
}

impl<C: Clock> Clone for InMemoryLockService<C> {
    fn clone(&self) -> InMemoryLockService<C> {
        InMemoryLockService {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Clock> fmt::Debug for InMemoryLockService<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryLockService")
            .field("clock", &self.inner.clock)
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

fn lock(table: &Mutex<Table>) -> impl DerefMut<Target = Table> + '_ {
    // No code panics while holding a table, so a poisoned one is still consistent.
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn check_name(name: &str) -> Result<(), LockError> {
    if name.is_empty() {
        Err(LockError::EmptyName)
    } else {
        Ok(())
    }
}

pub(crate) fn check_ttl(ttl: Duration) -> Result<(), LockError> {
    if ttl.is_zero() {
        Err(LockError::InvalidTtl { ttl })
    } else {
        Ok(())
    }
}

fn not_held(lease: &Lease) -> LockError {
    LockError::NotHeld {
        name: lease.shared_name().clone(),
        token: lease.token(),
    }
}

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;
    use keel_core::ManualClock;

    const TTL: Duration = Duration::from_secs(5);

    #[test]
    fn grant_hold_expire_regrant() -> Result<(), LockError> {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        let first = service.try_acquire_now("a", TTL)?.expect("free");
        assert_eq!(service.holder("a"), Some(first.token()));
        assert!(service.try_acquire_now("a", TTL)?.is_none());
        clock.advance(TTL - Duration::from_nanos(1));
        assert!(service.try_acquire_now("a", TTL)?.is_none());
        clock.advance(Duration::from_nanos(1));
        assert_eq!(service.holder("a"), None);
        let second = service.try_acquire_now("a", TTL)?.expect("expired");
        assert!(second.token() > first.token());
        assert!(service.release_now(&first).unwrap_err().is_not_held());
        assert!(service.extend_now(&first, TTL).unwrap_err().is_not_held());
        service.release_now(&second)?;
        assert!(service.release_now(&second).unwrap_err().is_not_held());
        Ok(())
    }

    #[test]
    fn extend_keeps_token_and_moves_expiry() -> Result<(), LockError> {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        let lease = service.try_acquire_now("a", TTL)?.expect("free");
        clock.advance(Duration::from_secs(4));
        let extended = service.extend_now(&lease, TTL)?;
        assert_eq!(extended.token(), lease.token());
        assert_eq!(extended.expires_at(), clock.now() + TTL);
        clock.advance(Duration::from_secs(4));
        assert!(service.try_acquire_now("a", TTL)?.is_none());
        clock.advance(Duration::from_secs(1));
        assert!(
            service
                .extend_now(&extended, TTL)
                .unwrap_err()
                .is_not_held()
        );
        Ok(())
    }

    #[test]
    fn rejects_bad_input() {
        let service = InMemoryLockService::new();
        assert!(matches!(
            service.try_acquire_now("", TTL),
            Err(LockError::EmptyName)
        ));
        assert!(matches!(
            service.try_acquire_now("a", Duration::ZERO),
            Err(LockError::InvalidTtl { .. })
        ));
        assert!(matches!(
            service.try_acquire_now("a", Duration::MAX),
            Err(LockError::InvalidTtl { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_counted_until_they_return_or_are_dropped() -> Result<(), LockError> {
        let service = InMemoryLockService::with_clock(keel_core::TokioClock::new());
        let held = service.try_acquire_now("a", TTL)?.expect("free");
        let waiter = tokio::spawn({
            let service = service.clone();
            async move { service.acquire("a", TTL, TTL * 2).await }
        });
        tokio::task::yield_now().await;
        let waiting = |service: &InMemoryLockService<_>| {
            lock(&service.shard("a").table)
                .held
                .get("a")
                .map(|held| held.waiting)
        };
        assert_eq!(waiting(&service), Some(1));
        waiter.abort();
        assert!(waiter.await.is_err());
        assert_eq!(waiting(&service), Some(0));
        // With nobody waiting, a release hands nothing over: the lock is free at once.
        service.release_now(&held)?;
        assert!(service.try_acquire_now("a", TTL)?.is_some());
        Ok(())
    }

    #[test]
    fn expired_names_are_swept() -> Result<(), LockError> {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        for i in 0..10_000 {
            service.try_acquire_now(&format!("name-{i}"), TTL)?;
            clock.advance(Duration::from_millis(10));
        }
        let total: usize = service
            .inner
            .shards
            .iter()
            .map(|shard| lock(&shard.table).held.len())
            .sum();
        // Only names of the last TTL (500 of them) must stay, plus what sweeps have not reached.
        assert!(
            total < 500 + SHARDS * 2 * MIN_SWEEP_INTERVAL,
            "{total} entries"
        );
        Ok(())
    }
}
