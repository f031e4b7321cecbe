//! `Backoff`: how long to wait before each retry, and how to randomize it. The one backoff of
//! every keel block: the breaker's retries, the rate limiter's waits and the lock's waiters.

use std::fmt;
use std::time::Duration;

use crate::random::{RandomSource, uniform};

/// How a [`Backoff`] randomizes its waits, so that clients that failed together do not retry
/// together.
///
/// With the step `d = min(max, base × multiplier^n)` for retry `n` (0-based):
///
/// ```
/// use keel_core::{Backoff, BackoffJitter, JitterRng};
/// use std::time::Duration;
///
/// let mut rng = JitterRng::seeded(1);
/// let ms = Duration::from_millis;
/// let backoff = Backoff::exponential(ms(100)); // retry 2: d = 400 ms
/// assert_eq!(backoff.jitter(BackoffJitter::None).delay(2, ms(0), &mut rng), ms(400));
/// assert!(backoff.jitter(BackoffJitter::Full).delay(2, ms(0), &mut rng) <= ms(400));
/// let equal = backoff.jitter(BackoffJitter::Equal).delay(2, ms(0), &mut rng);
/// assert!(equal >= ms(200) && equal <= ms(400));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
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

/// The wait before each retry: a step that is constant or grows exponentially, capped, and
/// randomized by a [`BackoffJitter`], as in the AWS Architecture Blog's "Exponential Backoff
/// And Jitter".
///
/// A `Backoff` is a small `Copy` value with no state; [`delay`](Backoff::delay) computes one
/// wait from the retry number (and the previous wait, for decorrelated jitter), and
/// [`delays`](Backoff::delays) iterates the waits of one caller. Randomness comes from a
/// [`RandomSource`](crate::RandomSource) the caller passes in, so a test seeds it and replays.
///
/// **Bounds.** Every delay lies in [`min_delay()`, `max_delay()`](Backoff::min_delay), for any
/// retry number (up to `u32::MAX`) and any settings, checked or not: a multiplier below 1 or
/// NaN, or a `max` below the base, neither panics nor overflows. Delays are whole
/// nanoseconds, at most `u64::MAX` of them (584 years).
///
/// ```
/// use keel_core::{Backoff, BackoffJitter, JitterRng};
/// use std::time::Duration;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100))
///     .multiplier(2.0)
///     .max(Duration::from_secs(5))
///     .jitter(BackoffJitter::None);
/// backoff.validate()?;
/// let waits: Vec<_> = backoff.delays(JitterRng::seeded(7)).take(4).collect();
/// assert_eq!(waits, [100, 200, 400, 800].map(Duration::from_millis));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Backoff {
    base: Duration,
    multiplier: f64,
    max: Duration,
    jitter: BackoffJitter,
}

