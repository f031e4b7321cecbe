//! A monotonic reading, as whole nanoseconds since a clock's origin.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A reading of a [`Clock`](crate::Clock)'s monotonic time: nanoseconds since the clock's
/// own origin.
///
/// It is a plain `u64`, so lock-free state (a GCRA cell, a breaker's state word) can store it
/// in one atomic. Readings are only comparable with readings from the same clock. A `u64` of
/// nanoseconds lasts 584 years from the origin.
///
/// Arithmetic saturates instead of panicking: `earlier - later` is [`Duration::ZERO`] and
/// adding a huge duration stops at [`Instant::MAX`].
///
/// # Example
///
/// ```
/// use keel_core::Instant;
/// use std::time::Duration;
///
/// let start = Instant::from_nanos(1_000);
/// let later = start + Duration::from_micros(2);
/// assert_eq!(later.as_nanos(), 3_000);
/// assert_eq!(later - start, Duration::from_micros(2));
/// assert_eq!(start - later, Duration::ZERO); // saturates, never panics
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The clock's origin.
    ///
    /// ```
    /// use keel_core::{Clock, Instant, ManualClock};
    /// use std::time::Duration;
    ///
    /// assert_eq!(Instant::ZERO.as_nanos(), 0);
    /// assert_eq!(Instant::ZERO, Instant::default());
    /// assert_eq!(ManualClock::new().now(), Instant::ZERO); // where a manual clock starts
    /// assert_eq!(Instant::ZERO - Duration::from_secs(1), Instant::ZERO); // saturates
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const ZERO: Instant = Instant(0);
    /// The latest representable reading.
    ///
    /// ```
    /// use keel_core::Instant;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Instant::MAX.as_nanos(), u64::MAX);
    /// // About 584 years of nanoseconds.
    /// assert_eq!(Instant::MAX.as_duration().as_secs() / (365 * 24 * 3600), 584);
    /// assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX); // saturates
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const MAX: Instant = Instant(u64::MAX);

    /// Builds a reading from nanoseconds since the origin.
    ///
    /// ```
    /// # use keel_core::Instant;
    /// assert_eq!(Instant::from_nanos(5).as_nanos(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    ///
    /// ```
    /// # use keel_core::Instant;
    /// assert_eq!(Instant::ZERO.as_nanos(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since the origin as a [`Duration`].
    ///
    /// ```
    /// # use keel_core::Instant;
    /// # use std::time::Duration;
    /// assert_eq!(Instant::from_nanos(1_500).as_duration(), Duration::from_nanos(1_500));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub const fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    ///
    /// ```
    /// # use keel_core::Instant;
    /// # use std::time::Duration;
    /// let a = Instant::from_nanos(10);
    /// let b = Instant::from_nanos(25);
    /// assert_eq!(b.saturating_duration_since(a), Duration::from_nanos(15));
    /// assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// The time from `earlier` to `self`, or `None` if `earlier` is later.
    ///
    /// ```
    /// # use keel_core::Instant;
    /// let a = Instant::from_nanos(10);
    /// assert!(a.checked_duration_since(Instant::from_nanos(11)).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub const fn checked_duration_since(self, earlier: Instant) -> Option<Duration> {
        match self.0.checked_sub(earlier.0) {
            Some(nanos) => Some(Duration::from_nanos(nanos)),
            None => None,
        }
    }

    /// `self + duration`, or `None` past [`Instant::MAX`].
    ///
    /// ```
    /// # use keel_core::Instant;
    /// # use std::time::Duration;
    /// assert!(Instant::MAX.checked_add(Duration::from_nanos(1)).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn checked_add(self, duration: Duration) -> Option<Instant> {
        let nanos = u64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_add(nanos).map(Instant)
    }

    /// `self + duration`, stopping at [`Instant::MAX`].
    ///
    /// ```
    /// # use keel_core::Instant;
    /// # use std::time::Duration;
    /// assert_eq!(Instant::MAX.saturating_add(Duration::from_secs(1)), Instant::MAX);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn saturating_add(self, duration: Duration) -> Instant {
        self.checked_add(duration).unwrap_or(Instant::MAX)
    }

    /// `self - duration`, stopping at [`Instant::ZERO`].
    ///
    /// ```
    /// # use keel_core::Instant;
    /// # use std::time::Duration;
    /// assert_eq!(Instant::from_nanos(5).saturating_sub(Duration::from_secs(1)), Instant::ZERO);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn saturating_sub(self, duration: Duration) -> Instant {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(nanos))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating: see [`Instant::saturating_add`].
    #[inline]
    fn add(self, duration: Duration) -> Instant {
        self.saturating_add(duration)
    }
}

impl AddAssign<Duration> for Instant {
    #[inline]
    fn add_assign(&mut self, duration: Duration) {
        *self = self.saturating_add(duration);
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    /// Saturating: see [`Instant::saturating_sub`].
    #[inline]
    fn sub(self, duration: Duration) -> Instant {
        self.saturating_sub(duration)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: see [`Instant::saturating_duration_since`].
    #[inline]
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({:?})", self.as_duration())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let a = Instant::from_nanos(100);
        assert_eq!(a + Duration::from_nanos(1), Instant::from_nanos(101));
        assert_eq!(a - Duration::from_nanos(101), Instant::ZERO);
        assert_eq!(Instant::MAX + Duration::MAX, Instant::MAX);
        assert_eq!(a.checked_add(Duration::MAX), None);
        assert_eq!(Instant::ZERO - a, Duration::ZERO);
        let mut b = a;
        b += Duration::from_nanos(5);
        assert_eq!(b.as_nanos(), 105);
    }

    #[test]
    fn debug_shows_duration() {
        assert_eq!(
            format!("{:?}", Instant::from_nanos(1_500_000)),
            "Instant(1.5ms)"
        );
    }
}
