//! The breaker and bulkhead tower layers under faults, checked against a recorded history.
//!
//! A random schedule of requests through `Bulkhead(CircuitBreaker(inner))` on a manual clock:
//! the inner service answers when told, with a success, an error, a panic, or too late (past
//! the slow-call threshold), and request futures are dropped at every await point
//! (cancellation storms). Every step's observation (who got through, who was refused by
//! whom, the breaker's state and probes in flight, the bulkhead's slots in use) goes into a
//! history, and a checker replays the history through a sequential reference model of the
//! breaker and the bulkhead: any leaked half-open permit, leaked bulkhead slot, or state the
//! model cannot reach fails the test with the step that diverged.
#![cfg(feature = "tower")]

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use keel_breaker::{
    Bulkhead, BulkheadError, BulkheadLayer, CallError, CircuitBreaker, CircuitBreakerLayer,
    OpenWait, State, Window,
};
use keel_core::ManualClock;
use proptest::prelude::*;
use tower::{Layer, Service};

const CONSECUTIVE: u32 = 3;
const WINDOW: usize = 4;
const RATE: f64 = 50.0;
const SLOW: Duration = Duration::from_millis(100);
const OPEN_WAIT: Duration = Duration::from_secs(1);
const PROBES: u32 = 2;
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const SLOTS: usize = 3;

/// How the inner service answers a request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Ok,
    Err,
    Panic,
}

/// The inner service: each call parks until the test gives it an answer.
#[derive(Clone, Default)]
struct Inner {
    answers: Arc<Mutex<HashMap<u64, Answer>>>,
    calls: Arc<Mutex<Vec<u64>>>,
}

impl Service<u64> for Inner {
    type Response = u64;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<u64, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, id: u64) -> Self::Future {
        self.calls.lock().unwrap().push(id);
        let answers = self.answers.clone();
        Box::pin(std::future::poll_fn(move |_| {
            // Read first: the panic below must not poison the lock.
            let answer = answers.lock().unwrap().get(&id).copied();
            match answer {
                None => Poll::Pending,
                Some(Answer::Ok) => Poll::Ready(Ok(id)),
                Some(Answer::Err) => Poll::Ready(Err(std::io::Error::other("refused"))),
                Some(Answer::Panic) => panic!("the inner service panicked on request {id}"),
            }
        }))
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// A new request; `cancel_first` drops it before its first poll.
    Request {
        cancel_first: bool,
    },
    /// Answers the `i`-th pending request (modulo how many there are) and polls it.
    Answer(usize, Answer),
    /// Drops the `i`-th pending request at the await point it is parked on.
    Cancel(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let answer = prop_oneof![Just(Answer::Ok), Just(Answer::Err), Just(Answer::Panic)];
    prop_oneof![
        4 => any::<bool>().prop_map(|c| Op::Request { cancel_first: c }),
        4 => (any::<usize>(), answer).prop_map(|(i, a)| Op::Answer(i, a)),
        2 => any::<usize>().prop_map(Op::Cancel),
        3 => prop_oneof![Just(30u64), Just(150), Just(600), Just(1_000)].prop_map(Op::Advance),
    ]
}

/// What one step showed.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    /// A request reached the inner service (and may have been dropped before its first
    /// poll), or was refused by the bulkhead or the breaker...
    Request {
        id: u64,
        cancelled_first: bool,
        reached: bool,
        refused_by_bulkhead: bool,
    },
    /// ...was answered, and the layer returned `Ok`, `Err`, or unwound.
    Answered {
        id: u64,
        answer: Answer,
        returned_ok: Option<bool>,
    },
    Cancelled {
        id: u64,
    },
    Advanced {
        millis: u64,
    },
}

#[derive(Clone, Debug)]
struct Step {
    seen: Seen,
    state: State,
    probes_in_flight: u32,
    slots_in_use: usize,
}

/// The sequential reference: the breaker's documented state machine and the bulkhead.
#[derive(Debug)]
struct Model {
    now: u64,
    state: State,
    generation: u64,
    open_until: u64,
    in_flight: u32,
    successes: u32,
    last_probe_at: u64,
    run: u32,
    window: VecDeque<(bool, bool)>,
    slots: usize,
    /// Requests in flight: (generation, probe?, start) for those the breaker let through.
    tickets: HashMap<u64, (u64, bool, u64)>,
}

