//! Snowflake behaviour under clock faults, exhaustion and contention, driven by ManualClock.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_core::{Clock, Instant, ManualClock};
use keel_idgen::{
    ClockBackwards, GenerateError, Layout, LeaseValidity, SequenceExhausted, Snowflake, WorkerId,
};

const STEPS: [Duration; 4] = [
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_secs(1),
    Duration::from_secs(3600),
];

fn with_policy(clock: &ManualClock, policy: ClockBackwards) -> Snowflake<ManualClock> {
    Snowflake::builder(Layout::twitter(), 9)
        .clock(clock.clone())
        .on_clock_backwards(policy)
        .build()
        .expect("valid configuration")
}

#[test]
fn error_policy_refuses_every_step_back_and_says_how_far() {
    for step in STEPS {
        let clock = ManualClock::new();
        let generator = with_policy(&clock, ClockBackwards::Error);
        generator.next_id().expect("first id");
        clock.step_wall_back(step);
        assert_eq!(
            generator.next_id(),
            Err(GenerateError::ClockMovedBack { behind: step }),
            "step back of {step:?}"
        );
        // Once the clock has caught up, IDs flow again.
        clock.step_wall_forward(step);
        assert!(generator.next_id().is_ok());
    }
}

#[test]
fn borrow_policy_keeps_issuing_on_the_last_timestamp_within_its_bound() {
    for step in STEPS {
        let clock = ManualClock::new();
        let max = Duration::from_secs(2);
        let generator = with_policy(&clock, ClockBackwards::Borrow { max });
        let before = generator.next_id().expect("first id");
        clock.step_wall_back(step);
        let result = generator.next_id();
        if step <= max {
            let after = result.expect("borrowed id");
            assert!(after > before, "step back of {step:?}");
            let (a, b) = (generator.decode(before), generator.decode(after));
            assert_eq!(b.ticks, a.ticks, "stays on the last timestamp");
            assert_eq!(b.sequence, a.sequence + 1);
        } else {
            assert_eq!(result, Err(GenerateError::ClockMovedBack { behind: step }));
        }
    }
}

#[test]
fn borrowing_past_a_full_tick_moves_to_the_next_one_and_stays_unique() {
    let clock = ManualClock::new();
    let generator = with_policy(
        &clock,
        ClockBackwards::Borrow {
            max: Duration::from_millis(5),
        },
    );
    let first = generator.next_id().expect("id");
    clock.step_wall_back(Duration::from_millis(1));
    // 4,096 per tick: 3 ticks' worth while the clock stands 1 ms back.
    let mut last = first;
    for _ in 0..3 * 4096 {
        let id = generator.next_id().expect("within the borrow bound");
        assert!(id > last);
        last = id;
    }
    let lead = generator.decode(last).ticks - generator.decode(first).ticks;
    assert_eq!(lead, 3);
    // Borrowing is bounded: at 5 ms ahead of a clock standing still, try says wait.
    let mut outcome = Ok(0);
    for _ in 0..4 * 4096 {
        outcome = generator.try_next_id();
        if outcome.is_err() {
            break;
        }
    }
    assert!(
        matches!(outcome, Err(GenerateError::WouldBlock { .. })),
        "{outcome:?}"
    );
}

#[test]
fn borrow_policy_does_not_run_ahead_when_the_clock_has_not_stepped_back() {
    // Borrowing is for a clock that went back; a tick used up at the layout's rate still
    // waits for the next tick (SequenceExhausted::Wait), so timestamps never run ahead.
    let clock = ManualClock::new();
    let layout = Layout::builder().sequence_bits(2).build().expect("layout");
    let generator = Snowflake::builder(layout, 0)
        .clock(clock.clone())
        .on_clock_backwards(ClockBackwards::Borrow {
            max: Duration::from_secs(1),
        })
        .build()
        .expect("valid");
    for _ in 0..4 {
        generator.try_next_id().expect("id");
    }
    assert_eq!(
        generator.try_next_id(),
        Err(GenerateError::WouldBlock {
            retry_after: Duration::from_millis(1)
        })
    );
}

