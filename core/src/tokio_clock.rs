//! `TokioClock`: time that follows tokio's clock, paused or not.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Clock, Instant};

/// A clock that reads [`tokio::time::Instant`], so a test that pauses tokio's time
/// (`#[tokio::test(start_paused = true)]` or `tokio::time::pause`) drives it, and
/// `tokio::time::sleep` auto-advances it.
///
/// Async blocks (a limiter's `until_ready`, a retry's backoff) sleep with tokio and read time
/// with their `Clock`; with this clock both see the same time, so such tests never wait for
/// real. The wall clock is the system's wall time when the clock was built plus the tokio
/// time elapsed since, so it moves with paused time too (and never steps back).
///
/// Clones share the origin. Build it inside the runtime whose time it should follow.
///
/// # Example
///
/// ```
/// use keel_core::{Clock, TokioClock};
/// use std::time::Duration;
///
/// let runtime = tokio::runtime::Builder::new_current_thread()
///     .enable_time()
///     .start_paused(true)
///     .build()?;
/// runtime.block_on(async {
///     let clock = TokioClock::new();
///     let start = clock.now();
///     tokio::time::sleep(Duration::from_secs(3600)).await; // returns at once: time is paused
///     assert_eq!(clock.now() - start, Duration::from_secs(3600));
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    unix_nanos_at_origin: u64,
}

impl TokioClock {
    /// A clock whose origin is tokio's `now`.
    ///
    /// ```
    /// # use keel_core::{Clock, TokioClock};
    /// let clock = TokioClock::new();
    /// assert!(clock.unix_millis() > 1_700_000_000_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> TokioClock {
        let unix_nanos_at_origin = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        TokioClock {
            origin: tokio::time::Instant::now(),
            unix_nanos_at_origin,
        }
    }

    fn elapsed_nanos(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for TokioClock {
    fn default() -> TokioClock {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_nanos(self.elapsed_nanos())
    }

    #[inline]
    fn unix_millis(&self) -> u64 {
        self.unix_nanos_at_origin
            .saturating_add(self.elapsed_nanos())
            / 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn paused_time_drives_both_readings() {
        let clock = TokioClock::new();
        let wall = clock.unix_millis();
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), Instant::from_nanos(1_500_000_000));
        assert_eq!(clock.unix_millis(), wall + 1500);
    }
}
