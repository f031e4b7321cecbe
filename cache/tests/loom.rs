//! Loom models of the shard lock (`src/lock.rs`), of the cache on top of it, and of the
//! write-back's wake-up of writers waiting for room (`src/room.rs`, the blocking side).
//!
//! - The lock itself: two readers and a writer; a reader that backs out of a write and
//!   retries between two writes; two readers and a writer with the thread slots exhausted,
//!   so one reader counts in the shared counter; a reader whose slot was given back by an
//!   exited thread and reused.
//! - The cache: a reader racing a writer and a remover; a writer racing a remover
//!   (linearizable: the result is one of the two orders).
//!
//! A reader that overlapped a writer is caught three ways: loom's `UnsafeCell` tracking
//! (a read and a write of the shard unordered by happens-before), a torn pair (the writer
//! keeps both halves equal), and a deadlock (a count never drained). Loom has two thread
//! slots (`SLOTS` under `keel_loom`), so a third reading thread gets none.
//!
//! Each model was checked against a seeded bug (the code broken locally, the model seen to
//! fail, the code restored): a retrying reader that skips the second flag check; the
//! shared counter's count-out made relaxed; the slot claim and give-back made relaxed; the
//! writer releasing its mutex before lowering the flag; no fence; the own counter's
//! count-out made relaxed.
//!
//! # What the bounds leave out
//!
//! The whole file runs in about half a minute. To get there, each model is bounded to 2
//! or 3 preemptions per run (`LOOM_MAX_PREEMPTIONS` overrides it): interleavings that need
//! more forced switches are not explored (two readers and a writer take about 12 s at 2
//! and 4 minutes at 3; the cache's reader, writer and remover did not finish in 9 minutes
//! unbounded). Under loom a reader that finds a writer yields once before it retries or takes
//! the mutex (longer spins repeat states), loom models sequentially consistent accesses
//! as acquire/release so the lock adds the fence they imply on real hardware, there are two
//! thread slots, and the cache models use one shard of capacity 2.
#![cfg(keel_loom)]

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

use keel_cache::{Cache, LoomLocks, LoomRoom, loom_thread_slot};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// Runs `f` under loom, bounded to `preemptions` preemptions per run if given (loom's
/// `LOOM_MAX_PREEMPTIONS` overrides it).
fn model(preemptions: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = preemptions;
    }
    builder.check(f);
}

/// Reads the pair and checks the writer's invariant; returns the thread's slot.
fn read_pair(locks: &LoomLocks<(u64, u64)>) -> Option<usize> {
    let (a, b) = locks.read(0, |pair| *pair);
    assert_eq!(a, b, "a reader saw half a write");
    loom_thread_slot()
}

fn write_pair(locks: &LoomLocks<(u64, u64)>) {
    locks.write(0, |pair| {
        pair.0 += 1;
        pair.1 += 1;
    });
}

#[test]
fn two_readers_and_a_writer() {
    model(Some(2), || {
        let locks = Arc::new(LoomLocks::with_owned(vec![(0u64, 0u64)], 2));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let locks = locks.clone();
                thread::spawn(move || read_pair(&locks))
            })
            .collect();
        let writer = {
            let locks = locks.clone();
            thread::spawn(move || write_pair(&locks))
        };
        let slots: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        writer.join().unwrap();
        // Both readers had their own counter (the same one if the first exited before
        // the second claimed).
        assert!(slots.iter().all(Option::is_some), "{slots:?}");
        assert_eq!(locks.read(0, |p| *p), (1, 1));
    });
}

#[test]
fn a_reader_retrying_between_two_writes_checks_the_flag_again() {
    model(Some(3), || {
        let locks = Arc::new(LoomLocks::with_owned(vec![(0u64, 0u64)], 2));
        // A reader that backs out of the first write and retries when it ends must check
        // the flag again, or it reads during the second.
        let reader = {
            let locks = locks.clone();
            thread::spawn(move || read_pair(&locks))
        };
        let writer = {
            let locks = locks.clone();
            thread::spawn(move || {
                write_pair(&locks);
                write_pair(&locks);
            })
        };
        assert!(reader.join().unwrap().is_some());
        writer.join().unwrap();
        assert_eq!(locks.read(0, |p| *p), (2, 2));
    });
}

#[test]
fn slots_exhausted_so_a_reader_uses_the_shared_counter() {
    model(Some(3), || {
        let locks = Arc::new(LoomLocks::with_owned(vec![(0u64, 0u64)], 2));
        // The model's main thread takes slot 0 and the first reader slot 1, which it keeps
        // while it lives: the second reader, spawned by the first, gets none and counts in
        // the shared counter. Its read races the first reader's second read and the writer.
        assert_eq!(read_pair(&locks), Some(0));
        let writer = {
            let locks = locks.clone();
            thread::spawn(move || write_pair(&locks))
        };
        let first = {
            let locks = locks.clone();
            thread::spawn(move || {
                assert_eq!(read_pair(&locks), Some(1));
                let second = {
                    let locks = locks.clone();
                    thread::spawn(move || read_pair(&locks))
                };
                assert_eq!(read_pair(&locks), Some(1));
                second.join().unwrap()
            })
        };
        assert_eq!(first.join().unwrap(), None, "the second reader had no slot");
        writer.join().unwrap();
        assert_eq!(locks.read(0, |p| *p), (1, 1));
    });
}

