//! `Decision`: the answer to one check, with what a caller needs to answer its client.

use std::time::Duration;

use crate::Quota;

/// The outcome of a check: admitted or denied, and the numbers a server puts in its response.
///
/// - [`limit`](Decision::limit) and [`window`](Decision::window): the quota's policy.
/// - [`remaining`](Decision::remaining): how many more single requests would be admitted right
///   now.
/// - [`reset_after`](Decision::reset_after): when the limiter is back to fresh (full burst).
/// - [`retry_after`](Decision::retry_after): for a denial, the time until the same request
///   would be admitted if nothing else arrives. It is exact to the nanosecond and rounded up,
///   never early: a retry after exactly this long succeeds.
///
/// [`headers`](Decision::headers) renders these as HTTP headers.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let limiter = Limiter::<Gcra, _>::with_clock(Quota::per_second(2)?, clock.clone());
/// assert!(limiter.check().is_allowed());
/// assert!(limiter.check().is_allowed());
/// let denied = limiter.check();
/// assert!(denied.is_denied());
/// assert_eq!(denied.remaining(), 0);
/// assert_eq!(denied.retry_after(), Some(Duration::from_millis(500)));
///
/// clock.advance(Duration::from_millis(500));
/// assert!(limiter.check().is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[must_use = "a decision says whether the request may proceed"]
pub struct Decision {
    allowed: bool,
    limit: u32,
    // Kept as raw nanoseconds and a fraction so the hot path divides nothing; the accessors
    // convert on demand.
    remaining_slack: u64,
    remaining_unit: u64,
    window_nanos: u64,
    reset_nanos: u64,
    retry_nanos: u64,
}

impl Decision {
    /// An admission; `remaining` single requests are `slack / unit` (floored).
    #[inline]
    pub(crate) fn allow_slack(
        quota: &Quota,
        slack: u64,
        unit: u64,
        reset_after_nanos: u64,
    ) -> Decision {
        Decision {
            allowed: true,
            limit: quota.limit(),
            remaining_slack: slack,
            remaining_unit: unit.max(1),
            window_nanos: quota.period_nanos(),
            reset_nanos: reset_after_nanos,
            retry_nanos: 0,
        }
    }

    /// A denial; `remaining` single requests are `slack / unit` (floored).
    #[inline]
    pub(crate) fn deny_slack(
        quota: &Quota,
        slack: u64,
        unit: u64,
        reset_after_nanos: u64,
        retry_after_nanos: u64,
    ) -> Decision {
        Decision {
            allowed: false,
            limit: quota.limit(),
            remaining_slack: slack,
            remaining_unit: unit.max(1),
            window_nanos: quota.period_nanos(),
            reset_nanos: reset_after_nanos,
            // A denial always waits at least a nanosecond, so `retry_after()` is never zero.
            retry_nanos: retry_after_nanos.max(1),
        }
    }

    #[inline]
    pub(crate) fn allow(quota: &Quota, remaining: u64, reset_after_nanos: u64) -> Decision {
        Decision::allow_slack(quota, remaining, 1, reset_after_nanos)
    }

    #[inline]
    pub(crate) fn deny(
        quota: &Quota,
        remaining: u64,
        reset_after_nanos: u64,
        retry_after_nanos: u64,
    ) -> Decision {
        Decision::deny_slack(quota, remaining, 1, reset_after_nanos, retry_after_nanos)
    }

    /// Builds a decision from its parts, for stores outside this crate (and tests).
    ///
    /// A denial's `retry_after` is raised to at least one nanosecond; an admission's is
    /// ignored. Durations beyond `u64` nanoseconds (584 years) saturate.
    ///
    /// ```
    /// # use keel_rate_limit::Decision;
    /// # use std::time::Duration;
    /// let d = Decision::from_parts(false, 10, 0, Duration::from_secs(60), Duration::from_secs(5), Duration::ZERO);
    /// assert_eq!(d.retry_after(), Some(Duration::from_nanos(1)));
    /// ```
    pub fn from_parts(
        allowed: bool,
        limit: u32,
        remaining: u32,
        window: Duration,
        reset_after: Duration,
        retry_after: Duration,
    ) -> Decision {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Decision {
            allowed,
            limit,
            remaining_slack: u64::from(remaining),
            remaining_unit: 1,
            window_nanos: nanos(window),
            reset_nanos: nanos(reset_after),
            retry_nanos: if allowed {
                0
            } else {
                nanos(retry_after).max(1)
            },
        }
    }

