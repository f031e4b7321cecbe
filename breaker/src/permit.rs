//! `OwnedPermit`: a permit that holds its breaker by `Arc`, for spawned tasks and futures.

use std::fmt;
use std::sync::Arc;

use keel_core::{Clock, SystemClock};

use crate::CircuitBreaker;
use crate::breaker::{Kind, Ticket};

/// A [`Permit`](crate::Permit) that owns an `Arc` of its breaker, from
/// [`CircuitBreaker::try_acquire_owned`]. Report with [`success`](Self::success) or
/// [`failure`](Self::failure); dropping it unreported gives a probe slot back.
///
/// ```
/// use keel_breaker::CircuitBreaker;
/// use std::sync::Arc;
///
/// let breaker = Arc::new(CircuitBreaker::builder().consecutive_failures(3).build()?);
/// let permit = breaker.try_acquire_owned()?;
/// std::thread::spawn(move || permit.failure()).join().unwrap();
/// assert_eq!(breaker.metrics().consecutive_failures, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    /// use std::sync::Arc;
    ///
    /// let breaker = Arc::new(CircuitBreaker::builder().failure_rate(50.0).minimum_calls(10).build()?);
    /// breaker.try_acquire_owned()?.success();
    /// assert_eq!((breaker.metrics().calls, breaker.metrics().failed), (1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn success(self) {
        self.record(false);
    }

    /// The call failed.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    /// use std::sync::Arc;
    ///
    /// let breaker = Arc::new(CircuitBreaker::builder().consecutive_failures(1).build()?);
    /// breaker.try_acquire_owned()?.failure();
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failure(self) {
        self.record(true);
    }

    /// The call finished; `failed` says how.
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    /// use std::sync::Arc;
    ///
    /// let breaker = Arc::new(CircuitBreaker::builder().failure_rate(50.0).minimum_calls(10).build()?);
    /// for status in [200, 500] {
    ///     breaker.try_acquire_owned()?.record(status >= 500);
    /// }
    /// assert_eq!((breaker.metrics().calls, breaker.metrics().failed), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record(mut self, failed: bool) {
        let ticket = self.ticket;
        // Reported: the drop that releases an unreported probe must find nothing to do.
        self.ticket.kind = Kind::Disabled;
        self.breaker.record(ticket, failed);
    }

    /// Whether this permit is a half-open probe.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, OpenWait};
    /// use keel_core::ManualClock;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = Arc::new(
    ///     CircuitBreaker::builder()
    ///         .consecutive_failures(1)
    ///         .open_wait(OpenWait::Fixed(Duration::from_secs(5)))
    ///         .clock(clock.clone())
    ///         .build()?,
    /// );
    /// breaker.try_acquire_owned()?.failure();
    /// clock.advance(Duration::from_secs(5));
    /// let probe = breaker.try_acquire_owned()?;
    /// assert!(probe.is_probe());
    /// drop(probe); // unreported: the probe slot comes back
    /// assert_eq!(breaker.metrics().probes_in_flight, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
