//! Sliding log: the exact limiter, remembering every admitted request of the last period.

use std::collections::VecDeque;

use keel_core::Instant;
use parking_lot::Mutex;

use crate::{Algorithm, Decision, Quota};

/// The sliding window log: it remembers the time of every admission in the last `period`
/// and admits a request only if the admissions in `(now − period, now]` plus `n` are at most
/// `limit`.
///
/// Exact, at the price of memory: up to `limit` entries per key (admissions at the same
/// instant share one entry).
///
/// **Bound:** at most `limit` requests in *any* window of `period`, with no boundary effect.
/// Retry-after is the time until enough of the oldest admissions leave the window.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{Limiter, Quota, RateLimit, SlidingLog};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let limiter = Limiter::<SlidingLog, _>::with_clock(Quota::per_second(2)?, clock.clone());
/// assert!(limiter.check().is_allowed());
/// clock.advance(Duration::from_millis(400));
/// assert!(limiter.check().is_allowed());
/// // The first admission leaves the window 1 s after it was made.
/// assert_eq!(limiter.check().retry_after(), Some(Duration::from_millis(600)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default)]
pub struct SlidingLog;

/// The sliding log's state: admission times and counts inside the last period.
///
/// `Default` is an empty log; [`Limiter<SlidingLog>`](crate::Limiter) holds one.
///
/// ```
/// use keel_core::Instant;
/// use keel_rate_limit::{Algorithm, Quota, SlidingLog, SlidingLogState};
/// use std::time::Duration;
///
/// let quota = Quota::per_second(2)?;
/// let state = SlidingLogState::default();
/// let at = |millis| Instant::ZERO + Duration::from_millis(millis);
/// assert!(SlidingLog::decide(&quota, &state, at(0), 1).is_allowed());
/// assert!(SlidingLog::decide(&quota, &state, at(300), 1).is_allowed());
/// assert!(!SlidingLog::is_fresh(&quota, &state, at(1_000))); // the 300 ms entry is still in
/// assert!(SlidingLog::is_fresh(&quota, &state, at(1_300)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct SlidingLogState {
    inner: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    entries: VecDeque<(u64, u32)>,
    total: u64,
}

impl Log {
    fn expire(&mut self, now: u64, w: u64) {
        while let Some(&(at, n)) = self.entries.front() {
            // Measured back from `now`: `at + w` may pass the clock's range.
            if now.saturating_sub(at) < w {
                break;
            }
            self.entries.pop_front();
            self.total -= u64::from(n);
        }
    }
}

impl Algorithm for SlidingLog {
    type State = SlidingLogState;

    fn capacity(quota: &Quota) -> u32 {
        quota.limit()
    }

    fn decide(quota: &Quota, state: &SlidingLogState, now: Instant, n: u32) -> Decision {
        let w = quota.period_nanos();
        let limit = u64::from(quota.limit());
        let mut log = state.inner.lock();
        // A caller that read the clock before another took the lock sees the later time.
        let now = match log.entries.back() {
            Some(&(last, _)) => now.as_nanos().max(last),
            None => now.as_nanos(),
        };
        log.expire(now, w);
        // Every entry is under `w` old (`expire`): measured back from `now`, nothing overflows
        // near the clock's end.
        let reset_of = |log: &Log| log.entries.back().map_or(0, |&(at, _)| w - (now - at));
        if log.total + u64::from(n) > limit {
            // Wait until the oldest admissions free enough room.
            let mut to_free = log.total + u64::from(n) - limit;
            let mut retry = w;
            for &(at, count) in &log.entries {
                retry = w - (now - at);
                to_free = to_free.saturating_sub(u64::from(count));
                if to_free == 0 {
                    break;
                }
            }
            let remaining = limit.saturating_sub(log.total);
            return Decision::deny(quota, remaining, reset_of(&log), retry);
        }
        if n > 0 {
            match log.entries.back_mut() {
                Some((at, count)) if *at == now => *count += n,
                _ => log.entries.push_back((now, n)),
            }
            log.total += u64::from(n);
        }
        Decision::allow(quota, limit - log.total, reset_of(&log))
    }

    fn is_fresh(quota: &Quota, state: &SlidingLogState, now: Instant) -> bool {
        let log = state.inner.lock();
        log.entries
            .back()
            .is_none_or(|&(at, _)| now.as_nanos().saturating_sub(at) >= quota.period_nanos())
    }
}