impl Backoff {
    /// The same wait before every retry, with no jitter (add one with
    /// [`jitter`](Backoff::jitter)).
    ///
    /// ```
    /// use keel_core::{Backoff, JitterRng};
    /// use std::time::Duration;
    ///
    /// let mut rng = JitterRng::seeded(1);
    /// let backoff = Backoff::constant(Duration::from_millis(250));
    /// assert_eq!(backoff.delay(0, Duration::ZERO, &mut rng), Duration::from_millis(250));
    /// assert_eq!(backoff.delay(9, Duration::ZERO, &mut rng), Duration::from_millis(250));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn constant(wait: Duration) -> Backoff {
        Backoff {
            base: wait,
            multiplier: 1.0,
            max: wait,
            jitter: BackoffJitter::None,
        }
    }

    /// Exponential from `base`, doubling, capped at 30 s (or `base`, if longer), with full
    /// jitter.
    ///
    /// ```
    /// use keel_core::{Backoff, BackoffJitter, JitterRng};
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::exponential(Duration::from_millis(100));
    /// let spelled_out = Backoff::exponential(Duration::from_millis(100))
    ///     .multiplier(2.0)
    ///     .max(Duration::from_secs(30))
    ///     .jitter(BackoffJitter::Full);
    /// assert_eq!(backoff, spelled_out);
    ///
    /// let mut rng = JitterRng::seeded(1);
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

    /// The growth per retry: a finite number, at least 1 (see [`validate`](Backoff::validate)).
    ///
    /// ```
    /// use keel_core::{Backoff, BackoffJitter, JitterRng};
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::exponential(Duration::from_millis(100))
    ///     .multiplier(3.0)
    ///     .jitter(BackoffJitter::None);
    /// let waits: Vec<_> = backoff.delays(JitterRng::seeded(1)).take(3).collect();
    /// assert_eq!(waits, [100, 300, 900].map(Duration::from_millis));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn multiplier(mut self, multiplier: f64) -> Backoff {
        self.multiplier = multiplier;
        self
    }

    /// The longest step: the cap on every wait (at least the base; see
    /// [`validate`](Backoff::validate)).
    ///
    /// ```
    /// use keel_core::{Backoff, BackoffJitter, JitterRng};
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::exponential(Duration::from_millis(100))
    ///     .max(Duration::from_millis(250))
    ///     .jitter(BackoffJitter::None);
    /// let waits: Vec<_> = backoff.delays(JitterRng::seeded(1)).take(4).collect();
    /// assert_eq!(waits, [100, 200, 250, 250].map(Duration::from_millis));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn max(mut self, max: Duration) -> Backoff {
        self.max = max;
        self
    }

    /// How waits are randomized.
    ///
    /// ```
    /// use keel_core::{Backoff, BackoffJitter, JitterRng};
    /// use std::time::Duration;
    ///
    /// let mut rng = JitterRng::seeded(1);
    /// let exact = Backoff::exponential(Duration::from_millis(100)).jitter(BackoffJitter::None);
    /// assert_eq!(exact.delay(1, Duration::ZERO, &mut rng), Duration::from_millis(200));
    /// let equal = exact.jitter(BackoffJitter::Equal).delay(1, Duration::ZERO, &mut rng);
    /// assert!(equal >= Duration::from_millis(100) && equal <= Duration::from_millis(200));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn jitter(mut self, jitter: BackoffJitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// The first step: the wait before the first retry, before jitter.
    ///
    /// ```
    /// use keel_core::Backoff;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Backoff::exponential(Duration::from_millis(20)).base(), Duration::from_millis(20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The jitter this backoff applies.
    ///
    /// ```
    /// use keel_core::{Backoff, BackoffJitter};
    /// use std::time::Duration;
    ///
    /// assert_eq!(Backoff::constant(Duration::from_secs(1)).jitter_kind(), BackoffJitter::None);
    /// assert_eq!(Backoff::exponential(Duration::from_secs(1)).jitter_kind(), BackoffJitter::Full);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn jitter_kind(&self) -> BackoffJitter {
        self.jitter
    }

    /// Checks the settings: a multiplier that is finite and at least 1, and a `max` no
    /// shorter than the base. [`delay`](Backoff::delay) never panics on settings that fail
    /// this (it clamps them), but they rarely mean what was intended, so builders that take a
    /// `Backoff` call it.
    ///
    /// # Errors
    ///
    /// [`BackoffError`] naming the setting that is wrong.
    ///
    /// ```
    /// use keel_core::{Backoff, BackoffError};
    /// use std::time::Duration;
    ///
    /// let ms = Duration::from_millis;
    /// assert!(Backoff::exponential(ms(10)).validate().is_ok());
    /// let error = Backoff::exponential(ms(10)).multiplier(0.5).validate().unwrap_err();
    /// assert_eq!(error, BackoffError::Multiplier { value: 0.5 });
    /// assert_eq!(error.to_string(), "backoff multiplier must be a finite number >= 1, got 0.5");
    /// let error = Backoff::exponential(ms(10)).max(ms(5)).validate().unwrap_err();
    /// assert_eq!(error.to_string(), "backoff max 5ms must be at least the base 10ms");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validate(&self) -> Result<(), BackoffError> {
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(BackoffError::Multiplier {
                value: self.multiplier,
            });
        }
        if self.max < self.base {
            return Err(BackoffError::MaxBelowBase {
                base: self.base,
                max: self.max,
            });
        }
        Ok(())
    }

    /// The shortest wait [`delay`](Backoff::delay) can return: 0 with full jitter, half the
    /// base with equal jitter, the base otherwise.
    ///
    /// ```
    /// use keel_core::{Backoff, BackoffJitter};
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::exponential(Duration::from_millis(100)).max(Duration::from_secs(1));
    /// assert_eq!(backoff.min_delay(), Duration::ZERO); // full jitter
    /// assert_eq!(backoff.jitter(BackoffJitter::Equal).min_delay(), Duration::from_millis(50));
    /// assert_eq!(backoff.jitter(BackoffJitter::None).min_delay(), Duration::from_millis(100));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn min_delay(&self) -> Duration {
        let (base, _) = self.range();
        Duration::from_nanos(match self.jitter {
            BackoffJitter::Full => 0,
            BackoffJitter::Equal => base - base / 2,
            BackoffJitter::None | BackoffJitter::Decorrelated => base,
        })
    }

    /// The longest wait [`delay`](Backoff::delay) can return: `max` (or the base, if `max`
    /// is below it), at most `u64::MAX` nanoseconds.
    ///
    /// ```
    /// use keel_core::Backoff;
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::exponential(Duration::from_millis(100)).max(Duration::from_secs(1));
    /// assert_eq!(backoff.max_delay(), Duration::from_secs(1));
    /// assert_eq!(Backoff::constant(Duration::from_secs(3)).max_delay(), Duration::from_secs(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_delay(&self) -> Duration {
        Duration::from_nanos(self.range().1)
    }

    /// The step of retry `retry` (0 for the first retry) before jitter:
    /// `base × multiplier^retry`, within `[base, max]`.
    ///
    /// ```
    /// use keel_core::Backoff;
    /// use std::time::Duration;
    ///
    /// let backoff = Backoff::exponential(Duration::from_millis(100)).max(Duration::from_secs(1));
    /// assert_eq!(backoff.step(0), Duration::from_millis(100));
    /// assert_eq!(backoff.step(3), Duration::from_millis(800));
    /// assert_eq!(backoff.step(u32::MAX), Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn step(&self, retry: u32) -> Duration {
        Duration::from_nanos(self.step_nanos(retry))
    }

    /// The wait before retry number `retry` (0 for the first retry); `previous` is the wait
    /// before the previous retry, used by [`BackoffJitter::Decorrelated`] (pass zero at
    /// first). Draws from `rng` only when the jitter needs it.
    ///
    /// ```
    /// use keel_core::{Backoff, BackoffJitter, JitterRng};
    /// use std::time::Duration;
    ///
    /// let mut rng = JitterRng::seeded(1);
    /// let ms = Duration::from_millis;
    /// let backoff = Backoff::exponential(ms(100)).max(ms(10_000)).jitter(BackoffJitter::Decorrelated);
    /// // Decorrelated jitter grows from the previous wait: here within [100 ms, 3 × 200 ms].
    /// let wait = backoff.delay(4, ms(200), &mut rng);
    /// assert!(wait >= ms(100) && wait <= ms(600));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delay<R: RandomSource + ?Sized>(
        &self,
        retry: u32,
        previous: Duration,
        rng: &mut R,
    ) -> Duration {
        let nanos = match self.jitter {
            BackoffJitter::None => self.step_nanos(retry),
            BackoffJitter::Full => uniform(0, self.step_nanos(retry), rng),
            BackoffJitter::Equal => {
                let step = self.step_nanos(retry);
                let half = step / 2;
                uniform(step - half, step, rng)
            }
            BackoffJitter::Decorrelated => {
                let (base, max) = self.range();
                // The first wait draws from [base, 3 × base], as AWS's formula starts there.
                let upper = nanos_of(previous).max(base).saturating_mul(3).min(max);
                uniform(base, upper, rng)
            }
        };
        Duration::from_nanos(nanos)
    }

    /// The waits of one caller, retry after retry: an endless iterator that feeds each wait
    /// back as the `previous` of the next, drawing from `rng`.
    ///
    /// ```
    /// use keel_core::{Backoff, BackoffJitter, JitterRng};
    /// use std::time::Duration;
    ///
    /// let ms = Duration::from_millis;
    /// let backoff = Backoff::exponential(ms(10)).max(ms(1_000)).jitter(BackoffJitter::Decorrelated);
    /// let mut previous = ms(10);
    /// for wait in backoff.delays(JitterRng::seeded(5)).take(20) {
    ///     assert!(wait >= ms(10) && wait <= (previous * 3).min(ms(1_000)));
    ///     previous = wait;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delays<R: RandomSource>(&self, rng: R) -> Delays<R> {
        Delays {
            backoff: *self,
            retry: 0,
            previous: Duration::ZERO,
            rng,
        }
    }

    /// `(base, max)` in nanoseconds, with `max` raised to the base if set below it.
    fn range(&self) -> (u64, u64) {
        let base = nanos_of(self.base);
        (base, nanos_of(self.max).max(base))
    }

    fn step_nanos(&self, retry: u32) -> u64 {
        let (base, max) = self.range();
        if self.multiplier == 1.0 || base == max {
            return base;
        }
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        // Exact for steps below 2^53 ns (104 days); an infinite product caps at max, and the
        // float-to-integer cast saturates.
        let grown = base as f64 * self.multiplier.powi(exponent);
        if grown.is_nan() {
            return max;
        }
        (grown as u64).clamp(base, max)
    }
}