#[test]
fn wait_policy_waits_for_the_clock_within_its_bound() {
    for step in STEPS {
        let clock = ManualClock::new();
        let max = Duration::from_secs(2);
        let generator = Arc::new(with_policy(&clock, ClockBackwards::Wait { max }));
        let before = generator.next_id().expect("first id");
        clock.step_wall_back(step);
        if step > max {
            assert_eq!(
                generator.next_id(),
                Err(GenerateError::ClockMovedBack { behind: step })
            );
            continue;
        }
        match generator.try_next_id() {
            Err(GenerateError::WouldBlock { retry_after }) => assert_eq!(retry_after, step),
            other => panic!("expected WouldBlock for {step:?}, got {other:?}"),
        }
        // A blocked caller is released when (another thread moves) the clock catches up.
        let waiting = {
            let generator = Arc::clone(&generator);
            std::thread::spawn(move || generator.next_id())
        };
        clock.advance(step);
        let after = waiting
            .join()
            .expect("no panic")
            .expect("id after the wait");
        assert!(after > before);
        assert!(generator.decode(after).unix_millis >= generator.decode(before).unix_millis);
    }
}

#[test]
fn a_wait_gives_up_after_its_bound_on_the_monotonic_clock() {
    let clock = ManualClock::new();
    let generator = Arc::new(with_policy(
        &clock,
        ClockBackwards::Wait {
            max: Duration::from_millis(10),
        },
    ));
    generator.next_id().expect("first id");
    clock.step_wall_back(Duration::from_millis(5));
    let done = Arc::new(AtomicBool::new(false));
    let waiting = {
        let (generator, done) = (Arc::clone(&generator), Arc::clone(&done));
        std::thread::spawn(move || {
            let outcome = generator.next_id();
            done.store(true, Ordering::Release);
            outcome
        })
    };
    // Monotonic time passes but the wall clock is stepped back again and again, so it never
    // catches up; the waiter must give up, not spin forever.
    while !done.load(Ordering::Acquire) {
        clock.advance(Duration::from_millis(1));
        clock.step_wall_back(Duration::from_millis(1));
        std::thread::yield_now();
    }
    let outcome = waiting.join().expect("no panic");
    assert!(
        matches!(outcome, Err(GenerateError::WaitTimedOut { waited }) if waited > Duration::from_millis(10)),
        "{outcome:?}"
    );
}

#[test]
fn a_frozen_clock_cannot_hold_a_caller_forever() {
    // Nobody moves this clock: the wait for the next tick must end in an error, not a hang.
    let clock = ManualClock::new();
    let layout = Layout::builder().sequence_bits(1).build().expect("layout");
    let generator = Snowflake::builder(layout, 0)
        .clock(clock)
        .on_clock_backwards(ClockBackwards::Error)
        .build()
        .expect("valid");
    generator.next_id().expect("id");
    generator.next_id().expect("id");
    assert!(matches!(
        generator.next_id(),
        Err(GenerateError::WaitTimedOut { waited }) if waited > Duration::from_millis(2)
    ));
}

#[test]
fn forward_jumps_are_followed_and_a_later_step_back_is_caught() {
    let clock = ManualClock::new();
    let generator = with_policy(
        &clock,
        ClockBackwards::Borrow {
            max: Duration::from_millis(100),
        },
    );
    let before = generator.decode(generator.next_id().expect("id"));
    clock.step_wall_forward(Duration::from_secs(3600));
    let jumped = generator.decode(generator.next_id().expect("id"));
    assert_eq!(jumped.unix_millis, before.unix_millis + 3_600_000);
    assert_eq!(jumped.sequence, 0);
    // NTP corrects the jump: an hour back is far beyond the borrow bound.
    clock.step_wall_back(Duration::from_secs(3600));
    assert_eq!(
        generator.next_id(),
        Err(GenerateError::ClockMovedBack {
            behind: Duration::from_secs(3600)
        })
    );
}

#[test]
fn sequence_exhaustion_waits_for_the_next_tick() {
    let clock = ManualClock::new();
    let layout = Layout::builder().sequence_bits(3).build().expect("layout");
    let generator = Arc::new(
        Snowflake::builder(layout, 0)
            .clock(clock.clone())
            .build()
            .expect("valid"),
    );
    let ids: Vec<u64> = (0..8).map(|_| generator.next_id().expect("id")).collect();
    assert_eq!(
        generator.try_next_id(),
        Err(GenerateError::WouldBlock {
            retry_after: Duration::from_millis(1)
        })
    );
    let waiting = {
        let generator = Arc::clone(&generator);
        std::thread::spawn(move || generator.next_id())
    };
    clock.advance(Duration::from_millis(1));
    let next = waiting.join().expect("no panic").expect("id");
    let parts = generator.decode(next);
    assert_eq!(parts.ticks, generator.decode(ids[7]).ticks + 1);
    assert_eq!(parts.sequence, 0);
}

