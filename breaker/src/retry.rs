//! `Retry`: attempt limits, elapsed-time limits and a budget around a [`Backoff`] (keel-core's).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keel_core::{BackoffError, Clock, Instant, JitterRng, SystemClock};

use crate::{Backoff, BreakerConfigError, RetryBudget};

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
    #[cfg(feature = "metrics")]
    emitter: crate::emit::RetryEmitter,
}

/// Why a [`Retry`] stopped retrying.
///
/// ```
/// use keel_breaker::{Backoff, GiveUp, Retry};
/// use std::time::Duration;
///
/// let retry = Retry::builder()
///     .max_attempts(2)
///     .backoff(Backoff::constant(Duration::from_millis(10)))
///     .build()?;
/// let mut attempts = retry.start();
/// assert_eq!(attempts.next_delay(false), Err(GiveUp::Permanent));
/// assert_eq!(attempts.next_delay(true), Ok(Duration::from_millis(10)));
/// assert_eq!(attempts.next_delay(true), Err(GiveUp::Attempts));
/// assert_eq!(GiveUp::Attempts.to_string(), "no attempts left");
/// let boxed: Box<dyn std::error::Error + Send + Sync> = GiveUp::Budget.into(); // `?` works
/// assert_eq!(boxed.to_string(), "the retry budget is spent");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    /// The next attempt needed a wait on tokio's timer, and `Retry::run` or the tower
    /// `RetryLayer` ran outside a tokio runtime. No retry token was spent.
    NoRuntime,
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUp::Permanent => "the error is permanent",
            GiveUp::Attempts => "no attempts left",
            GiveUp::Elapsed => "the time limit would pass before the next attempt",
            GiveUp::Budget => "the retry budget is spent",
            GiveUp::NoRuntime => "a tokio runtime is needed to wait before the next attempt",
        })
    }
}

impl std::error::Error for GiveUp {}

impl Retry<SystemClock> {
    /// A builder: 3 attempts, exponential backoff from 100 ms with full jitter, no time
    /// limit, no budget.
    ///
    /// ```
    /// use keel_breaker::{GiveUp, Retry};
    /// use std::time::Duration;
    ///
    /// let retry = Retry::builder().build()?;
    /// let mut attempts = retry.start();
    /// // Full jitter: the first retry waits up to 100 ms.
    /// let first = attempts.next_delay(true).expect("2 attempts left");
    /// assert!(first <= Duration::from_millis(100));
    /// let second = attempts.next_delay(true).expect("1 attempt left");
    /// assert!(second <= Duration::from_millis(200));
    /// assert_eq!(attempts.next_delay(true), Err(GiveUp::Attempts)); // 3 attempts made
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> RetryBuilder<SystemClock> {
        RetryBuilder {
            max_attempts: 3,
            max_elapsed: None,
            backoff: Backoff::exponential(Duration::from_millis(100)),
            budget: None,
            dropped_budget: false,
            clock: SystemClock,
            #[cfg(feature = "metrics")]
            name: "default".to_owned(),
        }
    }
}