fn nanos_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The waits of one caller under a [`Backoff`]; made by [`Backoff::delays`]. Endless: stop
/// it with `take`, or by the caller's own limit.
///
/// ```
/// use keel_core::{Backoff, JitterRng};
/// use std::time::Duration;
///
/// let mut delays = Backoff::constant(Duration::from_millis(5)).delays(JitterRng::seeded(0));
/// assert_eq!(delays.next(), Some(Duration::from_millis(5)));
/// assert_eq!(delays.retries(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Delays<R> {
    backoff: Backoff,
    retry: u32,
    previous: Duration,
    rng: R,
}

impl<R> Delays<R> {
    /// How many waits the iterator has returned (saturating at `u32::MAX`).
    ///
    /// ```
    /// use keel_core::{Backoff, JitterRng};
    /// use std::time::Duration;
    ///
    /// let mut delays = Backoff::exponential(Duration::from_millis(1)).delays(JitterRng::seeded(0));
    /// assert_eq!(delays.retries(), 0);
    /// delays.by_ref().take(3).for_each(drop);
    /// assert_eq!(delays.retries(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retries(&self) -> u32 {
        self.retry
    }
}

impl<R: RandomSource> Iterator for Delays<R> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.backoff.delay(self.retry, self.previous, &mut self.rng);
        self.retry = self.retry.saturating_add(1);
        self.previous = delay;
        Some(delay)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

