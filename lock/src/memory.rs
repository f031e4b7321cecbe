//! `InMemoryLockService`: leases for the tasks and threads of one process, and `LockHandle`,
//! one name of it kept at hand.

use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, PoisonError};
use std::task::Poll;
use std::time::Duration;

use keel_core::sync::{Mutex, MutexGuard};
use keel_core::{Clock, Instant, SystemClock};

use crate::blocking::acquire_blocking_on;
use crate::lease::{LeaseName, NOT_GRANTED_HERE, Origin};
use crate::slot::{Asker, Attempt, Slot, next_id};
use crate::{FencingToken, Lease, LockError, LockService};

/// Shards of the name table; a power of two so a hash picks one with a mask.
const SHARDS: usize = 32;
/// A shard sweeps expired entries after at least this many new names.
const MIN_SWEEP_INTERVAL: usize = 64;

/// A lock service inside one process: leases on names, with strictly increasing fencing tokens.
///
/// Each name has its own state, a single atomic word (the name's last token and three flags)
/// beside the lease's expiry: an uncontended grant is one compare-and-swap and two stores, an
/// uncontended release one compare-and-swap, with no allocation and no lock. A held lock,
/// waiters, `extend` and hand-overs take the name's own mutex. Names are found in 32 shards
/// of mutex-guarded tables (foldhash, seeded at random per service); a [`LockHandle`] from
/// [`handle`](InMemoryLockService::handle) finds its name once and skips the table from
/// then on. A lease granted by name holds its name's state (one shared reference count), so
/// releasing or extending it skips the table as well. Tokens are counted per name, strictly
/// increasing and never reused, also after a name's entry is swept away (a shard remembers
/// the highest token of the names it swept).
///
/// Expiry is read from the [`Clock`]: a lease whose `expires_at` has passed is free for the
/// next acquirer, and can be neither extended nor released. Grants and releases read
/// [`Clock::recent`] (one atomic load on [`SystemClock`], trailing the exact reading by about
/// a millisecond); holders, `extend`, [`holder`](InMemoryLockService::holder) and
/// [`LockService::now`] read the exact [`Clock::now`]. That is safe because a trailing
/// reading only errs one way: a grant's expiry comes out earlier than an exact one (a
/// shorter lease for its holder, who checks it with the exact clock), and a contender reads
/// a held lease as live a little longer. So once a contender is granted the lock, the
/// previous holder's exact reading already shows its lease expired (tested with a lagging
/// manual clock in `tests/coarse_clock.rs`). A release may be accepted up to that lag after
/// the lease's expiry, but only when nobody was granted the lock meanwhile. Expired and
/// released entries that no handle, waiter or lease granted by name holds are swept lazily (a
/// shard sweeps once it has added as many new names as it kept at its last sweep), so memory
/// stays proportional to the names held recently and the leases kept.
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
/// simply expires is not handed over: the first to ask takes it. A name's async waiters
/// share one tokio timer, kept armed between waits and moved only earlier, so a wait does
/// not register a timer of its own (which would wake the tokio driver each time). Those
/// sleeps use tokio's timer, so with a [`ManualClock`](keel_core::ManualClock) the service
/// only wakes on releases; use `TokioClock` (keel-core feature `tokio`) with paused tokio
/// time to test waiting for expiry.
///
/// Besides the async [`LockService`] methods, which never wait except in `acquire`, the
/// service has synchronous twins ([`try_acquire_now`](InMemoryLockService::try_acquire_now),
/// [`extend_now`](InMemoryLockService::extend_now),
/// [`release_now`](InMemoryLockService::release_now)) for code outside a runtime, and
/// [`acquire_blocking`](InMemoryLockService::acquire_blocking), which blocks the thread as a
/// mutex does: it spins briefly, then parks in the same queue. A release wakes a parked
/// thread to compete for the free lock rather than reserving it, up to 64 times, then hands
/// it over as to an async waiter.
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
    /// Tells this service's leases from another's (ids are never reused in the process).
    id: u64,
    clock: C,
    /// Seeds the one hash of a name (random per service; fixed under loom, which replays).
    hasher: foldhash::fast::FixedState,
    /// An array, not a boxed slice: picking a shard needs no bounds check and no pointer.
    shards: [Shard; SHARDS],
}

struct Shard {
    table: Mutex<Table>,
}

/// The names of one shard, keyed by their 64-bit hash, so a lookup hashes the name once.
#[derive(Default)]
struct Table {
    slots: HashMap<u64, Arc<Slot>, BuildHasherDefault<KeyIsHash>>,
    /// Names whose hash another name of the shard already has (rare: 2^-64 per pair).
    collided: Vec<Arc<Slot>>,
    /// The highest token of the names swept from this shard: a name added again starts
    /// above it, so its tokens keep increasing.
    floor: u64,
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
    /// The entry of the name whose UTF-8 bytes are `name`.
    #[inline]
    fn find(&self, hash: u64, name: &[u8]) -> Option<&Arc<Slot>> {
        match self.slots.get(&hash) {
            Some(slot) if slot.name.is(name) => Some(slot),
            // Also with no entry for the hash: a sweep may have taken the one a collided
            // name was set aside for.
            _ => self.collided.iter().find(|slot| slot.name.is(name)),
        }
    }

