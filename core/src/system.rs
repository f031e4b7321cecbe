//! `SystemClock`: the machine's real time.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Clock, Instant};

/// The machine's clocks: the default clock of every keel block.
///
/// - [`now`](Clock::now) reads [`std::time::Instant`] (`clock_gettime(CLOCK_MONOTONIC)`
///   through the vDSO on Linux), as nanoseconds since the first reading in this process.
/// - [`unix_millis`](Clock::unix_millis) reads [`std::time::SystemTime`]
///   (`CLOCK_REALTIME`); a time before 1970 reads as 0.
///
/// It is a zero-sized `Copy` type: every `SystemClock` in a process shares one origin, so
/// readings from different values compare. See the [crate docs](crate#what-a-reading-costs)
/// for what a reading costs and why this is the default.
///
/// # Example
///
/// ```
/// use keel_core::{Clock, SystemClock};
///
/// let clock = SystemClock;
/// let a = clock.now();
/// let b = clock.now();
/// assert!(b >= a);
/// assert!(clock.unix_millis() > 1_700_000_000_000); // after November 2023
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SystemClock;

fn origin() -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        let origin = origin();
        let elapsed = std::time::Instant::now().saturating_duration_since(origin);
        // u64 nanoseconds last 584 years of uptime; saturate rather than wrap past that.
        Instant::from_nanos(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }

    #[inline]
    fn unix_millis(&self) -> u64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since_epoch) => u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_across_values() {
        let first = SystemClock.now();
        let second = SystemClock::default().now();
        assert!(second >= first);
    }

    #[test]
    fn wall_clock_agrees_with_std() {
        let std_millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let ours = SystemClock.unix_millis();
        assert!(ours.abs_diff(std_millis) < 1_000, "{ours} vs {std_millis}");
    }
}
