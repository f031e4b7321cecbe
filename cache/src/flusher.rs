//! The write-back flusher: the state a `WriteBack` shares with its flusher (a thread, or a
//! tokio task), the flush routine both run, and their loops.
//!
//! Only a flusher and explicit `flush`/`close` calls write to the store; `insert` wakes the
//! flusher when a batch is due and `get` never touches it. Flushes are serialized by
//! [`FlushLock`]: two flushes running at once could write an older and a newer version of
//! one key out of order and acknowledge the newer one.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::dirty::{Batch, Cursor, DirtySet};
use crate::room::Room;
use crate::write_back::FlushError;
use crate::{Cache, Store};

/// Called with the entries still dirty when a write-back's state is freed.
pub(crate) type UnflushedHook<K, V> = Box<dyn Fn(Vec<(K, V)>) + Send + Sync>;

/// The flusher keeps running.
pub(crate) const RUN: u8 = 0;
/// The `WriteBack` was dropped: flush once more, then end.
pub(crate) const FINAL_FLUSH: u8 = 1;
/// `close` was called: end now; the closing caller flushes.
pub(crate) const END: u8 = 2;

pub(crate) struct Shared<K, V, St, S> {
    pub(crate) cache: Cache<K, V, S>,
    pub(crate) store: St,
    pub(crate) dirty: DirtySet<K, V>,
    /// At most this many keys dirty (`usize::MAX`: no bound).
    pub(crate) max_dirty: usize,
    /// Where writers wait while the dirty set is full.
    pub(crate) room: Room,
    pub(crate) batch_size: usize,
    /// Flush interval in clock nanoseconds.
    pub(crate) interval: Option<u64>,
    /// How often the flusher looks at the clock, and waits after a failed flush.
    pub(crate) tick: Duration,
    pub(crate) last_flush: AtomicU64,
    pub(crate) failed_flushes: AtomicU64,
    pub(crate) flushing: FlushLock,
    /// Set by a writer that woke the flusher, cleared by the flusher before it flushes, so
    /// writers past the batch size wake it once rather than on every insert.
    pub(crate) wake_pending: AtomicBool,
    pub(crate) state: AtomicU8,
    pub(crate) thread: OnceLock<std::thread::Thread>,
    #[cfg(feature = "tokio")]
    pub(crate) notify: tokio::sync::Notify,
    pub(crate) on_unflushed: Option<UnflushedHook<K, V>>,
}

impl<K, V, St, S> Drop for Shared<K, V, St, S> {
    fn drop(&mut self) {
        // The last holder (the `WriteBack` or its flusher) is gone: whatever the store has
        // not taken is handed to the hook rather than dropped unseen.
        if let Some(hook) = &self.on_unflushed {
            let left = self.dirty.drain();
            if !left.is_empty() {
                hook(left);
            }
        }
    }
}

impl<K, V, St, S> Shared<K, V, St, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Wakes the flusher (a no-op before it started or after it ended).
    pub(crate) fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
        #[cfg(feature = "tokio")]
        self.notify.notify_one();
    }

    /// A writer made `len` entries dirty: wake the flusher once a batch is due.
    #[inline]
    pub(crate) fn written(&self, len: usize) {
        if len >= self.batch_size && !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.wake();
        }
    }

    /// After a failed flush: writers stop waking the flusher (as if a wake were pending)
    /// so it waits a whole tick before retrying, rather than hammering a store that is
    /// down on every new dirty key. Returns how long to wait.
    fn backing_off(&self) -> Duration {
        self.wake_pending.store(true, Ordering::Release);
        self.tick
    }

    /// Before the flusher waits: clears the wake flag and looks again. A writer that found
    /// the flag set skipped its wake, so a flag left set by a wake that found nothing due
    /// would silence every later writer. The swaps order the two sides: a writer whose swap
    /// came first is seen by this look, one whose swap came after wakes the flusher.
    fn due_after_rearm(&self) -> bool {
        self.wake_pending.swap(false, Ordering::AcqRel);
        self.due()
    }

    /// Whether a writer of a clean key would find room now.
    pub(crate) fn has_room(&self) -> bool {
        self.dirty.len() < self.max_dirty
    }

    fn due(&self) -> bool {
        let len = self.dirty.len();
        len >= self.batch_size
            || (len > 0
                && self.interval.is_some_and(|interval| {
                    let now = self.cache.clock.now().as_nanos();
                    now.saturating_sub(self.last_flush.load(Ordering::Relaxed)) >= interval
                }))
    }

    fn started_flush(&self) {
        self.wake_pending.store(false, Ordering::Release);
        self.last_flush
            .store(self.cache.clock.now().as_nanos(), Ordering::Relaxed);
    }

    fn failed<E>(&self, written: usize, source: E) -> FlushError<E> {
        self.failed_flushes.fetch_add(1, Ordering::Relaxed);
        FlushError {
            written,
            pending: self.dirty.len(),
            source,
        }
    }

    /// Writes every dirty entry, `batch_size` per store call, on this thread.
    pub(crate) fn flush(&self) -> Result<usize, FlushError<St::Error>>
    where
        St: Store<K, V>,
    {
        let _flushing = self.flushing.lock();
        self.started_flush();
        let mut cursor = Cursor::new();
        let mut written = 0;
        while let Some(batch) = self.dirty.next_batch(&mut cursor, self.batch_size) {
            match self.store.write_batch(&batch.rows) {
                Ok(()) => written += self.acked(&batch),
                Err(e) => return Err(self.failed(written, e)),
            }
        }
        Ok(written)
    }

    /// As [`flush`](Self::flush), through an async store. Cancelling it at any await
    /// leaves the entries not yet acknowledged dirty.
    #[cfg(feature = "tokio")]
    pub(crate) async fn flush_async(&self) -> Result<usize, FlushError<St::Error>>
    where
        St: crate::AsyncStore<K, V>,
    {
        let _flushing = self.flushing.lock_async().await;
        self.started_flush();
        let mut cursor = Cursor::new();
        let mut written = 0;
        while let Some(batch) = self.dirty.next_batch(&mut cursor, self.batch_size) {
            match self.store.write_batch(&batch.rows).await {
                Ok(()) => written += self.acked(&batch),
                Err(e) => return Err(self.failed(written, e)),
            }
        }
        Ok(written)
    }

    fn acked(&self, batch: &Batch<K, V>) -> usize {
        self.dirty.ack(batch);
        self.room.freed();
        batch.rows.len()
    }
}