    /// The entry that may hold `lease`: the one its granter's id names, without comparing
    /// names (a slot grants only its own name's leases, and slot ids are never reused, so a
    /// swept slot's leases never match a new one), else the entry of its name.
    #[inline]
    fn find_lease(&self, hash: u64, lease: &Lease) -> Option<&Arc<Slot>> {
        match self.slots.get(&hash) {
            Some(slot) if slot.id == lease.granted_by() => Some(slot),
            _ => self.find(hash, lease.lease_name().bytes()),
        }
    }

    /// Runs `op` on `name`'s entry, added if it has none.
    #[inline]
    fn with_entry<R>(
        &mut self,
        hash: u64,
        name: &str,
        now: Instant,
        service: u64,
        op: impl FnOnce(&Arc<Slot>) -> R,
    ) -> R {
        // One call of `op` for both ways, so that it is inlined here.
        let slot = match self.find(hash, name.as_bytes()) {
            Some(slot) => slot,
            None => self.add(hash, name, now, service),
        };
        op(slot)
    }

    /// Adds the entry of `name`, which has none, sweeping first now and then.
    #[cold]
    fn add(&mut self, hash: u64, name: &str, now: Instant, service: u64) -> &Arc<Slot> {
        self.sweep_now_and_then(now);
        self.new_names_since_sweep += 1;
        let fresh = Arc::new(Slot::new(LeaseName::new(name), self.floor, service));
        match self.slots.entry(hash) {
            std::collections::hash_map::Entry::Vacant(vacant) => vacant.insert(fresh),
            std::collections::hash_map::Entry::Occupied(_) => {
                let index = self.collided.len();
                self.collided.push(fresh);
                &self.collided[index]
            }
        }
    }

    /// Sweeps entries nobody uses (no live lease, no waiter, no handle, no lease granted by
    /// name) once the shard has added as many new names as it kept at its last sweep.
    fn sweep_now_and_then(&mut self, now: Instant) {
        if self.new_names_since_sweep < self.sweep_after.max(MIN_SWEEP_INTERVAL) {
            return;
        }
        let mut floor = self.floor;
        // Only the table holds an unused entry's slot, so nothing can change it meanwhile.
        let mut keep = |slot: &Arc<Slot>| {
            let used = Arc::strong_count(slot) > 1 || slot.in_use(now);
            if !used {
                floor = floor.max(slot.last_token());
            }
            used
        };
        self.slots.retain(|_, slot| keep(slot));
        self.collided.retain(|slot| keep(slot));
        self.floor = floor;
        self.new_names_since_sweep = 0;
        self.sweep_after = self.slots.len() + self.collided.len();
    }
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
        let shards = std::array::from_fn(|_| Shard {
            table: Mutex::new(Table::default()),
        });
        InMemoryLockService {
            inner: Arc::new(Inner {
                id: next_id(),
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
        let (now, expires_at) = self.grant_expiry(ttl)?;
        let hash = self.hash(name.as_bytes());
        let service = self.inner.id;
        lock(&self.shard(hash).table).with_entry(hash, name, now, service, |slot| {
            match slot.try_acquire(now, expires_at) {
                Attempt::Granted(token) => Ok(Some(grant_by_name(slot, token, expires_at, ttl))),
                Attempt::HeldUntil(..) => Ok(None),
                Attempt::Exhausted => Err(exhausted(&slot.name)),
            }
        })
    }

    /// [`LockService::acquire`], blocking the thread: for code outside a runtime that must
    /// wait for the lock, as it would for a mutex.
    ///
    /// It spins briefly, then parks in the name's queue until a release wakes it, the
    /// holder's lease runs out, or `wait` passes, each judged on the service's [`Clock`]. A
    /// release wakes a parked thread to compete for the lock, so a thread that takes the
    /// lock again at once keeps it warm in its cache meanwhile (as `parking_lot` does); after
    /// 64 such wakes without winning, the next
    /// release hands the lock to it, as it does to async waiters at once: nobody waits
    /// forever while the lock changes hands. The OS times the park in real time and the
    /// clock is read again on waking, at least every 10 ms, so a
    /// [`ManualClock`](keel_core::ManualClock) that a test advances ends the wait too. Do not
    /// call it on an async runtime's thread; use [`acquire`](LockService::acquire) there.
    ///
    /// # Errors
    ///
    /// [`LockError::Busy`] when `wait` passes with the lock still held, and as
    /// [`try_acquire_now`](InMemoryLockService::try_acquire_now).
    ///
    /// ```
    /// use keel_lock::{InMemoryLockService, LockError};
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let ttl = Duration::from_secs(10);
    /// let first = service.acquire_blocking("jobs", ttl, Duration::ZERO)?;
    /// let waiter = std::thread::spawn({
    ///     let service = service.clone();
    ///     move || service.acquire_blocking("jobs", ttl, Duration::from_secs(60))
    /// });
    /// service.release_now(&first)?; // wakes the waiter, or it finds the lock free
    /// let second = waiter.join().map_err(|_| "panicked")??;
    /// assert!(second.token() > first.token());
    /// let busy = service.acquire_blocking("jobs", ttl, Duration::from_millis(1));
    /// assert!(matches!(busy, Err(LockError::Busy { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire_blocking(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Lease, LockError> {
        match self.try_or_wait_on(name, ttl)? {
            Ok(lease) => Ok(lease),
            Err(slot) => {
                acquire_blocking_on::<C, BY_NAME>(&self.inner.clock, &slot, &slot.name, ttl, wait)
            }
        }
    }

    /// [`LockService::extend`], synchronously.
    ///
    /// # Errors
    ///
    /// [`LockError::NotHeld`] when the lease expired, was released or was taken over, or
    /// another service granted it (see [`release_now`](InMemoryLockService::release_now)),
    /// and [`LockError::InvalidTtl`].
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
        if let Some(slot) = self.own_state(lease) {
            let (now, expires_at) = self.expiry(ttl)?;
            return extend_on::<BY_NAME>(slot, &slot.name, lease, now, expires_at, ttl);
        }
        let hash = self.hash(lease.lease_name().bytes());
        let table = lock(&self.shard(hash).table);
        let (now, expires_at) = self.expiry(ttl)?;
        match table.find_lease(hash, lease) {
            Some(slot) if granted_on(lease, slot) => {
                extend_on::<BY_NAME>(slot, &slot.name, lease, now, expires_at, ttl)
            }
            _ => Err(not_held(lease)),
        }
    }

