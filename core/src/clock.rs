//! The `Clock` trait: where every keel block reads time.

use std::fmt;
use std::sync::Arc;

use crate::Instant;

/// A source of time: a monotonic reading for intervals and a wall-clock reading for IDs.
///
/// Every keel block reads time through this trait and never calls
/// [`std::time::Instant::now`] or [`std::time::SystemTime::now`] itself, so tests drive time
/// with [`ManualClock`](crate::ManualClock) instead of sleeping.
///
/// - [`now`](Clock::now) is monotonic: it never goes backwards. Windows, TTLs, leases and
///   timeouts are measured with it.
/// - [`unix_millis`](Clock::unix_millis) is the wall clock in milliseconds since the Unix
///   epoch. It can jump either way (an NTP step); ID generators read it for timestamps and
///   must cope with it going backwards.
///
/// The trait is object safe, and is implemented for `&C`, `Box<C>` and `Arc<C>`, so a block
/// can hold `Arc<dyn Clock>` or be generic over `C: Clock`.
///
/// # Example
///
/// A function generic over its clock, tested with a manual one:
///
/// ```
/// use keel_core::{Clock, ManualClock, SystemClock};
/// use std::time::Duration;
///
/// fn has_expired(clock: &impl Clock, deadline: keel_core::Instant) -> bool {
///     clock.now() >= deadline
/// }
///
/// let clock = ManualClock::new();
/// let deadline = clock.now() + Duration::from_secs(30);
/// assert!(!has_expired(&clock, deadline));
/// clock.advance(Duration::from_secs(30));
/// assert!(has_expired(&clock, deadline));
///
/// // The same function runs on real time.
/// assert!(!has_expired(&SystemClock, SystemClock.now() + Duration::from_secs(30)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current monotonic reading. Never less than an earlier reading of the same clock.
    ///
    /// ```
    /// use keel_core::{Clock, Instant, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let start = clock.now();
    /// clock.advance(Duration::from_millis(40));
    /// assert_eq!(clock.now() - start, Duration::from_millis(40));
    /// clock.step_wall_back(Duration::from_secs(5)); // a wall-clock step does not move it
    /// assert_eq!(clock.now(), Instant::ZERO + Duration::from_millis(40));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn now(&self) -> Instant;

    /// The current wall-clock time in milliseconds since the Unix epoch (1970-01-01 UTC).
    ///
    /// Unlike [`now`](Clock::now), this can go backwards.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::at_unix_millis(1_700_000_000_000);
    /// clock.advance(Duration::from_millis(5));
    /// assert_eq!(clock.unix_millis(), 1_700_000_000_005);
    /// clock.step_wall_back(Duration::from_secs(1)); // an NTP step back
    /// assert_eq!(clock.unix_millis(), 1_699_999_999_005);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn unix_millis(&self) -> u64;

    /// A reading of [`now`](Clock::now) that may trail it a little, for hot paths that only
    /// place an event in a coarse bucket (a circuit breaker's time window of 1 s buckets).
    ///
    /// Never ahead of `now`, and on one thread never less than an earlier `recent`. The
    /// default is `now()` itself, so [`ManualClock`](crate::ManualClock) and tokio's paused
    /// clock stay exact. [`SystemClock`](crate::SystemClock) returns what a background thread
    /// stored at most about a millisecond ago (more when the machine is too loaded to run
    /// that thread): one atomic load rather than a counter read. A child process forked
    /// after that thread started has no ticker, so its readings stay frozen; POSIX allows
    /// such a child only async-signal-safe calls until it `exec`s, so keep `fork` before the
    /// first reading or follow it with `exec`.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock, SystemClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_millis(3));
    /// assert_eq!(clock.recent(), clock.now()); // exact on a manual clock
    ///
    /// let recent = SystemClock.recent();
    /// assert!(recent <= SystemClock.now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    fn recent(&self) -> Instant {
        self.now()
    }

    /// A reading of [`unix_millis`](Clock::unix_millis) that may trail it a little, for hot
    /// paths that need the wall clock only to the millisecond (keel-idgen's per-thread ULID
    /// and UUIDv7 generators).
    ///
    /// Never ahead of `unix_millis` by more than a wall-clock step back since the reading.
    /// The default is `unix_millis()` itself, so [`ManualClock`](crate::ManualClock) stays
    /// exact. [`SystemClock`](crate::SystemClock) returns what the same background thread as
    /// [`recent`](Clock::recent) stored, at most about a millisecond ago.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock, SystemClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::at_unix_millis(1_700_000_000_000);
    /// clock.advance(Duration::from_millis(3));
    /// assert_eq!(clock.recent_unix_millis(), 1_700_000_000_003); // exact on a manual clock
    ///
    /// let recent = SystemClock.recent_unix_millis();
    /// assert!(recent <= SystemClock.unix_millis());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    fn recent_unix_millis(&self) -> u64 {
        self.unix_millis()
    }
}

// A reference or smart pointer to a clock is a clock: each method forwards to the pointee.
macro_rules! forward_clock {
    ($($pointer:ty),*) => {$(
        impl<C: Clock + ?Sized> Clock for $pointer {
            #[inline]
            fn now(&self) -> Instant {
                (**self).now()
            }
            #[inline]
            fn unix_millis(&self) -> u64 {
                (**self).unix_millis()
            }
            #[inline]
            fn recent(&self) -> Instant {
                (**self).recent()
            }
            #[inline]
            fn recent_unix_millis(&self) -> u64 {
                (**self).recent_unix_millis()
            }
        }
    )*};
}

forward_clock!(&C, Box<C>, Arc<C>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use std::time::Duration;

    #[test]
    fn pointers_forward_to_the_clock() {
        let manual = ManualClock::new();
        let shared: Arc<dyn Clock> = Arc::new(manual.clone());
        let boxed: Box<dyn Clock> = Box::new(manual.clone());
        manual.advance(Duration::from_millis(7));
        assert_eq!(shared.now(), manual.now());
        assert_eq!(boxed.now(), manual.now());
        let by_ref: &dyn Clock = &manual;
        assert_eq!(by_ref.unix_millis(), manual.unix_millis());
        assert_eq!(shared.unix_millis(), manual.unix_millis());
    }
}
