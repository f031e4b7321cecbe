//! `Quota`: how many requests per period, and how many at once.

use std::fmt;
use std::time::Duration;

/// The longest period: a quarter of `u64` nanoseconds (146 years), leaving room for
/// `now + period` and window arithmetic without overflow.
const MAX_PERIOD_NANOS: u64 = u64::MAX / 4;

/// How many requests a limiter admits per period, and the burst it allows at once.
///
/// A quota of `limit` per `period` spaces requests one *emission interval*
/// (`period / limit`, rounded up to whole nanoseconds so the rate never exceeds the quota)
/// apart on average. The burst is how many a fresh limiter admits at once; it defaults to
/// `limit` and only the GCRA and leaky bucket limiters use it (the window limiters admit
/// `limit` per window). See the [crate docs](crate#the-algorithms-and-their-bounds) for what
/// each algorithm admits in any window of `period`.
///
/// Every constructor validates its input and returns a [`QuotaError`] that says what is wrong.
///
/// # Example
///
/// ```
/// use keel_rate_limit::Quota;
/// use std::time::Duration;
///
/// let quota = Quota::per_second(100)?.with_burst(10)?;
/// assert_eq!(quota.limit(), 100);
/// assert_eq!(quota.burst(), 10);
/// assert_eq!(quota.emission_interval(), Duration::from_millis(10));
///
/// assert!(Quota::per_second(0).is_err());
/// assert!(Quota::with_period(5, Duration::ZERO).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: u32,
    burst: u32,
    period_nanos: u64,
    emission_nanos: u64,
}

impl Quota {
    /// `limit` requests per second, with a burst of `limit`.
    ///
    /// ```
    /// use keel_rate_limit::{Quota, QuotaError};
    /// use std::time::Duration;
    ///
    /// let quota = Quota::per_second(4)?;
    /// assert_eq!((quota.limit(), quota.burst()), (4, 4));
    /// assert_eq!(quota.period(), Duration::from_secs(1));
    /// assert_eq!(Quota::per_second(0), Err(QuotaError::ZeroLimit));
    /// assert!(matches!(Quota::per_second(2_000_000_000), Err(QuotaError::TooFine { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`QuotaError::ZeroLimit`] if `limit` is 0; [`QuotaError::TooFine`] if the rate is above
    /// one request per nanosecond.
    pub fn per_second(limit: u32) -> Result<Quota, QuotaError> {
        Quota::with_period(limit, Duration::from_secs(1))
    }

    /// `limit` requests per minute, with a burst of `limit`.
    ///
    /// ```
    /// use keel_rate_limit::{Quota, QuotaError};
    /// use std::time::Duration;
    ///
    /// let quota = Quota::per_minute(30)?;
    /// assert_eq!(quota.period(), Duration::from_secs(60));
    /// assert_eq!(quota.emission_interval(), Duration::from_secs(2));
    /// assert_eq!(Quota::per_minute(0), Err(QuotaError::ZeroLimit));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`QuotaError::ZeroLimit`] if `limit` is 0.
    pub fn per_minute(limit: u32) -> Result<Quota, QuotaError> {
        Quota::with_period(limit, Duration::from_secs(60))
    }

    /// `limit` requests per hour, with a burst of `limit`.
    ///
    /// ```
    /// use keel_rate_limit::{Quota, QuotaError};
    /// use std::time::Duration;
    ///
    /// let quota = Quota::per_hour(1_000)?;
    /// assert_eq!(quota.period(), Duration::from_secs(3600));
    /// assert_eq!(quota.emission_interval(), Duration::from_millis(3600));
    /// assert_eq!(Quota::per_hour(0), Err(QuotaError::ZeroLimit));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`QuotaError::ZeroLimit`] if `limit` is 0.
    pub fn per_hour(limit: u32) -> Result<Quota, QuotaError> {
        Quota::with_period(limit, Duration::from_secs(3600))
    }