    /// [`LockService::release`], synchronously; hands the lock to the longest-waiting
    /// acquirer, if any.
    ///
    /// # Errors
    ///
    /// [`LockError::NotHeld`] when the lease had already expired, been released or been
    /// taken over. Expiry is judged on [`Clock::recent`], so a lease that nobody took over
    /// can still be released for that reading's lag (about a millisecond on [`SystemClock`])
    /// after it expired. A lease remembers the name's state that granted it, so a lease
    /// another service granted is never this one's, even with the same name and token; a
    /// lease built with [`Lease::new`] is judged by its name and token alone.
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
        if let Some(slot) = self.own_state(lease) {
            let now = self.inner.clock.recent();
            return finish_release(slot.release(lease.token().get(), now), lease);
        }
        let hash = self.hash(lease.lease_name().bytes());
        let table = lock(&self.shard(hash).table);
        let now = self.inner.clock.recent();
        let released = match table.find_lease(hash, lease) {
            Some(slot) if granted_on(lease, slot) => slot.release(lease.token().get(), now),
            _ => Err(()),
        };
        drop(table);
        finish_release(released, lease)
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
        let hash = self.hash(name.as_bytes());
        let table = lock(&self.shard(hash).table);
        let now = self.inner.clock.now();
        table
            .find(hash, name.as_bytes())
            .and_then(|slot| slot.holder(now))
            .map(FencingToken::new)
    }

    /// A handle on one name: it finds the name's state once, so its operations skip the
    /// name table (no hashing, no table lock), and the name stays in the table while the
    /// handle lives. Leases from a handle and by name are the same leases: either can
    /// release or extend the other's.
    ///
    /// # Errors
    ///
    /// [`LockError::EmptyName`].
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let jobs = service.handle("jobs")?;
    /// let lease = jobs.try_acquire_now(Duration::from_secs(5))?.ok_or("held")?;
    /// assert!(service.try_acquire_now("jobs", Duration::from_secs(5))?.is_none()); // one lock
    /// service.release_now(&lease)?;
    /// assert!(jobs.try_acquire_now(Duration::from_secs(5))?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle(&self, name: &str) -> Result<LockHandle<C>, LockError> {
        check_name(name)?;
        let hash = self.hash(name.as_bytes());
        let now = self.inner.clock.now();
        let slot =
            lock(&self.shard(hash).table)
                .with_entry(hash, name, now, self.inner.id, |slot| slot.clone());
        Ok(LockHandle {
            service: self.clone(),
            slot,
            // Its own copy: leases from handles on different threads never share a reference
            // count, even for a name too long to live inline.
            name: LeaseName::new(name),
        })
    }

    /// The state that granted `lease` by name, when this service granted it: a release or
    /// extend goes to it without the table. It is still the name's entry in the table, which
    /// keeps every state a lease holds.
    #[inline]
    fn own_state<'l>(&self, lease: &'l Lease) -> Option<&'l Arc<Slot>> {
        lease
            .granting_state()
            .filter(|slot| slot.service == self.inner.id)
    }

    /// The exact reading, and the expiry of a lease for `ttl` from it.
    fn expiry(&self, ttl: Duration) -> Result<(Instant, Instant), LockError> {
        expiry_from(self.inner.clock.now(), ttl)
    }

    /// One try under the table's lock: a lease, or the name's slot to wait on (taken out of
    /// the table only to wait).
    fn try_or_wait_on(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Result<Lease, Arc<Slot>>, LockError> {
        check_name(name)?;
        let (now, expires_at) = self.grant_expiry(ttl)?;
        let hash = self.hash(name.as_bytes());
        let service = self.inner.id;
        lock(&self.shard(hash).table).with_entry(hash, name, now, service, |slot| {
            match slot.try_acquire(now, expires_at) {
                Attempt::Granted(token) => Ok(Ok(grant_by_name(slot, token, expires_at, ttl))),
                Attempt::Exhausted => Err(exhausted(&slot.name)),
                Attempt::HeldUntil(..) => Ok(Err(slot.clone())),
            }
        })
    }

    /// A grant's reading and expiry, from [`Clock::recent`], which may trail the exact
    /// reading (about a millisecond on [`SystemClock`]). Safe for a grant: the expiry comes
    /// out earlier than an exact one, which only shortens the holder's lease (it checks its
    /// lease with the exact reading), and a held lock read as not yet expired stays held a
    /// little longer for the contender. See the module's docs.
    #[inline]
    fn grant_expiry(&self, ttl: Duration) -> Result<(Instant, Instant), LockError> {
        expiry_from(self.inner.clock.recent(), ttl)
    }

    /// The hash of a name's UTF-8 bytes (not of the `str`, so a lease's inline name needs
    /// no validation to be looked up).
    fn hash(&self, name: &[u8]) -> u64 {
        self.inner.hasher.hash_one(name)
    }

    fn shard(&self, hash: u64) -> &Shard {
        // Bits the table's probing uses least (it takes the low bits and the top seven).
        &self.inner.shards[((hash >> 32) as usize) & (SHARDS - 1)]
    }
}

