//! The high-water mark: a restarted generator whose clock is earlier never reissues an ID.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_core::ManualClock;
use keel_idgen::{
    ClockBackwards, FileMark, GenerateError, Layout, MarkStore, Snowflake, StoreError,
};
use proptest::prelude::*;

/// A store in memory that counts its writes and can be made to fail.
#[derive(Clone, Debug, Default)]
struct Memory {
    mark: Arc<Mutex<Option<u64>>>,
    writes: Arc<Mutex<u64>>,
    failing: Arc<Mutex<bool>>,
    // Set if a store ever moved the mark back.
    regressed: Arc<Mutex<bool>>,
}

impl MarkStore for Memory {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        Ok(*self.mark.lock().expect("lock"))
    }

    fn store(&self, unix_millis: u64) -> Result<(), StoreError> {
        if *self.failing.lock().expect("lock") {
            return Err(StoreError::new(std::io::Error::from(
                std::io::ErrorKind::StorageFull,
            )));
        }
        *self.writes.lock().expect("lock") += 1;
        let mut mark = self.mark.lock().expect("lock");
        if mark.is_some_and(|old| unix_millis < old) {
            *self.regressed.lock().expect("lock") = true;
        }
        *mark = Some(unix_millis);
        Ok(())
    }
}

fn generator(
    clock: &ManualClock,
    store: &Memory,
    policy: ClockBackwards,
) -> Snowflake<ManualClock> {
    Snowflake::builder(Layout::twitter(), 2)
        .clock(clock.clone())
        .on_clock_backwards(policy)
        .high_water_mark(store.clone(), Duration::from_secs(1))
        .build()
        .expect("valid")
}

#[test]
fn the_mark_is_written_once_per_window_not_per_id() {
    let clock = ManualClock::new();
    let store = Memory::default();
    let generator = generator(&clock, &store, ClockBackwards::Error);
    for _ in 0..3_500 {
        generator.next_id().expect("id");
        clock.advance(Duration::from_millis(1));
    }
    // 3.5 s of IDs with a 1 s window: the first reservation and three renewals.
    assert_eq!(*store.writes.lock().expect("lock"), 4);
    let mark = store.mark.lock().expect("lock").expect("stored");
    let parts = generator.decode(generator.next_id().expect("id"));
    assert!(parts.unix_millis < mark);
}

#[test]
fn a_crash_between_writes_and_an_earlier_clock_do_not_reissue() {
    let clock = ManualClock::new();
    let store = Memory::default();
    let before: Vec<u64> = {
        let generator = generator(&clock, &store, ClockBackwards::Error);
        (0..500)
            .map(|_| {
                clock.advance(Duration::from_micros(700));
                generator.next_id().expect("id")
            })
            .collect()
    };
    let largest = before.iter().copied().max().expect("ids");
    // The process dies without any shutdown, and comes back with its clock 300 ms earlier.
    clock.step_wall_back(Duration::from_millis(300));
    let restarted = generator(
        &clock,
        &store,
        ClockBackwards::Borrow {
            max: Duration::from_secs(5),
        },
    );
    for _ in 0..1_000 {
        let id = restarted.next_id().expect("id");
        assert!(id > largest, "reissued {id} <= {largest}");
    }
}

#[test]
fn with_the_error_policy_a_restart_behind_the_mark_refuses_until_the_clock_passes_it() {
    let clock = ManualClock::new();
    let store = Memory::default();
    generator(&clock, &store, ClockBackwards::Error)
        .next_id()
        .expect("id");
    clock.step_wall_back(Duration::from_secs(3600));
    let restarted = generator(&clock, &store, ClockBackwards::Error);
    assert!(matches!(
        restarted.next_id(),
        Err(GenerateError::ClockMovedBack { behind }) if behind > Duration::from_secs(3600)
    ));
    clock.step_wall_forward(Duration::from_secs(3602));
    assert!(restarted.next_id().is_ok());
}

