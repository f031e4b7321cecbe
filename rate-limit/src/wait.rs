//! Waiting for capacity on tokio: `until_ready` and `until_n_ready`, with optional jitter
//! drawn from keel-core's `Backoff`.

use std::hash::Hash;
use std::time::Duration;

use keel_core::{Backoff, BackoffJitter, Clock, Delays, JitterRng};

use crate::{Algorithm, Decision, InsufficientCapacity, KeyedLimiter, Limiter, RateLimit};

/// A random extra delay added to each wait on top of the retry-after, so callers denied
/// together do not all retry at the same instant. The extra delay is drawn from a
/// [`keel_core::Backoff`], the one backoff every keel block uses: [`up_to`](WaitJitter::up_to)
/// is a constant step with full jitter, and [`from_backoff`](WaitJitter::from_backoff) takes
/// any backoff, whose n-th delay is added to the caller's n-th wait.
///
/// ```
/// use keel_core::{Backoff, BackoffJitter};
/// use keel_rate_limit::WaitJitter;
/// use std::time::Duration;
///
/// let jitter = WaitJitter::up_to(Duration::from_millis(20));
/// assert_eq!(jitter.max(), Duration::from_millis(20));
/// assert_eq!(
///     jitter.backoff(),
///     Backoff::constant(Duration::from_millis(20)).jitter(BackoffJitter::Full)
/// );
/// assert_eq!(WaitJitter::NONE.max(), Duration::ZERO);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct WaitJitter {
    backoff: Backoff,
}

impl WaitJitter {
    /// No jitter: wake exactly at retry-after.
    ///
    /// ```
    /// use keel_rate_limit::WaitJitter;
    /// use std::time::Duration;
    ///
    /// assert_eq!(WaitJitter::NONE, WaitJitter::default());
    /// assert_eq!(WaitJitter::NONE.max(), WaitJitter::up_to(Duration::ZERO).max());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const NONE: WaitJitter = WaitJitter {
        backoff: Backoff::constant(Duration::ZERO),
    };

    /// A uniformly random extra delay in `[0, max]` on every wait: a constant
    /// [`Backoff`] of `max` with [`BackoffJitter::Full`].
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_rate_limit::{Gcra, WaitJitter, Limiter, Quota};
    /// use std::time::Duration;
    ///
    /// # let runtime = tokio::runtime::Builder::new_current_thread()
    /// #     .enable_time()
    /// #     .start_paused(true)
    /// #     .build()?;
    /// # runtime.block_on(async {
    /// let limiter = Limiter::<Gcra, _>::with_clock(Quota::per_second(1)?, TokioClock::new());
    /// let jitter = WaitJitter::up_to(Duration::from_millis(100));
    /// assert!(limiter.until_n_ready_with_jitter(1, jitter).await?.is_allowed()); // at once
    /// let start = tokio::time::Instant::now();
    /// assert!(limiter.until_n_ready_with_jitter(1, jitter).await?.is_allowed());
    /// // The 1 s retry-after, plus up to 100 ms.
    /// let waited = start.elapsed();
    /// assert!(waited >= Duration::from_secs(1) && waited <= Duration::from_millis(1_100));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn up_to(max: Duration) -> WaitJitter {
        WaitJitter {
            backoff: Backoff::constant(max).jitter(BackoffJitter::Full),
        }
    }

    /// Adds `backoff`'s delays to the waits: its first delay to a caller's first wait, its
    /// second to the second, so a caller denied again and again spreads out further.
    ///
    /// ```
    /// use keel_core::{Backoff, BackoffJitter};
    /// use keel_rate_limit::WaitJitter;
    /// use std::time::Duration;
    ///
    /// let growing = Backoff::exponential(Duration::from_millis(5))
    ///     .max(Duration::from_millis(80))
    ///     .jitter(BackoffJitter::Full);
    /// let jitter = WaitJitter::from_backoff(growing);
    /// assert_eq!(jitter.max(), Duration::from_millis(80));
    /// assert_eq!(WaitJitter::from(growing), jitter);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn from_backoff(backoff: Backoff) -> WaitJitter {
        WaitJitter { backoff }
    }

    /// The largest extra delay.
    ///
    /// ```
    /// use keel_rate_limit::WaitJitter;
    /// use std::time::Duration;
    ///
    /// assert_eq!(WaitJitter::up_to(Duration::from_millis(250)).max(), Duration::from_millis(250));
    /// assert_eq!(WaitJitter::NONE.max(), Duration::ZERO);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max(&self) -> Duration {
        self.backoff.max_delay()
    }

    /// The backoff the extra delays are drawn from.
    ///
    /// ```
    /// use keel_core::BackoffJitter;
    /// use keel_rate_limit::WaitJitter;
    /// use std::time::Duration;
    ///
    /// let jitter = WaitJitter::up_to(Duration::from_millis(10));
    /// assert_eq!(jitter.backoff().jitter_kind(), BackoffJitter::Full);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn backoff(&self) -> Backoff {
        self.backoff
    }
}

