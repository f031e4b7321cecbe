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
/// use keel_rate_limit::{FixedWindow, Gcra, Limiter, Quota, RateLimit};
///
/// fn handle(limiter: &dyn RateLimit) -> u16 {
///     if limiter.check().is_allowed() { 200 } else { 429 }
/// }
///
/// let quota = Quota::per_minute(1)?;
/// let a = Limiter::<Gcra>::new(quota);
/// let b = Limiter::<FixedWindow>::new(quota);
/// assert_eq!((handle(&a), handle(&a)), (200, 429));
/// assert_eq!((handle(&b), handle(&b)), (200, 429));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait RateLimit {
    /// Decides one request: admitted (its cell taken) or denied (nothing taken).
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
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` is more than the limiter could ever admit at once (its
    /// burst, or its limit for the window algorithms). That is not a denial: no wait makes it
    /// succeed.
    fn check_n(&self, n: u32) -> Result<Decision, InsufficientCapacity>;

    /// The quota in force.
    fn quota(&self) -> Quota;

    /// Replaces the quota of the live limiter; the next decision uses it. State carries over:
    /// a GCRA debt is kept and measured in the new rate, window counts stay in their window.
    fn set_quota(&self, quota: Quota);
}