impl<C: Clock> Retry<C> {
    /// Begins one logical request: counts it in the budget and returns its attempt state.
    ///
    /// ```
    /// use keel_breaker::{Retry, RetryBudget};
    /// use std::sync::Arc;
    ///
    /// let budget = Arc::new(RetryBudget::builder().percent(50.0).min_per_second(0).build()?);
    /// let retry = Retry::builder().budget(budget.clone()).build()?;
    /// let attempts = retry.start();
    /// assert_eq!(attempts.made(), 1); // the first attempt is about to be made
    /// retry.start();
    /// assert_eq!(budget.balance(), 1); // two requests deposited: one retry at 50%
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(&self) -> Attempts<'_, C> {
        Attempts {
            retry: self,
            state: self.begin(),
        }
    }

    /// [`start`](Retry::start) without the borrow, for futures that hold the policy in an
    /// `Arc` (the tower layer's).
    pub(crate) fn begin(&self) -> AttemptState {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        AttemptState {
            made: 1,
            // Read the clock and seed the RNG only when they are needed: a request that
            // succeeds at once pays for neither.
            started: self.max_elapsed.map(|_| self.clock.now()),
            previous: Duration::ZERO,
            rng: None,
        }
    }

    /// [`Attempts::next_delay`] on an [`AttemptState`], for a caller that may be unable to
    /// wait: `can_wait` is asked once a retry is otherwise due, before the budget is spent,
    /// so a caller that cannot wait gives up with [`GiveUp::NoRuntime`] having spent nothing.
    pub(crate) fn next_delay_of(
        &self,
        state: &mut AttemptState,
        transient: bool,
        can_wait: impl FnOnce() -> bool,
    ) -> Result<Duration, GiveUp> {
        if !transient {
            return Err(GiveUp::Permanent);
        }
        if state.made >= self.max_attempts {
            return Err(GiveUp::Attempts);
        }
        let rng = state.rng.get_or_insert_with(JitterRng::from_entropy);
        let delay = self.backoff.delay(state.made - 1, state.previous, rng);
        if let (Some(limit), Some(started)) = (self.max_elapsed, state.started)
            && self.clock.now() - started + delay > limit
        {
            return Err(GiveUp::Elapsed);
        }
        if !can_wait() {
            return Err(GiveUp::NoRuntime);
        }
        if let Some(budget) = &self.budget
            && !budget.try_withdraw()
        {
            #[cfg(feature = "metrics")]
            self.emitter.budget_exhausted();
            return Err(GiveUp::Budget);
        }
        #[cfg(feature = "metrics")]
        self.emitter.retried();
        state.made += 1;
        state.previous = delay;
        Ok(delay)
    }

    /// The clock the policy reads.
    ///
    /// ```
    /// use keel_breaker::Retry;
    /// use keel_core::{Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let retry = Retry::builder().clock(clock.clone()).build()?;
    /// clock.advance(Duration::from_secs(3));
    /// assert_eq!(retry.clock().now(), clock.now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The budget, if the policy has one.
    ///
    /// ```
    /// use keel_breaker::{Retry, RetryBudget};
    /// use std::sync::Arc;
    ///
    /// assert!(Retry::builder().build()?.budget().is_none());
    /// let budget = Arc::new(RetryBudget::builder().build()?);
    /// let retry = Retry::builder().budget(budget.clone()).build()?;
    /// assert!(Arc::ptr_eq(retry.budget().unwrap(), &budget));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
///
/// ```
/// use keel_breaker::{Backoff, GiveUp, Retry};
/// use std::time::Duration;
///
/// let retry = Retry::builder()
///     .max_attempts(3)
///     .backoff(Backoff::constant(Duration::from_millis(5)))
///     .build()?;
/// let mut attempts = retry.start();
/// let mut log = Vec::new();
/// let outcome = loop {
///     let result: Result<u32, &str> = Err("busy"); // the call, attempt `attempts.made()`
///     match result {
///         Ok(value) => break Ok(value),
///         Err(error) => match attempts.next_delay(error == "busy") {
///             Ok(wait) => log.push(wait), // sleep `wait`, then try again
///             Err(reason) => break Err(reason),
///         },
///     }
/// };
/// assert_eq!(outcome, Err(GiveUp::Attempts));
/// assert_eq!(log, [Duration::from_millis(5); 2]);
/// assert_eq!(attempts.made(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Attempts<'a, C = SystemClock> {
    retry: &'a Retry<C>,
    state: AttemptState,
}

/// The attempts of one request, apart from the policy they run under.
#[derive(Debug)]
pub(crate) struct AttemptState {
    made: u32,
    started: Option<Instant>,
    previous: Duration,
    rng: Option<JitterRng>,
}

impl<C: Clock> Attempts<'_, C> {
    /// After a failed attempt: the wait before the next one, or why to give up. `transient`
    /// is the retry predicate's verdict on the error.
    ///
    /// # Errors
    ///
    /// [`GiveUp`] when the request should fail with the last attempt's error.
    ///
    /// ```
    /// use keel_breaker::{Backoff, GiveUp, BackoffJitter, Retry};
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let retry = Retry::builder()
    ///     .max_attempts(10)
    ///     .max_elapsed(Duration::from_secs(1))
    ///     .backoff(Backoff::exponential(Duration::from_millis(300)).jitter(BackoffJitter::None))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let mut attempts = retry.start();
    /// assert_eq!(attempts.next_delay(true), Ok(Duration::from_millis(300)));
    /// clock.advance(Duration::from_millis(300));
    /// // The next wait (600 ms) would end at 900 ms: still within the second.
    /// assert_eq!(attempts.next_delay(true), Ok(Duration::from_millis(600)));
    /// clock.advance(Duration::from_millis(600));
    /// // 1,200 ms more would pass the limit.
    /// assert_eq!(attempts.next_delay(true), Err(GiveUp::Elapsed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_delay(&mut self, transient: bool) -> Result<Duration, GiveUp> {
        self.retry
            .next_delay_of(&mut self.state, transient, || true)
    }

    /// Attempts made so far, the first included.
    ///
    /// ```
    /// use keel_breaker::{Backoff, Retry};
    /// use std::time::Duration;
    ///
    /// let retry = Retry::builder().backoff(Backoff::constant(Duration::from_millis(1))).build()?;
    /// let mut attempts = retry.start();
    /// assert_eq!(attempts.made(), 1);
    /// assert_eq!(attempts.next_delay(true), Ok(Duration::from_millis(1)));
    /// assert_eq!(attempts.made(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn made(&self) -> u32 {
        self.state.made
    }
}

