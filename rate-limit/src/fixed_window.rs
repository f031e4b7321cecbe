//! Fixed window: a counter per aligned window of the quota's period.

use keel_core::Instant;
use parking_lot::Mutex;

use crate::{Algorithm, Decision, Quota};

/// A counter per fixed window: windows of `period` aligned to the clock's origin; each admits
/// `limit` requests and the count starts again at the next window.
///
/// The cheapest limiter to explain and to run in Redis, and the coarsest: a client can spend
/// one window's limit at its end and the next window's at its start.
///
/// **Bound:** at most `2·limit` requests in any window of `period` (a window of that length
/// touches two fixed windows), reached by exactly that boundary burst. Retry-after is the time
/// to the next window.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{FixedWindow, Limiter, Quota, RateLimit};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let limiter = Limiter::<FixedWindow, _>::with_clock(Quota::per_minute(2)?, clock.clone());
/// clock.advance(Duration::from_secs(50));
/// assert!(limiter.check_n(2)?.is_allowed());
/// assert_eq!(limiter.check().retry_after(), Some(Duration::from_secs(10)));
/// clock.advance(Duration::from_secs(10)); // next window: the count starts again
/// assert!(limiter.check_n(2)?.is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default)]
pub struct FixedWindow;

/// The fixed window's state: the current window's start and count.
///
/// `Default` is an empty window; [`Limiter<FixedWindow>`](crate::Limiter) holds one.
///
/// ```
/// use keel_core::Instant;
/// use keel_rate_limit::{Algorithm, FixedWindow, FixedWindowState, Quota};
/// use std::time::Duration;
///
/// let quota = Quota::per_minute(3)?;
/// let state = FixedWindowState::default();
/// let at = |secs| Instant::ZERO + Duration::from_secs(secs);
/// assert_eq!(FixedWindow::decide(&quota, &state, at(10), 3).remaining(), 0);
/// assert!(FixedWindow::decide(&quota, &state, at(59), 1).is_denied());
/// assert_eq!(FixedWindow::decide(&quota, &state, at(60), 1).remaining(), 2); // new window
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct FixedWindowState {
    inner: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    start: u64,
    count: u64,
}

impl Algorithm for FixedWindow {
    type State = FixedWindowState;

    fn capacity(quota: &Quota) -> u32 {
        quota.limit()
    }

    fn decide(quota: &Quota, state: &FixedWindowState, now: Instant, n: u32) -> Decision {
        let w = quota.period_nanos();
        let limit = u64::from(quota.limit());
        let mut window = state.inner.lock();
        let now = now.as_nanos();
        let start = now - now % w;
        if start > window.start {
            window.start = start;
            window.count = 0;
        }
        // A stale clock reading (taken before another caller locked) counts in the current window.
        // Measured from `now`, so a window ending past the clock's range does not overflow.
        let until_end = if now >= window.start {
            w - (now - window.start)
        } else {
            (window.start - now).saturating_add(w)
        };
        let count = window.count + u64::from(n);
        if count > limit {
            let remaining = limit.saturating_sub(window.count);
            return Decision::deny(quota, remaining, until_end, until_end);
        }
        window.count = count;
        let reset = if count == 0 { 0 } else { until_end };
        Decision::allow(quota, limit - count, reset)
    }

    fn is_fresh(quota: &Quota, state: &FixedWindowState, now: Instant) -> bool {
        let window = state.inner.lock();
        // Measured back from `now`: the window's end may pass the clock's range.
        window.count == 0
            || (now.as_nanos().checked_sub(window.start))
                .is_some_and(|since| since >= quota.period_nanos())
    }
}
