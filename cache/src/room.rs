//! Backpressure for a write-back with a bounded dirty set: writers that find it full wait
//! here, by blocking or asynchronously, until a flush frees room.
//!
//! `tests/loom.rs` model-checks the blocking side's wake-up (under `--cfg keel_loom` the
//! lock, condvar and atomics are loom's). The async side's `Notify` is tokio's, which loom
//! does not model here; it relies on the same fences and on `enable` before the look.

#[cfg(keel_loom)]
use keel_core::sync::atomic::{AtomicUsize, Ordering, fence};
#[cfg(keel_loom)]
use keel_core::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(keel_loom))]
use parking_lot::{Condvar, Mutex, MutexGuard};
#[cfg(not(keel_loom))]
use std::sync::atomic::{AtomicUsize, Ordering, fence};

/// Where writers wait for room in the dirty set.
pub(crate) struct Room {
    /// Writers waiting now, so a flush skips the lock and the wake-ups when there are none.
    waiters: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
    #[cfg(feature = "tokio")]
    freed_async: tokio::sync::Notify,
}

/// Counts one waiter while it lives, so a cancelled async wait stops counting.
struct Waiting<'a>(&'a Room);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Room {
    pub(crate) fn new() -> Self {
        Room {
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
            #[cfg(feature = "tokio")]
            freed_async: tokio::sync::Notify::new(),
        }
    }

    /// Counts a waiter. The fence pairs with the one in [`freed`](Self::freed): either the
    /// waiter's next look sees the room a flush made, or that flush sees the waiter.
    fn register(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Waiting(self)
    }

    /// Blocks this thread until `has_room` holds.
    pub(crate) fn wait(&self, has_room: impl Fn() -> bool) {
        let _waiting = self.register();
        let mut guard = lock(&self.lock);
        // Looked at under the lock `freed` takes before it notifies, so no wake-up falls
        // between the look and the wait.
        while !has_room() {
            guard = wait(&self.freed, guard);
        }
    }

    /// Waits until `has_room` holds. Cancel-safe: dropped while waiting, it holds nothing.
    #[cfg(feature = "tokio")]
    pub(crate) async fn wait_async(&self, has_room: impl Fn() -> bool) {
        let _waiting = self.register();
        loop {
            let mut freed = std::pin::pin!(self.freed_async.notified());
            // Registered before the look, so a flush between the look and the await still
            // wakes this task.
            freed.as_mut().enable();
            if has_room() {
                return;
            }
            freed.await;
        }
    }

    /// A flush removed entries from the dirty set: wake whoever waits for room.
    pub(crate) fn freed(&self) {
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) == 0 {
            return;
        }
        drop(lock(&self.lock));
        self.freed.notify_all();
        #[cfg(feature = "tokio")]
        self.freed_async.notify_waiters();
    }
}

// parking_lot's lock and condvar, or under loom the std-shaped ones, which loom models.
#[cfg(not(keel_loom))]
fn lock(mutex: &Mutex<()>) -> MutexGuard<'_, ()> {
    mutex.lock()
}

#[cfg(not(keel_loom))]
fn wait<'a>(condvar: &Condvar, mut guard: MutexGuard<'a, ()>) -> MutexGuard<'a, ()> {
    condvar.wait(&mut guard);
    guard
}

#[cfg(keel_loom)]
fn lock(mutex: &Mutex<()>) -> MutexGuard<'_, ()> {
    // The lock guards no data, so a poisoned one is as good as any.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(keel_loom)]
fn wait<'a>(condvar: &Condvar, guard: MutexGuard<'a, ()>) -> MutexGuard<'a, ()> {
    condvar
        .wait(guard)
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// [`Room`]'s blocking side, for the loom model in `tests/loom.rs`; not part of the API.
#[cfg(keel_loom)]
#[doc(hidden)]
pub struct LoomRoom(Room);

#[cfg(keel_loom)]
impl std::fmt::Debug for LoomRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoomRoom").finish_non_exhaustive()
    }
}

#[cfg(keel_loom)]
impl Default for LoomRoom {
    fn default() -> Self {
        Self(Room::new())
    }
}

#[cfg(keel_loom)]
impl LoomRoom {
    /// [`Room::wait`].
    pub fn wait(&self, has_room: impl Fn() -> bool) {
        self.0.wait(has_room);
    }

    /// [`Room::freed`].
    pub fn freed(&self) {
        self.0.freed();
    }
}