impl<C> fmt::Debug for Attempts<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempts")
            .field("made", &self.state.made)
            .field("started", &self.state.started)
            .field("previous", &self.state.previous)
            .finish_non_exhaustive()
    }
}

/// The error of an operation run under `Retry::run` (feature `tokio`): the last attempt's error, how many
/// attempts were made and why retrying stopped.
///
/// `Retry::run` builds it as below when its policy gives up.
///
/// ```
/// use keel_breaker::{GiveUp, Retry, RetryError};
///
/// let retry = Retry::builder().build()?;
/// let mut attempts = retry.start();
/// let reason = attempts.next_delay(false).unwrap_err(); // a permanent error
/// let error = RetryError { error: "404 Not Found", attempts: attempts.made(), reason };
/// assert_eq!(error.reason, GiveUp::Permanent);
/// assert_eq!(
///     error.to_string(),
///     "gave up after 1 attempt(s) (the error is permanent): 404 Not Found"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    /// Outside a tokio runtime, an operation that succeeds or gives up at its first try
    /// still runs; one that would be retried gives up with [`GiveUp::NoRuntime`] instead of
    /// waiting. Inside a runtime built without timers (no `enable_time`), tokio panics on
    /// the first wait.
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
    ///
    /// Outside a runtime (polled by hand here), a retry cannot wait:
    ///
    /// ```
    /// use keel_breaker::{GiveUp, Retry};
    /// use std::future::Future;
    /// use std::task::{Context, Poll, Waker};
    ///
    /// let retry = Retry::builder().max_attempts(3).build()?;
    /// let run = std::pin::pin!(retry.run(|_| async { Err::<(), _>("busy") }, |_| true));
    /// let Poll::Ready(Err(error)) = run.poll(&mut Context::from_waker(Waker::noop())) else {
    ///     panic!("gives up at once");
    /// };
    /// assert_eq!((error.attempts, error.reason), (1, GiveUp::NoRuntime));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
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
                Err(error) => match self.next_delay_of(
                    &mut attempts.state,
                    is_transient(&error),
                    crate::has_runtime,
                ) {
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
///
/// ```
/// use keel_breaker::{Backoff, GiveUp, Retry};
/// use std::time::Duration;
///
/// let retry = Retry::builder()
///     .max_attempts(2)
///     .backoff(Backoff::constant(Duration::from_millis(20)))
///     .build()?;
/// let mut attempts = retry.start();
/// assert_eq!(attempts.next_delay(true), Ok(Duration::from_millis(20)));
/// assert_eq!(attempts.next_delay(true), Err(GiveUp::Attempts));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    #[cfg(feature = "metrics")]
    name: String,
}

