//! `RetryBudget`: retries limited to a share of recent requests, as in Finagle.

use std::fmt;
use std::time::Duration;

use keel_core::sync::Mutex;
use keel_core::{Clock, SystemClock};

use crate::BreakerConfigError;

const BUCKETS: usize = 10;

/// A budget for retries shared by every caller of one dependency: a retry is allowed while
/// the retries of the last `ttl` stay below `percent` of the requests of the last `ttl` plus
/// a reserve of `min_per_second × ttl`.
///
/// This is Finagle's `RetryBudget` (and Envoy's retry budget in spirit): when the dependency
/// fails, callers send at most `1 + percent/100` times their normal load, not
/// `max_attempts` times, so retries cannot turn an outage into a storm. The reserve keeps a
/// low-traffic client able to retry at all.
///
/// ```
/// use keel_breaker::RetryBudget;
/// use std::time::Duration;
///
/// let budget = RetryBudget::builder().percent(20.0).min_per_second(0).build()?;
/// for _ in 0..10 {
///     budget.deposit(); // ten requests...
/// }
/// assert!(budget.try_withdraw()); // ...pay for two retries
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RetryBudget<C = SystemClock> {
    percent: f64,
    reserve: f64,
    bucket_nanos: u64,
    ring: Mutex<Ring>,
    clock: C,
}

#[derive(Debug, Default)]
struct Ring {
    /// (requests, retries) per bucket.
    buckets: [(u64, u64); BUCKETS],
    newest: u64,
    requests: u64,
    retries: u64,
}

impl Ring {
    fn advance(&mut self, index: u64) {
        if index <= self.newest {
            return;
        }
        let steps = (index - self.newest).min(BUCKETS as u64);
        for step in 1..=steps {
            let position = ((index - steps + step) % BUCKETS as u64) as usize;
            let (requests, retries) = std::mem::take(&mut self.buckets[position]);
            self.requests -= requests;
            self.retries -= retries;
        }
        self.newest = index;
    }
}

impl RetryBudget<SystemClock> {
    /// A builder: 20% of requests, 10 retries per second in reserve, over 10 s.
    ///
    /// ```
    /// use keel_breaker::RetryBudget;
    ///
    /// let budget = RetryBudget::builder().build()?;
    /// assert_eq!(budget.balance(), 100); // the reserve: 10 per second over 10 s
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> RetryBudgetBuilder<SystemClock> {
        RetryBudgetBuilder {
            percent: 20.0,
            min_per_second: 10,
            ttl: Duration::from_secs(10),
            clock: SystemClock,
        }
    }
}

impl<C: Clock> RetryBudget<C> {
    fn with_ring<R>(&self, f: impl FnOnce(&mut Ring) -> R) -> R {
        let index = self.clock.now().as_nanos() / self.bucket_nanos;
        // Nothing panics under the lock, so a poisoned lock still guards good data.
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.advance(index);
        f(&mut ring)
    }

    /// Counts one request (a first attempt), which earns `percent / 100` of a retry.
    ///
    /// ```
    /// use keel_breaker::RetryBudget;
    ///
    /// let budget = RetryBudget::builder().percent(50.0).min_per_second(0).build()?;
    /// assert_eq!(budget.balance(), 0);
    /// budget.deposit();
    /// budget.deposit();
    /// assert_eq!(budget.balance(), 1); // two requests earn one retry at 50%
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deposit(&self) {
        self.with_ring(|ring| {
            let position = (ring.newest % BUCKETS as u64) as usize;
            ring.buckets[position].0 += 1;
            ring.requests += 1;
        });
    }

    /// Takes one retry from the budget; `false` means the budget is spent and the caller
    /// should give up instead of retrying.
    ///
    /// ```
    /// use keel_breaker::RetryBudget;
    ///
    /// let budget = RetryBudget::builder().percent(0.0).min_per_second(1).build()?;
    /// // 1 per second over the default 10 s: a reserve of 10 retries.
    /// let allowed = (0..20).filter(|_| budget.try_withdraw()).count();
    /// assert_eq!(allowed, 10);
    /// assert_eq!(budget.balance(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_withdraw(&self) -> bool {
        self.with_ring(|ring| {
            let allowed = self.reserve + ring.requests as f64 * self.percent / 100.0;
            if (ring.retries + 1) as f64 > allowed + 1e-9 {
                return false;
            }
            let position = (ring.newest % BUCKETS as u64) as usize;
            ring.buckets[position].1 += 1;
            ring.retries += 1;
            true
        })
    }

    /// How many retries the budget allows right now.
    ///
    /// ```
    /// use keel_breaker::RetryBudget;
    ///
    /// let budget = RetryBudget::builder().percent(10.0).min_per_second(0).build()?;
    /// for _ in 0..30 {
    ///     budget.deposit();
    /// }
    /// assert_eq!(budget.balance(), 3);
    /// assert!(budget.try_withdraw());
    /// assert_eq!(budget.balance(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn balance(&self) -> u64 {
        self.with_ring(|ring| {
            let allowed = self.reserve + ring.requests as f64 * self.percent / 100.0 + 1e-9;
            (allowed.floor() as u64).saturating_sub(ring.retries)
        })
    }
}

impl<C: fmt::Debug> fmt::Debug for RetryBudget<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("percent", &self.percent)
            .field("reserve", &self.reserve)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RetryBudget`]; start from [`RetryBudget::builder`].
///
/// ```
/// use keel_breaker::RetryBudget;
/// use keel_core::ManualClock;
/// use std::time::Duration;
///
/// let budget = RetryBudget::builder()
///     .percent(20.0)
///     .min_per_second(1)
///     .ttl(Duration::from_secs(5))
///     .clock(ManualClock::new())
///     .build()?;
/// assert_eq!(budget.balance(), 5); // 1 per second over 5 s, before any request
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct RetryBudgetBuilder<C = SystemClock> {
    percent: f64,
    min_per_second: u32,
    ttl: Duration,
    clock: C,
}

