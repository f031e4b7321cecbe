//! `InMemoryLockService`: leases for the tasks and threads of one process.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::ops::DerefMut;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use keel_core::sync::Mutex;
use keel_core::{Clock, Instant, SystemClock};
use tokio::sync::oneshot;

use crate::{FencingToken, Lease, LockError, LockService};

/// Shards of the name table; a power of two so a hash picks one with a mask.
const SHARDS: usize = 32;
/// A shard sweeps expired entries after at least this many new names.
const MIN_SWEEP_INTERVAL: usize = 64;
/// How long a lock released to a waiter stays reserved for it before anyone may take it.
const HANDOFF: Duration = Duration::from_millis(10);

/// A lock service inside one process: leases on names, with strictly increasing fencing tokens.
///
/// Names are spread over 32 shards, each a small mutex-guarded table, so unrelated names
/// rarely contend and every decision (grant, extend, release) is one short critical section
/// that reads the clock, compares and writes: the name is hashed once (foldhash, seeded at
/// random per service) for both the shard and the table, no allocation once a name has been
/// seen, and nothing held across an `.await`. Tokens come from a counter per shard, so they
/// are strictly increasing per name (a name always maps to the same shard) and never
/// reused, also after a name's entry is swept away.
///
/// Expiry is read from the [`Clock`]: a lease whose `expires_at` has passed is free for the
/// next acquirer, and can be neither extended nor released. Expired and released entries
/// are swept lazily (a shard sweeps once it has added as many new names as it kept at its
/// last sweep), so memory stays proportional to the names held recently.
///
/// [`acquire`](LockService::acquire) waits without polling, in a first-come, first-served
/// queue per name: it sleeps until a release hands it the lock, or until the holder's lease
/// runs out, or until its own limit. Waiting needs a tokio runtime with timers: an `acquire`
/// that has to wait anywhere else fails with [`LockError::NoRuntime`].
///
/// A release with acquirers waiting hands the lock to the longest-waiting one and wakes only
/// that one, so a holder that releases and at once acquires again goes to the back of the
/// queue and cannot starve the waiters. The lock stays reserved for that waiter for up to
/// 10 ms (it takes the lease with its own TTL when it runs); during that time
/// [`try_acquire`](LockService::try_acquire) by anyone else finds the lock busy, and after
/// it a waiter too slow to run loses the reservation to whoever asks next. A lease that
/// simply expires is not handed over: the first to ask takes it. Those sleeps use tokio's
/// timer, so with a [`ManualClock`](keel_core::ManualClock) the service only wakes on
/// releases; use `TokioClock` (keel-core feature `tokio`) with paused tokio time to test
/// waiting for expiry.
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
    /// Seeds the one hash of a name (random per service; fixed under loom, which replays).
    hasher: foldhash::fast::FixedState,
    shards: Box<[Shard]>,
}

struct Shard {
    table: Mutex<Table>,
}

/// The names of one shard, keyed by their 64-bit hash, so a decision hashes the name once.
#[derive(Default)]
struct Table {
    held: HashMap<u64, Held, BuildHasherDefault<KeyIsHash>>,
    /// Names whose hash another name of the shard already has (rare: 2^-64 per pair).
    collided: Vec<Held>,
    /// The last token issued for a name in this shard.
    last_token: u64,
    /// Numbers the waiters of this shard.
    last_waiter: u64,
    new_names_since_sweep: usize,
    /// Sweep after this many new names: the size after the last sweep, so a sweep's cost is
    /// paid for by the inserts before it.
    sweep_after: usize,
}

/// The table's keys are already hashes: passes them through.
#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than panic.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

impl Table {
    fn find(&mut self, hash: u64, name: &str) -> Option<&mut Held> {
        match self.held.get_mut(&hash) {
            Some(held) if *held.name == *name => Some(held),
            Some(_) => self.collided.iter_mut().find(|held| *held.name == *name),
            None => None,
        }
    }

    fn next_token(&mut self, name: &str) -> Result<u64, LockError> {
        let token = self
            .last_token
            .checked_add(1)
            .ok_or_else(|| LockError::TokensExhausted { name: name.into() })?;
        self.last_token = token;
        Ok(token)
    }

