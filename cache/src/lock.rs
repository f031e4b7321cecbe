//! The shard locks: one reader-writer lock per shard whose readers write only to a counter
//! of their own thread's, so threads reading the same shard do not bounce a lock word
//! between their cores (with a shared lock word, that bouncing is most of a read's time).
//!
//! Each shard has a row of reader counters, each on its own cache line: one per thread
//! slot (see `thread_slot.rs`), written only by the thread holding that slot, and one
//! shared by threads without a slot. A writer takes the shard's mutex, raises the shard's
//! `writing` flag, and waits until every counter of the shard is zero. A reader bumps its
//! counter and then reads the flag; both steps and the writer's are sequentially
//! consistent, so one side always sees the other. A reader with its own counter counts
//! down with a plain store (no locked instruction). A reader that finds a writer backs out,
//! waits briefly, and if the write is long takes the mutex instead, parking behind the
//! writer. Counters of different shards never share a line: a writer's scan then pulls
//! only lines of the shard it writes, not lines other shards' readers are using.

use std::ops::{Deref, DerefMut};

use crossbeam_utils::CachePadded;
use keel_core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::thread_slot::{SLOTS, thread_slot};

/// Own counters are cut (down to none) so the counters of all shards take at most this
/// many cache lines (about 1 MiB).
const MAX_COUNTER_LINES: usize = 8192;

#[cfg(not(keel_loom))]
type Mutex = parking_lot::Mutex<()>;
#[cfg(keel_loom)]
type Mutex = keel_core::sync::Mutex<()>;

#[cfg(not(keel_loom))]
type MutexGuard<'a> = parking_lot::MutexGuard<'a, ()>;
#[cfg(keel_loom)]
type MutexGuard<'a> = keel_core::sync::MutexGuard<'a, ()>;

#[cfg(keel_loom)]
use loom::cell::UnsafeCell;
#[cfg(not(keel_loom))]
use std::cell::UnsafeCell;

struct ShardCell<T> {
    writing: AtomicBool,
    writers: Mutex,
    value: UnsafeCell<T>,
}

/// A reader-writer lock for each of a fixed number of values (the shards).
pub(crate) struct ShardLocks<T> {
    cells: Box<[CachePadded<ShardCell<T>>]>,
    /// Reader counts, `owned + 1` per shard: thread slot `s` of shard `i` counts in
    /// `readers[i * (owned + 1) + s]`, threads without one of the first `owned` slots in
    /// `readers[i * (owned + 1) + owned]`.
    readers: Box<[CachePadded<AtomicU32>]>,
    owned: usize,
}

// SAFETY: the lock hands out `&T` to several threads only while no `&mut T` exists, and
// `&mut T` to one thread at a time, as `std::sync::RwLock` does; so it is `Sync` when `T`
// is `Send + Sync` and `Send` when `T` is `Send`.
unsafe impl<T: Send> Send for ShardLocks<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for ShardLocks<T> {}

impl<T> ShardLocks<T> {
    /// Locks for `values`, with own counters for twice the machine's parallelism in
    /// threads.
    pub(crate) fn new(values: impl IntoIterator<Item = T>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_owned(values, (cpus * 2).min(SLOTS))
    }

    /// Locks for `values` with own counters for up to `owned` thread slots.
    pub(crate) fn with_owned(values: impl IntoIterator<Item = T>, owned: usize) -> Self {
        let cells: Box<[_]> = values
            .into_iter()
            .map(|value| {
                CachePadded::new(ShardCell {
                    writing: AtomicBool::new(false),
                    writers: Mutex::default(),
                    value: UnsafeCell::new(value),
                })
            })
            .collect();
        let mut owned = owned.min(SLOTS);
        while owned > 0 && (owned + 1) * cells.len() > MAX_COUNTER_LINES {
            owned /= 2;
        }
        let readers = (0..(owned + 1) * cells.len())
            .map(|_| CachePadded::new(AtomicU32::new(0)))
            .collect();
        ShardLocks {
            cells,
            readers,
            owned,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.cells.len()
    }

    /// The lock of shard `index`.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> ShardLock<'_, T> {
        ShardLock { locks: self, index }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = ShardLock<'_, T>> {
        (0..self.cells.len()).map(|index| self.get(index))
    }

    /// Shard `index`'s counter for thread slot `slot` (`owned` for the shared one).
    #[inline]
    fn readers_of(&self, slot: usize, index: usize) -> &AtomicU32 {
        &self.readers[index * (self.owned + 1) + slot]
    }
}

/// One shard's lock.
pub(crate) struct ShardLock<'a, T> {
    locks: &'a ShardLocks<T>,
    index: usize,
}

