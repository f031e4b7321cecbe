//! The breaker's states, the packed state word, and the state-change event.

use std::fmt;

use keel_core::Instant;

/// Where a circuit breaker stands.
///
/// ```
/// use keel_breaker::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// assert_eq!(breaker.state(), State::Closed);
/// breaker.disable();
/// assert_eq!(breaker.state(), State::Disabled);
/// assert_eq!(State::HalfOpen.to_string(), "half-open");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls pass; outcomes are counted.
    Closed,
    /// Calls are rejected until the open wait is over.
    Open,
    /// A few probe calls pass; their outcomes decide between closed and open.
    HalfOpen,
    /// Calls are rejected until an operator resets the breaker.
    ForcedOpen,
    /// Calls pass and nothing is counted, until an operator resets the breaker.
    Disabled,
}

impl State {
    pub(crate) const fn code(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
        }
    }

    pub(crate) const fn from_code(code: u64) -> State {
        match code {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
            State::ForcedOpen => "forced open",
            State::Disabled => "disabled",
        })
    }
}

/// Why a breaker changed state.
///
/// ```
/// use keel_breaker::{CircuitBreaker, Reason, Window};
/// use std::sync::{Arc, Mutex};
///
/// let reasons = Arc::new(Mutex::new(Vec::new()));
/// let log = reasons.clone();
/// let breaker = CircuitBreaker::builder()
///     .failure_rate(50.0)
///     .window(Window::Count(4))
///     .minimum_calls(4)
///     .on_state_change(move |t| log.lock().unwrap().push(t.reason))
///     .build()?;
/// for n in 0..4 {
///     let _ = breaker.call(|| if n < 2 { Err("refused") } else { Ok(n) });
/// }
/// breaker.force_open();
/// assert_eq!(*reasons.lock().unwrap(), [Reason::FailureRate, Reason::Operator]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// This many failures in a row.
    ConsecutiveFailures(u32),
    /// The failure rate in the window reached the threshold.
    FailureRate,
    /// The slow-call rate in the window reached the threshold.
    SlowCallRate,
    /// The open wait ended and a call arrived.
    WaitElapsed,
    /// Every half-open probe succeeded.
    ProbesSucceeded,
    /// A half-open probe failed.
    ProbeFailed,
    /// Every probe slot was taken for longer than the probe timeout.
    ProbeTimedOut,
    /// An operator called `reset`, `force_open` or `disable`.
    Operator,
}

/// A state change, as passed to the listeners of
/// [`on_state_change`](crate::CircuitBreakerBuilder::on_state_change).
///
/// ```
/// use keel_breaker::{CircuitBreaker, Reason, State, Transition};
/// use keel_core::{Clock, ManualClock};
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(5));
/// let last = Arc::new(Mutex::new(None::<Transition>));
/// let seen = last.clone();
/// let breaker = CircuitBreaker::builder()
///     .consecutive_failures(1)
///     .clock(clock.clone())
///     .on_state_change(move |t| *seen.lock().unwrap() = Some(*t))
///     .build()?;
/// let _ = breaker.call(|| Err::<(), _>("refused"));
/// let trip = last.lock().unwrap().expect("the breaker tripped");
/// assert_eq!((trip.from, trip.to, trip.reason), (State::Closed, State::Open, Reason::ConsecutiveFailures(1)));
/// assert_eq!(trip.at, clock.now());
/// assert_eq!(trip.generation, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// When, on the breaker's clock.
    pub at: Instant,
    /// Counts state changes; listeners on several threads can order events by it.
    pub generation: u64,
}

// State word: state (3 bits) | probes in flight (16) | probe successes (16) | generation (29).
// One atomic load tells the closed path everything it needs.
const STATE_MASK: u64 = 0b111;
const IN_FLIGHT_SHIFT: u32 = 3;
const SUCCESS_SHIFT: u32 = 19;
const GEN_SHIFT: u32 = 35;
const FIELD_MASK: u64 = 0xFFFF;
const GEN_MASK: u64 = (1 << (64 - GEN_SHIFT)) - 1;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    pub(crate) const fn new(state: State, generation: u64) -> Word {
        Word(state.code() | ((generation & GEN_MASK) << GEN_SHIFT))
    }

    #[inline]
    pub(crate) const fn state(self) -> State {
        State::from_code(self.0 & STATE_MASK)
    }

    #[inline]
    pub(crate) const fn is_closed_or_disabled(self) -> bool {
        let code = self.0 & STATE_MASK;
        code == 0 || code == 4
    }

    #[inline]
    pub(crate) const fn generation(self) -> u64 {
        self.0 >> GEN_SHIFT
    }

    pub(crate) const fn in_flight(self) -> u32 {
        ((self.0 >> IN_FLIGHT_SHIFT) & FIELD_MASK) as u32
    }

    pub(crate) const fn successes(self) -> u32 {
        ((self.0 >> SUCCESS_SHIFT) & FIELD_MASK) as u32
    }

    pub(crate) const fn with_probes(self, in_flight: u32, successes: u32) -> Word {
        let cleared = self.0 & !((FIELD_MASK << IN_FLIGHT_SHIFT) | (FIELD_MASK << SUCCESS_SHIFT));
        Word(
            cleared
                | ((in_flight as u64 & FIELD_MASK) << IN_FLIGHT_SHIFT)
                | ((successes as u64 & FIELD_MASK) << SUCCESS_SHIFT),
        )
    }

    /// The word for `state` one generation after this one.
    pub(crate) const fn next(self, state: State) -> Word {
        Word::new(state, (self.generation() + 1) & GEN_MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_round_trips_its_fields() {
        for state in [
            State::Closed,
            State::Open,
            State::HalfOpen,
            State::ForcedOpen,
            State::Disabled,
        ] {
            let word = Word::new(state, GEN_MASK).with_probes(65_535, 17);
            assert_eq!(word.state(), state);
            assert_eq!(word.generation(), GEN_MASK);
            assert_eq!(word.in_flight(), 65_535);
            assert_eq!(word.successes(), 17);
            assert_eq!(word.next(State::Open).generation(), 0, "generation wraps");
        }
        assert_eq!(State::HalfOpen.to_string(), "half-open");
    }
}