    /// Sweeps expired entries once the shard has added as many new names as it kept at
    /// its last sweep.
    #[inline]
    fn sweep_now_and_then(&mut self, now: Instant) {
        if self.new_names_since_sweep < self.sweep_after.max(MIN_SWEEP_INTERVAL) {
            return;
        }
        let live = |held: &Held| now < held.expires_at || !held.queue.is_empty();
        self.held.retain(|_, held| live(held));
        self.collided.retain(live);
        self.new_names_since_sweep = 0;
        self.sweep_after = self.held.len() + self.collided.len();
    }
}

/// `name`'s entry, added if it has none, in one lookup; a free function over the fields it
/// needs, so the caller can still use the table's counters.
fn entry<'t>(
    held: &'t mut HashMap<u64, Held, BuildHasherDefault<KeyIsHash>>,
    collided: &'t mut Vec<Held>,
    new_names: &mut usize,
    hash: u64,
    name: &str,
) -> &'t mut Held {
    let fresh = || Held {
        name: Arc::from(name),
        token: 0,
        expires_at: Instant::ZERO,
        queue: VecDeque::new(),
    };
    match held.entry(hash) {
        Entry::Occupied(occupied) if *occupied.get().name == *name => occupied.into_mut(),
        Entry::Occupied(_) => match collided.iter().position(|held| *held.name == *name) {
            Some(position) => &mut collided[position],
            None => {
                *new_names += 1;
                collided.push(fresh());
                collided.last_mut().expect("just pushed")
            }
        },
        Entry::Vacant(vacant) => {
            *new_names += 1;
            vacant.insert(fresh())
        }
    }
}

/// A name's last grant. Released entries stay (with `expires_at` zero) until a sweep, so
/// acquire and release each take one lookup.
struct Held {
    name: Arc<str>,
    token: u64,
    /// When the lease (or a waiter's reservation) ends.
    expires_at: Instant,
    /// Acquirers waiting for this name, longest-waiting first.
    queue: VecDeque<Queued>,
}

/// A waiter's place in a name's queue.
struct Queued {
    id: u64,
    /// Where a release sends the token it reserved for this waiter.
    grant: oneshot::Sender<u64>,
}

/// An acquirer in a queue, from [`LockService::acquire`]: leaves the queue when dropped,
/// and gives back a reservation it was handed but never took.
struct Waiter<'a, C: Clock> {
    service: &'a InMemoryLockService<C>,
    hash: u64,
    name: &'a str,
    id: u64,
    granted: oneshot::Receiver<u64>,
}

impl<C: Clock> Drop for Waiter<'_, C> {
    fn drop(&mut self) {
        let shard = self.service.shard(self.hash);
        let mut table = lock(&shard.table);
        let Some(held) = table.find(self.hash, self.name) else {
            return;
        };
        if let Some(position) = held.queue.iter().position(|queued| queued.id == self.id) {
            held.queue.remove(position);
            return;
        }
        // Out of the queue: a release reserved the lock for this waiter. Hand it on.
        if let Ok(token) = self.granted.try_recv()
            && held.token == token
        {
            let now = self.service.inner.clock.now();
            if now < held.expires_at {
                held.expires_at = Instant::ZERO;
                self.service
                    .hand_over(&mut table, self.hash, self.name, now);
            }
        }
    }
}

