//! `ManualClock`: time that moves only when a test says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Clock, Instant};

/// 2025-01-01T00:00:00Z, where a new [`ManualClock`]'s wall clock starts.
const DEFAULT_UNIX_NANOS: u64 = 1_735_689_600_000 * NANOS_PER_MILLI;
const NANOS_PER_MILLI: u64 = 1_000_000;

/// A clock for tests: it stands still until told to move.
///
/// Clones share one time, so a test keeps a clone and moves the time seen by the block under
/// test. [`advance`](ManualClock::advance) moves both readings forward together; the wall clock
/// can also be stepped on its own, backwards or forwards, to model an NTP step while the
/// monotonic reading stays put (as it does on a real machine).
///
/// The monotonic reading starts at [`Instant::ZERO`]; the wall clock starts at
/// 2025-01-01T00:00:00Z unless built with [`ManualClock::at_unix_millis`].
/// Arithmetic saturates, so no call panics.
///
/// # Example
///
/// ```
/// use keel_core::{Clock, Instant, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::at_unix_millis(1_700_000_000_000);
/// let seen_by_block = clock.clone();
///
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(seen_by_block.now(), Instant::ZERO + Duration::from_millis(250));
/// assert_eq!(seen_by_block.unix_millis(), 1_700_000_000_250);
///
/// // An NTP step back of 1 s: the wall clock goes back, the monotonic reading does not.
/// clock.step_wall_back(Duration::from_secs(1));
/// assert_eq!(seen_by_block.unix_millis(), 1_699_999_999_250);
/// assert_eq!(seen_by_block.now(), Instant::ZERO + Duration::from_millis(250));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    shared: Arc<ManualTime>,
}

#[derive(Debug)]
struct ManualTime {
    monotonic_nanos: AtomicU64,
    unix_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock at [`Instant::ZERO`] with its wall clock at 2025-01-01T00:00:00Z.
    ///
    /// ```
    /// # use keel_core::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new().unix_millis(), 1_735_689_600_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> ManualClock {
        ManualClock::at_unix_nanos(DEFAULT_UNIX_NANOS)
    }

    /// A clock at [`Instant::ZERO`] with its wall clock at `unix_millis`.
    ///
    /// ```
    /// # use keel_core::{Clock, ManualClock};
    /// assert_eq!(ManualClock::at_unix_millis(42).unix_millis(), 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn at_unix_millis(unix_millis: u64) -> ManualClock {
        ManualClock::at_unix_nanos(unix_millis.saturating_mul(NANOS_PER_MILLI))
    }

    fn at_unix_nanos(unix_nanos: u64) -> ManualClock {
        ManualClock {
            shared: Arc::new(ManualTime {
                monotonic_nanos: AtomicU64::new(0),
                unix_nanos: AtomicU64::new(unix_nanos),
            }),
        }
    }

    /// Moves both the monotonic reading and the wall clock forward by `by`.
    ///
    /// ```
    /// # use keel_core::{Clock, Instant, ManualClock};
    /// # use std::time::Duration;
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_micros(1500));
    /// assert_eq!(clock.now(), Instant::from_nanos(1_500_000));
    /// assert_eq!(clock.unix_millis(), 1_735_689_600_001);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn advance(&self, by: Duration) {
        let nanos = saturating_nanos(by);
        add_saturating(&self.shared.monotonic_nanos, nanos);
        add_saturating(&self.shared.unix_nanos, nanos);
    }

    /// Sets the wall clock to `unix_millis`, forwards or backwards, leaving the monotonic
    /// reading alone.
    ///
    /// ```
    /// # use keel_core::{Clock, ManualClock};
    /// let clock = ManualClock::new();
    /// clock.set_unix_millis(1_000);
    /// assert_eq!(clock.unix_millis(), 1_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_unix_millis(&self, unix_millis: u64) {
        self.shared.unix_nanos.store(
            unix_millis.saturating_mul(NANOS_PER_MILLI),
            Ordering::SeqCst,
        );
    }

    /// Steps the wall clock back by `by` (stopping at the epoch), as an NTP correction does.
    /// The monotonic reading does not move.
    ///
    /// ```
    /// # use keel_core::{Clock, ManualClock};
    /// # use std::time::Duration;
    /// let clock = ManualClock::at_unix_millis(10_000);
    /// clock.step_wall_back(Duration::from_millis(5));
    /// assert_eq!(clock.unix_millis(), 9_995);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn step_wall_back(&self, by: Duration) {
        let nanos = saturating_nanos(by);
        let _ = self
            .shared
            .unix_nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |unix| {
                Some(unix.saturating_sub(nanos))
            });
    }

    /// Steps the wall clock forward by `by` without moving the monotonic reading.
    ///
    /// ```
    /// # use keel_core::{Clock, Instant, ManualClock};
    /// # use std::time::Duration;
    /// let clock = ManualClock::at_unix_millis(10_000);
    /// clock.step_wall_forward(Duration::from_secs(3600));
    /// assert_eq!(clock.unix_millis(), 3_610_000);
    /// assert_eq!(clock.now(), Instant::ZERO);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn step_wall_forward(&self, by: Duration) {
        add_saturating(&self.shared.unix_nanos, saturating_nanos(by));
    }
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_nanos(self.shared.monotonic_nanos.load(Ordering::SeqCst))
    }

    #[inline]
    fn unix_millis(&self) -> u64 {
        self.shared.unix_nanos.load(Ordering::SeqCst) / NANOS_PER_MILLI
    }
}

fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn add_saturating(cell: &AtomicU64, nanos: u64) {
    let _ = cell.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |value| {
        Some(value.saturating_add(nanos))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_time() {
        let a = ManualClock::new();
        let b = a.clone();
        a.advance(Duration::from_secs(2));
        assert_eq!(b.now(), Instant::ZERO + Duration::from_secs(2));
        b.step_wall_back(Duration::from_secs(1));
        assert_eq!(a.unix_millis(), 1_735_689_600_000 + 1_000);
    }

    #[test]
    fn sub_millisecond_advances_accumulate_on_the_wall_clock() {
        let clock = ManualClock::at_unix_millis(0);
        for _ in 0..10 {
            clock.advance(Duration::from_micros(100));
        }
        assert_eq!(clock.unix_millis(), 1);
    }

    #[test]
    fn nothing_overflows() {
        let clock = ManualClock::at_unix_millis(u64::MAX);
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Instant::MAX);
        clock.step_wall_back(Duration::MAX);
        assert_eq!(clock.unix_millis(), 0);
        clock.step_wall_forward(Duration::MAX);
        assert_eq!(clock.unix_millis(), u64::MAX / NANOS_PER_MILLI);
    }

    #[test]
    fn wall_steps_leave_monotonic_time_alone() {
        let clock = ManualClock::new();
        clock.advance(Duration::from_millis(3));
        clock.set_unix_millis(5);
        clock.step_wall_forward(Duration::from_millis(10));
        assert_eq!(clock.unix_millis(), 15);
        assert_eq!(clock.now(), Instant::from_nanos(3_000_000));
    }
}
