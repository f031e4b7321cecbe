//! The per-thread generators against a reference model of their timestamps, and their
//! uniqueness across many threads.

use std::collections::HashSet;
use std::time::Duration;

use keel_core::{Clock, ManualClock, SystemClock};
use keel_idgen::{LocalUlidGenerator, LocalUuidV7Generator, Ulid, UuidV7};
use proptest::prelude::*;

/// What happens between two IDs.
#[derive(Clone, Debug)]
enum Event {
    Issue(u16),
    Advance(u64),
    WallBack(u64),
    WallForward(u64),
}

fn steps() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        prop_oneof![
            4 => (1u16..500).prop_map(Event::Issue),
            2 => (0u64..5_000).prop_map(Event::Advance),
            1 => (0u64..3_000).prop_map(Event::WallBack),
            1 => (0u64..3_000).prop_map(Event::WallForward),
        ],
        1..40,
    )
}

fn apply(clock: &ManualClock, step: &Event) {
    match *step {
        Event::Issue(_) => {}
        Event::Advance(micros) => clock.advance(Duration::from_micros(micros)),
        Event::WallBack(ms) => clock.step_wall_back(Duration::from_millis(ms)),
        Event::WallForward(ms) => clock.step_wall_forward(Duration::from_millis(ms)),
    }
}

proptest! {
    /// Model: an ID's timestamp is the highest clock reading the generator has seen, so it is
    /// never behind the clock, and ahead of it only by how far the clock stepped back.
    #[test]
    fn ulids_strictly_increase_stamped_with_the_highest_reading(steps in steps()) {
        let clock = ManualClock::new();
        let mut generator = LocalUlidGenerator::with_clock(clock.clone());
        let mut last: Option<Ulid> = None;
        let mut highest = 0;
        for step in &steps {
            apply(&clock, step);
            if let Event::Issue(count) = *step {
                for _ in 0..count {
                    let now = clock.unix_millis();
                    highest = highest.max(now);
                    let ulid = generator.next_id().expect("ulid");
                    prop_assert_eq!(ulid.timestamp_ms(), highest);
                    prop_assert!(ulid.timestamp_ms() >= now);
                    if let Some(previous) = last {
                        prop_assert!(ulid > previous);
                        if ulid.timestamp_ms() == previous.timestamp_ms() {
                            prop_assert_eq!(ulid.random(), previous.random() + 1);
                        }
                    }
                    let text = ulid.to_string();
                    prop_assert_eq!(text.parse::<Ulid>().expect("parses"), ulid);
                    last = Some(ulid);
                }
            }
        }
    }

    #[test]
    fn uuids_strictly_increase_stamped_with_the_highest_reading(steps in steps()) {
        let clock = ManualClock::new();
        let mut generator = LocalUuidV7Generator::with_clock(clock.clone());
        let mut last: Option<UuidV7> = None;
        let mut highest = 0;
        for step in &steps {
            apply(&clock, step);
            if let Event::Issue(count) = *step {
                for _ in 0..count {
                    let now = clock.unix_millis();
                    highest = highest.max(now);
                    let uuid = generator.next_id().expect("uuid");
                    prop_assert_eq!(uuid.unix_millis(), highest);
                    if let Some(previous) = last {
                        prop_assert!(uuid > previous);
                    }
                    let text = uuid.to_string();
                    prop_assert_eq!(text.parse::<UuidV7>().expect("parses"), uuid);
                    prop_assert_eq!(UuidV7::from_u128(uuid.to_u128()), Ok(uuid));
                    last = Some(uuid);
                }
            }
        }
    }
}

/// Many threads, one generator each, all in the same millisecond (the case where only the
/// random starts keep them apart), then across advancing milliseconds.
#[test]
fn ulids_are_unique_across_threads() {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 20_000;
    let clock = ManualClock::new();
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let clock = clock.clone();
            std::thread::spawn(move || {
                let mut generator = LocalUlidGenerator::with_clock(clock.clone());
                let mut ulids = Vec::with_capacity(PER_THREAD);
                for i in 0..PER_THREAD {
                    // Half the threads move the shared clock on as they go.
                    if thread % 2 == 0 && i % 1_000 == 0 {
                        clock.advance(Duration::from_millis(1));
                    }
                    ulids.push(generator.next_id().expect("ulid"));
                }
                ulids
            })
        })
        .collect();
    let mut seen = HashSet::with_capacity(THREADS * PER_THREAD);
    for handle in handles {
        let ulids = handle.join().expect("thread");
        assert!(ulids.windows(2).all(|pair| pair[0] < pair[1]));
        for ulid in ulids {
            assert!(seen.insert(ulid), "duplicate {ulid}");
        }
    }
    assert_eq!(seen.len(), THREADS * PER_THREAD);
}

#[test]
fn uuids_are_unique_across_threads_on_the_coarse_system_clock() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 20_000;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(|| {
                let mut generator = LocalUuidV7Generator::new();
                (0..PER_THREAD)
                    .map(|_| generator.next_id().expect("uuid"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for handle in handles {
        let uuids = handle.join().expect("thread");
        assert!(uuids.windows(2).all(|pair| pair[0] < pair[1]));
        seen.extend(uuids);
    }
    assert_eq!(seen.len(), THREADS * PER_THREAD);
}

/// Across threads, IDs are ordered by millisecond: one issued after another (here, after
/// the other thread was joined) is not stamped earlier.
#[test]
fn a_later_id_on_another_thread_is_not_stamped_earlier() {
    let clock = SystemClock;
    let first = std::thread::spawn(|| LocalUlidGenerator::new().next_id().expect("ulid"))
        .join()
        .expect("thread");
    let second = LocalUlidGenerator::with_clock(clock)
        .next_id()
        .expect("ulid");
    assert!(second.timestamp_ms() >= first.timestamp_ms());
}