#[inline]
pub(crate) fn expiry_from(now: Instant, ttl: Duration) -> Result<(Instant, Instant), LockError> {
    check_ttl(ttl)?;
    let expires_at = now
        .checked_add(ttl)
        .ok_or_else(|| LockError::InvalidTtl { ttl })?;
    Ok((now, expires_at))
}

/// One try on a slot at the reading `now`: the grant's token and expiry, or `None` while the
/// lock is held. A handle's `try_acquire_now` and the blocking acquire start with it (the
/// latter also retries with it while spinning); each builds its lease from the grant.
#[inline]
pub(crate) fn try_once(
    slot: &Slot,
    name: &LeaseName,
    now: Instant,
    ttl: Duration,
) -> Result<Option<(u64, Instant)>, LockError> {
    let (now, expires_at) = expiry_from(now, ttl)?;
    granted(slot.try_acquire(now, expires_at), name, expires_at)
}

/// What one try's `attempt` comes to: the grant's token and `expires_at`, `None` while
/// held, or the error of a name out of tokens.
#[inline]
pub(crate) fn granted(
    attempt: Attempt,
    name: &LeaseName,
    expires_at: Instant,
) -> Result<Option<(u64, Instant)>, LockError> {
    match attempt {
        Attempt::Granted(token) => Ok(Some((token, expires_at))),
        Attempt::HeldUntil(..) => Ok(None),
        Attempt::Exhausted => Err(exhausted(name)),
    }
}

/// A grant by name: its lease holds the name's state, which holds the name.
pub(crate) const BY_NAME: bool = true;
/// A grant by a handle: its lease keeps its own copy of the name and the state's id, and
/// counts no shared reference.
pub(crate) const BY_HANDLE: bool = false;

/// A lease of `slot` with `token`, granted [`BY_NAME`] or [`BY_HANDLE`] (a constant, so
/// each caller compiles to one of the two); a handle's lease copies `name`, the handle's own.
#[inline]
pub(crate) fn grant<const NAMED: bool>(
    slot: &Arc<Slot>,
    name: &LeaseName,
    token: u64,
    expires_at: Instant,
    ttl: Duration,
) -> Lease {
    let origin = if NAMED {
        Origin::State(slot.clone())
    } else {
        Origin::Own {
            name: name.clone(),
            granted_by: slot.id,
        }
    };
    Lease::granted(origin, FencingToken::new(token), expires_at, ttl)
}

/// The lease of a grant by name: it holds the name's state.
#[inline]
fn grant_by_name(slot: &Arc<Slot>, token: u64, expires_at: Instant, ttl: Duration) -> Lease {
    grant::<BY_NAME>(slot, &slot.name, token, expires_at, ttl)
}

pub(crate) fn exhausted(name: &LeaseName) -> LockError {
    LockError::TokensExhausted {
        name: name.to_shared(),
    }
}

/// Whether `lease`, of `slot`'s name, may be `slot`'s: granted by it, or by nothing in
/// memory (built with [`Lease::new`], where the name alone decides, as for any service). A
/// lease another slot granted, of another service or of the name's swept state, is not.
#[inline]
fn granted_on(lease: &Lease, slot: &Slot) -> bool {
    lease.granted_by() == slot.id || lease.granted_by() == NOT_GRANTED_HERE
}

/// Extends `lease` on `slot`: the extended lease is granted [`BY_NAME`] or [`BY_HANDLE`]
/// (copying `name`), as [`grant`].
fn extend_on<const NAMED: bool>(
    slot: &Arc<Slot>,
    name: &LeaseName,
    lease: &Lease,
    now: Instant,
    expires_at: Instant,
    ttl: Duration,
) -> Result<Lease, LockError> {
    let token = lease.token().get();
    match slot.extend(token, now, expires_at) {
        Ok(()) => Ok(grant::<NAMED>(slot, name, token, expires_at, ttl)),
        Err(()) => Err(not_held(lease)),
    }
}

/// Wakes the waiter a release handed the lock to, outside every lock.
#[inline]
fn finish_release(
    released: Result<Option<std::task::Waker>, ()>,
    lease: &Lease,
) -> Result<(), LockError> {
    match released {
        Ok(next) => {
            if let Some(waker) = next {
                waker.wake();
            }
            Ok(())
        }
        Err(()) => Err(not_held(lease)),
    }
}

/// A place in a slot's queue: leaves it when dropped, and passes on a reservation it was
/// handed but never took.
pub(crate) struct Waiting<'a, C: Clock> {
    pub(crate) slot: &'a Slot,
    pub(crate) clock: &'a C,
    pub(crate) id: Option<u64>,
}

impl<C: Clock> Drop for Waiting<'_, C> {
    fn drop(&mut self) {
        if let Some(id) = self.id
            && let Some(next) = self.slot.leave(id, self.clock.now())
        {
            next.wake();
        }
    }
}

