//! Sliding counter: two fixed-window counters weighted into an estimate, as Cloudflare does.

use keel_core::Instant;
use parking_lot::Mutex;

use crate::{Algorithm, Decision, Quota};

/// The sliding window counter, as Cloudflare describes it: the previous fixed window's count
/// weighted by how much of it still overlaps the sliding window, plus the current window's
/// count. A request for `n` is admitted if
/// `previous · (period − elapsed) / period + current + n ≤ limit`,
/// computed exactly in integers.
///
/// Two counters per key, like the fixed window, and much smoother: under steady or random
/// traffic it admits close to `limit` per sliding window (see `compare rate-limit`). The
/// estimate assumes the previous window's requests were spread evenly; when they were not,
/// it errs.
///
/// **Bound:** at most `2·limit − 1` requests in any window of `period`. The worst case is
/// adversarial: `limit` requests at the very end of one fixed window, then the estimate lets
/// almost `limit` more through before the sliding window has passed them. Fewer than
/// `2·limit`, since the weight of the previous window never reaches zero inside the window.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{Limiter, Quota, RateLimit, SlidingCounter};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let limiter = Limiter::<SlidingCounter, _>::with_clock(Quota::per_second(10)?, clock.clone());
/// assert!(limiter.check_n(10)?.is_allowed());
/// clock.advance(Duration::from_millis(1_500)); // half of the previous window still counts: 5
/// assert!(limiter.check_n(5)?.is_allowed());
/// assert!(limiter.check().is_denied());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default)]
pub struct SlidingCounter;

/// The sliding counter's state: the current window's start, and the current and previous
/// windows' counts.
///
/// `Default` is two empty windows; [`Limiter<SlidingCounter>`](crate::Limiter) holds one.
///
/// ```
/// use keel_core::Instant;
/// use keel_rate_limit::{Algorithm, Quota, SlidingCounter, SlidingCounterState};
/// use std::time::Duration;
///
/// let quota = Quota::per_second(4)?;
/// let state = SlidingCounterState::default();
/// let at = |millis| Instant::ZERO + Duration::from_millis(millis);
/// assert!(SlidingCounter::decide(&quota, &state, at(0), 4).is_allowed());
/// // 3/4 into the next window, a quarter of the previous count (1) still weighs.
/// assert_eq!(SlidingCounter::decide(&quota, &state, at(1_750), 0).remaining(), 3);
/// // Two whole windows later nothing of it is left.
/// assert!(SlidingCounter::is_fresh(&quota, &state, at(2_000)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct SlidingCounterState {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    start: u64,
    current: u64,
    previous: u64,
}

impl Counters {
    fn roll(&mut self, now: u64, w: u64) {
        let start = now - now % w;
        if start > self.start {
            self.previous = if start - self.start == w {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.start = start;
        }
    }
}

/// `previous · (w − elapsed) + current · w` ≤ `limit · w`, in u128.
fn fits(previous: u64, current: u64, elapsed: u64, w: u64, limit: u64) -> bool {
    u128::from(previous) * u128::from(w - elapsed) + u128::from(current) * u128::from(w)
        <= u128::from(limit) * u128::from(w)
}

/// The earliest elapsed time in a window with counts `(previous, current)` at which `n` more
/// fit, or `None` if not in this window.
fn earliest(previous: u64, current: u64, n: u64, w: u64, limit: u64) -> Option<u64> {
    let room = limit.checked_sub(current + n)?;
    if previous == 0 {
        return Some(0);
    }
    // previous · (w − e) ≤ room · w  ⇔  e ≥ w − ⌊room · w / previous⌋
    let slack = u128::from(room) * u128::from(w) / u128::from(previous);
    let e = u128::from(w).saturating_sub(slack);
    (e < u128::from(w)).then_some(e as u64)
}

impl Algorithm for SlidingCounter {
    type State = SlidingCounterState;

    fn capacity(quota: &Quota) -> u32 {
        quota.limit()
    }

    fn decide(quota: &Quota, state: &SlidingCounterState, now: Instant, n: u32) -> Decision {
        let w = quota.period_nanos();
        let limit = u64::from(quota.limit());
        let n = u64::from(n);
        let mut c = state.inner.lock();
        c.roll(now.as_nanos(), w);
        // A stale clock reading (taken before another caller locked) counts in the current window.
        let now = now.as_nanos().max(c.start);
        let elapsed = now - c.start;
        // From `elapsed` (under `w`), not `c.start`, so nothing overflows near the clock's end.
        let reset = |c: &Counters| {
            if c.current > 0 {
                2 * w - elapsed
            } else if c.previous > 0 {
                w - elapsed
            } else {
                0
            }
        };
        let remaining = |c: &Counters| {
            let used = u128::from(c.previous) * u128::from(w - elapsed)
                + u128::from(c.current) * u128::from(w);
            let room = (u128::from(limit) * u128::from(w)).saturating_sub(used) / u128::from(w);
            room as u64
        };
        if !fits(c.previous, c.current + n, elapsed, w, limit) {
            let retry = match earliest(c.previous, c.current, n, w, limit) {
                Some(e) => e - elapsed,
                None => match earliest(c.current, 0, n, w, limit) {
                    Some(e) => w + e - elapsed,
                    None => 2 * w - elapsed,
                },
            };
            return Decision::deny(quota, remaining(&c), reset(&c), retry);
        }
        c.current += n;
        Decision::allow(quota, remaining(&c), reset(&c))
    }

    fn is_fresh(quota: &Quota, state: &SlidingCounterState, now: Instant) -> bool {
        let c = state.inner.lock();
        let w = quota.period_nanos();
        // Measured back from `now`: the window's end may pass the clock's range.
        let since = now.as_nanos().checked_sub(c.start);
        (c.current == 0 || since.is_some_and(|since| since >= 2 * w))
            && (c.previous == 0 || since.is_some_and(|since| since >= w))
    }
}
