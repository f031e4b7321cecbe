//! `Backoff`: how long to wait before each retry.

use std::time::Duration;

use rand::Rng;

/// How an exponential backoff randomizes its waits, so that clients that failed together do
/// not retry together.
///
/// With `d = min(max, base × multiplier^n)` for the n-th retry (0-based):
///
/// ```
/// use keel_breaker::{Backoff, BackoffJitter};
/// use rand::SeedableRng;
/// use std::time::Duration;
///
/// let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
/// let ms = Duration::from_millis;
/// let backoff = Backoff::exponential(ms(100)); // retry 2: d = 400 ms
/// assert_eq!(backoff.jitter(BackoffJitter::None).delay(2, ms(0), &mut rng), ms(400));
/// assert!(backoff.jitter(BackoffJitter::Full).delay(2, ms(0), &mut rng) <= ms(400));
/// let equal = backoff.jitter(BackoffJitter::Equal).delay(2, ms(0), &mut rng);
/// assert!(equal >= ms(200) && equal <= ms(400));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackoffJitter {
    /// Wait exactly `d`. Clients that failed together stay in lockstep.
    None,
    /// Wait uniformly in `[0, d]` ("full jitter"): the least total work in AWS's study.
    Full,
    /// Wait `d/2` plus uniformly in `[0, d/2]` ("equal jitter"): never much shorter than `d`.
    Equal,
    /// Wait uniformly in `[base, 3 × previous wait]` (the previous wait counting as `base`
    /// at first), capped at `max` ("decorrelated jitter"): each wait grows from the last one
    /// instead of the attempt number.
    Decorrelated,
}

/// The wait before each retry: constant, or exponential with a [`BackoffJitter`].
///
/// ```
/// use keel_breaker::{Backoff, BackoffJitter};
/// use rand::SeedableRng;
/// use std::time::Duration;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100))
///     .multiplier(2.0)
///     .max(Duration::from_secs(5))
///     .jitter(BackoffJitter::None);
/// let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
/// let waits: Vec<_> = (0..4).map(|n| backoff.delay(n, Duration::ZERO, &mut rng)).collect();
/// assert_eq!(waits, [100, 200, 400, 800].map(Duration::from_millis));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Backoff {
    pub(crate) base: Duration,
    pub(crate) multiplier: f64,
    pub(crate) max: Duration,
    pub(crate) jitter: BackoffJitter,
}