/// [`LockService::acquire`] on one name's slot: tries once, then waits in its queue.
async fn acquire_on<C: Clock, const NAMED: bool>(
    clock: &C,
    slot: &Arc<Slot>,
    name: &LeaseName,
    ttl: Duration,
    wait: Duration,
) -> Result<Lease, LockError> {
    // The first try spelled out, not `try_once`: in this future's state machine that cost 11
    // more instructions per uncontended acquire (157 against 146, callgrind).
    let (start, expires_at) = expiry_from(clock.recent(), ttl)?;
    match slot.try_acquire(start, expires_at) {
        Attempt::Granted(token) => {
            return Ok(grant::<NAMED>(slot, name, token, expires_at, ttl));
        }
        Attempt::Exhausted => return Err(exhausted(name)),
        Attempt::HeldUntil(..) => {}
    }
    let deadline = start.saturating_add(wait);
    let busy = |now: Instant| LockError::Busy {
        name: name.to_shared(),
        waited: now - start,
    };
    if wait.is_zero() {
        return Err(busy(start));
    }
    let mut waiting = Waiting {
        slot,
        clock,
        id: None,
    };
    poll_fn(|cx| {
        // The coarse reading, as for every grant (see the type's docs).
        let now = clock.recent();
        let expires_at = now
            .checked_add(ttl)
            .ok_or_else(|| LockError::InvalidTtl { ttl })?;
        let asker = Asker {
            id: waiting.id,
            waker: Some(cx.waker()),
            unfair: false,
        };
        let held_until = match slot.attempt(now, expires_at, asker) {
            Attempt::Granted(token) => {
                waiting.id = None;
                return Poll::Ready(Ok(grant::<NAMED>(slot, name, token, expires_at, ttl)));
            }
            Attempt::Exhausted => return Poll::Ready(Err(exhausted(name))),
            Attempt::HeldUntil(until, id) => {
                waiting.id = id;
                until
            }
        };
        if now >= deadline {
            return Poll::Ready(Err(busy(now)));
        }
        // Queued with our waker: a release wakes us, and the name's timer by the
        // holder's expiry or our limit, whichever comes first.
        if !slot.timer.arm(slot, now, held_until.min(deadline)) {
            // Waiting needs tokio's timer; elsewhere, say so instead of panicking.
            return Poll::Ready(Err(LockError::NoRuntime));
        }
        Poll::Pending
    })
    .await
}

impl<C: Clock> LockService for InMemoryLockService<C> {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, LockError> {
        self.try_acquire_now(name, ttl)
    }