impl<'a, T> ShardLock<'a, T> {
    /// Shared access. Blocks while a writer holds the shard.
    #[inline]
    pub(crate) fn read(&self) -> ReadGuard<'a, T> {
        let locks = self.locks;
        let cell = &locks.cells[self.index];
        let hold = match thread_slot() {
            Some(slot) if slot < locks.owned => Counted::Own(locks.readers_of(slot, self.index)),
            _ => Counted::Shared(locks.readers_of(locks.owned, self.index)),
        };
        let backoff = ReaderWait::new();
        loop {
            hold.count_in();
            loom_fence();
            if !cell.writing.load(Ordering::SeqCst) {
                return ReadGuard {
                    value: access(&cell.value),
                    _hold: ReadHold::Counted(hold),
                };
            }
            // A writer is in or on its way: back out, and wait a little for it (writes are
            // short; parking costs a system call on each side).
            hold.count_out();
            // `snooze` spins, then yields, then reports completion: a long write parks us.
            while cell.writing.load(Ordering::Relaxed) && !backoff.is_completed() {
                backoff.snooze();
            }
            if cell.writing.load(Ordering::Relaxed) {
                break;
            }
        }
        // A long write: wait for it on the mutex, then read while holding the mutex (no
        // writer can enter; other readers may read alongside).
        let writers = lock(&cell.writers);
        ReadGuard {
            value: access(&cell.value),
            _hold: ReadHold::Exclusive(writers),
        }
    }

    /// Exclusive access. Blocks while another writer or any reader holds the shard.
    #[inline]
    pub(crate) fn write(&self) -> WriteGuard<'a, T> {
        let cell = &self.locks.cells[self.index];
        let writers = lock(&cell.writers);
        cell.writing.store(true, Ordering::SeqCst);
        loom_fence();
        let backoff = crossbeam_utils::Backoff::new();
        // The shard's row of counters, sliced once: indexing each counter apart cost a
        // multiply and a bounds check per counter (about 30 instructions per insert).
        let row = self.locks.owned + 1;
        let first = self.index * row;
        for count in &self.locks.readers[first..first + row] {
            while count.load(Ordering::SeqCst) != 0 {
                #[cfg(not(keel_loom))]
                backoff.snooze();
                #[cfg(keel_loom)]
                {
                    let _ = &backoff;
                    keel_core::sync::spin_loop();
                }
            }
        }
        WriteGuard {
            value: access_mut(&cell.value),
            writing: &cell.writing,
            _writers: writers,
        }
    }
}

/// How a reader that found a writer waits before retrying or parking on the mutex.
#[cfg(not(keel_loom))]
struct ReaderWait(crossbeam_utils::Backoff);

#[cfg(not(keel_loom))]
impl ReaderWait {
    #[inline]
    fn new() -> Self {
        ReaderWait(crossbeam_utils::Backoff::new())
    }

    #[inline]
    fn snooze(&self) {
        self.0.snooze();
    }

    #[inline]
    fn is_completed(&self) -> bool {
        self.0.is_completed()
    }
}

/// Under loom: one yield, then completion. Both outcomes of the wait stay reachable (the
/// writer gone, so the reader counts in again; or still there, so it takes the mutex);
/// more spins would only repeat states.
#[cfg(keel_loom)]
struct ReaderWait(std::cell::Cell<bool>);

#[cfg(keel_loom)]
impl ReaderWait {
    fn new() -> Self {
        ReaderWait(std::cell::Cell::new(false))
    }

    fn snooze(&self) {
        self.0.set(true);
        keel_core::sync::spin_loop();
    }

    fn is_completed(&self) -> bool {
        self.0.get()
    }
}

/// Loom models sequentially consistent accesses as acquire/release only, but models
/// sequentially consistent fences exactly; under loom the fence states the same ordering
/// the accesses give on real hardware (and in the C++ model), so loom checks the protocol.
#[inline]
fn loom_fence() {
    #[cfg(keel_loom)]
    keel_core::sync::atomic::fence(Ordering::SeqCst);
}

#[cfg(not(keel_loom))]
#[inline]
fn lock(mutex: &Mutex) -> MutexGuard<'_> {
    mutex.lock()
}

#[cfg(keel_loom)]
fn lock(mutex: &Mutex) -> MutexGuard<'_> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(not(keel_loom))]
type ConstPtr<T> = *const T;
#[cfg(keel_loom)]
type ConstPtr<T> = loom::cell::ConstPtr<T>;
#[cfg(not(keel_loom))]
type MutPtr<T> = *mut T;
#[cfg(keel_loom)]
type MutPtr<T> = loom::cell::MutPtr<T>;

#[inline]
fn access<T>(cell: &UnsafeCell<T>) -> ConstPtr<T> {
    #[cfg(not(keel_loom))]
    {
        cell.get().cast_const()
    }
    #[cfg(keel_loom)]
    {
        cell.get()
    }
}

#[inline]
fn access_mut<T>(cell: &UnsafeCell<T>) -> MutPtr<T> {
    #[cfg(not(keel_loom))]
    {
        cell.get()
    }
    #[cfg(keel_loom)]
    {
        cell.get_mut()
    }
}