#[test]
fn borrow_ahead_serves_bursts_up_to_its_bound() {
    let clock = ManualClock::new();
    let layout = Layout::builder().sequence_bits(2).build().expect("layout");
    let generator = Snowflake::builder(layout, 0)
        .clock(clock.clone())
        .on_sequence_exhausted(SequenceExhausted::BorrowAhead {
            max: Duration::from_millis(2),
        })
        .build()
        .expect("valid");
    // Ticks t, t+1 and t+2, four IDs each, with the clock standing still.
    let ids: Vec<u64> = (0..12)
        .map(|_| generator.try_next_id().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!(
        generator.decode(ids[11]).ticks - generator.decode(ids[0]).ticks,
        2
    );
    assert!(matches!(
        generator.try_next_id(),
        Err(GenerateError::WouldBlock { .. })
    ));
    clock.advance(Duration::from_millis(1));
    assert!(generator.try_next_id().is_ok());
}

#[test]
fn borrow_ahead_serves_a_step_back_within_its_bound_even_under_the_error_policy() {
    let clock = ManualClock::new();
    let generator = Snowflake::builder(Layout::twitter(), 9)
        .clock(clock.clone())
        .on_clock_backwards(ClockBackwards::Error)
        .on_sequence_exhausted(SequenceExhausted::BorrowAhead {
            max: Duration::from_millis(5),
        })
        .build()
        .expect("valid");
    let first = generator.next_id().expect("id");
    // Indistinguishable from the generator's own 3 ms lead: served on the last timestamp.
    clock.step_wall_back(Duration::from_millis(3));
    let second = generator.next_id().expect("id within the borrowing bound");
    assert_eq!(second, first + 1);
    // Beyond the bound the Error policy applies.
    clock.step_wall_back(Duration::from_millis(3));
    assert_eq!(
        generator.next_id(),
        Err(GenerateError::ClockMovedBack {
            behind: Duration::from_millis(6)
        })
    );
}

#[test]
fn a_lapsed_lease_stops_the_generator() {
    let clock = ManualClock::new();
    let lease = LeaseValidity::new(clock.clone());
    lease.extend_to(clock.now() + Duration::from_secs(10));
    let generator = Snowflake::builder(Layout::twitter(), WorkerId::leased(4, lease.clone()))
        .clock(clock.clone())
        .build()
        .expect("valid");
    assert!(generator.next_id().is_ok());
    clock.advance(Duration::from_secs(10));
    assert_eq!(generator.next_id(), Err(GenerateError::LeaseExpired));
    lease.extend_to(clock.now() + Duration::from_secs(10));
    assert!(generator.next_id().is_ok());
    lease.revoke();
    assert_eq!(generator.next_id(), Err(GenerateError::LeaseExpired));
}

// A clock whose wall reading takes `pause`, as for a process stopped between checking its
// lease and reading the time.
#[derive(Clone, Debug)]
struct SlowWallClock {
    inner: ManualClock,
    pause: Duration,
}

impl Clock for SlowWallClock {
    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn unix_millis(&self) -> u64 {
        self.inner.advance(self.pause);
        self.inner.unix_millis()
    }
}

#[test]
fn no_id_is_stamped_after_its_lease_deadline() {
    let clock = ManualClock::new();
    let lease = LeaseValidity::new(clock.clone());
    lease.extend_to(clock.now() + Duration::from_secs(5));
    // The wall time at the lease's deadline: another process may be granted the id after it.
    let deadline_wall = clock.unix_millis() + 5_000;
    let generator = Snowflake::builder(Layout::twitter(), WorkerId::leased(3, lease))
        .clock(SlowWallClock {
            inner: clock.clone(),
            pause: Duration::from_secs(2),
        })
        .build()
        .expect("valid");
    let mut issued = 0;
    for _ in 0..3 {
        match generator.try_next_id() {
            Ok(id) => {
                let stamped = generator.decode(id).unix_millis;
                assert!(
                    stamped < deadline_wall,
                    "stamped {stamped}, deadline {deadline_wall}"
                );
                issued += 1;
            }
            Err(error) => assert_eq!(error, GenerateError::LeaseExpired),
        }
    }
    assert_eq!(issued, 1, "the one reading before the deadline is issued");
}

#[test]
fn js_safe_ids_are_exact_as_doubles() {
    let clock = ManualClock::new();
    let generator = Snowflake::builder(Layout::js_safe(), 15)
        .clock(clock.clone())
        .build()
        .expect("valid");
    clock.step_wall_forward(Duration::from_secs(60 * 365 * 24 * 3600));
    let id = generator.next_id().expect("id 60 years on");
    assert!(id < 1 << 53);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let round_trip = (id as f64) as u64;
    assert_eq!(round_trip, id);
}

#[test]
fn sonyflake_layout_counts_ten_millisecond_units() {
    let clock = ManualClock::new();
    let generator = Snowflake::builder(Layout::sonyflake(), 0xBEEF)
        .clock(clock.clone())
        .build()
        .expect("valid");
    let first = generator.decode(generator.next_id().expect("id"));
    clock.advance(Duration::from_millis(9 - clock.unix_millis() % 10));
    let same_unit = generator.decode(generator.next_id().expect("id"));
    clock.advance(Duration::from_millis(1));
    let next_unit = generator.decode(generator.next_id().expect("id"));
    assert_eq!(first.worker, 0xBEEF);
    assert_eq!((same_unit.ticks, same_unit.sequence), (first.ticks, 1));
    assert_eq!((next_unit.ticks, next_unit.sequence), (first.ticks + 1, 0));
}

// Several threads take IDs from one generator; a thread told to wait moves the clock on by
// 1 ms itself (so time passes exactly as fast as the layout's rate requires) and, every
// `step_back_every` moves, steps the wall clock back 5 ms. No ID repeats, no call fails, and
// each thread sees its IDs strictly increasing.
fn hammer(threads: usize, per_thread: usize, step_back_every: u64) {
    let clock = ManualClock::new();
    let generator = Arc::new(
        Snowflake::builder(Layout::twitter(), 1)
            .clock(clock.clone())
            .on_clock_backwards(ClockBackwards::Borrow {
                max: Duration::from_secs(10),
            })
            .build()
            .expect("valid"),
    );
    let moves = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (generator, clock, moves) =
                (Arc::clone(&generator), clock.clone(), Arc::clone(&moves));
            std::thread::spawn(move || {
                let mut ids = Vec::with_capacity(per_thread);
                while ids.len() < per_thread {
                    match generator.try_next_id() {
                        Ok(id) => ids.push(id),
                        Err(GenerateError::WouldBlock { .. }) => {
                            let moved = moves.fetch_add(1, Ordering::AcqRel) + 1;
                            clock.advance(Duration::from_millis(1));
                            if step_back_every > 0 && moved.is_multiple_of(step_back_every) {
                                clock.step_wall_back(Duration::from_millis(5));
                            }
                        }
                        Err(other) => panic!("unexpected {other}"),
                    }
                }
                ids
            })
        })
        .collect();
    let all = common::join_unique_ordered(workers);
    assert_eq!(all.len(), threads * per_thread);
    if step_back_every > 0 {
        assert!(
            moves.load(Ordering::Acquire) >= step_back_every,
            "the clock did step back"
        );
    }
}

#[test]
fn millions_of_ids_from_four_threads_are_unique_and_ordered() {
    hammer(4, 500_000, 0);
}

#[test]
fn millions_of_ids_under_repeated_steps_back_are_unique_and_ordered() {
    hammer(3, 400_000, 7);
}

/// The first tick issues sequence 0 like every other tick: (0, 0) is an ID.
#[test]
fn first_tick_issues_sequence_zero() {
    let layout = Layout::twitter();
    let clock = ManualClock::at_unix_millis(layout.epoch_unix_millis());
    let generator = Snowflake::builder(layout, 5)
        .clock(clock.clone())
        .build()
        .unwrap();
    let parts: Vec<_> = (0..3)
        .map(|_| generator.decode(generator.next_id().unwrap()))
        .map(|p| (p.ticks, p.sequence))
        .collect();
    assert_eq!(parts, [(0, 0), (0, 1), (0, 2)]);
    clock.advance(Duration::from_millis(1));
    let next = generator.decode(generator.next_id().unwrap());
    assert_eq!((next.ticks, next.sequence), (1, 0));
}
