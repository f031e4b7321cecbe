//! State-machine tests: every trip condition and transition, driven by a `ManualClock`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_breaker::{
    BreakerConfigError, CallError, CircuitBreaker, CircuitBreakerBuilder, OpenWait, Reason, State,
    Transition, Window,
};
use keel_core::{Clock, ManualClock};

fn builder(clock: &ManualClock) -> CircuitBreakerBuilder<ManualClock> {
    CircuitBreaker::builder()
        .no_failure_rate()
        .open_wait(OpenWait::Fixed(Duration::from_secs(10)))
        .half_open_probes(1)
        .clock(clock.clone())
}

fn fail<C: Clock>(breaker: &CircuitBreaker<C>) {
    breaker.try_acquire().expect("admitted").failure();
}

fn succeed<C: Clock>(breaker: &CircuitBreaker<C>) {
    breaker.try_acquire().expect("admitted").success();
}

#[test]
fn consecutive_failures_trip_and_a_success_resets_the_run() {
    let clock = ManualClock::new();
    let breaker = builder(&clock).consecutive_failures(3).build().unwrap();
    fail(&breaker);
    fail(&breaker);
    succeed(&breaker);
    fail(&breaker);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.metrics().consecutive_failures, 2);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(rejected.retry_after(), Some(Duration::from_secs(10)));
    assert_eq!(breaker.metrics().rejected, 1);
}

#[test]
fn count_window_failure_rate_waits_for_minimum_calls() {
    let clock = ManualClock::new();
    let breaker = builder(&clock)
        .failure_rate(50.0)
        .window(Window::Count(10))
        .minimum_calls(4)
        .build()
        .unwrap();
    fail(&breaker);
    fail(&breaker);
    fail(&breaker);
    assert_eq!(
        breaker.state(),
        State::Closed,
        "3 calls are below the minimum"
    );
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.metrics().trips, 1);
}

#[test]
fn the_call_that_reaches_the_minimum_trips_even_if_it_succeeds() {
    let clock = ManualClock::new();
    let breaker = builder(&clock)
        .failure_rate(50.0)
        .window(Window::Count(10))
        .minimum_calls(4)
        .build()
        .unwrap();
    fail(&breaker);
    fail(&breaker);
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    succeed(&breaker); // 2 of 4 failed: 50%
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn count_window_slides_old_failures_out() {
    let clock = ManualClock::new();
    let breaker = builder(&clock)
        .failure_rate(60.0)
        .window(Window::Count(5))
        .minimum_calls(5)
        .build()
        .unwrap();
    for _ in 0..2 {
        fail(&breaker);
    }
    for _ in 0..5 {
        succeed(&breaker);
    }
    let metrics = breaker.metrics();
    assert_eq!((metrics.calls, metrics.failed), (5, 0));
    for _ in 0..2 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Closed, "2 of 5 is 40%");
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open, "3 of 5 is 60%");
}

#[test]
fn time_window_forgets_failures_older_than_the_window() {
    let clock = ManualClock::new();
    let breaker = builder(&clock)
        .failure_rate(50.0)
        .window(Window::Time {
            length: Duration::from_secs(10),
            buckets: 10,
        })
        .minimum_calls(4)
        .build()
        .unwrap();
    fail(&breaker);
    fail(&breaker);
    fail(&breaker);
    clock.advance(Duration::from_secs(10));
    assert_eq!(breaker.metrics().calls, 0, "the window moved past them");
    fail(&breaker);
    succeed(&breaker);
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    clock.advance(Duration::from_secs(5));
    fail(&breaker); // 2 of 4 inside the last 10 s
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        breaker.metrics().failure_rate,
        Some(50.0),
        "an open breaker keeps its window"
    );
}

#[test]
fn slow_calls_trip_on_their_own_threshold() {
    let clock = ManualClock::new();
    let breaker = builder(&clock)
        .failure_rate(50.0)
        .slow_calls(50.0, Duration::from_millis(100))
        .window(Window::Count(4))
        .minimum_calls(4)
        .build()
        .unwrap();
    for slow in [true, false, false, true] {
        let permit = breaker.try_acquire().unwrap();
        clock.advance(Duration::from_millis(if slow { 100 } else { 99 }));
        if breaker.state() == State::Closed {
            permit.success();
        }
    }
    assert_eq!(breaker.state(), State::Open);
    let last_trip = breaker.metrics();
    assert_eq!(last_trip.trips, 1);
    assert_eq!(last_trip.failed, 0);
}

