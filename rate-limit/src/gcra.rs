//! GCRA: the token bucket as one theoretical arrival time in an atomic cell.

use keel_core::Instant;
use keel_core::sync::atomic::{AtomicU64, Ordering};

use crate::{Algorithm, Decision, Quota};

/// The token bucket, as the generic cell rate algorithm (GCRA): lock-free, one `AtomicU64`
/// per limiter or key.
///
/// The cell holds the *theoretical arrival time* (TAT), the time at which the bucket would be
/// full again. A request for `n` cells at `now` moves it to `max(TAT, now) + n·T` (`T` the
/// emission interval) if that is at most `now + burst·T`, in one compare-and-swap; otherwise
/// it is denied and the cell is untouched. The retry-after of a denial is exactly the time
/// until the request would conform.
///
/// **Bound:** in any window of length `period` (half-open), GCRA admits at most
/// `burst + limit − 1` requests: a full burst, then one per emission interval. With the default
/// burst (`= limit`) that is `2·limit − 1`; with a burst of 1 it is exactly `limit` (pure
/// spacing).
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let limiter = Limiter::<Gcra, _>::with_clock(Quota::per_second(10)?.with_burst(3)?, clock.clone());
/// assert!(limiter.check_n(3)?.is_allowed()); // the whole burst at once
/// assert!(limiter.check().is_denied());
/// clock.advance(Duration::from_millis(100)); // one emission interval
/// assert!(limiter.check().is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default)]
pub struct Gcra;

/// GCRA's state: the theoretical arrival time, in clock nanoseconds, in one atomic.
///
/// `Default` is a full bucket. A [`Limiter<Gcra>`](crate::Limiter) holds one and a
/// [`KeyedLimiter`](crate::KeyedLimiter) one per key; it can also be driven directly through
/// [`Algorithm`].
///
/// ```
/// use keel_core::Instant;
/// use keel_rate_limit::{Algorithm, Gcra, GcraState, Quota};
/// use std::time::Duration;
///
/// let quota = Quota::per_second(10)?.with_burst(2)?;
/// let state = GcraState::default();
/// assert!(Gcra::decide(&quota, &state, Instant::ZERO, 2).is_allowed());
/// assert!(!Gcra::is_fresh(&quota, &state, Instant::ZERO));
/// // Full again after two emission intervals.
/// assert!(Gcra::is_fresh(&quota, &state, Instant::ZERO + Duration::from_millis(200)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct GcraState {
    tat: AtomicU64,
}

impl Default for GcraState {
    fn default() -> GcraState {
        GcraState {
            tat: AtomicU64::new(0),
        }
    }
}

impl Algorithm for Gcra {
    type State = GcraState;

    #[inline]
    fn capacity(quota: &Quota) -> u32 {
        quota.burst()
    }

    #[inline]
    fn decide(quota: &Quota, state: &GcraState, now: Instant, n: u32) -> Decision {
        let now = now.as_nanos();
        let t = quota.emission_nanos();
        let tau = quota.tolerance_nanos();
        // Saturating: `n` above the burst (which only a direct call can pass) is denied.
        let increment = u64::from(n).saturating_mul(t);
        let mut tat = state.tat.load(Ordering::Acquire);
        loop {
            let base = tat.max(now);
            let new_tat = base.saturating_add(increment);
            let ahead = new_tat - now;
            // A saturated `new_tat` is a cell past the clock's range: it never fits (without
            // this, a clock at its end would admit every request for nothing).
            if ahead > tau || new_tat == u64::MAX {
                // `saturating_sub`: after `set_quota` lowers the burst, the cell may be further ahead
                // than the new tolerance.
                let slack = tau.saturating_sub(base - now);
                let retry = ahead.saturating_sub(tau);
                return Decision::deny_slack(quota, slack, t, base - now, retry);
            }
            if new_tat == tat {
                // n == 0 with the cell in the future: nothing to write.
                return Decision::allow_slack(quota, tau - ahead, t, ahead);
            }
            match state
                .tat
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Decision::allow_slack(quota, tau - ahead, t, ahead),
                Err(actual) => tat = actual,
            }
        }
    }

    #[inline]
    fn is_fresh(_quota: &Quota, state: &GcraState, now: Instant) -> bool {
        state.tat.load(Ordering::Acquire) <= now.as_nanos()
    }
}

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_spacing() {
        let quota = Quota::per_second(4).unwrap().with_burst(2).unwrap();
        let state = GcraState::default();
        let at = |ms: u64| Instant::ZERO + Duration::from_millis(ms);
        assert!(Gcra::decide(&quota, &state, at(0), 2).is_allowed());
        let denied = Gcra::decide(&quota, &state, at(0), 1);
        assert_eq!(denied.retry_after(), Some(Duration::from_millis(250)));
        assert!(Gcra::decide(&quota, &state, at(249), 1).is_denied());
        let ok = Gcra::decide(&quota, &state, at(250), 1);
        assert!(ok.is_allowed());
        assert_eq!(ok.remaining(), 0);
        assert_eq!(ok.reset_after(), Duration::from_millis(500));
        assert!(!Gcra::is_fresh(&quota, &state, at(749)));
        assert!(Gcra::is_fresh(&quota, &state, at(750)));
    }
}
