//! The in-memory service's blocking acquire: a few spins, then a park in the name's queue.

use std::sync::{Arc, PoisonError};
use std::task::{Wake, Waker};
use std::time::Duration;

use keel_core::sync::{Condvar, Mutex};
use keel_core::{Clock, Instant};

use crate::lease::LeaseName;
use crate::memory::{Waiting, exhausted, expiry_from, grant, granted, try_once};
use crate::slot::{Asker, Attempt, Slot};
use crate::{Lease, LockError};

/// Looks before queueing: pauses of 2, 4 and 8 spins, then yields of the thread (none
/// under loom, see `spin`).
const SPINS: u32 = 10;
/// A parked waiter reads its clock again at least this often, so a clock that does not run
/// with real time (a `ManualClock` a test advances) still ends its wait.
const RECHECK: Duration = Duration::from_millis(10);

/// Wakes a parked thread: the waker a blocking waiter leaves in the queue.
#[derive(Default)]
struct Parker {
    woken: Mutex<bool>,
    condvar: Condvar,
}

impl Parker {
    /// Sleeps until woken or for up to `timeout` (real time), whichever comes first.
    fn park(&self, timeout: Duration) {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        if !*woken {
            woken = self
                .condvar
                .wait_timeout(woken, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *woken = false;
    }
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        *self.woken.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.condvar.notify_one();
    }
}

/// A grant's token and expiry, the lease built from them once by the caller.
type Granted = (u64, Instant);

/// Spins on a read of the slot, trying only when it looks free: `None` when it stayed held.
fn spin(
    clock: &impl Clock,
    slot: &Slot,
    name: &LeaseName,
    ttl: Duration,
) -> Option<Result<Granted, LockError>> {
    // Loom's yields would let every release run first, so no waiter would ever park there.
    if cfg!(keel_loom) {
        return None;
    }
    for round in 0..SPINS {
        if round < 3 {
            for _ in 0..2 << round {
                keel_core::sync::spin_loop();
            }
        } else {
            yield_now();
        }
        let now = clock.recent();
        if slot.looks_free(now)
            && let Some(done) = try_or_retry(slot, name, now, ttl).transpose()
        {
            return Some(done);
        }
    }
    None
}

/// [`try_once`] as a waiter tries, a change in flight counting as held (see
/// [`Slot::try_acquire_or_retry`]): the grant, or `None` to look again.
#[inline]
fn try_or_retry(
    slot: &Slot,
    name: &LeaseName,
    now: Instant,
    ttl: Duration,
) -> Result<Option<Granted>, LockError> {
    let (now, expires_at) = expiry_from(now, ttl)?;
    match slot.try_acquire_or_retry(now, expires_at) {
        Some(attempt) => granted(attempt, name, expires_at),
        None => Ok(None),
    }
}

fn yield_now() {
    #[cfg(keel_loom)]
    keel_core::sync::spin_loop();
    #[cfg(not(keel_loom))]
    std::thread::yield_now();
}

/// The blocking acquire on one name's slot: tries, spins, then parks in the name's queue
/// until a release wakes it or hands it the lock, the holder's lease runs out, or `wait`
/// passes, all judged on `clock`.
///
/// Always inlined, with the waiting out of line: left to `#[inline]`, the compiler kept it
/// out of line in the 2-thread bench, and the caller copied the 64-byte lease back from the
/// stack right after the callee wrote it in narrower pieces. Most of the run's samples fell
/// on that copy (`perf`), likely store-to-load forwarding stalls; the uncontended blocking
/// acquire+release took about 21 ns against 8 for `try_acquire_now` + `release_now`, with
/// nearly the same instructions.
#[inline(always)]
pub(crate) fn acquire_blocking_on<C: Clock, const NAMED: bool>(
    clock: &C,
    slot: &Arc<Slot>,
    name: &LeaseName,
    ttl: Duration,
    wait: Duration,
) -> Result<Lease, LockError> {
    let start = clock.recent();
    // Both ways end in one lease built here, not a lease from each moved into one place.
    let (token, expires_at) = match try_or_retry(slot, name, start, ttl)? {
        Some(granted) => granted,
        None => wait_on(clock, slot, name, ttl, wait, start)?,
    };
    Ok(grant::<NAMED>(slot, name, token, expires_at, ttl))
}

/// The held case of [`acquire_blocking_on`], kept out of line so the uncontended grant
/// stays small enough to inline.
#[inline(never)]
fn wait_on<C: Clock>(
    clock: &C,
    slot: &Slot,
    name: &LeaseName,
    ttl: Duration,
    wait: Duration,
    start: Instant,
) -> Result<Granted, LockError> {
    let busy = |now: Instant| LockError::Busy {
        name: name.to_shared(),
        waited: now - start,
    };
    if wait.is_zero() {
        // The first try may have seen a change in flight: one that decides.
        return try_once(slot, name, start, ttl)?.ok_or_else(|| busy(start));
    }
    let deadline = start.saturating_add(wait);
    // Made when first needed: most waits end in the spin.
    let mut parker: Option<(Arc<Parker>, Waker)> = None;
    // Leaves the queue (or passes on what it was given) however this returns.
    let mut waiting = Waiting {
        slot,
        clock,
        id: None,
    };
    loop {
        if let Some(done) = spin(clock, slot, name, ttl) {
            return done;
        }
        let now = clock.now();
        let expires_at = now.checked_add(ttl).ok_or(LockError::InvalidTtl { ttl })?;
        let (sleeper, waker) = parker.get_or_insert_with(|| {
            let sleeper = Arc::new(Parker::default());
            let waker = Waker::from(sleeper.clone());
            (sleeper, waker)
        });
        let asker = Asker {
            id: waiting.id,
            waker: Some(waker),
            unfair: true,
        };
        let held_until = match slot.attempt(now, expires_at, asker) {
            Attempt::Granted(token) => {
                waiting.id = None;
                return Ok((token, expires_at));
            }
            Attempt::Exhausted => return Err(exhausted(name)),
            Attempt::HeldUntil(until, id) => {
                waiting.id = id;
                until
            }
        };
        if now >= deadline {
            return Err(busy(now));
        }
        // Woken by a release, or at the holder's expiry or our limit, read on `clock`.
        sleeper.park((held_until.min(deadline) - now).min(RECHECK));
    }
}
