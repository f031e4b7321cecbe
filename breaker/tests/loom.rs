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
