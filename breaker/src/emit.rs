//! The breaker's metrics, through the `metrics` facade (feature `metrics`).

use std::sync::Arc;

use metrics::{Counter, Gauge};

use crate::State;

/// Handles registered once per breaker, so a rejection costs one counter increment and no
/// allocation; transitions are rare and look their counter up by label.
pub(crate) struct Emitter {
    name: Arc<str>,
    rejected: Counter,
    state: Gauge,
}

impl Emitter {
    pub(crate) fn new(name: Arc<str>, initial: State) -> Emitter {
        let rejected = metrics::counter!("keel_breaker_rejected_total", "name" => name.clone());
        let state = metrics::gauge!("keel_breaker_state", "name" => name.clone());
        state.set(state_value(initial));
        Emitter {
            name,
            rejected,
            state,
        }
    }

    pub(crate) fn rejected(&self) {
        self.rejected.increment(1);
    }

    pub(crate) fn transition(&self, from: State, to: State) {
        metrics::counter!(
            "keel_breaker_transitions_total",
            "name" => self.name.clone(),
            "from" => state_label(from),
            "to" => state_label(to),
        )
        .increment(1);
        self.state.set(state_value(to));
    }
}

/// The `keel_breaker_state` gauge's value for each state.
pub(crate) fn state_value(state: State) -> f64 {
    match state {
        State::Closed => 0.0,
        State::HalfOpen => 1.0,
        State::Open => 2.0,
        State::ForcedOpen => 3.0,
        State::Disabled => 4.0,
    }
}

fn state_label(state: State) -> &'static str {
    match state {
        State::Closed => "closed",
        State::HalfOpen => "half_open",
        State::Open => "open",
        State::ForcedOpen => "forced_open",
        State::Disabled => "disabled",
    }
}

/// A retry policy's handles, registered at build.
#[derive(Clone)]
pub(crate) struct RetryEmitter {
    attempts: Counter,
    budget_exhausted: Counter,
}

impl RetryEmitter {
    pub(crate) fn new(name: &str) -> RetryEmitter {
        RetryEmitter {
            attempts: metrics::counter!(
                "keel_breaker_retry_attempts_total",
                "name" => name.to_owned()
            ),
            budget_exhausted: metrics::counter!(
                "keel_breaker_retry_budget_exhausted_total",
                "name" => name.to_owned()
            ),
        }
    }

    /// A retry was allowed: one more attempt is about to be made.
    pub(crate) fn retried(&self) {
        self.attempts.increment(1);
    }

    pub(crate) fn budget_exhausted(&self) {
        self.budget_exhausted.increment(1);
    }
}
