//! The limiter's metrics, through the `metrics` facade (feature `metrics`).

use metrics::Counter;

use crate::Decision;

/// Handles registered once per limiter, so a decision costs one counter increment and no
/// label lookup.
pub(crate) struct Emitter {
    admitted: Counter,
    denied: Counter,
}

impl Emitter {
    pub(crate) fn new(name: &str) -> Emitter {
        let counter = |outcome: &'static str| {
            metrics::counter!(
                "keel_rate_limit_decisions_total",
                "name" => name.to_owned(),
                "outcome" => outcome,
            )
        };
        Emitter {
            admitted: counter("admitted"),
            denied: counter("denied"),
        }
    }

    #[inline]
    pub(crate) fn decision(&self, decision: &Decision) {
        if decision.is_allowed() {
            self.admitted.increment(1);
        } else {
            self.denied.increment(1);
        }
    }

    /// A refusal made without a decision: a request larger than the quota could ever hold,
    /// or a Redis failure under `FailurePolicy::FailClosed`.
    #[inline]
    pub(crate) fn refused(&self) {
        self.denied.increment(1);
    }

    /// An admission made without a decision: a Redis failure under
    /// `FailurePolicy::FailOpen`.
    #[cfg(feature = "redis")]
    pub(crate) fn admitted(&self) {
        self.admitted.increment(1);
    }
}
