//! The shard locks: one reader-writer lock per shard whose readers write only to a counter
//! of their own thread's, so threads reading the same shard do not bounce a lock word
//! between their cores (with a shared lock word, that bouncing is most of a read's time).
//!
//! Readers count themselves in a row of counters striped by thread: a thread's row holds its
//! count for every shard, so a thread's reads of any shard write one line that no other
//! thread writes (threads beyond the stripe count share rows, which stays correct). A writer
//! takes the shard's mutex, raises the shard's `writing` flag, and waits until every row's
//! count for the shard is zero. A reader bumps its count and then reads the flag; both
//! steps and the writer's are sequentially consistent, so one side always sees the other.
//! A reader that finds a writer backs out and takes the mutex instead, parking behind the
//! writer rather than spinning.

use std::ops::{Deref, DerefMut};

use crossbeam_utils::CachePadded;
use keel_core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::striped::thread_stripe;

/// Counters in one row segment: 128 bytes, the span `CachePadded` keeps apart.
const ROW_SEGMENT: usize = 32;

/// The most reader rows: enough for a thread per row on most machines, and it bounds the
/// memory to 4 bytes per shard per row.
const MAX_STRIPES: usize = 32;

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

struct Slot<T> {
    writing: AtomicBool,
    writers: Mutex,
    value: UnsafeCell<T>,
}

/// A reader-writer lock for each of a fixed number of values (the shards).
pub(crate) struct ShardLocks<T> {
    slots: Box<[CachePadded<Slot<T>>]>,
    /// Reader counts, `stripes` rows of `segments_per_row` segments: the count of stripe
    /// `s` for shard `i` is `readers[s * segments_per_row + i / ROW_SEGMENT][i % ROW_SEGMENT]`.
    readers: Box<[CachePadded<[AtomicU32; ROW_SEGMENT]>]>,
    segments_per_row: usize,
    stripe_mask: usize,
}

// SAFETY: the lock hands out `&T` to several threads only while no `&mut T` exists, and
// `&mut T` to one thread at a time, as `std::sync::RwLock` does; so it is `Sync` when `T`
// is `Send + Sync` and `Send` when `T` is `Send`.
unsafe impl<T: Send> Send for ShardLocks<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for ShardLocks<T> {}

impl<T> ShardLocks<T> {
    /// Locks for `values`, striping readers over the machine's parallelism.
    pub(crate) fn new(values: impl IntoIterator<Item = T>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_stripes(values, cpus.next_power_of_two().min(MAX_STRIPES))
    }

    /// Locks for `values` with `stripes` reader rows (a power of two).
    pub(crate) fn with_stripes(values: impl IntoIterator<Item = T>, stripes: usize) -> Self {
        let slots: Box<[_]> = values
            .into_iter()
            .map(|value| {
                CachePadded::new(Slot {
                    writing: AtomicBool::new(false),
                    writers: Mutex::default(),
                    value: UnsafeCell::new(value),
                })
            })
            .collect();
        let segments_per_row = slots.len().div_ceil(ROW_SEGMENT).max(1);
        let readers = (0..stripes * segments_per_row)
            .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU32::new(0))))
            .collect();
        ShardLocks {
            slots,
            readers,
            segments_per_row,
            stripe_mask: stripes - 1,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The lock of shard `index`.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> ShardLock<'_, T> {
        ShardLock { locks: self, index }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = ShardLock<'_, T>> {
        (0..self.slots.len()).map(|index| self.get(index))
    }

    #[inline]
    fn readers_of(&self, stripe: usize, index: usize) -> &AtomicU32 {
        let segment = stripe * self.segments_per_row + index / ROW_SEGMENT;
        &self.readers[segment][index % ROW_SEGMENT]
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
        let slot = &self.locks.slots[self.index];
        let count = self
            .locks
            .readers_of(thread_stripe() & self.locks.stripe_mask, self.index);
        count.fetch_add(1, Ordering::SeqCst);
        loom_fence();
        if !slot.writing.load(Ordering::SeqCst) {
            return ReadGuard {
                value: access(&slot.value),
                _hold: ReadHold::Counted(count),
            };
        }
        // A writer is in or on its way: back out and wait for it on the mutex, then read
        // while holding the mutex (no writer can enter; other readers may read alongside).
        count.fetch_sub(1, Ordering::Release);
        let writers = lock(&slot.writers);
        ReadGuard {
            value: access(&slot.value),
            _hold: ReadHold::Exclusive(writers),
        }
    }

    /// Exclusive access. Blocks while another writer or any reader holds the shard.
    pub(crate) fn write(&self) -> WriteGuard<'a, T> {
        let slot = &self.locks.slots[self.index];
        let writers = lock(&slot.writers);
        slot.writing.store(true, Ordering::SeqCst);
        loom_fence();
        let backoff = crossbeam_utils::Backoff::new();
        for stripe in 0..=self.locks.stripe_mask {
            let count = self.locks.readers_of(stripe, self.index);
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
            value: access_mut(&slot.value),
            writing: &slot.writing,
            _writers: writers,
        }
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

enum ReadHold<'a> {
    /// Counted in the thread's row; uncounted on drop.
    Counted(&'a AtomicU32),
    /// Holding the writers' mutex.
    Exclusive(#[allow(dead_code)] MutexGuard<'a>),
}

impl Drop for ReadHold<'_> {
    #[inline]
    fn drop(&mut self) {
        if let ReadHold::Counted(count) = self {
            count.fetch_sub(1, Ordering::Release);
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

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;

    #[test]
    fn readers_never_see_a_half_done_write() {
        // Four threads over two reader rows, so rows are shared too; every write keeps the
        // pair equal, and a reader that overlapped a writer would see them differ.
        let locks = ShardLocks::with_stripes([(0u64, 0u64), (0, 0), (0, 0)], 2);
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
        let locks = ShardLocks::with_stripes(0..40u32, 1);
        let guards: Vec<_> = locks.iter().map(|l| l.read()).collect();
        assert_eq!(guards.iter().map(|g| **g).sum::<u32>(), (0..40).sum());
        drop(guards);
        *locks.get(39).write() = 0;
        assert_eq!(*locks.get(39).read(), 0);
    }
}