/// The flusher thread's loop.
pub(crate) fn run_thread<K, V, St, S>(shared: Arc<Shared<K, V, St, S>>)
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    St: Store<K, V>,
{
    // A store that panics fails that flush only: the lock is released on unwind and the
    // entries stay dirty, so the flusher carries on.
    let flush = || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.flush())).unwrap_or_else(
            |_| {
                shared.failed_flushes.fetch_add(1, Ordering::Relaxed);
                Ok(0)
            },
        )
    };
    loop {
        match shared.state.load(Ordering::Acquire) {
            RUN => {}
            FINAL_FLUSH => {
                let _ = flush();
                return;
            }
            _ => return,
        }
        let wait = if shared.due() {
            match flush() {
                Ok(_) => continue,
                Err(_) => Some(shared.backing_off()),
            }
        } else if shared.due_after_rearm() {
            continue;
        } else {
            shared.interval.map(|_| shared.tick)
        };
        // A wake before the park is kept as a token, so none is lost.
        match wait {
            Some(t) => std::thread::park_timeout(t),
            None => std::thread::park(),
        }
    }
}

/// The flusher task's loop.
#[cfg(feature = "tokio")]
pub(crate) async fn run_task<K, V, St, S>(shared: Arc<Shared<K, V, St, S>>)
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    St: crate::AsyncStore<K, V>,
{
    loop {
        match shared.state.load(Ordering::Acquire) {
            RUN => {}
            FINAL_FLUSH => {
                let _ = shared.flush_async().await;
                return;
            }
            _ => return,
        }
        let wait = if shared.due() {
            match shared.flush_async().await {
                Ok(_) => continue,
                Err(_) => Some(shared.backing_off()),
            }
        } else if shared.due_after_rearm() {
            continue;
        } else {
            shared.interval.map(|_| shared.tick)
        };
        // `notify_one` before the wait leaves a permit, so no wake is lost.
        match wait {
            Some(t) => {
                let _ = tokio::time::timeout(t, shared.notify.notified()).await;
            }
            None => shared.notify.notified().await,
        }
    }
}

/// One flush at a time, waited for by threads (blocking) or tasks (asynchronously).
pub(crate) struct FlushLock {
    busy: Mutex<bool>,
    freed: Condvar,
    #[cfg(feature = "tokio")]
    freed_async: tokio::sync::Notify,
}

pub(crate) struct FlushGuard<'a>(&'a FlushLock);

impl FlushLock {
    pub(crate) fn new() -> Self {
        FlushLock {
            busy: Mutex::new(false),
            freed: Condvar::new(),
            #[cfg(feature = "tokio")]
            freed_async: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn lock(&self) -> FlushGuard<'_> {
        let mut busy = self.busy.lock();
        while *busy {
            self.freed.wait(&mut busy);
        }
        *busy = true;
        FlushGuard(self)
    }

    /// Cancel-safe: dropped while waiting, it holds nothing.
    #[cfg(feature = "tokio")]
    pub(crate) async fn lock_async(&self) -> FlushGuard<'_> {
        loop {
            let mut freed = std::pin::pin!(self.freed_async.notified());
            // Registered before the check, so a release between the check and the await
            // still wakes us.
            freed.as_mut().enable();
            {
                let mut busy = self.busy.lock();
                if !*busy {
                    *busy = true;
                    return FlushGuard(self);
                }
            }
            freed.await;
        }
    }
}

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        *self.0.busy.lock() = false;
        self.0.freed.notify_one();
        #[cfg(feature = "tokio")]
        self.0.freed_async.notify_waiters();
    }
}