impl Default for WaitJitter {
    fn default() -> WaitJitter {
        WaitJitter::NONE
    }
}

impl From<Backoff> for WaitJitter {
    fn from(backoff: Backoff) -> WaitJitter {
        WaitJitter::from_backoff(backoff)
    }
}

/// Checks until admitted, sleeping on tokio for each denial's retry-after plus jitter.
async fn wait_until<F>(mut check: F, jitter: WaitJitter) -> Result<Decision, InsufficientCapacity>
where
    F: FnMut() -> Result<Decision, InsufficientCapacity>,
{
    // Seeded on the first denial only: an admitted call pays for no generator.
    let mut extra: Option<Delays<JitterRng>> = None;
    loop {
        let decision = check()?;
        match decision.retry_after() {
            None => return Ok(decision),
            Some(retry) => {
                let delays =
                    extra.get_or_insert_with(|| jitter.backoff.delays(JitterRng::from_entropy()));
                let wait = retry.saturating_add(delays.next().unwrap_or_default());
                tokio::time::sleep(wait).await;
            }
        }
    }
}

impl<A: Algorithm, C: Clock> Limiter<A, C> {
    /// Waits until one request is admitted, and takes it.
    ///
    /// Cancellation-safe: while it sleeps it holds no reservation, so dropping the future
    /// (a timeout, a `select!`) takes nothing from the limiter. Callers are not served in
    /// FIFO order; for that, use [`Shaper`](crate::Shaper).
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_rate_limit::{Gcra, Limiter, Quota};
    /// use std::time::Duration;
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread()
    ///     .enable_time()
    ///     .start_paused(true)
    ///     .build()?;
    /// runtime.block_on(async {
    ///     let clock = TokioClock::new();
    ///     let limiter = Limiter::<Gcra, _>::with_clock(Quota::per_second(10)?.with_burst(1)?, clock);
    ///     let start = tokio::time::Instant::now();
    ///     for _ in 0..3 {
    ///         assert!(limiter.until_ready().await.is_allowed());
    ///     }
    ///     assert_eq!(start.elapsed(), Duration::from_millis(200));
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn until_ready(&self) -> Decision {
        match self.until_n_ready_with_jitter(1, WaitJitter::NONE).await {
            Ok(decision) => decision,
            // Every quota holds at least one cell, so this arm is never taken.
            Err(_) => self.check(),
        }
    }

