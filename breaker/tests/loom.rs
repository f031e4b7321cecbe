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

/// Transitions seen by a listener, checked as a chain: ordered by generation, each one
/// leaves the state the previous one entered, along an edge of the state machine.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<keel_breaker::Transition>>>;

fn recorded(
    probes: u32,
    probe_timeout: Duration,
) -> (Arc<CircuitBreaker<ManualClock>>, ManualClock, Seen) {
    let clock = ManualClock::new();
    let seen: Seen = Default::default();
    let log = seen.clone();
    let breaker = CircuitBreaker::builder()
        .no_failure_rate()
        .consecutive_failures(1)
        .open_wait(OpenWait::Fixed(Duration::from_secs(1)))
        .half_open_probes(probes)
        .probe_timeout(probe_timeout)
        .on_state_change(move |t| log.lock().unwrap().push(*t))
        .clock(clock.clone())
        .build()
        .unwrap();
    breaker.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(1));
    (Arc::new(breaker), clock, seen)
}

fn check_chain(seen: &Seen, breaker: &CircuitBreaker<ManualClock>) {
    use keel_breaker::Reason;
    let mut chain = seen.lock().unwrap().clone();
    chain.sort_by_key(|t| t.generation);
    let mut state = State::Closed;
    for (i, t) in chain.iter().enumerate() {
        assert_eq!(
            t.generation,
            i as u64 + 1,
            "a generation was skipped: {chain:?}"
        );
        assert_eq!(t.from, state, "{chain:?}");
        let edge_ok = matches!(
            (t.from, t.to, t.reason),
            (_, _, Reason::Operator)
                | (
                    State::Closed,
                    State::Open,
                    Reason::ConsecutiveFailures(_) | Reason::FailureRate | Reason::SlowCallRate,
                )
                | (State::Open, State::HalfOpen, Reason::WaitElapsed)
                | (
                    State::HalfOpen,
                    State::Open,
                    Reason::ProbeFailed | Reason::ProbeTimedOut
                )
                | (State::HalfOpen, State::Closed, Reason::ProbesSucceeded)
        );
        assert!(edge_ok, "illegal transition {t:?} in {chain:?}");
        state = t.to;
    }
    assert_eq!(
        breaker.state(),
        state,
        "the breaker is not where its history ends"
    );
}

/// A probe hangs past the probe timeout; a caller finds every slot held and reopens, and
/// after the open wait a fresh probe gets in, while the hung probe's late success arrives.
/// Whoever wins, the history is one legal chain, and a late answer from an old generation
/// never counts for the fresh probe (it would close the breaker behind its back).
#[test]
fn a_hung_probe_and_its_late_answer_settle_once() {
    model(|| {
        let (breaker, clock, seen) = recorded(1, Duration::from_secs(1));
        let probe = breaker.try_acquire_owned().unwrap();
        clock.advance(Duration::from_secs(1));
        let late = loom::thread::spawn(move || probe.success());
        let asked = breaker.try_acquire_owned();
        let reopened = asked.is_err();
        drop(asked);
        clock.advance(Duration::from_secs(1));
        let fresh = breaker.try_acquire_owned();
        late.join().unwrap();
        check_chain(&seen, &breaker);
        let fresh_probe = fresh.as_ref().is_ok_and(|p| p.is_probe());
        if reopened {
            // This caller reopened it (or saw it reopened): only the fresh probe decides.
            assert!(fresh_probe);
        }
        if fresh_probe {
            assert_eq!(breaker.state(), State::HalfOpen, "a late answer closed it");
            assert_eq!(breaker.metrics().probes_in_flight, 1);
            fresh.unwrap().success();
            assert_eq!(breaker.state(), State::Closed);
        } else {
            assert_eq!(breaker.state(), State::Closed);
        }
        check_chain(&seen, &breaker);
        assert_eq!(breaker.metrics().probes_in_flight, 0);
    });
}

/// An operator resets the breaker while one probe fails and another succeeds: the breaker
/// never ends half-open with a probe counted in flight, and the history is one legal chain.
#[test]
fn a_reset_racing_probe_outcomes_leaves_no_probe_in_flight() {
    model(|| {
        let (breaker, _clock, seen) = recorded(2, Duration::from_secs(30));
        let first = breaker.try_acquire_owned().unwrap();
        let second = breaker.try_acquire_owned().unwrap();
        let failer = loom::thread::spawn(move || first.failure());
        let operator = {
            let breaker = breaker.clone();
            loom::thread::spawn(move || breaker.reset())
        };
        second.success();
        failer.join().unwrap();
        operator.join().unwrap();
        check_chain(&seen, &breaker);
        assert_ne!(breaker.state(), State::HalfOpen);
        assert_eq!(breaker.metrics().probes_in_flight, 0);
    });
}

/// Probes cancelled (dropped unreported) on two threads while a third takes a slot: once
/// every permit is gone, no slot has leaked, so exactly `probes` new probes get in.
#[test]
fn cancelled_probes_never_leak_a_slot() {
    model(|| {
        let (breaker, _clock, seen) = recorded(2, Duration::from_secs(30));
        let held = breaker.try_acquire_owned().unwrap();
        let canceller = {
            let breaker = breaker.clone();
            loom::thread::spawn(move || drop(breaker.try_acquire_owned()))
        };
        let dropper = loom::thread::spawn(move || drop(held));
        let third = breaker.try_acquire_owned();
        canceller.join().unwrap();
        dropper.join().unwrap();
        drop(third);
        check_chain(&seen, &breaker);
        assert_eq!(breaker.state(), State::HalfOpen);
        assert_eq!(breaker.metrics().probes_in_flight, 0, "a probe slot leaked");
        let again: Vec<_> = (0..3).map(|_| breaker.try_acquire_owned().ok()).collect();
        assert_eq!(again.iter().flatten().count(), 2);
    });
}

/// A time-window success that passed the quiet check races a failure that ends the quiet
/// before the success reaches its stripe. Run one after the other, in either order, the two
/// calls make 1 failure in 2 calls, 50% at the minimum of 2, and the breaker opens; the
/// race must decide the same, so the success may not sit in its stripe unseen.
#[test]
fn a_striped_success_racing_a_failure_still_counts_in_the_decision() {
    model(|| {
        let clock = ManualClock::new();
        let breaker = Arc::new(
            CircuitBreaker::builder()
                .failure_rate(50.0)
                .window(keel_breaker::Window::Time {
                    length: Duration::from_secs(4),
                    buckets: 4,
                })
                .minimum_calls(2)
                .clock(clock)
                .build()
                .unwrap(),
        );
        // An empty window is quiet once a locked call has looked at it.
        assert_eq!(breaker.metrics().calls, 0);
        let permit = breaker.try_acquire_owned().unwrap();
        let succeeder = loom::thread::spawn(move || permit.success());
        breaker.try_acquire().unwrap().failure();
        succeeder.join().unwrap();
        assert_eq!(breaker.state(), State::Open);
        assert_eq!(breaker.metrics().calls, 2);
    });
}