impl Model {
    fn new() -> Model {
        Model {
            now: 0,
            state: State::Closed,
            generation: 0,
            open_until: 0,
            in_flight: 0,
            successes: 0,
            last_probe_at: 0,
            run: 0,
            window: VecDeque::new(),
            slots: 0,
            tickets: HashMap::new(),
        }
    }

    fn enter(&mut self, to: State) {
        self.generation += 1;
        self.state = to;
        self.in_flight = 0;
        self.successes = 0;
        self.run = 0;
        match to {
            State::Open => self.open_until = self.now + OPEN_WAIT.as_nanos() as u64,
            State::Closed => self.window.clear(),
            State::HalfOpen => self.last_probe_at = self.now,
            _ => {}
        }
    }

    /// The breaker's admission: `Some(probe?)` or `None` for a refusal.
    fn acquire(&mut self) -> Option<bool> {
        loop {
            match self.state {
                State::Closed => return Some(false),
                State::Open if self.now < self.open_until => return None,
                State::Open => {
                    self.enter(State::HalfOpen);
                    self.in_flight = 1;
                    return Some(true);
                }
                State::HalfOpen if self.in_flight + self.successes < PROBES => {
                    self.in_flight += 1;
                    self.last_probe_at = self.now;
                    return Some(true);
                }
                State::HalfOpen => {
                    let hung = self.in_flight > 0
                        && self.now - self.last_probe_at >= PROBE_TIMEOUT.as_nanos() as u64;
                    if !hung {
                        return None;
                    }
                    self.enter(State::Open);
                }
                other => panic!("the model never enters {other:?}"),
            }
        }
    }

    fn record(&mut self, generation: u64, probe: bool, start: u64, failed: bool) {
        let slow = self.now - start >= SLOW.as_nanos() as u64;
        if probe {
            if self.state != State::HalfOpen || self.generation != generation {
                return;
            }
            if failed || slow {
                self.enter(State::Open);
            } else if self.in_flight > 0 {
                self.in_flight -= 1;
                self.successes += 1;
                if self.successes >= PROBES {
                    self.enter(State::Closed);
                }
            }
            return;
        }
        if self.state != State::Closed || self.generation != generation {
            return; // an outcome from before a state change
        }
        if self.window.len() == WINDOW {
            self.window.pop_front();
        }
        self.window.push_back((failed, slow));
        if failed {
            self.run += 1;
            if self.run >= CONSECUTIVE {
                self.enter(State::Open);
                return;
            }
        } else {
            self.run = 0;
        }
        let calls = self.window.len() as f64;
        let failed = self.window.iter().filter(|o| o.0).count() as f64;
        let slow = self.window.iter().filter(|o| o.1).count() as f64;
        if self.window.len() >= WINDOW
            && (failed * 100.0 >= RATE * calls || slow * 100.0 >= RATE * calls)
        {
            self.enter(State::Open);
        }
    }

    /// A permit dropped without an outcome (cancelled, or unwound by a panic).
    fn release(&mut self, generation: u64, probe: bool) {
        if probe
            && self.state == State::HalfOpen
            && self.generation == generation
            && self.in_flight > 0
        {
            self.in_flight -= 1;
        }
    }

    fn end(&mut self, id: u64, outcome: Option<bool>) {
        if let Some((generation, probe, start)) = self.tickets.remove(&id) {
            self.slots -= 1;
            match outcome {
                Some(failed) => self.record(generation, probe, start, failed),
                None => self.release(generation, probe),
            }
        }
    }
}