#[test]
fn a_reader_reusing_an_exited_threads_slot_continues_its_count() {
    model(Some(2), || {
        let locks = Arc::new(LoomLocks::with_owned(vec![(0u64, 0u64)], 2));
        assert_eq!(read_pair(&locks), Some(0));
        // Both readers run at once; if the first exits before the second claims, the
        // second reuses slot 1 and its counter.
        let first = {
            let locks = locks.clone();
            thread::spawn(move || read_pair(&locks))
        };
        let second = {
            let locks = locks.clone();
            thread::spawn(move || {
                read_pair(&locks);
                write_pair(&locks);
                read_pair(&locks)
            })
        };
        first.join().unwrap();
        second.join().unwrap();
        // Every count drained: a writer gets in.
        write_pair(&locks);
        assert_eq!(locks.read(0, |p| *p), (2, 2));
    });
}

/// One shard and a fixed hasher: loom needs every run of the model to be the same.
fn small_cache() -> Cache<u64, u64, BuildHasherDefault<DefaultHasher>> {
    Cache::builder()
        .max_capacity(2)
        .shards(1)
        .record_stats()
        .hasher(BuildHasherDefault::<DefaultHasher>::default())
        .build()
        .unwrap()
}

#[test]
fn reader_races_writer_and_remover() {
    model(Some(2), || {
        let cache = Arc::new(small_cache());
        cache.insert(1u64, 10u64);
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || {
                let v = cache.get(&1);
                assert!(matches!(v, None | Some(10) | Some(11)), "{v:?}");
            })
        };
        let writer = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.insert(1, 11);
                cache.insert(2, 20);
                cache.insert(3, 30);
            })
        };
        reader.join().unwrap();
        writer.join().unwrap();
        assert!(cache.entry_count() <= 2);
        let s = cache.stats();
        assert_eq!(s.hits + s.misses, 1);
    });
}

#[test]
fn writer_races_remover() {
    model(Some(2), || {
        let cache = Arc::new(small_cache());
        cache.insert(1u64, 10u64);
        // A reader too: a hand-over between the two writers must not let it in.
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || {
                let v = cache.get(&1);
                assert!(matches!(v, None | Some(10) | Some(11)), "{v:?}");
            })
        };
        let writer = {
            let cache = cache.clone();
            thread::spawn(move || cache.insert(1, 11))
        };
        let remover = {
            let cache = cache.clone();
            thread::spawn(move || cache.remove(&1))
        };
        writer.join().unwrap();
        let removed = remover.join().unwrap();
        reader.join().unwrap();
        let now = cache.get(&1);
        // Either order, and nothing else: insert then remove, or remove then insert.
        assert!(
            matches!((removed, now), (Some(11), None) | (Some(10), Some(11))),
            "removed {removed:?}, now {now:?}"
        );
        assert_eq!(cache.entry_count(), u64::from(now.is_some()));
    });
}

/// The write-back's room for writers (`src/room.rs`): a writer that finds the dirty set
/// full waits; a flush that acknowledges entries lowers the count, then wakes waiters,
/// skipping the lock when it sees none. Whichever runs first, the writer must not sleep
/// through the flush: a lost wake-up leaves it blocked for good, which loom reports as a
/// deadlock. The dirty count is read and lowered `Relaxed`, as in `src/dirty.rs`; only the
/// room's two fences order it against the waiter count: with either fence removed, loom
/// finds the lost wake-up (checked by seeding each). Unbounded, it takes well under a second.
#[test]
fn a_flush_wakes_a_writer_waiting_for_room() {
    model(None, || {
        let room = Arc::new(LoomRoom::default());
        let dirty = Arc::new(AtomicUsize::new(1)); // the set holds at most 1
        let writer = {
            let (room, dirty) = (room.clone(), dirty.clone());
            thread::spawn(move || room.wait(|| dirty.load(Ordering::Relaxed) < 1))
        };
        dirty.fetch_sub(1, Ordering::Relaxed);
        room.freed();
        writer.join().unwrap();
    });
}

/// Two writers wait for one flush: `freed` wakes every waiter, not one.
#[test]
fn a_flush_wakes_every_writer_waiting_for_room() {
    model(Some(3), || {
        let room = Arc::new(LoomRoom::default());
        let dirty = Arc::new(AtomicUsize::new(1));
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let (room, dirty) = (room.clone(), dirty.clone());
                thread::spawn(move || room.wait(|| dirty.load(Ordering::Relaxed) < 1))
            })
            .collect();
        dirty.fetch_sub(1, Ordering::Relaxed);
        room.freed();
        for writer in writers {
            writer.join().unwrap();
        }
    });
}