impl<C: Clock> RetryBudgetBuilder<C> {
    /// Retries allowed as a percentage of requests, in `[0, 100]`.
    ///
    /// ```
    /// use keel_breaker::RetryBudget;
    ///
    /// let budget = RetryBudget::builder().percent(25.0).min_per_second(0).build()?;
    /// for _ in 0..8 {
    ///     budget.deposit();
    /// }
    /// assert_eq!(budget.balance(), 2); // 25% of 8 requests
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn percent(mut self, percent: f64) -> Self {
        self.percent = percent;
        self
    }

    /// Retries allowed per second whatever the request count, so a quiet client can retry.
    ///
    /// ```
    /// use keel_breaker::RetryBudget;
    /// use std::time::Duration;
    ///
    /// let quiet = RetryBudget::builder()
    ///     .min_per_second(2)
    ///     .ttl(Duration::from_secs(3))
    ///     .build()?;
    /// assert_eq!(quiet.balance(), 6); // no requests yet, still 2 × 3 s of retries
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn min_per_second(mut self, retries: u32) -> Self {
        self.min_per_second = retries;
        self
    }

    /// How far back requests and retries are remembered (counted in 10 buckets).
    ///
    /// ```
    /// use keel_breaker::RetryBudget;
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let budget = RetryBudget::builder()
    ///     .percent(100.0)
    ///     .min_per_second(0)
    ///     .ttl(Duration::from_secs(1))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// budget.deposit();
    /// assert_eq!(budget.balance(), 1);
    /// clock.advance(Duration::from_secs(1)); // the request is forgotten after the ttl
    /// assert_eq!(budget.balance(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Reads time from `clock`.
    ///
    /// ```
    /// use keel_breaker::RetryBudget;
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let budget = RetryBudget::builder()
    ///     .percent(0.0)
    ///     .min_per_second(1)
    ///     .ttl(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// while budget.try_withdraw() {}
    /// assert_eq!(budget.balance(), 0);
    /// clock.advance(Duration::from_secs(10)); // the spent retries age out
    /// assert_eq!(budget.balance(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> RetryBudgetBuilder<C2> {
        RetryBudgetBuilder {
            percent: self.percent,
            min_per_second: self.min_per_second,
            ttl: self.ttl,
            clock,
        }
    }

    /// Validates and builds the budget.
    ///
    /// # Errors
    ///
    /// [`BreakerConfigError`] for a percentage outside `[0, 100]` or a ttl under 10 ns.
    ///
    /// ```
    /// use keel_breaker::{BreakerConfigError, RetryBudget};
    ///
    /// assert!(RetryBudget::builder().percent(0.0).build().is_ok()); // the reserve alone
    /// let error = RetryBudget::builder().percent(120.0).build().unwrap_err();
    /// assert_eq!(error, BreakerConfigError::BudgetPercent { value: 120.0 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<RetryBudget<C>, BreakerConfigError> {
        // Zero is allowed: a budget of the reserve alone. `!(..)` also rejects NaN.
        if !(self.percent >= 0.0 && self.percent <= 100.0) {
            return Err(BreakerConfigError::BudgetPercent {
                value: self.percent,
            });
        }
        if self.ttl.as_nanos() < BUCKETS as u128 {
            return Err(BreakerConfigError::Zero {
                setting: "retry budget ttl",
            });
        }
        let bucket_nanos = u64::try_from(self.ttl.as_nanos() / BUCKETS as u128).unwrap_or(u64::MAX);
        Ok(RetryBudget {
            percent: self.percent,
            reserve: f64::from(self.min_per_second) * self.ttl.as_secs_f64(),
            bucket_nanos,
            ring: Mutex::new(Ring::default()),
            clock: self.clock,
        })
    }
}

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;
    use keel_core::ManualClock;

    #[test]
    fn reserve_refills_as_the_window_moves() {
        let clock = ManualClock::new();
        let budget = RetryBudget::builder()
            .percent(0.0)
            .min_per_second(1)
            .ttl(Duration::from_secs(2))
            .clock(clock.clone())
            .build()
            .unwrap();
        assert_eq!(budget.balance(), 2);
        assert!(budget.try_withdraw() && budget.try_withdraw());
        assert!(!budget.try_withdraw());
        clock.advance(Duration::from_secs(2));
        assert!(budget.try_withdraw(), "the old retries left the window");
    }

    #[test]
    fn deposits_expire_too() {
        let clock = ManualClock::new();
        let budget = RetryBudget::builder()
            .percent(50.0)
            .min_per_second(0)
            .ttl(Duration::from_secs(10))
            .clock(clock.clone())
            .build()
            .unwrap();
        for _ in 0..4 {
            budget.deposit();
        }
        assert_eq!(budget.balance(), 2);
        clock.advance(Duration::from_secs(10));
        assert_eq!(budget.balance(), 0);
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn budget_over_100_percent_is_rejected() {
        let error = RetryBudget::builder().percent(120.0).build().unwrap_err();
        assert_eq!(
            error.to_string(),
            "retry budget percent must be in [0, 100], got 120"
        );
        assert!(RetryBudget::builder().percent(-1.0).build().is_err());
        assert!(RetryBudget::builder().ttl(Duration::ZERO).build().is_err());
    }
}