/// Replays the history through the model; returns the first step that disagrees.
fn check(history: &[Step]) -> Result<(), String> {
    let mut model = Model::new();
    for (i, step) in history.iter().enumerate() {
        match &step.seen {
            Seen::Request {
                id,
                cancelled_first,
                reached,
                refused_by_bulkhead,
            } => {
                // The bulkhead slot is taken in poll_ready, before the breaker is asked.
                if model.slots == SLOTS {
                    if !refused_by_bulkhead {
                        return Err(format!("step {i}: a request got past a full bulkhead"));
                    }
                } else if *refused_by_bulkhead {
                    return Err(format!(
                        "step {i}: refused with {} of {SLOTS} slots in use",
                        model.slots
                    ));
                } else {
                    let admitted = model.acquire();
                    if admitted.is_some() != *reached {
                        return Err(format!(
                            "step {i}: breaker admitted {reached}, model {admitted:?}"
                        ));
                    }
                    if let Some(probe) = admitted {
                        model.slots += 1;
                        model
                            .tickets
                            .insert(*id, (model.generation, probe, model.now));
                        if *cancelled_first {
                            model.end(*id, None);
                        }
                    }
                }
            }
            Seen::Answered {
                id,
                answer,
                returned_ok,
            } => {
                let expected_ok = match answer {
                    Answer::Ok => Some(true),
                    Answer::Err => Some(false),
                    Answer::Panic => None,
                };
                if *returned_ok != expected_ok {
                    return Err(format!(
                        "step {i}: answered {answer:?}, layer gave {returned_ok:?}"
                    ));
                }
                model.end(*id, returned_ok.map(|ok| !ok));
            }
            Seen::Cancelled { id } => model.end(*id, None),
            Seen::Advanced { millis } => model.now += millis * 1_000_000,
        }
        let in_flight = if model.state == State::HalfOpen {
            model.in_flight
        } else {
            0
        };
        if (step.state, step.probes_in_flight, step.slots_in_use)
            != (model.state, in_flight, model.slots)
        {
            return Err(format!(
                "step {i} {:?}: breaker {:?} with {} probes and {} slots; model {:?} with {} probes and {} slots",
                step.seen,
                step.state,
                step.probes_in_flight,
                step.slots_in_use,
                model.state,
                in_flight,
                model.slots
            ));
        }
    }
    Ok(())
}

/// The stack's error keeps every layer's type: no downcasting.
type StackError = BulkheadError<CallError<std::io::Error>>;
type Fut = Pin<Box<dyn Future<Output = Result<u64, StackError>> + Send>>;

fn poll_once(future: &mut Fut) -> Result<Poll<Result<u64, StackError>>, ()> {
    let mut cx = Context::from_waker(Waker::noop());
    std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))).map_err(|_| ())
}

/// Keeps the expected panics of the inner service out of the test output.
fn quiet_inner_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let planted = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|m| m.starts_with("the inner service panicked"));
            if !planted {
                default(info);
            }
        }));
    });
}

