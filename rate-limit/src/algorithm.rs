//! `Algorithm`: one rate-limiting rule as a state and a decision function.

use std::fmt;

use keel_core::Instant;

use crate::{Decision, Quota};

/// A rate-limiting algorithm: the state it keeps for one limiter (or one key) and the
/// function that decides a request against it.
///
/// The algorithms are zero-sized types ([`Gcra`](crate::Gcra),
/// [`LeakyBucket`](crate::LeakyBucket), [`FixedWindow`](crate::FixedWindow),
/// [`SlidingLog`](crate::SlidingLog), [`SlidingCounter`](crate::SlidingCounter)) that
/// [`Limiter`](crate::Limiter) and [`KeyedLimiter`](crate::KeyedLimiter) are generic over, so
/// the algorithm, the state's home and the clock are separate pieces. The state brings its
/// own synchronization (an atomic for GCRA, a small mutex for the others), so decisions for
/// one key never take a lock wider than that key.
///
/// # Example
///
/// Code generic over `A: Algorithm` works with any of them; here one function counts how
/// many of 10 requests arriving at once each algorithm admits.
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{Algorithm, FixedWindow, Gcra, Limiter, Quota, RateLimit};
///
/// fn admitted_at_once<A: Algorithm>(quota: Quota) -> usize {
///     let limiter = Limiter::<A, _>::with_clock(quota, ManualClock::new());
///     (0..10).filter(|_| limiter.check().is_allowed()).count()
/// }
///
/// let quota = Quota::per_second(5)?.with_burst(2)?;
/// assert_eq!(admitted_at_once::<Gcra>(quota), 2); // the burst
/// assert_eq!(admitted_at_once::<FixedWindow>(quota), 5); // the limit per window
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Algorithm: Send + Sync + fmt::Debug + 'static {
    /// The state of one limiter or one key. `Default` is the fresh state.
    type State: Default + Send + Sync + fmt::Debug;

    /// The most cells one call may ask for under `quota`.
    ///
    /// ```
    /// use keel_rate_limit::{Algorithm, Gcra, Quota, SlidingLog};
    ///
    /// let quota = Quota::per_minute(60)?.with_burst(5)?;
    /// assert_eq!(Gcra::capacity(&quota), 5); // token buckets: the burst
    /// assert_eq!(SlidingLog::capacity(&quota), 60); // window limiters: the limit
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn capacity(quota: &Quota) -> u32;

    /// Decides a request for `n` cells (`n <= capacity`) at `now`, all or nothing: it takes
    /// the cells if admitted and nothing if denied.
    ///
    /// [`Limiter`](crate::Limiter) calls this with its clock's reading; calling it directly
    /// drives the algorithm with explicit instants.
    ///
    /// ```
    /// use keel_core::Instant;
    /// use keel_rate_limit::{Algorithm, Gcra, GcraState, Quota};
    /// use std::time::Duration;
    ///
    /// let quota = Quota::per_second(2)?.with_burst(1)?;
    /// let state = GcraState::default();
    /// assert!(Gcra::decide(&quota, &state, Instant::ZERO, 1).is_allowed());
    /// let denied = Gcra::decide(&quota, &state, Instant::ZERO, 1);
    /// assert_eq!(denied.retry_after(), Some(Duration::from_millis(500)));
    /// let later = Instant::ZERO + Duration::from_millis(500);
    /// assert!(Gcra::decide(&quota, &state, later, 1).is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn decide(quota: &Quota, state: &Self::State, now: Instant, n: u32) -> Decision;

    /// Whether `state` behaves exactly like a fresh state at `now` and later, so a keyed
    /// limiter may drop it.
    ///
    /// ```
    /// use keel_core::Instant;
    /// use keel_rate_limit::{Algorithm, FixedWindow, FixedWindowState, Quota};
    /// use std::time::Duration;
    ///
    /// let quota = Quota::per_second(10)?;
    /// let state = FixedWindowState::default();
    /// assert!(FixedWindow::is_fresh(&quota, &state, Instant::ZERO));
    /// assert!(FixedWindow::decide(&quota, &state, Instant::ZERO, 1).is_allowed());
    /// assert!(!FixedWindow::is_fresh(&quota, &state, Instant::ZERO));
    /// // The next window starts empty, so the count no longer matters.
    /// assert!(FixedWindow::is_fresh(&quota, &state, Instant::ZERO + Duration::from_secs(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn is_fresh(quota: &Quota, state: &Self::State, now: Instant) -> bool;
}
