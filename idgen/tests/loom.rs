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