    /// `limit` requests per `period`, with a burst of `limit`.
    ///
    /// ```
    /// # use keel_rate_limit::Quota;
    /// # use std::time::Duration;
    /// let quota = Quota::with_period(3, Duration::from_millis(300))?;
    /// assert_eq!(quota.emission_interval(), Duration::from_millis(100));
    /// assert_eq!(
    ///     Quota::with_period(0, Duration::from_secs(1)).unwrap_err().to_string(),
    ///     "rate limit must be > 0 requests per period"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`QuotaError::ZeroLimit`] if `limit` is 0;
    /// - [`QuotaError::ZeroPeriod`] if `period` is zero;
    /// - [`QuotaError::PeriodTooLong`] if `period` is over 146 years (a quarter of `u64`
    ///   nanoseconds, so time arithmetic cannot overflow);
    /// - [`QuotaError::TooFine`] if `period / limit` is under one nanosecond.
    pub fn with_period(limit: u32, period: Duration) -> Result<Quota, QuotaError> {
        if limit == 0 {
            return Err(QuotaError::ZeroLimit);
        }
        if period.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        let period_nanos = u64::try_from(period.as_nanos())
            .ok()
            .filter(|&nanos| nanos <= MAX_PERIOD_NANOS)
            .ok_or(QuotaError::PeriodTooLong { period })?;
        if period_nanos < u64::from(limit) {
            return Err(QuotaError::TooFine { limit, period });
        }
        let emission_nanos = period_nanos.div_ceil(u64::from(limit));
        Quota {
            limit,
            burst: limit,
            period_nanos,
            emission_nanos,
        }
        .checked()
    }

    /// The same quota with another burst: how many requests a fresh GCRA or leaky bucket
    /// limiter admits at once.
    ///
    /// ```
    /// # use keel_rate_limit::Quota;
    /// let quota = Quota::per_minute(60)?.with_burst(5)?;
    /// assert_eq!(quota.burst(), 5);
    /// assert!(Quota::per_minute(60)?.with_burst(0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`QuotaError::ZeroBurst`] if `burst` is 0; [`QuotaError::Overflow`] if
    /// `burst × emission interval` does not fit in `u64` nanoseconds.
    pub fn with_burst(self, burst: u32) -> Result<Quota, QuotaError> {
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        Quota { burst, ..self }.checked()
    }

    fn checked(self) -> Result<Quota, QuotaError> {
        let max = u64::from(self.burst.max(self.limit)).checked_mul(self.emission_nanos);
        // Leave room for `now + tolerance` and window arithmetic without overflow.
        match max {
            Some(nanos) if nanos <= u64::MAX / 4 && self.period_nanos <= u64::MAX / 4 => Ok(self),
            _ => Err(QuotaError::Overflow {
                burst: self.burst,
                emission_interval: Duration::from_nanos(self.emission_nanos),
            }),
        }
    }

    /// Requests admitted per period.
    ///
    /// ```
    /// # use keel_rate_limit::Quota;
    /// // Changing the burst leaves the rate alone.
    /// assert_eq!(Quota::per_minute(120)?.with_burst(10)?.limit(), 120);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Requests a fresh GCRA or leaky bucket limiter admits at once.
    ///
    /// ```
    /// # use keel_rate_limit::Quota;
    /// assert_eq!(Quota::per_second(50)?.burst(), 50); // defaults to the limit
    /// assert_eq!(Quota::per_second(50)?.with_burst(5)?.burst(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The period (window length) of the quota.
    ///
    /// ```
    /// # use keel_rate_limit::Quota;
    /// # use std::time::Duration;
    /// let quota = Quota::with_period(5, Duration::from_millis(250))?;
    /// assert_eq!(quota.period(), Duration::from_millis(250));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_nanos)
    }

    /// `period / limit`, rounded up to whole nanoseconds: the steady spacing of requests.
    ///
    /// ```
    /// # use keel_rate_limit::Quota;
    /// # use std::time::Duration;
    /// assert_eq!(Quota::per_second(4)?.emission_interval(), Duration::from_millis(250));
    /// // 1 s / 3 is 333 333 333.3 ns: rounded up, so three never take less than a second.
    /// assert_eq!(Quota::per_second(3)?.emission_interval(), Duration::from_nanos(333_333_334));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.emission_nanos)
    }

    /// The quota as three words, for [`QuotaCell`](crate::quota_cell::QuotaCell).
    pub(crate) fn to_words(self) -> [u64; 3] {
        [
            u64::from(self.limit) | u64::from(self.burst) << 32,
            self.period_nanos,
            self.emission_nanos,
        ]
    }

    /// The inverse of [`to_words`](Quota::to_words), for words it produced.
    pub(crate) fn from_words([limits, period_nanos, emission_nanos]: [u64; 3]) -> Quota {
        Quota {
            limit: limits as u32,
            burst: (limits >> 32) as u32,
            period_nanos,
            emission_nanos,
        }
    }

    pub(crate) fn period_nanos(&self) -> u64 {
        self.period_nanos
    }

    pub(crate) fn emission_nanos(&self) -> u64 {
        self.emission_nanos
    }

    /// GCRA's tolerance: the time a full burst occupies.
    pub(crate) fn tolerance_nanos(&self) -> u64 {
        u64::from(self.burst) * self.emission_nanos
    }
}