/// The counter a reader counted itself in.
enum Counted<'a> {
    /// This thread's own: only this thread writes it, so plain stores count down.
    Own(&'a AtomicU32),
    /// Shared by threads without an own counter.
    Shared(&'a AtomicU32),
}

impl Counted<'_> {
    #[inline]
    fn count_in(&self) {
        match self {
            // A swap rather than a store: the increment must be ordered before the flag
            // read that follows (store-load), which only a locked instruction or a full
            // fence gives.
            Counted::Own(count) => {
                count.swap(count.load(Ordering::Relaxed) + 1, Ordering::SeqCst);
            }
            Counted::Shared(count) => {
                count.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[inline]
    fn count_out(&self) {
        match self {
            // Release: the writer that reads the lower count sees every read of ours done.
            Counted::Own(count) => {
                count.store(count.load(Ordering::Relaxed) - 1, Ordering::Release)
            }
            Counted::Shared(count) => {
                count.fetch_sub(1, Ordering::Release);
            }
        }
    }
}

enum ReadHold<'a> {
    /// Counted in a reader counter; counted out on drop.
    Counted(Counted<'a>),
    /// Holding the writers' mutex.
    Exclusive(#[allow(dead_code)] MutexGuard<'a>),
}

impl Drop for ReadHold<'_> {
    #[inline]
    fn drop(&mut self) {
        if let ReadHold::Counted(counted) = self {
            counted.count_out();
        }
    }
}

/// Shared access to a shard.
pub(crate) struct ReadGuard<'a, T> {
    value: ConstPtr<T>,
    _hold: ReadHold<'a>,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: while this guard lives, the shard's writer waits (its count is nonzero or
        // its mutex is held), so no `&mut T` exists.
        #[cfg(not(keel_loom))]
        unsafe {
            &*self.value
        }
        // SAFETY: as above; loom checks it.
        #[cfg(keel_loom)]
        unsafe {
            self.value.deref()
        }
    }
}

/// Exclusive access to a shard.
pub(crate) struct WriteGuard<'a, T> {
    value: MutPtr<T>,
    writing: &'a AtomicBool,
    // Dropped after `drop` lowers the flag: the mutex is released last.
    _writers: MutexGuard<'a>,
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        self.writing.store(false, Ordering::Release);
    }
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the mutex and every reader count of the shard was zero
        // after the flag went up, so it is the only access.
        #[cfg(not(keel_loom))]
        unsafe {
            &*self.value
        }
        // SAFETY: as above; loom checks it.
        #[cfg(keel_loom)]
        unsafe {
            &*self.value.deref()
        }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        #[cfg(not(keel_loom))]
        unsafe {
            &mut *self.value
        }
        // SAFETY: as above; loom checks it.
        #[cfg(keel_loom)]
        unsafe {
            self.value.deref()
        }
    }
}

/// The shard locks, exposed under `--cfg keel_loom` only, for the models in
/// `tests/loom.rs`; not part of the API and outside semver.
#[cfg(keel_loom)]
#[doc(hidden)]
pub struct LoomLocks<T>(ShardLocks<T>);

#[cfg(keel_loom)]
impl<T> std::fmt::Debug for LoomLocks<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoomLocks").finish_non_exhaustive()
    }
}

#[cfg(keel_loom)]
impl<T> LoomLocks<T> {
    /// Locks for `values` with own reader counters for up to `owned` thread slots.
    pub fn with_owned(values: Vec<T>, owned: usize) -> Self {
        LoomLocks(ShardLocks::with_owned(values, owned))
    }

    /// Runs `f` under shard `index`'s read lock.
    pub fn read<R>(&self, index: usize, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0.get(index).read())
    }

    /// Runs `f` under shard `index`'s write lock.
    pub fn write<R>(&self, index: usize, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.get(index).write())
    }
}

/// The calling thread's slot, for the loom models.
#[cfg(keel_loom)]
#[doc(hidden)]
pub fn loom_thread_slot() -> Option<usize> {
    thread_slot()
}

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;

    #[test]
    fn readers_never_see_a_half_done_write() {
        // Four threads and own counters for only two slots, so the shared counter is used
        // too; every write keeps the pair equal, and a reader that overlapped a writer
        // would see them differ.
        let locks = ShardLocks::with_owned([(0u64, 0u64), (0, 0), (0, 0)], 2);
        std::thread::scope(|s| {
            for t in 0..4usize {
                let locks = &locks;
                s.spawn(move || {
                    for i in 0..20_000usize {
                        let shard = locks.get((t + i) % locks.len());
                        if i % 4 == 0 {
                            let mut pair = shard.write();
                            pair.0 += 1;
                            std::hint::black_box(&mut *pair);
                            pair.1 += 1;
                        } else {
                            let pair = shard.read();
                            assert_eq!(pair.0, pair.1);
                        }
                    }
                });
            }
        });
        let total: u64 = locks.iter().map(|l| l.read().0).sum();
        assert_eq!(total, 4 * 5_000, "every write landed once");
    }

    #[test]
    fn a_thread_may_read_several_shards_at_once() {
        let locks = ShardLocks::with_owned(0..40u32, 1);
        let guards: Vec<_> = locks.iter().map(|l| l.read()).collect();
        assert_eq!(guards.iter().map(|g| **g).sum::<u32>(), (0..40).sum());
        drop(guards);
        *locks.get(39).write() = 0;
        assert_eq!(*locks.get(39).read(), 0);
    }
}
