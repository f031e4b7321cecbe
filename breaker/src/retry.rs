//! `Retry`: attempt limits, elapsed-time limits and a budget around a [`Backoff`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keel_core::{Clock, Instant, SystemClock};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::{Backoff, ConfigError, RetryBudget};

/// A retry policy: how many attempts, for how long, how far apart, and within which budget.
///
/// [`start`](Retry::start) begins one logical request and returns its [`Attempts`], which
/// answers "retry after how long, or give up?" after each failure. With the `tokio` feature,
/// `Retry::run` drives a whole async operation.
///
/// ```
/// use keel_breaker::{Backoff, GiveUp, Retry};
/// use std::time::Duration;
///
/// let retry = Retry::builder()
///     .max_attempts(3)
///     .backoff(Backoff::constant(Duration::from_millis(50)))
///     .build()?;
/// let mut attempts = retry.start();
/// assert_eq!(attempts.next_delay(true), Ok(Duration::from_millis(50)));
/// assert_eq!(attempts.next_delay(false), Err(GiveUp::Permanent)); // a 4xx: don't retry
/// let mut attempts = retry.start();
/// attempts.next_delay(true).unwrap();
/// attempts.next_delay(true).unwrap();
/// assert_eq!(attempts.next_delay(true), Err(GiveUp::Attempts));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Retry<C = SystemClock> {
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    backoff: Backoff,
    budget: Option<Arc<RetryBudget<C>>>,
    clock: C,
}

/// Why a [`Retry`] stopped retrying.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUp {
    /// The error was not transient.
    Permanent,
    /// Every allowed attempt was made.
    Attempts,
    /// The next wait would end past the elapsed-time limit.
    Elapsed,
    /// The retry budget is spent.
    Budget,
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUp::Permanent => "the error is permanent",
            GiveUp::Attempts => "no attempts left",
            GiveUp::Elapsed => "the time limit would pass before the next attempt",
            GiveUp::Budget => "the retry budget is spent",
        })
    }
}

impl Retry<SystemClock> {
    /// A builder: 3 attempts, exponential backoff from 100 ms with full jitter, no time
    /// limit, no budget.
    pub fn builder() -> RetryBuilder<SystemClock> {
        RetryBuilder {
            max_attempts: 3,
            max_elapsed: None,
            backoff: Backoff::exponential(Duration::from_millis(100)),
            budget: None,
            dropped_budget: false,
            clock: SystemClock,
        }
    }
}

impl<C: Clock> Retry<C> {
    /// Begins one logical request: counts it in the budget and returns its attempt state.
    pub fn start(&self) -> Attempts<'_, C> {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        Attempts {
            retry: self,
            made: 1,
            // Read the clock and seed the RNG only when they are needed: a request that
            // succeeds at once pays for neither.
            started: self.max_elapsed.map(|_| self.clock.now()),
            previous: Duration::ZERO,
            rng: None,
        }
    }

    /// The clock the policy reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The budget, if the policy has one.
    pub fn budget(&self) -> Option<&Arc<RetryBudget<C>>> {
        self.budget.as_ref()
    }
}

impl<C: fmt::Debug> fmt::Debug for Retry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("max_attempts", &self.max_attempts)
            .field("max_elapsed", &self.max_elapsed)
            .field("backoff", &self.backoff)
            .field("budget", &self.budget)
            .field("clock", &self.clock)
            .finish()
    }
}

/// The attempts of one logical request under a [`Retry`] policy.
pub struct Attempts<'a, C = SystemClock> {
    retry: &'a Retry<C>,
    made: u32,
    started: Option<Instant>,
    previous: Duration,
    rng: Option<SmallRng>,
}

impl<C: Clock> Attempts<'_, C> {
    /// After a failed attempt: the wait before the next one, or why to give up. `transient`
    /// is the retry predicate's verdict on the error.
    ///
    /// # Errors
    ///
    /// [`GiveUp`] when the request should fail with the last attempt's error.
    pub fn next_delay(&mut self, transient: bool) -> Result<Duration, GiveUp> {
        if !transient {
            return Err(GiveUp::Permanent);
        }
        if self.made >= self.retry.max_attempts {
            return Err(GiveUp::Attempts);
        }
        let rng = self
            .rng
            .get_or_insert_with(|| SmallRng::from_rng(&mut rand::rng()));
        let delay = self.retry.backoff.delay(self.made - 1, self.previous, rng);
        if let (Some(limit), Some(started)) = (self.retry.max_elapsed, self.started)
            && self.retry.clock.now() - started + delay > limit
        {
            return Err(GiveUp::Elapsed);
        }
        if let Some(budget) = &self.retry.budget
            && !budget.try_withdraw()
        {
            return Err(GiveUp::Budget);
        }
        self.made += 1;
        self.previous = delay;
        Ok(delay)
    }

    /// Attempts made so far, the first included.
    pub fn made(&self) -> u32 {
        self.made
    }
}

