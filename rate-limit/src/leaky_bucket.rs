//! The leaky bucket as a meter: a water level that drains at the quota's rate.

use keel_core::Instant;
use parking_lot::Mutex;

use crate::{Algorithm, Decision, Quota};

/// The leaky bucket as a meter: each request pours `n` emission intervals of water into a
/// bucket of `burst` intervals that drains continuously; a request that would overflow it is
/// denied and pours nothing.
///
/// This is the textbook form (ITU-T I.371's "virtual scheduling" and "leaky bucket" are the
/// same test), so it admits exactly what [`Gcra`](crate::Gcra) admits, and the crate's
/// property tests check that the two agree decision for decision. It keeps `(level, last
/// update)` under a small mutex instead of one atomic. For callers that should *wait* their
/// turn instead of being denied, see `Shaper` (feature `tokio`).
///
/// **Bound:** like GCRA, at most `burst + limit − 1` requests in any window of `period`.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{LeakyBucket, Limiter, Quota, RateLimit};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let meter = Limiter::<LeakyBucket, _>::with_clock(Quota::per_second(2)?.with_burst(1)?, clock.clone());
/// assert!(meter.check().is_allowed());
/// assert_eq!(meter.check().retry_after(), Some(Duration::from_millis(500)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default)]
pub struct LeakyBucket;

/// The leaky bucket's state: the water level (nanoseconds of work) at the last update.
///
/// `Default` is an empty bucket; [`Limiter<LeakyBucket>`](crate::Limiter) holds one.
///
/// ```
/// use keel_core::Instant;
/// use keel_rate_limit::{Algorithm, LeakyBucket, LeakyBucketState, Quota};
/// use std::time::Duration;
///
/// let quota = Quota::per_second(4)?; // a bucket of 4 × 250 ms
/// let state = LeakyBucketState::default();
/// assert!(LeakyBucket::decide(&quota, &state, Instant::ZERO, 4).is_allowed());
/// let denied = LeakyBucket::decide(&quota, &state, Instant::ZERO, 1);
/// assert_eq!(denied.retry_after(), Some(Duration::from_millis(250)));
/// // Drained after the whole second.
/// assert!(LeakyBucket::is_fresh(&quota, &state, Instant::ZERO + Duration::from_secs(1)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct LeakyBucketState {
    inner: Mutex<Level>,
}

#[derive(Debug, Default)]
struct Level {
    level: u64,
    last: u64,
}

impl Algorithm for LeakyBucket {
    type State = LeakyBucketState;

    fn capacity(quota: &Quota) -> u32 {
        quota.burst()
    }

    fn decide(quota: &Quota, state: &LeakyBucketState, now: Instant, n: u32) -> Decision {
        let t = quota.emission_nanos();
        let capacity = quota.tolerance_nanos();
        let mut bucket = state.inner.lock();
        // A caller that read the clock before another took the lock sees the later time.
        let now = now.as_nanos().max(bucket.last);
        let level = bucket.level.saturating_sub(now - bucket.last);
        // Saturating: `n` above the burst (which only a direct call can pass) is denied.
        let poured = level.saturating_add(u64::from(n).saturating_mul(t));
        if poured > capacity {
            bucket.level = level;
            bucket.last = now;
            // After `set_quota` lowers the burst the level may be above the new capacity.
            let slack = capacity.saturating_sub(level);
            return Decision::deny_slack(quota, slack, t, level, poured - capacity);
        }
        bucket.level = poured;
        bucket.last = now;
        Decision::allow_slack(quota, capacity - poured, t, poured)
    }

    fn is_fresh(_quota: &Quota, state: &LeakyBucketState, now: Instant) -> bool {
        let bucket = state.inner.lock();
        bucket.level <= now.as_nanos().saturating_sub(bucket.last)
    }
}
