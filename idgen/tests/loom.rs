//! Model-checks the Snowflake state word: every interleaving of concurrent `try_next_id`
//! calls yields unique IDs, strictly increasing per thread.
//!
//! `RUSTFLAGS="--cfg keel_loom" CARGO_TARGET_DIR=target/loom cargo test --release -p keel-idgen --test loom`
#![cfg(keel_loom)]

use std::time::Duration;

use keel_core::ManualClock;
use keel_core::sync::Arc;
use keel_idgen::{Layout, SequenceExhausted, Snowflake};

// One sequence bit, so two threads taking two IDs each also cross a tick boundary (borrowed
// ahead, because the manual clock stands still inside the model).
fn tiny(clock: ManualClock) -> Snowflake<ManualClock> {
    let layout = Layout::builder()
        .timestamp_bits(20)
        .worker_bits(0)
        .sequence_bits(1)
        .epoch_unix_millis(0)
        .build()
        .expect("layout");
    Snowflake::builder(layout, 0)
        .clock(clock)
        .on_sequence_exhausted(SequenceExhausted::BorrowAhead {
            max: Duration::from_millis(100),
        })
        .build()
        .expect("generator")
}

#[test]
fn concurrent_ids_are_unique_and_ordered_per_thread() {
    loom::model(|| {
        let generator = Arc::new(tiny(ManualClock::at_unix_millis(1_000)));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let generator = Arc::clone(&generator);
                loom::thread::spawn(move || {
                    let a = generator.try_next_id().expect("id");
                    let b = generator.try_next_id().expect("id");
                    assert!(b > a);
                    [a, b]
                })
            })
            .collect();
        let mut ids: Vec<u64> = handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("no panic"))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 4);
        // Four IDs from one sequence bit: ticks 1000 and 1001, both sequences of each.
        assert_eq!(ids, vec![2000, 2001, 2002, 2003]);
    });
}

#[test]
fn a_clock_moving_during_generation_never_duplicates() {
    loom::model(|| {
        let clock = ManualClock::at_unix_millis(1_000);
        let generator = Arc::new(tiny(clock.clone()));
        let mover = loom::thread::spawn(move || {
            clock.advance(Duration::from_millis(1));
            clock.step_wall_back(Duration::from_millis(2));
        });
        let other = {
            let generator = Arc::clone(&generator);
            loom::thread::spawn(move || generator.try_next_id().expect("id"))
        };
        let mine = generator.try_next_id().expect("id");
        let theirs = other.join().expect("no panic");
        mover.join().expect("no panic");
        assert_ne!(mine, theirs);
        let third = generator.try_next_id().expect("id");
        assert!(third > mine && third > theirs);
    });
}

/// Two threads take two IDs each while the clock ticks once: unique, increasing per thread.
/// Each generator keeps `(millisecond, counter)` in one word moved by compare-and-swap.
fn millis_counter_model<T: Ord + Copy + std::fmt::Debug + Send + 'static>(
    make: fn(ManualClock) -> Box<dyn Fn() -> T + Send + Sync>,
) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let clock = ManualClock::at_unix_millis(1_000);
        let next: Arc<Box<dyn Fn() -> T + Send + Sync>> = Arc::new(make(clock.clone()));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let next = Arc::clone(&next);
                loom::thread::spawn(move || {
                    let a = next();
                    let b = next();
                    assert!(b > a, "{a:?} then {b:?}");
                    [a, b]
                })
            })
            .collect();
        clock.advance(Duration::from_millis(1));
        let mine = next();
        let mut ids: Vec<T> = handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("no panic"))
            .collect();
        ids.push(mine);
        let issued = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), issued, "a duplicate ID");
    });
}

#[test]
fn concurrent_ulids_are_unique_and_ordered_per_thread() {
    millis_counter_model(|clock| {
        let generator = keel_idgen::UlidGenerator::with_clock(clock);
        Box::new(move || generator.next_id().expect("ulid"))
    });
}

#[test]
fn concurrent_uuids_are_unique_and_ordered_per_thread() {
    millis_counter_model(|clock| {
        let generator = keel_idgen::UuidV7Generator::with_clock(clock);
        Box::new(move || generator.next_id().expect("uuid"))
    });
}

/// The last persisted high-water mark, in memory, behind loom's mutex so that persisting is
/// a point where loom can switch threads.
#[derive(Debug, Default, Clone)]
struct Mark(Arc<keel_core::sync::Mutex<Option<u64>>>);

impl keel_idgen::MarkStore for Mark {
    fn load(&self) -> Result<Option<u64>, keel_idgen::StoreError> {
        Ok(*self.0.lock().unwrap())
    }
    fn store(&self, unix_millis: u64) -> Result<(), keel_idgen::StoreError> {
        *self.0.lock().unwrap() = Some(unix_millis);
        Ok(())
    }
}

/// Two threads cross high-water reservations (a window of one tick) at once: every ID is
/// issued only after a mark past its millisecond was persisted, so a restart that resumes
/// from the mark can never issue it again; IDs stay unique.
#[test]
fn ids_never_outrun_the_persisted_high_water_mark() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let mark = Mark::default();
        let generator = Arc::new(
            Snowflake::builder(
                Layout::builder()
                    .timestamp_bits(20)
                    .worker_bits(0)
                    .sequence_bits(1)
                    .epoch_unix_millis(0)
                    .build()
                    .expect("layout"),
                0,
            )
            .clock(ManualClock::at_unix_millis(1_000))
            .on_sequence_exhausted(SequenceExhausted::BorrowAhead {
                max: Duration::from_millis(100),
            })
            .high_water_mark(mark.clone(), Duration::from_millis(1))
            .build()
            .expect("generator"),
        );
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let generator = Arc::clone(&generator);
                let mark = mark.clone();
                loom::thread::spawn(move || {
                    let mut ids = Vec::new();
                    for _ in 0..2 {
                        let id = generator.try_next_id().expect("id");
                        let persisted = mark.0.lock().unwrap().expect("a mark");
                        let millis = generator.decode(id).unix_millis;
                        assert!(
                            persisted > millis,
                            "id at {millis} ms, mark only {persisted}"
                        );
                        ids.push(id);
                    }
                    ids
                })
            })
            .collect();
        let mut ids: Vec<u64> = handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("no panic"))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 4);
    });
}
