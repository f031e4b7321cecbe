//! `RateLimit`: the small trait every limiter answers.

use crate::{Decision, InsufficientCapacity, Quota};

/// A rate limiter: admit or deny a request now, all or nothing.
///
/// Implemented by [`Limiter`](crate::Limiter) for every algorithm, so code that only checks
/// can take `&impl RateLimit` (or `&dyn RateLimit`) and be handed any of them.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{FixedWindow, Gcra, Limiter, Quota, RateLimit};
///
/// fn handle(limiter: &dyn RateLimit) -> u16 {
///     if limiter.check().is_allowed() { 200 } else { 429 }
/// }
///
/// let quota = Quota::per_minute(1)?;
/// // A manual clock: on the system clock a window could end between the two calls.
/// let a = Limiter::<Gcra, _>::with_clock(quota, ManualClock::new());
/// let b = Limiter::<FixedWindow, _>::with_clock(quota, ManualClock::new());
/// assert_eq!((handle(&a), handle(&a)), (200, 429));
/// assert_eq!((handle(&b), handle(&b)), (200, 429));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait RateLimit {
    /// Decides one request: admitted (its cell taken) or denied (nothing taken).
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{Limiter, Quota, RateLimit, SlidingLog};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::<SlidingLog, _>::with_clock(Quota::per_second(1)?, clock.clone());
    /// assert!(limiter.check().is_allowed());
    /// assert_eq!(limiter.check().retry_after(), Some(Duration::from_secs(1)));
    /// clock.advance(Duration::from_secs(1));
    /// assert!(limiter.check().is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    fn check(&self) -> Decision {
        match self.check_n(1) {
            Ok(decision) => decision,
            // Every quota holds at least one cell, so this arm is never taken.
            Err(_) => {
                let quota = self.quota();
                Decision::deny(&quota, 0, 0, quota.period_nanos())
            }
        }
    }

    /// Decides `n` cells at once, all or nothing.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
    ///
    /// // A batch of 5 rows counts as 5 requests.
    /// let limiter = Limiter::<Gcra>::new(Quota::per_minute(10)?);
    /// assert_eq!(limiter.check_n(5)?.remaining(), 5);
    /// assert!(limiter.check_n(6)?.is_denied()); // all or nothing: the 5 left stay
    /// assert_eq!(limiter.check_n(5)?.remaining(), 0);
    /// assert_eq!(limiter.check_n(11).unwrap_err().capacity(), 10); // never fits
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` is more than the limiter could ever admit at once (its
    /// burst, or its limit for the window algorithms). That is not a denial: no wait makes it
    /// succeed.
    fn check_n(&self, n: u32) -> Result<Decision, InsufficientCapacity>;

    /// The quota in force.
    ///
    /// ```
    /// use keel_rate_limit::{LeakyBucket, Limiter, Quota, RateLimit};
    ///
    /// let quota = Quota::per_second(20)?.with_burst(5)?;
    /// let limiter = Limiter::with_algorithm(quota, LeakyBucket);
    /// assert_eq!(limiter.quota(), quota);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn quota(&self) -> Quota;

    /// Replaces the quota of the live limiter; the next decision uses it. State carries over:
    /// a GCRA debt is kept and measured in the new rate, window counts stay in their window.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{FixedWindow, Limiter, Quota, RateLimit};
    ///
    /// let limiter = Limiter::<FixedWindow, _>::with_clock(Quota::per_hour(2)?, ManualClock::new());
    /// assert!(limiter.check_n(2)?.is_allowed());
    /// assert!(limiter.check().is_denied());
    /// limiter.set_quota(Quota::per_hour(5)?);
    /// // The 2 already counted in this window stay counted: 3 more fit.
    /// assert_eq!(limiter.check_n(3)?.remaining(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn set_quota(&self, quota: Quota);
}
