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

    /// A request larger than the quota could ever hold: refused, so counted as denied.
    #[inline]
    pub(crate) fn too_large(&self) {
        self.denied.increment(1);
    }
}