    async fn acquire(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Lease, LockError> {
        match self.try_or_wait_on(name, ttl)? {
            Ok(lease) => Ok(lease),
            Err(slot) => {
                acquire_on::<C, BY_NAME>(&self.inner.clock, &slot, &slot.name, ttl, wait).await
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

/// One name of an [`InMemoryLockService`], kept at hand, as a mutex is: from
/// [`InMemoryLockService::handle`].
///
/// A handle holds the name's state, so its operations skip the name table: an uncontended
/// [`try_acquire_now`](LockHandle::try_acquire_now) is one compare-and-swap and two stores on
/// the name's state plus one [`Clock::recent`] reading, and
/// [`release_now`](LockHandle::release_now) one compare-and-swap and one such reading. A
/// lease keeps a name of up to 22 bytes inline, so a grant copies it and counts no shared
/// reference, and the id of the name's state that granted it, so a release knows its own
/// lease without comparing names. Its
/// leases are the service's leases: the same tokens, the same queue of waiters, the same
/// expiry; the service can release or extend them by name, and the handle those granted by
/// name. The name stays in the service's table while a handle on it lives.
///
/// Each clone has its own copy of a longer name, which the leases it grants share, so
/// handles used on different threads do not contend on one reference count.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_lock::InMemoryLockService;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let service = InMemoryLockService::with_clock(clock.clone());
/// let jobs = service.handle("jobs")?;
/// let ttl = Duration::from_secs(10);
///
/// let first = jobs.try_acquire_now(ttl)?.ok_or("held")?;
/// assert!(jobs.try_acquire_now(ttl)?.is_none()); // held
/// clock.advance(ttl); // the holder stalls past its lease
/// let second = jobs.try_acquire_now(ttl)?.ok_or("held")?;
/// assert!(second.token() > first.token());
/// assert!(jobs.release_now(&first).unwrap_err().is_not_held());
/// jobs.release_now(&second)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LockHandle<C: Clock = SystemClock> {
    service: InMemoryLockService<C>,
    slot: Arc<Slot>,
    name: LeaseName,
}

impl<C: Clock> LockHandle<C> {
    /// The lock's name.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    ///
    /// let service = InMemoryLockService::new();
    /// assert_eq!(service.handle("jobs")?.name(), "jobs");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The service the handle belongs to.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let jobs = service.handle("jobs")?;
    /// let lease = jobs.try_acquire_now(Duration::from_secs(5))?.ok_or("held")?;
    /// assert_eq!(jobs.service().holder("jobs"), Some(lease.token()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn service(&self) -> &InMemoryLockService<C> {
        &self.service
    }

    /// [`InMemoryLockService::try_acquire_now`] on this name: grants it for `ttl` if nobody
    /// holds it, without waiting.
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidTtl`] (zero, or past the clock's range) and
    /// [`LockError::TokensExhausted`].
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let jobs = InMemoryLockService::new().handle("jobs")?;
    /// let lease = jobs.try_acquire_now(Duration::from_secs(5))?.ok_or("held")?;
    /// assert_eq!(lease.name(), "jobs");
    /// assert!(jobs.try_acquire_now(Duration::from_secs(5))?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire_now(&self, ttl: Duration) -> Result<Option<Lease>, LockError> {
        let now = self.service.inner.clock.recent();
        let granted = try_once(&self.slot, &self.name, now, ttl)?;
        Ok(granted.map(|(token, expires_at)| {
            grant::<BY_HANDLE>(&self.slot, &self.name, token, expires_at, ttl)
        }))
    }

    /// [`LockService::acquire`] on this name: waits up to `wait`, first come, first served,
    /// for a release or for the holder's lease to run out.
    ///
    /// # Errors
    ///
    /// [`LockError::Busy`] when `wait` passes with the lock still held,
    /// [`LockError::NoRuntime`] when it has to wait outside a tokio runtime with timers, and
    /// as [`try_acquire_now`](LockHandle::try_acquire_now).
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_lock::{InMemoryLockService, LockError};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let service = InMemoryLockService::with_clock(TokioClock::new());
    /// let jobs = service.handle("jobs")?;
    /// let ttl = Duration::from_secs(10);
    /// let first = jobs.acquire(ttl, Duration::ZERO).await?;
    /// let busy = jobs.acquire(ttl, Duration::from_secs(3)).await;
    /// assert!(matches!(busy, Err(LockError::Busy { .. })));
    /// let second = jobs.acquire(ttl, Duration::from_secs(30)).await?; // after the expiry
    /// assert!(second.token() > first.token());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn acquire(&self, ttl: Duration, wait: Duration) -> Result<Lease, LockError> {
        let clock = &self.service.inner.clock;
        acquire_on::<C, BY_HANDLE>(clock, &self.slot, &self.name, ttl, wait).await
    }

    /// [`InMemoryLockService::acquire_blocking`] on this name: blocks the thread up to
    /// `wait` for the lock, spinning briefly and then parked in the name's queue.
    ///
    /// # Errors
    ///
    /// [`LockError::Busy`] when `wait` passes with the lock still held, and as
    /// [`try_acquire_now`](LockHandle::try_acquire_now).
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_lock::{InMemoryLockService, LockError};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let jobs = InMemoryLockService::with_clock(clock.clone()).handle("jobs")?;
    /// let ttl = Duration::from_secs(10);
    /// let first = jobs.acquire_blocking(ttl, Duration::ZERO)?;
    /// let waiter = std::thread::spawn({
    ///     let jobs = jobs.clone();
    ///     move || jobs.acquire_blocking(ttl, Duration::from_secs(3600))
    /// });
    /// clock.advance(ttl); // the holder never releases: its lease runs out on the clock
    /// let second = waiter.join().map_err(|_| "panicked")??;
    /// assert!(second.token() > first.token());
    /// assert!(jobs.release_now(&first).unwrap_err().is_not_held());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn acquire_blocking(&self, ttl: Duration, wait: Duration) -> Result<Lease, LockError> {
        let clock = &self.service.inner.clock;
        acquire_blocking_on::<C, BY_HANDLE>(clock, &self.slot, &self.name, ttl, wait)
    }

    /// [`InMemoryLockService::extend_now`] on this name.
    ///
    /// # Errors
    ///
    /// [`LockError::NotHeld`] when the lease is not this name's live lease (a lease another
    /// service granted never is), and [`LockError::InvalidTtl`].
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let jobs = InMemoryLockService::with_clock(clock.clone()).handle("jobs")?;
    /// let lease = jobs.try_acquire_now(Duration::from_secs(5))?.ok_or("held")?;
    /// let extended = jobs.extend_now(&lease, Duration::from_secs(60))?;
    /// assert_eq!(extended.expires_at(), clock.now() + Duration::from_secs(60));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend_now(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        let (now, expires_at) = self.service.expiry(ttl)?;
        if !self.is_mine(lease) {
            return Err(not_held(lease));
        }
        extend_on::<BY_HANDLE>(&self.slot, &self.name, lease, now, expires_at, ttl)
    }

    /// [`InMemoryLockService::release_now`] on this name: hands the lock to the
    /// longest-waiting acquirer, if any.
    ///
    /// # Errors
    ///
    /// [`LockError::NotHeld`] when the lease is not this name's live lease (a lease another
    /// service granted never is).
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let service = InMemoryLockService::new();
    /// let jobs = service.handle("jobs")?;
    /// let lease = jobs.try_acquire_now(Duration::from_secs(5))?.ok_or("held")?;
    /// jobs.release_now(&lease)?;
    /// assert!(jobs.release_now(&lease).unwrap_err().is_not_held()); // once
    /// let other = service.try_acquire_now("other", Duration::from_secs(5))?.ok_or("held")?;
    /// assert!(jobs.release_now(&other).unwrap_err().is_not_held()); // another name's
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn release_now(&self, lease: &Lease) -> Result<(), LockError> {
        // Granted here and uncontended: no name to compare, no waiter to wake.
        if lease.granted_by() == self.slot.id {
            let clock = &self.service.inner.clock;
            match self
                .slot
                .release_fast(lease.token().get(), || clock.recent())
            {
                Some(true) => return Ok(()),
                Some(false) => return Err(not_held(lease)),
                None => {}
            }
        }
        self.release_checked(lease)
    }

    /// [`release_now`](LockHandle::release_now) beyond its fast path: a lease to recognise
    /// by name, one released or taken over, or waiters to hand over to.
    #[inline(never)]
    fn release_checked(&self, lease: &Lease) -> Result<(), LockError> {
        if !self.is_mine(lease) {
            return Err(not_held(lease));
        }
        let now = self.service.inner.clock.recent();
        finish_release(self.slot.release(lease.token().get(), now), lease)
    }

    /// The token of the live lease on this name, if any.
    ///
    /// ```
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// let jobs = InMemoryLockService::new().handle("jobs")?;
    /// assert_eq!(jobs.holder(), None);
    /// let lease = jobs.try_acquire_now(Duration::from_secs(5))?.ok_or("held")?;
    /// assert_eq!(jobs.holder(), Some(lease.token()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn holder(&self) -> Option<FencingToken> {
        self.slot
            .holder(self.service.inner.clock.now())
            .map(FencingToken::new)
    }

    /// Whether `lease` is of this handle's lock (tokens of different names, or of the same
    /// name on two services, are unrelated).
    #[inline]
    fn is_mine(&self, lease: &Lease) -> bool {
        lease.granted_by() == self.slot.id
            || (lease.granted_by() == NOT_GRANTED_HERE && lease.lease_name().same(&self.name))
    }
}

impl<C: Clock> Clone for LockHandle<C> {
    fn clone(&self) -> LockHandle<C> {
        LockHandle {
            service: self.service.clone(),
            slot: self.slot.clone(),
            name: LeaseName::new(self.name.as_str()),
        }
    }
}

impl<C: Clock> fmt::Debug for LockHandle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockHandle")
            .field("name", &self.name.as_str())
            .field("holder", &self.holder())
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

#[inline]
fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
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
        name: lease.shared_name(),
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
    fn a_lease_of_another_service_with_the_same_name_and_token_is_not_ours() -> Result<(), LockError>
    {
        let clock = ManualClock::new();
        let ours = InMemoryLockService::with_clock(clock.clone());
        let theirs = InMemoryLockService::with_clock(clock.clone());
        let handle = ours.handle("a")?;
        let held = handle.try_acquire_now(TTL)?.expect("free");
        let other = theirs.try_acquire_now("a", TTL)?.expect("free");
        // Alike in everything a caller sees: only who granted them tells them apart.
        assert_eq!(other, held);
        assert!(handle.release_now(&other).unwrap_err().is_not_held());
        assert!(ours.release_now(&other).unwrap_err().is_not_held());
        assert!(handle.extend_now(&other, TTL).unwrap_err().is_not_held());
        assert!(ours.extend_now(&other, TTL).unwrap_err().is_not_held());
        assert!(theirs.release_now(&held).unwrap_err().is_not_held());
        assert_eq!(ours.holder("a"), Some(held.token()));
        assert_eq!(theirs.holder("a"), Some(other.token()));
        // A lease rebuilt from its parts names no granter: its name decides, as before.
        let rebuilt = Lease::new(
            held.shared_name(),
            held.token(),
            held.expires_at(),
            held.ttl(),
        );
        let extended = handle.extend_now(&rebuilt, TTL)?;
        handle.release_now(&extended)?;
        // Handle and name share their leases.
        let by_name = ours.try_acquire_now("a", TTL)?.expect("free");
        handle.release_now(&by_name)?;
        let by_handle = handle.try_acquire_now(TTL)?.expect("free");
        ours.release_now(&by_handle)?;
        theirs.release_now(&other)?;
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
            let hash = service.hash(b"a");
            lock(&service.shard(hash).table)
                .find(hash, b"a")
                .map(|slot| slot.queued())
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
    fn names_with_one_hash_keep_separate_entries() {
        let mut table = Table::default();
        let now = Instant::ZERO;
        let a = table.with_entry(7, "a", now, 0, |slot| slot.clone());
        let b = table.with_entry(7, "b", now, 0, |slot| slot.clone());
        let again = table.with_entry(7, "b", now, 0, |slot| slot.clone());
        assert_eq!(table.new_names_since_sweep, 2);
        assert_eq!(table.collided.len(), 1);
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&b, &again));
        assert!(
            table
                .find(7, b"a")
                .is_some_and(|slot| Arc::ptr_eq(slot, &a))
        );
        assert!(table.find(7, b"c").is_none());
    }