#[test]
fn open_then_half_open_then_closed() {
    let clock = ManualClock::new();
    let events = Arc::new(Mutex::new(Vec::<Transition>::new()));
    let seen = events.clone();
    let breaker = builder(&clock)
        .consecutive_failures(1)
        .half_open_probes(2)
        .on_state_change(move |t| seen.lock().unwrap().push(*t))
        .build()
        .unwrap();
    fail(&breaker);
    clock.advance(Duration::from_millis(9_999));
    assert!(breaker.try_acquire().is_err());
    clock.advance(Duration::from_millis(1));
    let first = breaker.try_acquire().unwrap();
    assert!(first.is_probe());
    assert_eq!(breaker.state(), State::HalfOpen);
    let second = breaker.try_acquire().unwrap();
    let third = breaker.try_acquire().unwrap_err();
    assert_eq!(third.state(), State::HalfOpen);
    first.success();
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "one of two probes succeeded"
    );
    assert!(breaker.try_acquire().is_err(), "both slots are used");
    second.success();
    assert_eq!(breaker.state(), State::Closed);
    let metrics = breaker.metrics();
    assert_eq!((metrics.calls, metrics.consecutive_failures), (0, 0));

    let events = events.lock().unwrap();
    let path: Vec<(State, State, Reason)> =
        events.iter().map(|t| (t.from, t.to, t.reason)).collect();
    assert_eq!(
        path,
        vec![
            (State::Closed, State::Open, Reason::ConsecutiveFailures(1)),
            (State::Open, State::HalfOpen, Reason::WaitElapsed),
            (State::HalfOpen, State::Closed, Reason::ProbesSucceeded),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].generation < w[1].generation));
    assert_eq!(events[1].at, clock.now());
}

#[test]
fn a_failed_probe_reopens_with_a_growing_wait() {
    let clock = ManualClock::new();
    let breaker = builder(&clock)
        .consecutive_failures(1)
        .open_wait(OpenWait::Exponential {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(5),
        })
        .build()
        .unwrap();
    fail(&breaker);
    for expected in [1, 2, 4, 5, 5] {
        let wait = breaker.try_acquire().unwrap_err().retry_after().unwrap();
        assert_eq!(wait, Duration::from_secs(expected));
        clock.advance(wait);
        fail(&breaker); // the probe fails
        assert_eq!(breaker.state(), State::Open);
    }
    clock.advance(Duration::from_secs(5));
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker);
    assert_eq!(
        breaker.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_secs(1)),
        "closing starts the backoff over"
    );
}

