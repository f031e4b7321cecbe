//! `Slot`: the state of one in-memory lock name, a single atomic word on the uncontended path.
//!
//! The word holds the name's last token and three flags. An uncontended grant is one
//! compare-and-swap on it (the token goes up by one and `HELD` is set) plus a store that
//! publishes the expiry; an uncontended release is one compare-and-swap back. Everything
//! else (a held or expired lock, waiters, extend, a reservation for a waiter) takes the slot's
//! mutex and marks the word `BUSY` while it reads and writes the expiry and the queue, so a
//! fast path never sees an expiry that belongs to another token.
//!
//! A release with waiters hands the lock to the longest-waiting one (a reservation), except
//! to a blocking waiter that has been woken fewer than [`UNFAIR_WAKES`] times: that one is
//! woken to compete for a free lock, as a parked thread of `parking_lot` is, so a thread
//! that takes the lock again at once keeps it, warm in its cache, while the waiter wakes.

use std::collections::VecDeque;
use std::sync::PoisonError;
use std::task::Waker;
use std::time::Duration;

use keel_core::Instant;
use keel_core::sync::atomic::{AtomicU64, Ordering};
use keel_core::sync::{Mutex, MutexGuard};

use crate::lease::LeaseName;
use crate::timer::NameTimer;

/// A lease (or a reservation for a waiter) with the word's token exists; it may have expired
/// by the clock, which only the expiry can tell.
const HELD: u64 = 1;
/// Someone is writing the expiry or the queue: fast paths keep out, slow paths wait.
const BUSY: u64 = 2;
/// Acquirers wait in the queue, so a release goes the slow way to hand over.
const QUEUED: u64 = 4;
const FLAGS: u64 = HELD | BUSY | QUEUED;
const SHIFT: u32 = 3;
/// The highest token the word can hold.
pub(crate) const MAX_TOKEN: u64 = u64::MAX >> SHIFT;

/// How long a lock released to a waiter stays reserved for it before anyone may take it.
pub(crate) const HANDOFF: Duration = Duration::from_millis(10);

/// How many times a release wakes a blocking waiter to compete for the free lock before
/// the next release hands it the lock: eventual fairness at a wake-up's cost.
pub(crate) const UNFAIR_WAKES: u8 = 64;

/// The next id: ids are never reused in the process (a `u64` does not run out), so a lease's
/// `granted_by` names one slot for good. A std atomic also under loom: it only hands
/// out numbers.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A number never handed out before in this process: a slot's or a service's id.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub(crate) struct Slot {
    /// This slot's id, never [`NOT_GRANTED_HERE`](crate::lease::NOT_GRANTED_HERE): the
    /// `granted_by` of the leases it grants.
    pub(crate) id: u64,
    /// The id of the service whose table holds it, so a service knows its own leases.
    pub(crate) service: u64,
    /// The name it is the state of: the name of the leases granted by name, which hold the
    /// state instead of copying it.
    pub(crate) name: LeaseName,
    /// `token << SHIFT | flags`; the token is the last one issued for the name.
    word: AtomicU64,
    /// When the word's token ends, in clock nanoseconds; meaningful while `HELD`.
    expires_at: AtomicU64,
    queue: Mutex<Queue>,
    /// Times the async waiters: the holder's expiry and their limits.
    pub(crate) timer: NameTimer,
}

#[derive(Default)]
struct Queue {
    /// Acquirers waiting, longest-waiting first.
    waiters: VecDeque<Queued>,
    last_waiter: u64,
    /// The waiter a release reserved the lock for, and the token reserved.
    reserved: Option<(u64, u64)>,
    /// The blocking waiter a release woke to compete (out of the queue until it asks again,
    /// then first in it), and how many more such wakes it gets before a hand-over.
    woken: Option<(u64, u8)>,
}

struct Queued {
    id: u64,
    waker: Waker,
    /// Wakes to compete left before a release hands this waiter the lock (0: hand over).
    unfair_left: u8,
}