    /// Waits until `n` cells are admitted at once, and takes them. Cancellation-safe as
    /// [`until_ready`](Limiter::until_ready).
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_rate_limit::{Limiter, Quota, SlidingLog};
    /// use std::time::Duration;
    ///
    /// # let runtime = tokio::runtime::Builder::new_current_thread()
    /// #     .enable_time()
    /// #     .start_paused(true)
    /// #     .build()?;
    /// # runtime.block_on(async {
    /// let limiter = Limiter::<SlidingLog, _>::with_clock(Quota::per_second(4)?, TokioClock::new());
    /// let start = tokio::time::Instant::now();
    /// assert_eq!(limiter.until_n_ready(3).await?.remaining(), 1); // at once
    /// assert!(limiter.until_n_ready(2).await?.is_allowed()); // when the first 3 leave the log
    /// assert_eq!(start.elapsed(), Duration::from_secs(1));
    /// assert_eq!(limiter.until_n_ready(5).await.unwrap_err().capacity(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once if `n` can never be admitted.
    pub async fn until_n_ready(&self, n: u32) -> Result<Decision, InsufficientCapacity> {
        self.until_n_ready_with_jitter(n, WaitJitter::NONE).await
    }

    /// [`until_n_ready`](Limiter::until_n_ready), adding `jitter` to every wait.
    ///
    /// The jitter spreads callers that were all told the same retry-after, so they do not wake
    /// together; a wait is never shorter than the retry-after.
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_rate_limit::{Gcra, WaitJitter, Limiter, Quota};
    /// use std::time::Duration;
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread()
    ///     .enable_time()
    ///     .start_paused(true)
    ///     .build()?;
    /// runtime.block_on(async {
    ///     let limiter = Limiter::<Gcra, _>::with_clock(Quota::per_second(10)?, TokioClock::new());
    ///     assert!(limiter.until_n_ready(10).await?.is_allowed()); // the burst, at once
    ///     let start = tokio::time::Instant::now();
    ///     let jitter = WaitJitter::up_to(Duration::from_millis(50));
    ///     assert!(limiter.until_n_ready_with_jitter(5, jitter).await?.is_allowed());
    ///     let waited = start.elapsed();
    ///     assert!(waited >= Duration::from_millis(500) && waited <= Duration::from_millis(550));
    ///     assert!(limiter.until_n_ready(11).await.is_err()); // never satisfiable
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once if `n` can never be admitted.
    pub async fn until_n_ready_with_jitter(
        &self,
        n: u32,
        jitter: WaitJitter,
    ) -> Result<Decision, InsufficientCapacity> {
        wait_until(|| self.check_n(n), jitter).await
    }
}

impl<K, A: Algorithm, C: Clock> KeyedLimiter<K, A, C>
where
    K: Hash + Eq + Send + Sync,
{
    /// Waits until `n` cells for `key` are admitted, adding `jitter` to every wait.
    /// Cancellation-safe: nothing is held while waiting.
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_rate_limit::{Gcra, WaitJitter, KeyedLimiter, Quota};
    /// use std::time::Duration;
    ///
    /// # let runtime = tokio::runtime::Builder::new_current_thread()
    /// #     .enable_time()
    /// #     .start_paused(true)
    /// #     .build()?;
    /// # runtime.block_on(async {
    /// let limiter = KeyedLimiter::<String, Gcra>::builder(Quota::per_second(2)?)
    ///     .clock(TokioClock::new())
    ///     .build()?;
    /// let start = tokio::time::Instant::now();
    /// for _ in 0..3 {
    ///     let decision = limiter.until_key_n_ready("crawler", 1, WaitJitter::NONE).await?;
    ///     assert!(decision.is_allowed());
    /// }
    /// // Two at once (the burst), the third one emission interval later.
    /// assert_eq!(start.elapsed(), Duration::from_millis(500));
    /// // Another key does not wait for this one.
    /// let other = limiter.until_key_n_ready("indexer", 2, WaitJitter::NONE).await?;
    /// assert_eq!(other.remaining(), 0);
    /// assert_eq!(start.elapsed(), Duration::from_millis(500));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once if `n` can never be admitted for `key`.
    pub async fn until_key_n_ready<Q>(
        &self,
        key: &Q,
        n: u32,
        jitter: WaitJitter,
    ) -> Result<Decision, InsufficientCapacity>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        wait_until(|| self.check_key_n(key, n), jitter).await
    }
}