/// What one attempt found.
enum Attempt {
    Granted(Lease),
    /// Busy until then; the id of the waiter queued by the attempt, if it was asked to.
    HeldUntil(Instant, Option<u64>),
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
            })
            .collect();
        InMemoryLockService {
            inner: Arc::new(Inner {
                clock,
                hasher: foldhash::fast::FixedState::with_seed(seed()),
                shards,
            }),
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
        match self.attempt(self.hash(name), name, ttl, None, None, None)? {
            Attempt::Granted(lease) => Ok(Some(lease)),
            Attempt::HeldUntil(..) => Ok(None),
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
        let hash = self.hash(lease.name());
        let mut table = lock(&self.shard(hash).table);
        let now = self.inner.clock.now();
        let expires_at = now.checked_add(ttl).ok_or(LockError::InvalidTtl { ttl })?;
        match table.find(hash, lease.name()) {
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
        let hash = self.hash(lease.name());
        let mut table = lock(&self.shard(hash).table);
        let now = self.inner.clock.now();
        match table.find(hash, lease.name()) {
            Some(held) if held.token == lease.token().get() && now < held.expires_at => {
                held.expires_at = Instant::ZERO;
                if !held.queue.is_empty() {
                    self.hand_over(&mut table, hash, lease.name(), now);
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
        let hash = self.hash(name);
        let mut table = lock(&self.shard(hash).table);
        let now = self.inner.clock.now();
        table
            .find(hash, name)
            .filter(|held| now < held.expires_at)
            .map(|held| FencingToken::new(held.token))
    }

    fn hash(&self, name: &str) -> u64 {
        self.inner.hasher.hash_one(name)
    }

    fn shard(&self, hash: u64) -> &Shard {
        // Bits the table's probing uses least (it takes the low bits and the top seven).
        &self.inner.shards[((hash >> 32) as usize) & (SHARDS - 1)]
    }

    /// Reserves the free lock of `name` for the longest-waiting acquirer still listening,
    /// for [`HANDOFF`]; the table is locked and the name's entry exists.
    fn hand_over(&self, table: &mut Table, hash: u64, name: &str, now: Instant) {
        loop {
            let Some(held) = table.find(hash, name) else {
                return;
            };
            let Some(queued) = held.queue.pop_front() else {
                return;
            };
            if queued.grant.is_closed() {
                continue;
            }
            let Ok(token) = table.next_token(name) else {
                return; // no token left to reserve with: the lock stays free
            };
            let held = table.find(hash, name).expect("found above");
            if queued.grant.send(token).is_ok() {
                held.token = token;
                held.expires_at = now.saturating_add(HANDOFF);
                return;
            }
        }
    }

    /// One decision for `name`: a grant, or when the holder's lease ends. A waiter handed
    /// a reservation (the token `reserved`) takes it; a `queued` waiter granted otherwise
    /// leaves its queue. When busy, queues `enqueue` in the same critical section, so no
    /// release can slip in between.
    fn attempt(
        &self,
        hash: u64,
        name: &str,
        ttl: Duration,
        queued: Option<u64>,
        reserved: Option<u64>,
        enqueue: Option<oneshot::Sender<u64>>,
    ) -> Result<Attempt, LockError> {
        let mut table = lock(&self.shard(hash).table);
        // Read inside the critical section, so readings follow the order of decisions.
        let now = self.inner.clock.now();
        let expires_at = now.checked_add(ttl).ok_or(LockError::InvalidTtl { ttl })?;
        let table = &mut *table;
        table.sweep_now_and_then(now);
        let held = entry(
            &mut table.held,
            &mut table.collided,
            &mut table.new_names_since_sweep,
            hash,
            name,
        );
        if now < held.expires_at {
            if reserved == Some(held.token) {
                // Our reservation: take it with our own TTL, under its token.
                held.expires_at = expires_at;
                return Ok(Attempt::Granted(Lease::new(
                    held.name.clone(),
                    FencingToken::new(held.token),
                    expires_at,
                    ttl,
                )));
            }
            let id = enqueue.map(|grant| {
                table.last_waiter += 1;
                held.queue.push_back(Queued {
                    id: table.last_waiter,
                    grant,
                });
                table.last_waiter
            });
            return Ok(Attempt::HeldUntil(held.expires_at, id));
        }
        let token = table
            .last_token
            .checked_add(1)
            .ok_or_else(|| LockError::TokensExhausted { name: name.into() })?;
        table.last_token = token;
        if let Some(id) = queued
            && let Some(position) = held.queue.iter().position(|queued| queued.id == id)
        {
            held.queue.remove(position);
        }
        held.token = token;
        held.expires_at = expires_at;
        Ok(Attempt::Granted(Lease::new(
            held.name.clone(),
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
        let hash = self.hash(name);
        let start = clock.now();
        let deadline = start.saturating_add(wait);
        let mut waiter: Option<Waiter<'_, C>> = None;
        let mut reserved = None;
        loop {
            let queued = waiter.as_ref().map(|waiter| waiter.id);
            let mut held_until =
                match self.attempt(hash, name, ttl, queued, reserved.take(), None)? {
                    Attempt::Granted(lease) => return Ok(lease),
                    Attempt::HeldUntil(expires_at, _) => expires_at,
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
            let queued = match &mut waiter {
                Some(queued) => queued,
                None => {
                    // Try again and queue in one step, so a release in between is not missed.
                    let (grant, granted) = oneshot::channel();
                    match self.attempt(hash, name, ttl, None, None, Some(grant))? {
                        Attempt::Granted(lease) => return Ok(lease),
                        Attempt::HeldUntil(expires_at, id) => {
                            held_until = expires_at;
                            waiter.insert(Waiter {
                                service: self,
                                hash,
                                name,
                                id: id.expect("queued when busy"),
                                granted,
                            })
                        }
                    }
                }
            };
            let wake = held_until.min(deadline);
            tokio::select! {
                biased;
                granted = &mut queued.granted => {
                    // Out of the queue either way: with a reservation to take, or (rarely)
                    // without one, to queue again if the lock is still busy.
                    waiter = None;
                    reserved = granted.ok();
                }
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

/// The seed of a service's name hash: random, except under loom, whose runs must replay.
fn seed() -> u64 {
    if cfg!(keel_loom) {
        0
    } else {
        foldhash::fast::RandomState::default().hash_one(0u64)
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
    async fn waiters_queue_until_they_return_or_are_dropped() -> Result<(), LockError> {
        let service = InMemoryLockService::with_clock(keel_core::TokioClock::new());
        let held = service.try_acquire_now("a", TTL)?.expect("free");
        let waiter = tokio::spawn({
            let service = service.clone();
            async move { service.acquire("a", TTL, TTL * 2).await }
        });
        tokio::task::yield_now().await;
        let waiting = |service: &InMemoryLockService<_>| {
            let hash = service.hash("a");
            lock(&service.shard(hash).table)
                .find(hash, "a")
                .map(|held| held.queue.len())
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

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_first_come_first_served() -> Result<(), LockError> {
        let service = InMemoryLockService::with_clock(keel_core::TokioClock::new());
        let mut lease = service.try_acquire_now("a", TTL)?.expect("free");
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..4 {
            let (service, order) = (service.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let lease = service.acquire("a", TTL, TTL).await?;
                order.lock().expect("order").push((i, lease.token()));
                service.release(&lease).await
            }));
            // Each waiter queues before the next one starts.
            tokio::task::yield_now().await;
        }
        service.release_now(&lease)?;
        for task in tasks {
            task.await.expect("task")?;
        }
        let order = order.lock().expect("order").clone();
        assert_eq!(
            order.iter().map(|&(i, _)| i).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert!(order.windows(2).all(|pair| pair[0].1 < pair[1].1));
        lease = service.try_acquire_now("a", TTL)?.expect("free again");
        assert!(lease.token() > order[3].1);
        Ok(())
    }

    #[test]
    fn names_with_one_hash_keep_separate_entries() -> Result<(), LockError> {
        let service = InMemoryLockService::with_clock(ManualClock::new());
        let mut table = Table::default();
        let now = Instant::ZERO;
        let mut added = 0;
        entry(&mut table.held, &mut table.collided, &mut added, 7, "a").expires_at = now + TTL;
        entry(&mut table.held, &mut table.collided, &mut added, 7, "b");
        entry(&mut table.held, &mut table.collided, &mut added, 7, "b");
        assert_eq!(added, 2);
        assert_eq!(table.collided.len(), 1);
        assert_eq!(
            table.find(7, "a").map(|held| held.expires_at),
            Some(now + TTL)
        );
        assert_eq!(
            table.find(7, "b").map(|held| held.expires_at),
            Some(Instant::ZERO)
        );
        assert!(table.find(7, "c").is_none());
        drop(service);
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
            .map(|shard| {
                let table = lock(&shard.table);
                table.held.len() + table.collided.len()
            })
            .sum();
        // Only names of the last TTL (500 of them) must stay, plus what sweeps have not reached.
        assert!(
            total < 500 + SHARDS * 2 * MIN_SWEEP_INTERVAL,
            "{total} entries"
        );
        Ok(())
    }
}
