//! `OwnedPermit`: a permit that holds its breaker by `Arc`, for spawned tasks and futures.

use std::fmt;
use std::sync::Arc;

use keel_core::{Clock, SystemClock};

use crate::CircuitBreaker;
use crate::breaker::{Kind, Ticket};

/// A [`Permit`](crate::Permit) that owns an `Arc` of its breaker, from
/// [`CircuitBreaker::try_acquire_owned`]. Report with [`success`](Self::success) or
/// [`failure`](Self::failure); dropping it unreported gives a probe slot back.
#[must_use = "report the call with success() or failure(); dropping the permit counts nothing"]
pub struct OwnedPermit<C: Clock = SystemClock> {
    breaker: Arc<CircuitBreaker<C>>,
    ticket: Ticket,
}

impl<C: Clock> OwnedPermit<C> {
    pub(crate) fn new(breaker: Arc<CircuitBreaker<C>>, ticket: Ticket) -> Self {
        OwnedPermit { breaker, ticket }
    }

    /// The call succeeded.
    pub fn success(self) {
        self.record(false);
    }

    /// The call failed.
    pub fn failure(self) {
        self.record(true);
    }

    /// The call finished; `failed` says how.
    pub fn record(mut self, failed: bool) {
        let ticket = self.ticket;
        // Reported: the drop that releases an unreported probe must find nothing to do.
        self.ticket.kind = Kind::Disabled;
        self.breaker.record(ticket, failed);
    }

    /// Whether this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.kind == Kind::Probe
    }
}

impl<C: Clock> Drop for OwnedPermit<C> {
    fn drop(&mut self) {
        if self.ticket.kind == Kind::Probe {
            self.breaker.release(self.ticket);
        }
    }
}

impl<C: Clock> fmt::Debug for OwnedPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}
