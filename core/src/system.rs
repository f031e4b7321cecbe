//! `SystemClock` and `StdClock`: the machine's real time.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Clock, Instant};

/// The machine's clocks, read the fast way: the default clock of every keel block.
///
/// - [`now`](Clock::now) reads the CPU's time-stamp counter through [`quanta`], scaled to
///   nanoseconds, at about 9 ns a reading against 22 ns for [`std::time::Instant`] on the
///   project's machine (see the [crate docs](crate#what-a-reading-costs)). quanta uses the TSC
///   only when the CPU reports an invariant one, and falls back to `CLOCK_MONOTONIC` otherwise.
///   The first reading in a process calibrates the counter, which takes a few milliseconds.
/// - [`unix_millis`](Clock::unix_millis) reads [`std::time::SystemTime`] (`CLOCK_REALTIME`),
///   so it follows NTP steps; a time before 1970 reads as 0.
///
/// On a host whose TSC is not to be trusted (some older hypervisors), use [`StdClock`].
/// keel's time arithmetic saturates, so even a reading that stepped back would never panic.
///
/// It is a zero-sized `Copy` type; every `SystemClock` in a process shares one origin, so
/// readings from different values compare.
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

/// The machine's clocks read through the standard library only: [`std::time::Instant`]
/// (`clock_gettime(CLOCK_MONOTONIC)` through the vDSO on Linux) and
/// [`std::time::SystemTime`].
///
/// Slower than [`SystemClock`] (22 ns against 9 ns a reading on the project's machine) and
/// monotonic by the operating system's guarantee rather than the CPU's counter.
///
/// # Example
///
/// ```
/// use keel_core::{Clock, StdClock};
///
/// let a = StdClock.now();
/// assert!(StdClock.now() >= a);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StdClock;

struct QuantaOrigin {
    clock: quanta::Clock,
    /// The raw counter at the origin; readings scale `raw - origin` straight to nanoseconds,
    /// with no `Duration` round trip (which costs a division).
    origin: u64,
}

#[inline]
fn quanta_origin() -> &'static QuantaOrigin {
    static ORIGIN: OnceLock<QuantaOrigin> = OnceLock::new();
    ORIGIN.get_or_init(|| {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        QuantaOrigin { clock, origin }
    })
}

#[inline]
fn std_origin() -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

fn saturating_nanos(duration: std::time::Duration) -> u64 {
    // u64 nanoseconds last 584 years of uptime; saturate rather than wrap past that.
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn system_unix_millis() -> u64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since_epoch) => u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        Err(_) => 0,
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Instant {
        let quanta = quanta_origin();
        let raw = quanta.clock.raw();
        // quanta clamps a counter that stepped back (an unsynchronized TSC) to 0, never a wrap.
        Instant::from_nanos(quanta.clock.delta_as_nanos(quanta.origin, raw))
    }

    #[inline]
    fn unix_millis(&self) -> u64 {
        system_unix_millis()
    }

    /// The time a background thread stored at most about a millisecond ago: one atomic
    /// load. The thread starts at the first reading and stops after a second unread.
    #[inline]
    fn recent(&self) -> Instant {
        Instant::from_nanos(crate::recent::recent_nanos())
    }

    /// The wall clock as the same background thread stored it, at most about a millisecond
    /// ago: one atomic load.
    #[inline]
    fn recent_unix_millis(&self) -> u64 {
        crate::recent::recent_unix_millis()
    }
}

impl Clock for StdClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_nanos(saturating_nanos(
            std::time::Instant::now().saturating_duration_since(std_origin()),
        ))
    }

    #[inline]
    fn unix_millis(&self) -> u64 {
        system_unix_millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn monotonic_across_values() {
        for clock in [&SystemClock as &dyn Clock, &StdClock] {
            let mut last = clock.now();
            for _ in 0..10_000 {
                let next = clock.now();
                assert!(next >= last, "{clock:?} went back: {last:?} then {next:?}");
                last = next;
            }
        }
    }

    #[test]
    fn readings_advance_with_real_time() {
        let (fast, slow) = (SystemClock.now(), StdClock.now());
        // This test is about real time itself, so it sleeps for real.
        std::thread::sleep(Duration::from_millis(50));
        let fast_elapsed = SystemClock.now() - fast;
        let slow_elapsed = StdClock.now() - slow;
        assert!(
            fast_elapsed >= Duration::from_millis(19),
            "{fast_elapsed:?}"
        );
        assert!(
            slow_elapsed >= Duration::from_millis(20),
            "{slow_elapsed:?}"
        );
        // Both clocks measured the same sleep; TSC scaling must agree with the OS clock.
        let difference = fast_elapsed.abs_diff(slow_elapsed);
        assert!(
            difference < Duration::from_millis(10),
            "{fast_elapsed:?} vs {slow_elapsed:?}"
        );
    }

    #[test]
    fn wall_clock_agrees_with_std() {
        let std_millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        for ours in [SystemClock.unix_millis(), StdClock.unix_millis()] {
            assert!(ours.abs_diff(std_millis) < 1_000, "{ours} vs {std_millis}");
        }
    }
}