/// What one attempt found.
pub(crate) enum Attempt {
    Granted(u64),
    /// Held until then; the caller's place in the queue if it asked for one.
    HeldUntil(Instant, Option<u64>),
    /// Free, but the name has used up its tokens.
    Exhausted,
}

/// Who asks, on the slow path.
#[derive(Clone, Copy)]
pub(crate) struct Asker<'w> {
    /// The asker's place in the queue, if it has one.
    pub(crate) id: Option<u64>,
    /// Queue (or stay queued) with this waker when the lock is held.
    pub(crate) waker: Option<&'w Waker>,
    /// A blocking waiter: a release may wake it to compete instead of handing it the lock.
    pub(crate) unfair: bool,
}

impl Asker<'_> {
    pub(crate) const ONCE: Asker<'static> = Asker {
        id: None,
        waker: None,
        unfair: false,
    };
}

impl Slot {
    /// A free slot for `name` of the service `service` whose first grant gets `floor + 1`.
    pub(crate) fn new(name: LeaseName, floor: u64, service: u64) -> Slot {
        Slot {
            id: next_id(),
            service,
            name,
            word: AtomicU64::new(floor.min(MAX_TOKEN) << SHIFT),
            expires_at: AtomicU64::new(0),
            queue: Mutex::new(Queue::default()),
            timer: NameTimer::default(),
        }
    }

    /// Grants if the lock is free and nobody waits, else asks the slow path.
    #[inline]
    pub(crate) fn try_acquire(&self, now: Instant, expires_at: Instant) -> Attempt {
        let word = self.word.load(Ordering::Acquire);
        if word & FLAGS == 0 && word >> SHIFT < MAX_TOKEN {
            if let Some(token) = self.grant_free(word, expires_at) {
                return Attempt::Granted(token);
            }
        } else if word & (HELD | BUSY) == HELD {
            // Held: when the expiry read belongs to the same word (read again after it)
            // and has not passed, the lock is busy, decided without the mutex, so a
            // contender polling it does not slow the holder's release.
            let held_until = Instant::from_nanos(self.expires_at.load(Ordering::Acquire));
            if now < held_until && self.word.load(Ordering::Acquire) == word {
                return Attempt::HeldUntil(held_until, None);
            }
        }
        self.attempt(now, expires_at, Asker::ONCE)
    }

    /// [`try_acquire`](Slot::try_acquire) for a blocking waiter that looks again (and queues,
    /// deciding under the mutex, before it sleeps): `None` where `try_acquire` would take the
    /// mutex only to wait out a change in flight (a grant publishing its expiry, a slow path
    /// at work, a word that changed under the held check or the compare-and-swap). Those are
    /// mostly the other thread taking the lock; waiting them out under the mutex marked the
    /// word busy under the new holder, whose release then went the slow way too. An expired
    /// lock, a free one with waiters and a name out of tokens still go to the mutex.
    #[inline]
    pub(crate) fn try_acquire_or_retry(
        &self,
        now: Instant,
        expires_at: Instant,
    ) -> Option<Attempt> {
        let word = self.word.load(Ordering::Acquire);
        if word & FLAGS == 0 && word >> SHIFT < MAX_TOKEN {
            return self.grant_free(word, expires_at).map(Attempt::Granted);
        }
        if word & BUSY != 0 {
            return None;
        }
        if word & HELD != 0 {
            let held_until = Instant::from_nanos(self.expires_at.load(Ordering::Acquire));
            if now < held_until || self.word.load(Ordering::Acquire) != word {
                return None;
            }
        }
        Some(self.attempt(now, expires_at, Asker::ONCE))
    }