/// What is wrong with a [`Quota`].
///
/// Each variant carries what was asked for, and its message says what is wrong.
///
/// ```
/// use keel_rate_limit::{Quota, QuotaError};
/// use std::time::Duration;
///
/// let err = Quota::with_period(10, Duration::from_nanos(5)).unwrap_err();
/// assert_eq!(err, QuotaError::TooFine { limit: 10, period: Duration::from_nanos(5) });
/// assert_eq!(err.to_string(), "10 requests per 5ns is more than one per nanosecond");
/// assert_eq!(Quota::per_minute(1)?.with_burst(0), Err(QuotaError::ZeroBurst));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// The limit was 0: a limiter that admits nothing is not a rate limiter.
    ZeroLimit,
    /// The period was zero.
    ZeroPeriod,
    /// The burst was 0.
    ZeroBurst,
    /// The period is over 146 years, too long for the limiters' time arithmetic.
    PeriodTooLong {
        /// The period asked for.
        period: Duration,
    },
    /// More than one request per nanosecond.
    TooFine {
        /// The limit asked for.
        limit: u32,
        /// The period asked for.
        period: Duration,
    },
    /// `burst × emission interval` overflows.
    Overflow {
        /// The burst asked for.
        burst: u32,
        /// The quota's emission interval.
        emission_interval: Duration,
    },
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaError::ZeroLimit => f.write_str("rate limit must be > 0 requests per period"),
            QuotaError::ZeroPeriod => f.write_str("period must be > 0"),
            QuotaError::ZeroBurst => f.write_str("burst must be > 0"),
            QuotaError::PeriodTooLong { period } => {
                write!(f, "period {period:?} is too long (at most 146 years)")
            }
            QuotaError::TooFine { limit, period } => write!(
                f,
                "{limit} requests per {period:?} is more than one per nanosecond"
            ),
            QuotaError::Overflow {
                burst,
                emission_interval,
            } => write!(
                f,
                "burst {burst} × emission interval {emission_interval:?} overflows the time range"
            ),
        }
    }
}

impl std::error::Error for QuotaError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emission_interval_rounds_up() {
        let quota = Quota::with_period(3, Duration::from_nanos(10)).unwrap();
        assert_eq!(quota.emission_nanos(), 4);
        assert_eq!(quota.tolerance_nanos(), 12);
    }

    #[test]
    fn a_period_beyond_the_time_arithmetic_is_too_long() -> Result<(), QuotaError> {
        // 150 years fits in u64 nanoseconds but not in the quarter of it the limiters use.
        let period = Duration::from_secs(150 * 365 * 86_400);
        assert_eq!(
            Quota::with_period(1, period),
            Err(QuotaError::PeriodTooLong { period })
        );
        assert_eq!(
            QuotaError::PeriodTooLong { period }.to_string(),
            format!("period {period:?} is too long (at most 146 years)")
        );
        let longest = Duration::from_nanos(MAX_PERIOD_NANOS);
        assert_eq!(Quota::with_period(1, longest)?.period(), longest);
        Ok(())
    }

    #[test]
    fn bad_quotas_say_what_is_wrong() {
        assert_eq!(Quota::per_hour(0), Err(QuotaError::ZeroLimit));
        assert_eq!(
            Quota::with_period(1, Duration::ZERO),
            Err(QuotaError::ZeroPeriod)
        );
        assert_eq!(
            Quota::per_second(1).unwrap().with_burst(0),
            Err(QuotaError::ZeroBurst)
        );
        assert!(matches!(
            Quota::with_period(1, Duration::MAX),
            Err(QuotaError::PeriodTooLong { .. })
        ));
        assert!(matches!(
            Quota::with_period(10, Duration::from_nanos(5)),
            Err(QuotaError::TooFine { .. })
        ));
        let err = Quota::per_hour(1)
            .unwrap()
            .with_burst(u32::MAX)
            .unwrap_err();
        assert!(matches!(err, QuotaError::Overflow { .. }));
        assert!(err.to_string().contains("overflows"), "{err}");
        assert_eq!(QuotaError::ZeroBurst.to_string(), "burst must be > 0");
    }
}