impl Backoff {
    /// The same wait before every retry.
    ///
    /// ```
    /// use keel_breaker::Backoff;
    /// use rand::SeedableRng;
    /// use std::time::Duration;
    ///
    /// let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    /// let backoff = Backoff::constant(Duration::from_millis(250));
    /// assert_eq!(backoff.delay(0, Duration::ZERO, &mut rng), Duration::from_millis(250));
    /// assert_eq!(backoff.delay(9, Duration::ZERO, &mut rng), Duration::from_millis(250));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn constant(wait: Duration) -> Backoff {
        Backoff {
            base: wait,
            multiplier: 1.0,
            max: wait,
            jitter: BackoffJitter::None,
        }
    }

    /// Exponential from `base`, doubling, capped at 30 s, with full jitter.
    ///
    /// ```
    /// use keel_breaker::{Backoff, BackoffJitter};
    /// use rand::SeedableRng;
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::exponential(Duration::from_millis(100));
    /// let spelled_out = Backoff::exponential(Duration::from_millis(100))
    ///     .multiplier(2.0)
    ///     .max(Duration::from_secs(30))
    ///     .jitter(BackoffJitter::Full);
    /// assert_eq!(backoff, spelled_out);
    ///
    /// let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    /// // Full jitter: the 4th retry waits somewhere in [0, 800 ms].
    /// assert!(backoff.delay(3, Duration::ZERO, &mut rng) <= Duration::from_millis(800));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exponential(base: Duration) -> Backoff {
        Backoff {
            base,
            multiplier: 2.0,
            max: Duration::from_secs(30).max(base),
            jitter: BackoffJitter::Full,
        }
    }

    /// The growth per retry (at least 1; checked when the [`Retry`](crate::Retry) is built).
    ///
    /// ```
    /// use keel_breaker::{Backoff, BackoffJitter};
    /// use rand::SeedableRng;
    /// use std::time::Duration;
    ///
    /// let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    /// let backoff = Backoff::exponential(Duration::from_millis(100))
    ///     .multiplier(3.0)
    ///     .jitter(BackoffJitter::None);
    /// let waits: Vec<_> = (0..3).map(|n| backoff.delay(n, Duration::ZERO, &mut rng)).collect();
    /// assert_eq!(waits, [100, 300, 900].map(Duration::from_millis));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn multiplier(mut self, multiplier: f64) -> Backoff {
        self.multiplier = multiplier;
        self
    }

    /// The longest wait.
    ///
    /// ```
    /// use keel_breaker::{Backoff, BackoffJitter};
    /// use rand::SeedableRng;
    /// use std::time::Duration;
    ///
    /// let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    /// let backoff = Backoff::exponential(Duration::from_millis(100))
    ///     .max(Duration::from_millis(250))
    ///     .jitter(BackoffJitter::None);
    /// let waits: Vec<_> = (0..4).map(|n| backoff.delay(n, Duration::ZERO, &mut rng)).collect();
    /// assert_eq!(waits, [100, 200, 250, 250].map(Duration::from_millis));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max(mut self, max: Duration) -> Backoff {
        self.max = max;
        self
    }

    /// How waits are randomized.
    ///
    /// ```
    /// use keel_breaker::{Backoff, BackoffJitter};
    /// use rand::SeedableRng;
    /// use std::time::Duration;
    ///
    /// let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    /// let exact = Backoff::exponential(Duration::from_millis(100)).jitter(BackoffJitter::None);
    /// assert_eq!(exact.delay(1, Duration::ZERO, &mut rng), Duration::from_millis(200));
    /// let equal = exact.jitter(BackoffJitter::Equal).delay(1, Duration::ZERO, &mut rng);
    /// assert!(equal >= Duration::from_millis(100) && equal <= Duration::from_millis(200));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn jitter(mut self, jitter: BackoffJitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// The wait before retry number `retry` (0 for the first retry); `previous` is the wait
    /// before the previous retry, used by [`BackoffJitter::Decorrelated`] (pass zero at first).
    ///
    /// ```
    /// use keel_breaker::{Backoff, BackoffJitter};
    /// use rand::SeedableRng;
    /// use std::time::Duration;
    ///
    /// let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    /// let ms = Duration::from_millis;
    /// let backoff = Backoff::exponential(ms(100)).max(ms(10_000)).jitter(BackoffJitter::Decorrelated);
    /// // Decorrelated jitter grows from the previous wait: here within [100 ms, 3 × 200 ms].
    /// let wait = backoff.delay(4, ms(200), &mut rng);
    /// assert!(wait >= ms(100) && wait <= ms(600));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delay(&self, retry: u32, previous: Duration, rng: &mut impl Rng) -> Duration {
        let base = self.base.as_nanos() as f64;
        // `delay` is public, so the backoff may not have been through a `Retry` builder's
        // checks: a max below the base, or a multiplier below 1 or NaN, must not reach the
        // RNG as an empty range (which panics). For a checked backoff these are no-ops.
        let max = (self.max.as_nanos() as f64).max(base);
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        let grown = base * self.multiplier.powi(exponent);
        let capped = if grown.is_nan() {
            max
        } else {
            grown.clamp(base, max)
        };
        let nanos = match self.jitter {
            BackoffJitter::None => capped,
            BackoffJitter::Full => rng.random_range(0.0..=capped),
            BackoffJitter::Equal => capped / 2.0 + rng.random_range(0.0..=capped / 2.0),
            BackoffJitter::Decorrelated => {
                // The first wait draws from [base, 3 × base], as AWS's formula starts there.
                let upper = (previous.as_nanos() as f64).max(base) * 3.0;
                rng.random_range(base..=upper.clamp(base, max))
            }
        };
        Duration::from_nanos(nanos as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn each_jitter_stays_in_its_range() {
        let mut rng = SmallRng::seed_from_u64(1);
        let ms = Duration::from_millis;
        let exponential = Backoff::exponential(ms(10)).max(ms(1_000));
        for retry in 0..12 {
            let cap = ms(10 * (1u64 << retry)).min(ms(1_000));
            let full = exponential
                .jitter(BackoffJitter::Full)
                .delay(retry, ms(0), &mut rng);
            assert!(full <= cap);
            let equal = exponential
                .jitter(BackoffJitter::Equal)
                .delay(retry, ms(0), &mut rng);
            assert!(equal >= cap / 2 && equal <= cap);
            let previous = ms(7 * u64::from(retry) + 1);
            let decorrelated = exponential
                .jitter(BackoffJitter::Decorrelated)
                .delay(retry, previous, &mut rng);
            assert!(decorrelated >= ms(10));
            assert!(decorrelated <= (previous.max(ms(10)) * 3).min(ms(1_000)));
        }
        assert_eq!(Backoff::constant(ms(5)).delay(40, ms(0), &mut rng), ms(5));
        let first: std::collections::BTreeSet<_> = (0..20)
            .map(|_| {
                exponential
                    .jitter(BackoffJitter::Decorrelated)
                    .delay(0, ms(0), &mut rng)
            })
            .collect();
        assert!(first.len() > 1 && first.iter().all(|d| *d >= ms(10) && *d <= ms(30)));
    }

    #[test]
    fn unchecked_backoffs_do_not_panic() {
        let mut rng = SmallRng::seed_from_u64(3);
        let ms = Duration::from_millis;
        let jitters = [
            BackoffJitter::None,
            BackoffJitter::Full,
            BackoffJitter::Equal,
            BackoffJitter::Decorrelated,
        ];
        let odd = [
            Backoff::exponential(ms(10)).max(ms(1)),
            Backoff::exponential(ms(10)).multiplier(-3.0),
            Backoff::exponential(ms(10)).multiplier(f64::NAN),
            Backoff::exponential(ms(10)).multiplier(f64::INFINITY),
            Backoff::exponential(ms(10)).multiplier(0.5),
            Backoff::exponential(Duration::MAX).max(Duration::MAX),
            Backoff::constant(Duration::ZERO),
        ];
        for backoff in odd {
            for jitter in jitters {
                for retry in [0, 1, 7, u32::MAX] {
                    let delay = backoff.jitter(jitter).delay(retry, Duration::MAX, &mut rng);
                    assert!(delay <= backoff.max.max(backoff.base), "{backoff:?}");
                }
            }
        }
    }

    #[test]
    fn full_jitter_spreads_waits_out() {
        let mut rng = SmallRng::seed_from_u64(2);
        let backoff = Backoff::exponential(Duration::from_secs(1));
        let waits: std::collections::BTreeSet<_> = (0..50)
            .map(|_| backoff.delay(3, Duration::ZERO, &mut rng))
            .collect();
        assert!(waits.len() > 45, "jittered waits should rarely collide");
    }
}