    /// The uncontended grant of the free `word` (no flags, a token left): the next token, or
    /// `None` if the word changed first.
    #[inline]
    fn grant_free(&self, word: u64, expires_at: Instant) -> Option<u64> {
        let token = (word >> SHIFT) + 1;
        self.word
            .compare_exchange(
                word,
                token << SHIFT | HELD | BUSY,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        // Nobody else writes the word while it is BUSY: a plain store publishes.
        self.expires_at
            .store(expires_at.as_nanos(), Ordering::Relaxed);
        self.word.store(token << SHIFT | HELD, Ordering::Release);
        Some(token)
    }

    /// One decision under the slot's mutex: takes a reservation made for `asker`, grants a
    /// free or expired lock, or says until when it is held (queueing `asker` if it has a
    /// waker, in the same critical section, so no release slips in between).
    pub(crate) fn attempt(&self, now: Instant, expires_at: Instant, asker: Asker<'_>) -> Attempt {
        let mut queue = self.lock_queue();
        let word = self.lock_word();
        let token = word >> SHIFT;
        let mut flags = word & (HELD | QUEUED);
        let held_until = Instant::from_nanos(self.expires_at.load(Ordering::Relaxed));
        if word & HELD != 0 && now < held_until {
            if asker.id.is_some() && queue.reserved == asker.id.map(|id| (id, token)) {
                // Our reservation: take it with our own TTL, under its token.
                queue.reserved = None;
                self.expires_at
                    .store(expires_at.as_nanos(), Ordering::Relaxed);
                self.unlock_word(word);
                return Attempt::Granted(token);
            }
            let id = asker
                .waker
                .map(|waker| queue.enqueue(asker.id, waker, asker.unfair));
            if id.is_some() {
                flags |= QUEUED;
            }
            self.unlock_word(token << SHIFT | flags);
            return Attempt::HeldUntil(held_until, id);
        }
        // Free: never granted, released, expired, or a reservation that lapsed.
        if token >= MAX_TOKEN {
            self.unlock_word(word);
            return Attempt::Exhausted;
        }
        if let Some(id) = asker.id {
            queue.leave(id);
            queue.forget_woken(id);
        }
        queue.reserved = None;
        self.expires_at
            .store(expires_at.as_nanos(), Ordering::Relaxed);
        let queued = if queue.waiters.is_empty() { 0 } else { QUEUED };
        self.unlock_word((token + 1) << SHIFT | HELD | queued);
        Attempt::Granted(token + 1)
    }

    /// Ends the lease `token` if it is live at `now`, handing the lock to the longest
    /// waiter, whose waker it returns (woken by the caller, outside every lock).
    #[inline]
    pub(crate) fn release(&self, token: u64, now: Instant) -> Result<Option<Waker>, ()> {
        match self.release_fast(token, || now) {
            Some(true) => Ok(None),
            Some(false) => Err(()),
            None => self.release_slow(token, now),
        }
    }

    /// The uncontended release: when the word shows the lease `token` held and nobody
    /// waiting, frees it and says whether it was live at `now()`, read only after the word is
    /// free so the clock stays out of the time the lock is held. An expired lease nobody took
    /// over is free anyway; freeing it changes nothing anyone can see (the next grant gets the
    /// next token either way). `None` leaves everything else (taken over, waiters, a slow
    /// path at work) to [`release`](Slot::release).
    #[inline]
    pub(crate) fn release_fast(&self, token: u64, now: impl FnOnce() -> Instant) -> Option<bool> {
        // Read while the lease is still held: once the word is free, a grant may overwrite it.
        // The release below keeps this read before it, so it sees no later grant's expiry;
        // the holder's own grant or extend (or the hand-over of its lease) came before it.
        let expires_at = self.expires_at.load(Ordering::Relaxed);
        let held = token << SHIFT | HELD;
        self.word
            .compare_exchange(held, token << SHIFT, Ordering::Release, Ordering::Relaxed)
            .ok()?;
        Some(now() < Instant::from_nanos(expires_at))
    }

    fn release_slow(&self, token: u64, now: Instant) -> Result<Option<Waker>, ()> {
        let mut queue = self.lock_queue();
        let word = self.lock_word();
        if !self.is_live(word, token, now) {
            self.unlock_word(word);
            return Err(());
        }
        Ok(self.hand_over(&mut queue, token, now))
    }

    /// Gives the longest-waiting acquirer a reservation of the free lock for [`HANDOFF`], or
    /// frees it (waking a blocking waiter to compete for it while it has unfair wakes left);
    /// the word is locked (by the caller) with `token` as its last token.
    fn hand_over(&self, queue: &mut Queue, token: u64, now: Instant) -> Option<Waker> {
        if let Some(front) = queue.waiters.front()
            && front.unfair_left > 0
        {
            // One woken waiter at a time: another wake would only cost a system call.
            let woken = match queue.woken {
                Some(_) => None,
                None => queue.waiters.pop_front().map(|next| {
                    queue.woken = Some((next.id, next.unfair_left - 1));
                    next.waker
                }),
            };
            queue.reserved = None;
            let queued = if queue.waiters.is_empty() { 0 } else { QUEUED };
            self.unlock_word(token << SHIFT | queued);
            return woken;
        }
        if token < MAX_TOKEN
            && let Some(next) = queue.waiters.pop_front()
        {
            queue.reserved = Some((next.id, token + 1));
            self.expires_at
                .store(now.saturating_add(HANDOFF).as_nanos(), Ordering::Relaxed);
            let queued = if queue.waiters.is_empty() { 0 } else { QUEUED };
            self.unlock_word((token + 1) << SHIFT | HELD | queued);
            return Some(next.waker);
        }
        // No token left to reserve with: the lock stays free for whoever asks.
        queue.reserved = None;
        let queued = if queue.waiters.is_empty() { 0 } else { QUEUED };
        self.unlock_word(token << SHIFT | queued);
        None
    }

    /// Moves the expiry of the live lease `token` to `expires_at`.
    pub(crate) fn extend(&self, token: u64, now: Instant, expires_at: Instant) -> Result<(), ()> {
        let _queue = self.lock_queue();
        let word = self.lock_word();
        let live = self.is_live(word, token, now);
        if live {
            self.expires_at
                .store(expires_at.as_nanos(), Ordering::Relaxed);
        }
        self.unlock_word(word);
        if live { Ok(()) } else { Err(()) }
    }

    /// The token of the live lease or reservation, if any.
    pub(crate) fn holder(&self, now: Instant) -> Option<u64> {
        let word = self.settled();
        let held_until = Instant::from_nanos(self.expires_at.load(Ordering::Relaxed));
        (word & HELD != 0 && now < held_until).then_some(word >> SHIFT)
    }

    /// The last token issued, for the sweep's floor; only while nobody else uses the slot.
    pub(crate) fn last_token(&self) -> u64 {
        self.word.load(Ordering::Acquire) >> SHIFT
    }

    /// How many acquirers wait.
    #[cfg(all(test, not(keel_loom)))]
    pub(crate) fn queued(&self) -> usize {
        self.lock_queue().waiters.len()
    }

    /// Whether the slot must stay: a live lease or reservation, or waiters.
    pub(crate) fn in_use(&self, now: Instant) -> bool {
        let word = self.settled();
        word & QUEUED != 0 || self.holder(now).is_some()
    }

    /// A waiter is done (granted or giving up): leaves the queue, passes on a reservation it
    /// never took, or, woken to compete for a free lock it did not take, wakes the next.
    pub(crate) fn leave(&self, id: u64, now: Instant) -> Option<Waker> {
        let mut queue = self.lock_queue();
        let word = self.lock_word();
        let was_woken = queue.forget_woken(id);
        if queue.leave(id) {
            let queued = if queue.waiters.is_empty() { 0 } else { QUEUED };
            self.unlock_word(word & !QUEUED | queued);
            return None;
        }
        let token = word >> SHIFT;
        if queue.reserved == Some((id, token)) && self.is_live(word, token, now) {
            queue.reserved = None;
            return self.hand_over(&mut queue, token, now);
        }
        let free = word & HELD == 0 || !self.is_live(word, token, now);
        if was_woken && free && !queue.waiters.is_empty() {
            // Nobody else would wake the queue for this free lock.
            return self.hand_over(&mut queue, token, now);
        }
        self.unlock_word(word);
        None
    }

    /// Wakes every waiter, to look again (the name's timer fired).
    pub(crate) fn wake_waiters(&self) {
        let wakers: Vec<Waker> = self
            .lock_queue()
            .waiters
            .iter()
            .map(|queued| queued.waker.clone())
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether the lock may be free at `now`, read without writing (and without waiting
    /// out a grant in progress), so a spinning waiter leaves the holder's cache line alone.
    #[inline]
    pub(crate) fn looks_free(&self, now: Instant) -> bool {
        let word = self.word.load(Ordering::Relaxed);
        word & (HELD | BUSY) == 0
            || (word & (HELD | BUSY) == HELD
                && now >= Instant::from_nanos(self.expires_at.load(Ordering::Relaxed)))
    }

    fn is_live(&self, word: u64, token: u64, now: Instant) -> bool {
        word >> SHIFT == token
            && word & HELD != 0
            && now < Instant::from_nanos(self.expires_at.load(Ordering::Relaxed))
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        // No code panics while holding it, so a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the word `BUSY` (waiting out a fast-path grant that is publishing its expiry)
    /// and returns it as it was; the caller holds the queue's mutex, so no other slow path
    /// competes, and ends with [`unlock_word`](Slot::unlock_word).
    fn lock_word(&self) -> u64 {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & BUSY != 0 {
                keel_core::sync::spin_loop();
                word = self.word.load(Ordering::Relaxed);
                continue;
            }
            match self.word.compare_exchange_weak(
                word,
                word | BUSY,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return word,
                Err(actual) => word = actual,
            }
        }
    }

    /// Publishes `word` (without `BUSY`): nobody else writes the word while it is busy.
    fn unlock_word(&self, word: u64) {
        self.word.store(word & !BUSY, Ordering::Release);
    }

    /// The word once no fast-path grant is publishing.
    fn settled(&self) -> u64 {
        loop {
            let word = self.word.load(Ordering::Acquire);
            if word & BUSY == 0 {
                return word;
            }
            keel_core::sync::spin_loop();
        }
    }
}

impl Queue {
    /// Queues a new waiter, or refreshes the waker of one already queued, or puts a waiter
    /// woken to compete back in front; returns its id.
    fn enqueue(&mut self, id: Option<u64>, waker: &Waker, unfair: bool) -> u64 {
        if let Some(id) = id {
            if let Some(queued) = self.waiters.iter_mut().find(|queued| queued.id == id) {
                if !queued.waker.will_wake(waker) {
                    queued.waker = waker.clone();
                }
                return id;
            }
            if let Some((woken, unfair_left)) = self.woken
                && woken == id
            {
                self.woken = None;
                self.waiters.push_front(Queued {
                    id,
                    waker: waker.clone(),
                    unfair_left,
                });
                return id;
            }
        }
        self.last_waiter += 1;
        self.waiters.push_back(Queued {
            id: self.last_waiter,
            waker: waker.clone(),
            unfair_left: if unfair { UNFAIR_WAKES } else { 0 },
        });
        self.last_waiter
    }

    /// Forgets that `id` was woken to compete; whether it was.
    fn forget_woken(&mut self, id: u64) -> bool {
        let was = self.woken.is_some_and(|(woken, _)| woken == id);
        if was {
            self.woken = None;
        }
        was
    }

    fn leave(&mut self, id: u64) -> bool {
        match self.waiters.iter().position(|queued| queued.id == id) {
            Some(position) => {
                self.waiters.remove(position);
                true
            }
            None => false,
        }
    }
}

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    const TTL: Duration = Duration::from_secs(1);

    /// A waiter's waker that counts its wakes.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    struct Waiter {
        id: Option<u64>,
        unfair: bool,
        wakes: Arc<Counter>,
        waker: Waker,
    }

    impl Waiter {
        fn new(unfair: bool) -> Waiter {
            let wakes = Arc::new(Counter::default());
            Waiter {
                id: None,
                unfair,
                waker: Waker::from(wakes.clone()),
                wakes,
            }
        }

        fn ask(&mut self, slot: &Slot, now: Instant) -> Attempt {
            let asker = Asker {
                id: self.id,
                waker: Some(&self.waker),
                unfair: self.unfair,
            };
            let attempt = slot.attempt(now, now + TTL, asker);
            match attempt {
                Attempt::HeldUntil(_, id) => self.id = id,
                _ => self.id = None,
            }
            attempt
        }
    }

    fn wake(waker: Option<Waker>) {
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    #[test]
    fn a_blocking_waiter_is_woken_to_compete_then_handed_the_lock() {
        let slot = Slot::new(LeaseName::new("a"), 0, 0);
        let now = Instant::ZERO;
        let Attempt::Granted(mut token) = slot.try_acquire(now, now + TTL) else {
            panic!("free");
        };
        let mut waiter = Waiter::new(true);
        assert!(matches!(waiter.ask(&slot, now), Attempt::HeldUntil(..)));
        for wakes in 1..=usize::from(UNFAIR_WAKES) {
            // The holder releases and at once takes the lock again: the waiter was woken.
            wake(slot.release(token, now).expect("held"));
            assert_eq!(waiter.wakes.0.load(Ordering::Relaxed), wakes);
            let Attempt::Granted(next) = slot.try_acquire(now, now + TTL) else {
                panic!("the woken waiter has not asked yet: free");
            };
            token = next;
            // The waiter comes back to a held lock and is first in line again.
            assert!(matches!(waiter.ask(&slot, now), Attempt::HeldUntil(..)));
            assert_eq!(slot.lock_queue().waiters.front().map(|q| q.id), waiter.id);
        }
        // Out of wakes to compete: this release hands it the lock.
        wake(slot.release(token, now).expect("held"));
        assert!(matches!(
            slot.try_acquire(now, now + TTL),
            Attempt::HeldUntil(..)
        ));
        assert!(matches!(waiter.ask(&slot, now), Attempt::Granted(t) if t == token + 1));
    }

    #[test]
    fn a_waiters_try_looks_again_at_a_change_in_flight_instead_of_waiting_it_out() {
        let slot = Slot::new(LeaseName::new("a"), 0, 0);
        let now = Instant::ZERO;
        let Some(Attempt::Granted(token)) = slot.try_acquire_or_retry(now, now + TTL) else {
            panic!("free");
        };
        // Held and live: look again.
        assert!(slot.try_acquire_or_retry(now, now + TTL).is_none());
        // A slow path at work (the word marked busy, as a grant publishing its expiry marks
        // it): look again at once. `try_acquire` would wait it out, here for ever.
        let word = slot.lock_word();
        assert!(slot.try_acquire_or_retry(now, now + TTL).is_none());
        slot.unlock_word(word);
        // Expired: the mutex decides, and grants the next token.
        let later = now + TTL;
        assert!(matches!(
            slot.try_acquire_or_retry(later, later + TTL),
            Some(Attempt::Granted(next)) if next == token + 1
        ));
        // Released with a waiter still queued (the first woken to compete, the second
        // waiting): free but not the fast path's, so the mutex decides.
        let (mut first, mut second) = (Waiter::new(true), Waiter::new(true));
        assert!(matches!(first.ask(&slot, later), Attempt::HeldUntil(..)));
        assert!(matches!(second.ask(&slot, later), Attempt::HeldUntil(..)));
        wake(slot.release(token + 1, later).expect("held"));
        assert_eq!(slot.word.load(Ordering::Relaxed) & (FLAGS), QUEUED);
        assert!(matches!(
            slot.try_acquire_or_retry(later, later + TTL),
            Some(Attempt::Granted(next)) if next == token + 2
        ));
    }

    #[test]
    fn a_woken_waiter_that_gives_up_wakes_the_next() {
        let slot = Slot::new(LeaseName::new("a"), 0, 0);
        let now = Instant::ZERO;
        let Attempt::Granted(token) = slot.try_acquire(now, now + TTL) else {
            panic!("free");
        };
        let (mut first, mut second) = (Waiter::new(true), Waiter::new(false));
        first.ask(&slot, now);
        second.ask(&slot, now);
        wake(slot.release(token, now).expect("held"));
        assert_eq!(first.wakes.0.load(Ordering::Relaxed), 1);
        // The lock is free and the async waiter still queued: the woken one's leaving
        // must hand it on, or it would sleep until its own timer.
        wake(slot.leave(first.id.expect("queued"), now));
        assert_eq!(second.wakes.0.load(Ordering::Relaxed), 1);
        assert!(matches!(second.ask(&slot, now), Attempt::Granted(t) if t == token + 1));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Waiter `w` asks (queueing when held).
        Ask(usize),
        /// Someone outside the queue tries once (a barging holder).
        Try,
        /// The live lease is released.
        Release,
        /// Waiter `w` gives up.
        Leave(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4usize).prop_map(Op::Ask),
            Just(Op::Try),
            Just(Op::Release),
            (0..4usize).prop_map(Op::Leave),
            (1..1_500u64).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Blocking (unfair) and async waiters mixed, against a model of the lease: one live
        /// lease at a time, tokens going up, and a released lock never left with waiters
        /// queued and nobody woken to take it.
        #[test]
        fn waiters_of_both_kinds_keep_exclusion_and_nobody_is_stranded(
            kinds in proptest::collection::vec(any::<bool>(), 4),
            ops in proptest::collection::vec(op(), 1..80),
        ) {
            let slot = Slot::new(LeaseName::new("a"), 0, 0);
            let mut waiters: Vec<Waiter> = kinds.iter().map(|&unfair| Waiter::new(unfair)).collect();
            let mut now = Instant::ZERO;
            // The model: the live lease (token, expiry) and the last token granted.
            let mut live: Option<(u64, Instant)> = None;
            let mut last = 0;
            let mut granted = |token: u64, now: Instant, live: &mut Option<(u64, Instant)>| {
                prop_assert!(live.is_none_or(|(_, until)| now >= until), "two live leases");
                prop_assert!(token > last, "token {token} after {last}");
                last = token;
                *live = Some((token, now + TTL));
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Ask(w) => {
                        if let Attempt::Granted(token) = waiters[w].ask(&slot, now) {
                            granted(token, now, &mut live)?;
                        }
                    }
                    Op::Try => {
                        if let Attempt::Granted(token) = slot.try_acquire(now, now + TTL) {
                            granted(token, now, &mut live)?;
                        }
                    }
                    Op::Release => {
                        if let Some((token, until)) = live.take() {
                            let released = slot.release(token, now);
                            prop_assert_eq!(released.is_ok(), now < until);
                            wake(released.ok().flatten());
                        }
                    }
                    Op::Leave(w) => {
                        if let Some(id) = waiters[w].id.take() {
                            wake(slot.leave(id, now));
                        }
                    }
                    Op::Advance(ms) => now += Duration::from_millis(ms),
                }
                let queue = slot.lock_queue();
                let word = slot.word.load(Ordering::Relaxed);
                prop_assert_eq!(word & QUEUED != 0, !queue.waiters.is_empty());
                // Released (not expired: waiters wake at the holder's expiry on their own).
                let released = word & HELD == 0;
                prop_assert!(
                    !released || queue.waiters.is_empty() || queue.woken.is_some(),
                    "a released lock with waiters and nobody woken"
                );
            }
        }
    }
}