impl<C> fmt::Debug for Attempts<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempts")
            .field("made", &self.made)
            .field("started", &self.started)
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

/// The error of an operation run under `Retry::run` (feature `tokio`): the last attempt's error, how many
/// attempts were made and why retrying stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryError<E> {
    /// The last attempt's error.
    pub error: E,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Why there was no further attempt.
    pub reason: GiveUp,
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up after {} attempt(s) ({}): {}",
            self.attempts, self.reason, self.error
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

#[cfg(feature = "tokio")]
impl<C: Clock> Retry<C> {
    /// Runs `operation` (given the attempt number, from 1) until it succeeds or the policy
    /// gives up, sleeping on tokio's timer between attempts. `is_transient` decides which
    /// errors are worth retrying.
    ///
    /// # Errors
    ///
    /// [`RetryError`] with the last attempt's error once the policy gives up.
    ///
    /// ```
    /// use keel_breaker::{Backoff, GiveUp, Retry};
    /// use std::io;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let retry = Retry::builder()
    ///     .max_attempts(5)
    ///     .backoff(Backoff::exponential(Duration::from_millis(10)))
    ///     .build()?;
    /// let value = retry
    ///     .run(
    ///         |attempt| async move {
    ///             if attempt < 3 { Err(io::Error::from(io::ErrorKind::TimedOut)) } else { Ok("up") }
    ///         },
    ///         |error| error.kind() == io::ErrorKind::TimedOut,
    ///     )
    ///     .await?;
    /// assert_eq!(value, "up");
    ///
    /// let not_found = retry.run(|_| async { Err::<(), _>(404) }, |status| *status >= 500).await;
    /// assert_eq!(not_found.unwrap_err().reason, GiveUp::Permanent);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub async fn run<T, E, F, Fut>(
        &self,
        mut operation: F,
        is_transient: impl Fn(&E) -> bool,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut attempts = self.start();
        loop {
            match operation(attempts.made()).await {
                Ok(value) => return Ok(value),
                Err(error) => match attempts.next_delay(is_transient(&error)) {
                    // Boxed: a timer entry would triple the size of every `run` future,
                    // which is moved on each call even when nothing fails.
                    Ok(delay) => Box::pin(tokio::time::sleep(delay)).await,
                    Err(reason) => {
                        return Err(RetryError {
                            error,
                            attempts: attempts.made(),
                            reason,
                        });
                    }
                },
            }
        }
    }
}

/// Builds a [`Retry`]; start from [`Retry::builder`].
#[derive(Debug)]
#[must_use]
pub struct RetryBuilder<C = SystemClock> {
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    backoff: Backoff,
    budget: Option<Arc<RetryBudget<C>>>,
    /// Whether `clock` dropped a budget set before it (reported by `build`).
    dropped_budget: bool,
    clock: C,
}

impl<C: Clock> RetryBuilder<C> {
    /// Attempts in all, the first included (1 means never retry).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Gives up rather than wait past `limit` since the first attempt began.
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = Some(limit);
        self
    }

    /// The waits between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Spends retries from `budget`, shared with other policies calling the same dependency.
    pub fn budget(mut self, budget: Arc<RetryBudget<C>>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Reads time from `clock`. Call it before [`budget`](Self::budget): a budget set
    /// earlier belongs to the old clock type, and [`build`](Self::build) then fails with
    /// [`ConfigError::BudgetBeforeClock`] rather than silently run without it.
    pub fn clock<C2: Clock>(self, clock: C2) -> RetryBuilder<C2> {
        RetryBuilder {
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            backoff: self.backoff,
            budget: None,
            dropped_budget: self.dropped_budget || self.budget.is_some(),
            clock,
        }
    }

    /// Validates and builds the policy.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for zero attempts, a zero base wait, a multiplier below 1, a
    /// maximum wait below the base, or a budget set before the clock.
    pub fn build(self) -> Result<Retry<C>, ConfigError> {
        if self.dropped_budget {
            return Err(ConfigError::BudgetBeforeClock);
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::Zero {
                setting: "max attempts",
            });
        }
        let backoff = self.backoff;
        if backoff.base.is_zero() {
            return Err(ConfigError::Zero {
                setting: "backoff base",
            });
        }
        if !(backoff.multiplier.is_finite() && backoff.multiplier >= 1.0) {
            return Err(ConfigError::Multiplier {
                setting: "backoff",
                value: backoff.multiplier,
            });
        }
        if backoff.max < backoff.base {
            return Err(ConfigError::MaxBelowInitial { setting: "backoff" });
        }
        Ok(Retry {
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            backoff,
            budget: self.budget,
            clock: self.clock,
        })
    }
}