#[test]
fn a_prompt_restart_finds_the_mark_up_to_a_window_ahead() {
    let clock = ManualClock::new();
    let store = Memory::default();
    let build = |policy: ClockBackwards| {
        Snowflake::builder(Layout::twitter(), 2)
            .clock(clock.clone())
            .on_clock_backwards(policy)
            .high_water_mark(store.clone(), Duration::from_secs(10))
            .build()
            .expect("valid")
    };
    let before = build(ClockBackwards::default()).next_id().expect("id");
    // Restarted 100 ms later with a correct clock: the reservation runs 9.9 s further.
    clock.advance(Duration::from_millis(100));
    assert_eq!(
        build(ClockBackwards::default()).next_id(),
        Err(GenerateError::ClockMovedBack {
            behind: Duration::from_millis(9_900)
        })
    );
    let borrowing = build(ClockBackwards::Borrow {
        max: Duration::from_secs(10),
    });
    let after = borrowing.next_id().expect("issued ahead of the clock");
    assert!(after > before);
    assert_eq!(
        borrowing.decode(after).unix_millis,
        borrowing.decode(before).unix_millis + 10_001
    );
}

#[test]
fn a_failing_store_stops_issuing_beyond_the_last_mark() {
    let clock = ManualClock::new();
    let store = Memory::default();
    let generator = generator(&clock, &store, ClockBackwards::Error);
    generator.next_id().expect("id");
    let mark = store.mark.lock().expect("lock").expect("stored");
    *store.failing.lock().expect("lock") = true;
    // Within the reservation IDs still flow; past it, an error rather than an unsaved ID.
    clock.advance(Duration::from_millis(500));
    assert!(generator.next_id().is_ok());
    clock.advance(Duration::from_millis(600));
    let Err(GenerateError::HighWaterMark { source }) = generator.next_id() else {
        panic!("an unsaved mark must stop the generator");
    };
    // The store's own error is kept, typed.
    let kind = source
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind);
    assert_eq!(kind, Some(std::io::ErrorKind::StorageFull));
    *store.failing.lock().expect("lock") = false;
    let id = generator.next_id().expect("id once the store works");
    assert!(generator.decode(id).unix_millis >= mark);
}

#[test]
fn file_mark_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("worker.mark");
    let clock = ManualClock::new();
    let build = || {
        Snowflake::builder(Layout::twitter(), 1)
            .clock(clock.clone())
            .on_clock_backwards(ClockBackwards::Borrow {
                max: Duration::from_secs(10),
            })
            .high_water_mark(FileMark::new(&path), Duration::from_millis(200))
            .build()
            .expect("valid")
    };
    let first = build().next_id().expect("id");
    clock.step_wall_back(Duration::from_millis(100));
    let second = build().next_id().expect("id");
    assert!(second > first);
    assert!(FileMark::new(&path).load().expect("readable").is_some());
}

#[test]
fn a_window_shorter_than_a_unit_is_refused() {
    let error = Snowflake::builder(Layout::sonyflake(), 1)
        .high_water_mark(Memory::default(), Duration::from_millis(5))
        .build()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the high-water window must be at least one time unit"
    );
}

// Threads share a generator that reserves one tick at a time, borrows ahead and sees the
// clock step back; a thread told to wait moves the clock on itself. Every ID is unique,
// each thread's IDs increase, the stored mark only grows, and no ID is stamped at or past
// the last mark stored (a restart from it would not reissue any).
#[test]
fn concurrent_reservations_keep_every_id_below_the_stored_mark() {
    let clock = ManualClock::new();
    let store = Memory::default();
    let layout = Layout::builder().sequence_bits(3).build().expect("layout");
    let generator = Arc::new(
        Snowflake::builder(layout, 1)
            .clock(clock.clone())
            .on_clock_backwards(ClockBackwards::Error)
            .on_sequence_exhausted(keel_idgen::SequenceExhausted::BorrowAhead {
                max: Duration::from_millis(2),
            })
            .high_water_mark(store.clone(), Duration::from_millis(1))
            .build()
            .expect("valid"),
    );
    let moves = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (generator, clock, moves, store) = (
                Arc::clone(&generator),
                clock.clone(),
                Arc::clone(&moves),
                store.clone(),
            );
            std::thread::spawn(move || {
                let mut ids = Vec::with_capacity(5_000);
                while ids.len() < 5_000 {
                    match generator.try_next_id() {
                        Ok(id) => {
                            // The mark covering this ID was stored before it was issued.
                            let mark = store.mark.lock().expect("lock").unwrap_or(0);
                            let stamped = generator.decode(id).unix_millis;
                            assert!(stamped < mark, "{stamped} issued before mark {mark}");
                            ids.push(id);
                        }
                        Err(GenerateError::WouldBlock { .. }) => {
                            let moved = moves.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                            clock.advance(Duration::from_millis(1));
                            if moved % 7 == 6 {
                                clock.step_wall_back(Duration::from_millis(2));
                            }
                        }
                        // A step back beyond the borrowing bound: catch up.
                        Err(GenerateError::ClockMovedBack { behind }) => {
                            clock.step_wall_forward(behind);
                        }
                        Err(other) => panic!("unexpected {other}"),
                    }
                }
                ids
            })
        })
        .collect();
    let all = common::join_unique_ordered(workers);
    let mark = store.mark.lock().expect("lock").expect("stored");
    let latest = all.iter().map(|id| generator.decode(*id).unix_millis).max();
    assert!(
        latest.is_some_and(|latest| latest < mark),
        "{latest:?} vs mark {mark}"
    );
    assert!(
        *store.writes.lock().expect("lock") > 100,
        "reserved tick by tick"
    );
    assert!(
        !*store.regressed.lock().expect("lock"),
        "the mark moved back"
    );
}