/// A [`Backoff`] setting that [`Backoff::validate`] rejects.
///
/// ```
/// use keel_core::{Backoff, BackoffError};
/// use std::time::Duration;
///
/// let error = Backoff::exponential(Duration::from_secs(1)).multiplier(f64::NAN).validate();
/// assert!(matches!(error, Err(BackoffError::Multiplier { .. })));
/// let boxed: Box<dyn std::error::Error + Send + Sync> = error.unwrap_err().into(); // `?` works
/// assert_eq!(boxed.to_string(), "backoff multiplier must be a finite number >= 1, got NaN");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BackoffError {
    /// The multiplier is below 1, infinite or NaN.
    Multiplier {
        /// The multiplier given.
        value: f64,
    },
    /// `max` is shorter than the base.
    MaxBelowBase {
        /// The base given.
        base: Duration,
        /// The max given.
        max: Duration,
    },
}

impl fmt::Display for BackoffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackoffError::Multiplier { value } => write!(
                f,
                "backoff multiplier must be a finite number >= 1, got {value}"
            ),
            BackoffError::MaxBelowBase { base, max } => {
                write!(f, "backoff max {max:?} must be at least the base {base:?}")
            }
        }
    }
}

impl std::error::Error for BackoffError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JitterRng;

    const JITTERS: [BackoffJitter; 4] = [
        BackoffJitter::None,
        BackoffJitter::Full,
        BackoffJitter::Equal,
        BackoffJitter::Decorrelated,
    ];

    #[test]
    fn each_jitter_stays_in_its_range() {
        let mut rng = JitterRng::seeded(1);
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
        let mut rng = JitterRng::seeded(3);
        let ms = Duration::from_millis;
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
            for jitter in JITTERS {
                let backoff = backoff.jitter(jitter);
                for retry in [0, 1, 7, u32::MAX] {
                    let delay = backoff.delay(retry, Duration::MAX, &mut rng);
                    assert!(delay >= backoff.min_delay(), "{backoff:?}");
                    assert!(delay <= backoff.max_delay(), "{backoff:?}");
                }
            }
        }
    }

    #[test]
    fn full_jitter_spreads_waits_out() {
        let mut rng = JitterRng::seeded(2);
        let backoff = Backoff::exponential(Duration::from_secs(1));
        let waits: std::collections::BTreeSet<_> = (0..50)
            .map(|_| backoff.delay(3, Duration::ZERO, &mut rng))
            .collect();
        assert!(waits.len() > 45, "jittered waits should rarely collide");
    }

    #[test]
    fn no_jitter_draws_nothing() {
        let backoff = Backoff::exponential(Duration::from_millis(3)).jitter(BackoffJitter::None);
        let mut never = || -> u64 { unreachable!("no jitter needs no random bits") };
        assert_eq!(
            backoff.delay(2, Duration::ZERO, &mut never),
            Duration::from_millis(12)
        );
    }

    #[test]
    fn iterator_feeds_back_the_previous_wait() {
        let ms = Duration::from_millis;
        let backoff = Backoff::exponential(ms(10))
            .max(ms(10_000))
            .jitter(BackoffJitter::Decorrelated);
        // The top of every range: each wait is 3 × the one before.
        let waits: Vec<_> = backoff.delays(|| u64::MAX).take(4).collect();
        assert_eq!(waits, [ms(30), ms(90), ms(270), ms(810)]);
    }
}