#[test]
fn a_dropped_probe_gives_its_slot_back() {
    let clock = ManualClock::new();
    let breaker = builder(&clock).consecutive_failures(1).build().unwrap();
    fail(&breaker);
    clock.advance(Duration::from_secs(10));
    let probe = breaker.try_acquire().unwrap();
    assert!(breaker.try_acquire().is_err());
    drop(probe);
    assert_eq!(breaker.metrics().probes_in_flight, 0);
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn a_hung_probe_times_out_and_reopens() {
    let clock = ManualClock::new();
    let breaker = builder(&clock)
        .consecutive_failures(1)
        .probe_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    fail(&breaker);
    clock.advance(Duration::from_secs(10));
    let hung = breaker.try_acquire().unwrap();
    clock.advance(Duration::from_millis(2_999));
    assert_eq!(breaker.try_acquire().unwrap_err().state(), State::HalfOpen);
    clock.advance(Duration::from_millis(1));
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(
        rejected.state(),
        State::Open,
        "the hung probe counts as a failure"
    );
    // The late answer belongs to a state that is gone and changes nothing.
    hung.success();
    assert_eq!(breaker.state(), State::Open);
    clock.advance(Duration::from_secs(10));
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn outcomes_from_before_a_state_change_are_ignored() {
    let clock = ManualClock::new();
    let breaker = builder(&clock)
        .consecutive_failures(2)
        .failure_rate(100.0)
        .minimum_calls(50)
        .build()
        .unwrap();
    let late = breaker.try_acquire().unwrap();
    fail(&breaker);
    assert_eq!(breaker.metrics().calls, 1);
    breaker.reset();
    late.failure();
    assert_eq!(breaker.metrics().consecutive_failures, 0);
    assert_eq!(breaker.metrics().calls, 0);
}

#[test]
fn forced_open_and_disabled_until_reset() {
    let clock = ManualClock::new();
    let breaker = builder(&clock)
        .consecutive_failures(1)
        .failure_rate(100.0)
        .minimum_calls(50)
        .build()
        .unwrap();
    breaker.force_open();
    clock.advance(Duration::from_secs(3_600));
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(
        (rejected.state(), rejected.retry_after()),
        (State::ForcedOpen, None)
    );
    breaker.disable();
    assert_eq!(breaker.metrics().calls, 0);
    for _ in 0..10 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Disabled);
    assert_eq!(breaker.metrics().calls, 0, "disabled counts nothing");
    breaker.reset();
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn a_breaker_without_rates_keeps_no_window() {
    let clock = ManualClock::new();
    let breaker = builder(&clock).consecutive_failures(3).build().unwrap();
    for _ in 0..2 {
        fail(&breaker);
    }
    let metrics = breaker.metrics();
    assert_eq!((metrics.calls, metrics.consecutive_failures), (0, 2));
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn failure_predicate_decides_what_counts() {
    let clock = ManualClock::new();
    let breaker = builder(&clock).consecutive_failures(2).build().unwrap();
    let server_error = |r: &Result<(), u16>| matches!(r, Err(s) if *s >= 500);
    for _ in 0..5 {
        let result = breaker.call_with(|| Err(404), server_error);
        assert_eq!(result, Err(CallError::Inner(404)));
    }
    assert_eq!(breaker.state(), State::Closed);
    let _ = breaker.call_with(|| Err(503), server_error);
    let _ = breaker.call_with(|| Err(503), server_error);
    assert_eq!(breaker.state(), State::Open);
    assert!(breaker.call(|| Ok::<_, u16>(())).unwrap_err().is_rejected());
}

#[test]
fn a_listener_may_call_back_into_the_breaker() {
    let clock = ManualClock::new();
    let slot: Arc<Mutex<Option<Arc<CircuitBreaker<ManualClock>>>>> = Arc::default();
    let inner = slot.clone();
    let breaker = Arc::new(
        builder(&clock)
            .consecutive_failures(1)
            .on_state_change(move |t| {
                if t.to == State::Open
                    && let Some(b) = inner.lock().unwrap().as_ref()
                {
                    b.force_open();
                }
            })
            .build()
            .unwrap(),
    );
    *slot.lock().unwrap() = Some(breaker.clone());
    fail(&breaker);
    assert_eq!(breaker.state(), State::ForcedOpen);
    slot.lock().unwrap().take();
}

#[tokio::test(start_paused = true)]
async fn async_calls_and_cancelled_futures() {
    let clock = keel_core::TokioClock::new();
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .consecutive_failures(1)
            .open_wait(OpenWait::Fixed(Duration::from_secs(1)))
            .half_open_probes(1)
            .clock(clock)
            .build()
            .unwrap(),
    );
    let result = breaker.call_async(async { Err::<(), _>("boom") }).await;
    assert_eq!(result, Err(CallError::Inner("boom")));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A probe whose future is dropped mid-flight gives its slot back.
    let slow_probe = breaker.call_async(async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, &str>(())
    });
    let timed_out = tokio::time::timeout(Duration::from_millis(10), slow_probe).await;
    assert!(timed_out.is_err());
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(breaker.metrics().probes_in_flight, 0);
    assert_eq!(breaker.call_async(async { Ok::<_, &str>(7) }).await, Ok(7));
    assert_eq!(breaker.state(), State::Closed);

    // An owned permit moves into a spawned task.
    let permit = breaker.try_acquire_owned().unwrap();
    tokio::spawn(async move { permit.failure() }).await.unwrap();
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn bad_configuration_is_rejected_with_a_reason() {
    let cases: Vec<(CircuitBreakerBuilder, &str)> = vec![
        (
            CircuitBreaker::builder().failure_rate(150.0),
            "failure rate threshold must be a percentage in (0, 100], got 150",
        ),
        (
            CircuitBreaker::builder().failure_rate(f64::NAN),
            "failure rate threshold must be a percentage in (0, 100], got NaN",
        ),
        (
            CircuitBreaker::builder().slow_calls(0.0, Duration::from_secs(1)),
            "slow call rate threshold must be a percentage in (0, 100], got 0",
        ),
        (
            CircuitBreaker::builder().window(Window::Count(0)),
            "count window must be > 0",
        ),
        (
            CircuitBreaker::builder().window(Window::Count(5_000_000)),
            "count window must be at most 2097151, got 5000000",
        ),
        (
            CircuitBreaker::builder().window(Window::Time {
                length: Duration::ZERO,
                buckets: 10,
            }),
            "time window must be > 0",
        ),
        (
            CircuitBreaker::builder().window(Window::Time {
                length: Duration::from_secs(1),
                buckets: 0,
            }),
            "time window buckets must be > 0",
        ),
        (
            CircuitBreaker::builder().consecutive_failures(0),
            "consecutive failures must be > 0",
        ),
        (
            CircuitBreaker::builder().half_open_probes(0),
            "half-open probes must be > 0",
        ),
        (
            CircuitBreaker::builder().open_wait(OpenWait::Exponential {
                initial: Duration::from_secs(1),
                multiplier: 0.5,
                max: Duration::from_secs(9),
            }),
            "open wait multiplier must be a finite number >= 1, got 0.5",
        ),
    ];
    for (builder, message) in cases {
        let error: BreakerConfigError = builder.build().unwrap_err();
        assert_eq!(error.to_string(), message);
    }
}

#[test]
fn concurrent_closed_calls_count_every_outcome() {
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .failure_rate(100.0)
            .window(Window::Count(1_000))
            .minimum_calls(1_000)
            .build()
            .unwrap(),
    );
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let breaker = breaker.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    let permit = breaker.try_acquire().unwrap();
                    permit.record((i + t) % 5 == 0);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let metrics = breaker.metrics();
    assert_eq!(metrics.calls, 1_000);
    assert_eq!(metrics.failed, 200);
    assert_eq!(metrics.state, State::Closed);
}

mod time_window_model {
    use super::*;
    use proptest::prelude::*;

    /// One call: how long after the previous one (ms), and whether it failed.
    fn calls() -> impl Strategy<Value = Vec<(u64, bool)>> {
        proptest::collection::vec((0u64..1_500, proptest::bool::weighted(0.3)), 1..120)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// A failure-rate breaker over 4 s in 1 s buckets (so its window places calls with
        /// `Clock::recent` and healthy successes take the stripes) against a list of every
        /// call's time: the same counts after every call, and it opens on exactly the call
        /// where the reference's rate over the live buckets first reaches the threshold.
        #[test]
        fn a_time_window_breaker_trips_where_the_reference_does(
            calls in calls(),
            threshold in 20.0f64..80.0,
            minimum in 1u32..8,
        ) {
            let clock = ManualClock::new();
            let breaker = builder(&clock)
                .failure_rate(threshold)
                .window(Window::Time { length: Duration::from_secs(4), buckets: 4 })
                .minimum_calls(minimum)
                .build()
                .unwrap();
            let mut model: Vec<(u64, bool)> = Vec::new();
            let mut now = 0u64;
            for (gap, failed) in calls {
                now += gap;
                clock.advance(Duration::from_millis(gap));
                breaker.try_acquire().expect("closed until the reference trips").record(failed);
                model.push((now, failed));
                let bucket = now / 1_000;
                let live: Vec<bool> = model
                    .iter()
                    .filter(|(at, _)| bucket - at / 1_000 < 4)
                    .map(|(_, f)| *f)
                    .collect();
                let failures = live.iter().filter(|f| **f).count() as f64;
                let tripped = live.len() >= minimum as usize
                    && failures * 100.0 >= threshold * live.len() as f64;
                let metrics = breaker.metrics();
                prop_assert_eq!(
                    (metrics.calls, metrics.failed),
                    (live.len() as u64, failures as u64)
                );
                prop_assert_eq!(breaker.state() == State::Open, tripped);
                if tripped {
                    break;
                }
            }
        }
    }
}
