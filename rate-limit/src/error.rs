//! `InsufficientCapacity`: a request larger than the limiter could ever admit.

use std::fmt;

/// `check_n(n)` asked for more cells than the limiter holds at once, so it can never be
/// admitted, now or later.
///
/// This is distinct from a denial (a [`Decision`](crate::Decision) that is not allowed),
/// which means "not now, retry after ...".
///
/// ```
/// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
///
/// let limiter = Limiter::<Gcra>::new(Quota::per_second(10)?.with_burst(5)?);
/// let err = limiter.check_n(6).unwrap_err();
/// assert_eq!(err.capacity(), 5);
/// assert_eq!(err.to_string(), "asked for 6 cells at once but the limiter holds at most 5");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct InsufficientCapacity {
    requested: u32,
    capacity: u32,
}

impl InsufficientCapacity {
    pub(crate) fn new(requested: u32, capacity: u32) -> InsufficientCapacity {
        InsufficientCapacity {
            requested,
            capacity,
        }
    }

    /// The `n` asked for.
    ///
    /// ```
    /// use keel_rate_limit::{Limiter, Quota, RateLimit, SlidingLog};
    ///
    /// let limiter = Limiter::with_algorithm(Quota::per_minute(10)?, SlidingLog);
    /// let err = limiter.check_n(25).unwrap_err();
    /// assert_eq!(err.requested(), 25);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn requested(&self) -> u32 {
        self.requested
    }

    /// The most the limiter admits at once (the burst, or the limit for window limiters).
    ///
    /// ```
    /// use keel_rate_limit::{FixedWindow, Gcra, Limiter, Quota, RateLimit};
    ///
    /// let quota = Quota::per_minute(10)?.with_burst(4)?;
    /// assert_eq!(Limiter::<Gcra>::new(quota).check_n(11).unwrap_err().capacity(), 4);
    /// assert_eq!(Limiter::with_algorithm(quota, FixedWindow).check_n(11).unwrap_err().capacity(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capacity(&self) -> u32 {
        self.capacity
    }
}

impl fmt::Display for InsufficientCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "asked for {} cells at once but the limiter holds at most {}",
            self.requested, self.capacity
        )
    }
}

impl std::error::Error for InsufficientCapacity {}
