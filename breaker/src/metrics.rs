//! `Metrics`: a snapshot of a breaker's state and counts.

use crate::State;

/// A snapshot of a [`CircuitBreaker`](crate::CircuitBreaker), from
/// [`metrics`](crate::CircuitBreaker::metrics). The counts cover the current window, which
/// empties each time the breaker closes. A breaker without a rate condition (only
/// `consecutive_failures`) keeps no window, so its `calls`, `failed` and `slow` stay 0.
///
/// ```
/// use keel_breaker::{CircuitBreaker, State};
///
/// let breaker = CircuitBreaker::builder().consecutive_failures(2).failure_rate(50.0).minimum_calls(10).build()?;
/// for _ in 0..2 {
///     let _ = breaker.call(|| Err::<(), _>("refused"));
/// }
/// let _ = breaker.call(|| Ok::<_, &str>(())); // rejected: the breaker is open
/// let metrics = breaker.metrics();
/// assert_eq!(metrics.state, State::Open);
/// assert_eq!((metrics.calls, metrics.failed, metrics.failure_rate), (2, 2, Some(100.0)));
/// assert_eq!((metrics.trips, metrics.rejected), (1, 1));
/// assert_eq!(metrics.slow_call_rate, Some(0.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// The current state.
    pub state: State,
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failed: u64,
    /// Slow calls in the window (always 0 without a slow-call condition).
    pub slow: u64,
    /// `failed / calls` in percent, `None` for an empty window.
    pub failure_rate: Option<f64>,
    /// `slow / calls` in percent, `None` for an empty window.
    pub slow_call_rate: Option<f64>,
    /// Failures in a row, counted in the closed state.
    pub consecutive_failures: u32,
    /// Calls rejected since the breaker was built.
    pub rejected: u64,
    /// Times the breaker opened since it was built.
    pub trips: u64,
    /// Probes running now (half-open only).
    pub probes_in_flight: u32,
}