    /// Whether the request was admitted (and its cells taken).
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
    ///
    /// let limiter = Limiter::<Gcra>::new(Quota::per_hour(1)?);
    /// assert!(limiter.check().is_allowed());
    /// assert!(!limiter.check().is_allowed()); // the hour's one request is spent
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Whether the request was denied (nothing was taken).
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{FixedWindow, Limiter, Quota, RateLimit};
    ///
    /// let limiter = Limiter::<FixedWindow, _>::with_clock(Quota::per_hour(2)?, ManualClock::new());
    /// assert!(!limiter.check().is_denied());
    /// assert!(limiter.check_n(2)?.is_denied()); // only 1 left: nothing taken
    /// assert!(!limiter.check().is_denied()); // so the last one still fits
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn is_denied(&self) -> bool {
        !self.allowed
    }

    /// The quota's limit: requests per [`window`](Decision::window).
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
    ///
    /// let limiter = Limiter::<Gcra>::new(Quota::per_minute(60)?.with_burst(5)?);
    /// assert_eq!(limiter.check().limit(), 60); // the rate, not the burst
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// How many more single requests would be admitted right now, after this decision.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
    ///
    /// let limiter = Limiter::<Gcra, _>::with_clock(Quota::per_minute(3)?, ManualClock::new());
    /// assert_eq!(limiter.check().remaining(), 2);
    /// assert_eq!(limiter.check().remaining(), 1);
    /// assert_eq!(limiter.check().remaining(), 0);
    /// assert_eq!(limiter.check().remaining(), 0); // denied
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remaining(&self) -> u32 {
        u32::try_from(self.remaining_slack / self.remaining_unit).unwrap_or(u32::MAX)
    }

    /// The quota's period, the window its limit applies to.
    ///
    /// ```
    /// use keel_rate_limit::{Limiter, Quota, RateLimit, SlidingLog};
    /// use std::time::Duration;
    ///
    /// let limiter = Limiter::with_algorithm(Quota::per_hour(100)?, SlidingLog);
    /// assert_eq!(limiter.check().window(), Duration::from_secs(3600));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window_nanos)
    }

    /// Time until the limiter is fresh again (all of its capacity back) if nothing arrives.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::<Gcra, _>::with_clock(Quota::per_second(10)?, clock.clone());
    /// // Each cell drains in one emission interval (100 ms).
    /// assert_eq!(limiter.check().reset_after(), Duration::from_millis(100));
    /// assert_eq!(limiter.check_n(3)?.reset_after(), Duration::from_millis(400));
    /// clock.advance(Duration::from_millis(400));
    /// assert_eq!(limiter.check_n(0)?.reset_after(), Duration::ZERO);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset_after(&self) -> Duration {
        Duration::from_nanos(self.reset_nanos)
    }

    /// For a denial, the time until the same request would be admitted if nothing else
    /// arrives; `None` for an admission. Never zero and never early.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::<Gcra, _>::with_clock(Quota::per_minute(2)?, clock.clone());
    /// assert_eq!(limiter.check_n(2)?.retry_after(), None); // admitted
    /// let retry = limiter.check().retry_after().ok_or("should be denied")?;
    /// assert_eq!(retry, Duration::from_secs(30)); // one emission interval
    /// clock.advance(retry);
    /// assert!(limiter.check().is_allowed()); // never early
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        (!self.allowed).then_some(Duration::from_nanos(self.retry_nanos))
    }
}

/// `Duration` as whole seconds, rounded up: a client told to wait this long is never early.
pub(crate) fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}