fn run(ops: &[Op]) -> Vec<Step> {
    quiet_inner_panics();
    let clock = ManualClock::new();
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .consecutive_failures(CONSECUTIVE)
            .failure_rate(RATE)
            .slow_calls(RATE, SLOW)
            .window(Window::Count(WINDOW as u32))
            .minimum_calls(WINDOW as u32)
            .open_wait(OpenWait::Fixed(OPEN_WAIT))
            .half_open_probes(PROBES)
            .probe_timeout(PROBE_TIMEOUT)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let bulkhead = Arc::new(Bulkhead::new(SLOTS).unwrap());
    let inner = Inner::default();
    let mut service = BulkheadLayer::new(bulkhead.clone())
        .layer(CircuitBreakerLayer::new(breaker.clone()).layer(inner.clone()));
    let mut pending: Vec<(u64, Fut)> = Vec::new();
    let mut history = Vec::new();
    let mut next_id = 0;
    for op in ops {
        let seen = match op {
            Op::Request { cancel_first } => {
                let id = next_id;
                next_id += 1;
                let mut cx = Context::from_waker(Waker::noop());
                let ready = service.poll_ready(&mut cx);
                assert!(
                    matches!(ready, Poll::Ready(Ok(()))),
                    "a bulkhead without a wait is always ready"
                );
                let mut future: Fut = Box::pin(service.call(id));
                // The breaker decides in `call`: the inner service is called iff admitted.
                let reached = inner.calls.lock().unwrap().contains(&id);
                let mut refused_by_bulkhead = false;
                let cancelled_first = reached && *cancel_first;
                if cancelled_first {
                    drop(future);
                } else {
                    match poll_once(&mut future).expect("no answer yet, so no panic") {
                        Poll::Pending => {
                            assert!(reached, "a refused request is pending");
                            pending.push((id, future));
                        }
                        Poll::Ready(Ok(_)) => panic!("answered before the test answered"),
                        Poll::Ready(Err(error)) => {
                            assert!(!reached, "{error}");
                            refused_by_bulkhead = matches!(error, BulkheadError::Full(_));
                            let rejected_by_breaker =
                                matches!(error, BulkheadError::Inner(CallError::Rejected(_)));
                            assert!(refused_by_bulkhead || rejected_by_breaker, "{error}");
                        }
                    }
                }
                Seen::Request {
                    id,
                    cancelled_first,
                    reached,
                    refused_by_bulkhead,
                }
            }
            Op::Answer(i, answer) => {
                if pending.is_empty() {
                    continue;
                }
                let (id, mut future) = pending.remove(i % pending.len());
                inner.answers.lock().unwrap().insert(id, *answer);
                let returned_ok = match poll_once(&mut future) {
                    Ok(Poll::Ready(result)) => Some(result.is_ok()),
                    Ok(Poll::Pending) => panic!("answered request {id} still pending"),
                    Err(()) => None,
                };
                drop(future);
                Seen::Answered {
                    id,
                    answer: *answer,
                    returned_ok,
                }
            }
            Op::Cancel(i) => {
                if pending.is_empty() {
                    continue;
                }
                let (id, future) = pending.remove(i % pending.len());
                drop(future);
                Seen::Cancelled { id }
            }
            Op::Advance(millis) => {
                clock.advance(Duration::from_millis(*millis));
                Seen::Advanced { millis: *millis }
            }
        };
        let metrics = breaker.metrics();
        history.push(Step {
            seen,
            state: metrics.state,
            probes_in_flight: metrics.probes_in_flight,
            slots_in_use: bulkhead.in_use(),
        });
    }
    // Everything still pending is cancelled: afterwards nothing may be held.
    for (id, future) in pending.drain(..) {
        drop(future);
        let metrics = breaker.metrics();
        history.push(Step {
            seen: Seen::Cancelled { id },
            state: metrics.state,
            probes_in_flight: metrics.probes_in_flight,
            slots_in_use: bulkhead.in_use(),
        });
    }
    assert_eq!(bulkhead.in_use(), 0, "a bulkhead slot leaked");
    assert_eq!(
        breaker.metrics().probes_in_flight,
        0,
        "a half-open permit leaked"
    );
    history
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn layers_under_faults_match_the_reference(ops in proptest::collection::vec(op(), 1..120)) {
        let history = run(&ops);
        if let Err(divergence) = check(&history) {
            prop_assert!(false, "{divergence}\nhistory: {history:#?}");
        }
    }
}

/// The checker is not vacuous: a history with a leaked probe (a cancelled probe that kept its
/// slot) or a leaked bulkhead slot is refused.
#[test]
fn the_checker_refuses_a_leaked_permit() {
    let ops = [
        Op::Request {
            cancel_first: false,
        },
        Op::Answer(0, Answer::Err),
        Op::Request {
            cancel_first: false,
        },
        Op::Answer(0, Answer::Err),
        Op::Request {
            cancel_first: false,
        },
        Op::Answer(0, Answer::Err),
        Op::Advance(1_000),
        Op::Request {
            cancel_first: false,
        },
        Op::Cancel(0),
    ];
    let mut history = run(&ops);
    check(&history).expect("the real history passes");
    let last = history.len() - 1;
    assert_eq!(history[last].state, State::HalfOpen);
    history[last].probes_in_flight = 1; // as if the cancelled probe kept its slot
    assert!(check(&history).is_err());
    history[last].probes_in_flight = 0;
    history[last].slots_in_use = 1; // as if the bulkhead slot was not given back
    assert!(check(&history).is_err());
}