/// A store holding a fixed mark, as a restarted process finds it.
#[derive(Debug)]
struct Loaded(u64);

impl MarkStore for Loaded {
    fn load(&self) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.0))
    }

    fn store(&self, _: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Reference model: a restarted generator issues only IDs stamped at or after the loaded
    // mark, wherever the mark and the clock are, including a mark past the layout's lifetime
    // (written under another layout, or by a generator that reached the end), which leaves
    // no ID to issue.
    #[test]
    fn a_loaded_mark_is_never_undercut(
        timestamp_bits in 1u8..=50, sequence_bits in 1u8..=24, worker_bits in 0u8..=8,
        kind in 0u8..3, ticks_from_end in 0u64..4, any_mark in any::<u64>(),
        clock_ticks in any::<u64>(),
    ) {
        // Widths cut down to 64 bits in all.
        let sequence_bits = sequence_bits.min(64 - timestamp_bits);
        let worker_bits = worker_bits.min(64 - timestamp_bits - sequence_bits);
        let layout = Layout::builder()
            .timestamp_bits(timestamp_bits)
            .sequence_bits(sequence_bits)
            .worker_bits(worker_bits)
            .epoch_unix_millis(0)
            .build()
            .expect("at most 64 bits");
        // A clock the ManualClock can show (its nanoseconds fit a u64).
        let clock_end = (u64::MAX / 1_000_000).min(layout.max_ticks());
        let clock = ManualClock::at_unix_millis(clock_ticks % (clock_end + 1));
        let end = layout.max_ticks().saturating_add(1);
        let mark = match kind {
            // Just before or past the last tick.
            0 => (end + 2).saturating_sub(ticks_from_end),
            // Far past it: a tick count whose high bits do not fit beside the sequence.
            1 => (any_mark | 1).checked_shl(64 - u32::from(sequence_bits)).unwrap_or(u64::MAX)
                | (clock_ticks & layout.max_ticks()),
            _ => any_mark,
        };
        let generator = Snowflake::builder(layout, 0)
            .clock(clock.clone())
            // The most permissive policy: any ID below the mark would be issued, not refused.
            .on_clock_backwards(ClockBackwards::Borrow { max: Duration::MAX })
            .high_water_mark(Loaded(mark), Duration::from_millis(1))
            .build()
            .expect("valid");
        for _ in 0..3 {
            if let Ok(id) = generator.try_next_id() {
                let stamped = generator.decode(id).unix_millis;
                prop_assert!(stamped >= mark, "issued {id} stamped {stamped} below the mark {mark}");
            }
        }
    }
}

#[test]
fn file_marks_differing_only_in_extension_do_not_share_a_temporary_file() {
    // Two generators' marks in one folder, written at the same time: each file must only
    // ever hold its own values (a shared temporary file swaps them, or fails the rename).
    let dir = tempfile::tempdir().expect("temporary directory");
    let marks = [
        FileMark::new(dir.path().join("orders.mark")),
        FileMark::new(dir.path().join("orders.hwm")),
    ];
    std::thread::scope(|s| {
        for (i, mark) in marks.iter().enumerate() {
            s.spawn(move || {
                let base = 1_000_000 * (i as u64 + 1);
                for n in 0..300 {
                    mark.store(base + n).expect("store");
                }
            });
        }
    });
    for (i, mark) in marks.iter().enumerate() {
        let base = 1_000_000 * (i as u64 + 1);
        assert_eq!(mark.load().expect("readable"), Some(base + 299));
    }
}
