//! Loom models of the breaker's concurrent half-open admission and probe bookkeeping.
#![cfg(keel_loom)]

use std::time::Duration;

use keel_breaker::{CircuitBreaker, OpenWait, State};
use keel_core::ManualClock;
use std::sync::Arc;

fn tripped(probes: u32) -> (Arc<CircuitBreaker<ManualClock>>, ManualClock) {
    let clock = ManualClock::new();
    let breaker = CircuitBreaker::builder()
        .no_failure_rate()
        .consecutive_failures(1)
        .open_wait(OpenWait::Fixed(Duration::from_secs(1)))
        .half_open_probes(probes)
        .clock(clock.clone())
        .build()
        .unwrap();
    breaker.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(1));
    (Arc::new(breaker), clock)
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Three callers race into an open breaker whose wait is over: exactly `probes` get in,
/// whoever wins the open -> half-open transition.
#[test]
fn half_open_admits_at_most_n_probes() {
    model(|| {
        let (breaker, _clock) = tripped(2);
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let breaker = breaker.clone();
                // Each caller holds its permit until the checks are done.
                loom::thread::spawn(move || breaker.try_acquire_owned().ok())
            })
            .collect();
        let mut permits = vec![breaker.try_acquire_owned().ok()];
        for racer in racers {
            permits.push(racer.join().unwrap());
        }
        assert_eq!(permits.iter().flatten().count(), 2);
        assert_eq!(breaker.state(), State::HalfOpen);
        assert_eq!(breaker.metrics().probes_in_flight, 2);
    });
}

/// A probe dropped (cancelled) while another caller asks for a slot: the slot is either
/// handed over or left free, never lost or granted twice.
#[test]
fn a_dropped_probe_returns_its_slot_exactly_once() {
    model(|| {
        let (breaker, _clock) = tripped(1);
        let probe = breaker.try_acquire_owned().unwrap();
        let other = breaker.clone();
        let asker = loom::thread::spawn(move || other.try_acquire_owned().ok());
        drop(probe);
        let permit = asker.join().unwrap();
        assert_eq!(
            breaker.metrics().probes_in_flight,
            u32::from(permit.is_some())
        );
        assert_eq!(breaker.state(), State::HalfOpen);
    });
}

/// One probe succeeds while the other fails: the breaker ends open (a failure wins), never
/// closed with a failed probe nor stuck half-open.
#[test]
fn concurrent_probe_outcomes_settle_the_state() {
    model(|| {
        let (breaker, _clock) = tripped(2);
        let first = breaker.try_acquire_owned().unwrap();
        let second = breaker.try_acquire_owned().unwrap();
        let failer = loom::thread::spawn(move || second.failure());
        first.success();
        failer.join().unwrap();
        assert_eq!(breaker.state(), State::Open);
    });
}

/// A closed call records a failure while an operator resets the breaker: the window ends
/// either empty or holding exactly that failure, never with counts that disagree.
#[test]
fn a_reset_racing_a_record_leaves_consistent_counts() {
    model(|| {
        let breaker = Arc::new(
            CircuitBreaker::builder()
                .failure_rate(100.0)
                .window(keel_breaker::Window::Count(2))
                .minimum_calls(2)
                .build()
                .unwrap(),
        );
        let permit = breaker.try_acquire_owned().unwrap();
        let recorder = loom::thread::spawn(move || permit.failure());
        breaker.reset();
        recorder.join().unwrap();
        let metrics = breaker.metrics();
        assert!(metrics.calls <= 1 && metrics.failed <= metrics.calls);
        assert_eq!(
            metrics.consecutive_failures, 0,
            "a stale failure joined the new run"
        );
        // Whatever happened, the next two calls fill the window with exactly their outcomes.
        let before = breaker.metrics();
        breaker.try_acquire().unwrap().success();
        let mid = breaker.metrics();
        breaker.try_acquire().unwrap().success();
        let metrics = breaker.metrics();
        assert_eq!(
            (metrics.calls, metrics.failed),
            (2, 0),
            "{before:?} {mid:?} {metrics:?}"
        );
        assert_eq!(breaker.state(), State::Closed);
    });
}