    #[test]
    fn a_name_set_aside_for_its_hash_is_found_after_a_sweep_takes_the_hash() {
        let mut table = Table::default();
        let now = Instant::ZERO;
        drop(table.with_entry(7, "a", now, 0, |slot| slot.clone()));
        let b = table.with_entry(7, "b", now, 0, |slot| slot.clone());
        let Attempt::Granted(token) = b.try_acquire(now, now + TTL) else {
            panic!("free")
        };
        // A sweep takes "a" (unused) and keeps "b" (held), set aside for the hash "a" had.
        table.new_names_since_sweep = MIN_SWEEP_INTERVAL;
        table.sweep_now_and_then(now);
        assert!(table.slots.is_empty() && table.collided.len() == 1);
        assert!(
            table
                .find(7, b"b")
                .is_some_and(|slot| Arc::ptr_eq(slot, &b))
        );
        // So "b" gets no second entry, whose first grant would be a second holder.
        let again = table.with_entry(7, "b", now, 0, |slot| slot.clone());
        assert!(Arc::ptr_eq(&again, &b));
        assert!(table.slots.is_empty() && table.collided.len() == 1);
        assert_eq!(b.holder(now), Some(token));
    }

    #[test]
    fn a_lease_is_found_by_its_granter_or_else_by_name() {
        let mut table = Table::default();
        let now = Instant::ZERO;
        let a = table.with_entry(7, "a", now, 0, |slot| slot.clone());
        let b = table.with_entry(7, "b", now, 0, |slot| slot.clone());
        // As a handle grants: a copy of the name and the granter's id.
        let granted = |name: &str, slot: &Arc<Slot>| {
            grant::<BY_HANDLE>(slot, &LeaseName::new(name), 1, now + TTL, TTL)
        };
        let detached = |name: &str| Arc::new(Slot::new(LeaseName::new(name), 0, 0));
        let found = |table: &Table, lease: &Lease| table.find_lease(7, lease).cloned();
        // Its granter's entry, also set aside for its hash.
        assert!(found(&table, &granted("a", &a)).is_some_and(|slot| Arc::ptr_eq(&slot, &a)));
        assert!(found(&table, &granted("b", &b)).is_some_and(|slot| Arc::ptr_eq(&slot, &b)));
        // No granter, or one not in this table: the name's entry, which is not the granter.
        let rebuilt = Lease::new("b".into(), FencingToken::new(1), now + TTL, TTL);
        assert!(found(&table, &rebuilt).is_some_and(|slot| Arc::ptr_eq(&slot, &b)));
        let elsewhere = granted("a", &detached("a"));
        let entry = table.find_lease(7, &elsewhere).expect("the name's entry");
        assert!(Arc::ptr_eq(entry, &a) && !granted_on(&elsewhere, entry));
        assert!(found(&table, &granted("c", &detached("c"))).is_none());
    }