impl<C: Clock> RetryBuilder<C> {
    /// Attempts in all, the first included (1 means never retry).
    ///
    /// ```
    /// use keel_breaker::{GiveUp, Retry};
    ///
    /// let never = Retry::builder().max_attempts(1).build()?;
    /// assert_eq!(never.start().next_delay(true), Err(GiveUp::Attempts));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Gives up rather than wait past `limit` since the first attempt began.
    ///
    /// ```
    /// use keel_breaker::{Backoff, GiveUp, Retry};
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let retry = Retry::builder()
    ///     .max_attempts(100)
    ///     .max_elapsed(Duration::from_secs(2))
    ///     .backoff(Backoff::constant(Duration::from_millis(500)))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let mut attempts = retry.start();
    /// clock.advance(Duration::from_millis(1_600)); // the first attempt was slow
    /// assert_eq!(attempts.next_delay(true), Err(GiveUp::Elapsed)); // 1.6 s + 0.5 s > 2 s
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = Some(limit);
        self
    }

    /// The waits between attempts.
    ///
    /// ```
    /// use keel_breaker::{Backoff, BackoffJitter, Retry};
    /// use std::time::Duration;
    ///
    /// let retry = Retry::builder()
    ///     .max_attempts(4)
    ///     .backoff(Backoff::exponential(Duration::from_millis(50)).jitter(BackoffJitter::None))
    ///     .build()?;
    /// let mut attempts = retry.start();
    /// let waits: Vec<_> = std::iter::from_fn(|| attempts.next_delay(true).ok()).collect();
    /// assert_eq!(waits, [50, 100, 200].map(Duration::from_millis));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Spends retries from `budget`, shared with other policies calling the same dependency.
    ///
    /// ```
    /// use keel_breaker::{Backoff, GiveUp, Retry, RetryBudget};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// // No reserve and 10%: retries need ten requests each.
    /// let budget = Arc::new(RetryBudget::builder().percent(10.0).min_per_second(0).build()?);
    /// let retry = Retry::builder()
    ///     .backoff(Backoff::constant(Duration::from_millis(10)))
    ///     .budget(budget)
    ///     .build()?;
    /// assert_eq!(retry.start().next_delay(true), Err(GiveUp::Budget));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn budget(mut self, budget: Arc<RetryBudget<C>>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Reads time from `clock`. Call it before [`budget`](Self::budget): a budget set
    /// earlier belongs to the old clock type, and [`build`](Self::build) then fails with
    /// [`BreakerConfigError::BudgetBeforeClock`] rather than silently run without it.
    ///
    /// ```
    /// use keel_breaker::{BreakerConfigError, Retry, RetryBudget};
    /// use keel_core::ManualClock;
    /// use std::sync::Arc;
    ///
    /// let clock = ManualClock::new();
    /// let budget = Arc::new(RetryBudget::builder().clock(clock.clone()).build()?);
    /// let retry = Retry::builder().clock(clock.clone()).budget(budget).build()?;
    /// assert!(retry.budget().is_some());
    ///
    /// let wrong_order = Retry::builder()
    ///     .budget(Arc::new(RetryBudget::builder().build()?))
    ///     .clock(clock)
    ///     .build();
    /// assert_eq!(wrong_order.unwrap_err(), BreakerConfigError::BudgetBeforeClock);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> RetryBuilder<C2> {
        RetryBuilder {
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            backoff: self.backoff,
            budget: None,
            dropped_budget: self.dropped_budget || self.budget.is_some(),
            clock,
            #[cfg(feature = "metrics")]
            name: self.name,
        }
    }

    /// Names the policy: the `name` label of its metrics (feature `metrics`). Defaults to
    /// `"default"`.
    ///
    /// ```
    /// use keel_breaker::Retry;
    ///
    /// let retry = Retry::builder().name("payments").build()?;
    /// assert_eq!(retry.start().made(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Validates and builds the policy.
    ///
    /// # Errors
    ///
    /// [`BreakerConfigError`] for zero attempts, a zero base wait, a multiplier below 1, a
    /// maximum wait below the base, or a budget set before the clock.
    ///
    /// ```
    /// use keel_breaker::{Backoff, BreakerConfigError, Retry};
    /// use std::time::Duration;
    ///
    /// assert!(Retry::builder().build().is_ok());
    /// let error = Retry::builder().max_attempts(0).build().unwrap_err();
    /// assert_eq!(error, BreakerConfigError::Zero { setting: "max attempts" });
    /// let error = Retry::builder()
    ///     .backoff(Backoff::exponential(Duration::from_millis(10)).multiplier(0.5))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(error.to_string(), "backoff multiplier must be a finite number >= 1, got 0.5");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Retry<C>, BreakerConfigError> {
        if self.dropped_budget {
            return Err(BreakerConfigError::BudgetBeforeClock);
        }
        if self.max_attempts == 0 {
            return Err(BreakerConfigError::Zero {
                setting: "max attempts",
            });
        }
        let backoff = self.backoff;
        if backoff.base().is_zero() {
            return Err(BreakerConfigError::Zero {
                setting: "backoff base",
            });
        }
        match backoff.validate() {
            Ok(()) => {}
            Err(BackoffError::Multiplier { value }) => {
                return Err(BreakerConfigError::Multiplier {
                    setting: "backoff",
                    value,
                });
            }
            // `BackoffError` is non-exhaustive: whatever it adds is a bad range too.
            Err(_) => return Err(BreakerConfigError::MaxBelowInitial { setting: "backoff" }),
        }
        Ok(Retry {
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            backoff,
            budget: self.budget,
            clock: self.clock,
            #[cfg(feature = "metrics")]
            emitter: crate::emit::RetryEmitter::new(&self.name),
        })
    }
}