    #[test]
    fn a_lease_of_a_swept_entry_is_not_the_new_entrys() -> Result<(), LockError> {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        // A handle's lease names its entry by id only, so the entry can go once the handle
        // does (a lease granted by name would keep it).
        let old = service.handle("kept")?.try_acquire_now(TTL)?.expect("free");
        clock.advance(TTL);
        for i in 0..10_000 {
            let lease = service
                .try_acquire_now(&format!("name-{i}"), TTL)?
                .expect("free");
            service.release_now(&lease)?;
        }
        let hash = service.hash(b"kept");
        assert!(
            lock(&service.shard(hash).table)
                .find(hash, b"kept")
                .is_none(),
            "swept"
        );
        let new = service.try_acquire_now("kept", TTL)?.expect("free");
        // A new state for the name, with an id of its own: the old lease is not its.
        assert_ne!(new.granted_by(), old.granted_by());
        assert!(new.token() > old.token());
        assert!(service.release_now(&old).unwrap_err().is_not_held());
        assert!(service.extend_now(&old, TTL).unwrap_err().is_not_held());
        assert_eq!(service.holder("kept"), Some(new.token()));
        service.release_now(&new)?;
        Ok(())
    }

    #[test]
    fn a_lease_granted_by_name_keeps_its_entry_until_dropped() -> Result<(), LockError> {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        let kept = service.try_acquire_now("kept", TTL)?.expect("free");
        let churn = |from: usize| -> Result<(), LockError> {
            for i in from..from + 10_000 {
                let lease = service
                    .try_acquire_now(&format!("name-{i}"), TTL)?
                    .expect("free");
                service.release_now(&lease)?;
            }
            Ok(())
        };
        let present = || {
            let hash = service.hash(b"kept");
            lock(&service.shard(hash).table)
                .find(hash, b"kept")
                .is_some()
        };
        churn(0)?;
        assert!(present(), "held, so never swept");
        // Expired, but its lease still holds the entry, which answers for it without the table.
        clock.advance(TTL);
        churn(10_000)?;
        assert!(present(), "a lease still holds it");
        assert!(service.release_now(&kept).unwrap_err().is_not_held());
        assert!(service.extend_now(&kept, TTL).unwrap_err().is_not_held());
        let next = service.try_acquire_now("kept", TTL)?.expect("free");
        assert!(next.token() > kept.token());
        assert!(service.release_now(&kept).unwrap_err().is_not_held());
        service.release_now(&next)?;
        drop((kept, next));
        churn(20_000)?;
        assert!(!present(), "swept once no lease holds it");
        Ok(())
    }

    #[test]
    fn tokens_keep_increasing_after_a_sweep() -> Result<(), LockError> {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        let first = service.try_acquire_now("kept", TTL)?.expect("free");
        service.release_now(&first)?;
        for i in 0..10_000 {
            service.try_acquire_now(&format!("name-{i}"), TTL)?;
        }
        clock.advance(TTL);
        for i in 0..10_000 {
            service.try_acquire_now(&format!("again-{i}"), TTL)?;
        }
        let second = service.try_acquire_now("kept", TTL)?.expect("free");
        assert!(second.token() > first.token());
        Ok(())
    }

    #[test]
    fn a_handle_keeps_its_name_from_the_sweep() -> Result<(), LockError> {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        let handle = service.handle("kept")?;
        let first = handle.try_acquire_now(TTL)?.expect("free");
        handle.release_now(&first)?;
        for i in 0..10_000 {
            service.try_acquire_now(&format!("name-{i}"), TTL)?;
            clock.advance(Duration::from_millis(10));
        }
        // One lock: what the handle grants, the name sees, and the other way round.
        let second = handle.try_acquire_now(TTL)?.expect("free");
        assert_eq!(service.holder("kept"), Some(second.token()));
        assert!(service.try_acquire_now("kept", TTL)?.is_none());
        service.release_now(&second)?;
        assert!(second.token() > first.token());
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
                table.slots.len() + table.collided.len()
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
