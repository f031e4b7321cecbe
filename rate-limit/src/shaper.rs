//! `Shaper`: the leaky bucket as a queue, where callers wait their turn in FIFO order.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use keel_core::{Clock, SystemClock};
use parking_lot::Mutex;

use crate::{InsufficientCapacity, Quota};

/// The leaky bucket as a shaper: instead of denying, [`acquire`](Shaper::acquire) waits until
/// the request fits, and waiting callers are served strictly in arrival order (a large request
/// at the head is not overtaken by small ones behind it).
///
/// The admission rule is the leaky bucket meter's (see [`LeakyBucket`](crate::LeakyBucket)),
/// so the bound is the same: at most `burst + limit − 1` cells in any window of `period`.
///
/// **Cancellation-safe.** A waiter holds its place in the queue, nothing else; dropping its
/// future gives the place back and wakes the next waiter, which may then go at once.
///
/// # Example
///
/// ```
/// use keel_core::TokioClock;
/// use keel_rate_limit::{Quota, Shaper};
/// use std::time::Duration;
///
/// let runtime = tokio::runtime::Builder::new_current_thread()
///     .enable_time()
///     .start_paused(true)
///     .build()?;
/// runtime.block_on(async {
///     let shaper = Shaper::with_clock(Quota::per_second(4)?.with_burst(1)?, TokioClock::new());
///     let start = tokio::time::Instant::now();
///     shaper.acquire(1).await?; // at once
///     shaper.acquire(1).await?; // 250 ms later
///     assert_eq!(start.elapsed(), Duration::from_millis(250));
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Shaper<C: Clock = SystemClock> {
    quota: Quota,
    clock: C,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    level: u64,
    last: u64,
    queue: VecDeque<Waiter>,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    waker: Waker,
}

impl State {
    /// Pours `n` cells if they fit now; otherwise returns how long until they do.
    fn pour(&mut self, quota: &Quota, now: u64, n: u32) -> Result<(), u64> {
        let now = now.max(self.last);
        self.level = self.level.saturating_sub(now - self.last);
        self.last = now;
        let poured = self.level + u64::from(n) * quota.emission_nanos();
        let capacity = quota.tolerance_nanos();
        if poured > capacity {
            return Err(poured - capacity);
        }
        self.level = poured;
        Ok(())
    }

    fn remove(&mut self, id: u64) {
        let was_head = self.queue.front().is_some_and(|w| w.id == id);
        self.queue.retain(|w| w.id != id);
        if was_head && let Some(next) = self.queue.front() {
            next.waker.wake_by_ref();
        }
    }
}

impl Shaper {
    /// A shaper on the system clock.
    ///
    /// ```
    /// use keel_rate_limit::{Quota, Shaper};
    ///
    /// # let runtime = tokio::runtime::Builder::new_current_thread()
    /// #     .enable_time()
    /// #     .start_paused(true)
    /// #     .build()?;
    /// # runtime.block_on(async {
    /// let shaper = Shaper::new(Quota::per_second(100)?);
    /// shaper.acquire(100).await?; // a full burst goes at once
    /// assert_eq!(shaper.waiting(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(quota: Quota) -> Shaper {
        Shaper::with_clock(quota, SystemClock)
    }
}

impl<C: Clock> Shaper<C> {
    /// A shaper reading time from `clock` (use [`keel_core::TokioClock`] with paused time in tests).
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_rate_limit::{Quota, Shaper};
    /// use std::time::Duration;
    ///
    /// # let runtime = tokio::runtime::Builder::new_current_thread()
    /// #     .enable_time()
    /// #     .start_paused(true)
    /// #     .build()?;
    /// # runtime.block_on(async {
    /// let shaper = Shaper::with_clock(Quota::per_minute(60)?.with_burst(2)?, TokioClock::new());
    /// let start = tokio::time::Instant::now();
    /// shaper.acquire(2).await?; // the burst, at once
    /// shaper.acquire(1).await?; // then one per second
    /// assert_eq!(start.elapsed(), Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_clock(quota: Quota, clock: C) -> Shaper<C> {
        Shaper {
            quota,
            clock,
            state: Mutex::new(State::default()),
        }
    }

    /// The quota.
    ///
    /// ```
    /// use keel_rate_limit::{Quota, Shaper};
    ///
    /// let shaper = Shaper::new(Quota::per_second(10)?.with_burst(1)?);
    /// assert_eq!(shaper.quota().burst(), 1);
    /// assert_eq!(shaper.quota(), Quota::per_second(10)?.with_burst(1)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// How many callers are waiting.
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_rate_limit::{Quota, Shaper};
    /// use std::time::Duration;
    ///
    /// # let runtime = tokio::runtime::Builder::new_current_thread()
    /// #     .enable_time()
    /// #     .start_paused(true)
    /// #     .build()?;
    /// # runtime.block_on(async {
    /// let shaper = Shaper::with_clock(Quota::per_second(1)?.with_burst(1)?, TokioClock::new());
    /// shaper.acquire(1).await?; // spends the burst
    /// let mut next = std::pin::pin!(shaper.acquire(1));
    /// // Polled for 10 ms: not its turn yet, so it waits in the queue.
    /// assert!(tokio::time::timeout(Duration::from_millis(10), &mut next).await.is_err());
    /// assert_eq!(shaper.waiting(), 1);
    /// next.await?;
    /// assert_eq!(shaper.waiting(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn waiting(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Waits for `n` cells, in FIFO order behind earlier callers, and takes them.
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_rate_limit::{Quota, Shaper};
    /// use std::time::Duration;
    ///
    /// # let runtime = tokio::runtime::Builder::new_current_thread()
    /// #     .enable_time()
    /// #     .start_paused(true)
    /// #     .build()?;
    /// # runtime.block_on(async {
    /// let shaper = Shaper::with_clock(Quota::per_second(4)?, TokioClock::new());
    /// let start = tokio::time::Instant::now();
    /// shaper.acquire(4).await?; // the burst, at once
    /// // The bucket drains one cell per 250 ms: two cells fit after 500 ms.
    /// shaper.acquire(2).await?;
    /// assert_eq!(start.elapsed(), Duration::from_millis(500));
    /// assert_eq!(shaper.acquire(5).await.unwrap_err().requested(), 5); // above the burst
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] at once if `n` exceeds the burst: it could never go.
    pub fn acquire(&self, n: u32) -> Acquire<'_, C> {
        Acquire {
            shaper: self,
            n,
            id: None,
            sleep: None,
        }
    }
}

/// The future of [`Shaper::acquire`]. Dropping it before it completes gives its place back.
///
/// Polling it again after it has returned `Ready` is not supported (as for futures in
/// general). It does not panic, but it starts over as a new `acquire(n)`: it takes `n`
/// more cells (or joins the back of the queue for them), while an
/// [`InsufficientCapacity`] error is returned again.
///
/// ```
/// use keel_core::TokioClock;
/// use keel_rate_limit::{Quota, Shaper};
/// use std::time::Duration;
///
/// # let runtime = tokio::runtime::Builder::new_current_thread()
/// # .enable_time()
/// # .start_paused(true)
/// # .build()?;
/// # runtime.block_on(async {
/// let shaper = Shaper::with_clock(Quota::per_second(1)?, TokioClock::new());
/// shaper.acquire(1).await?; // spends the burst
/// // A caller that gives up after 100 ms leaves the queue.
/// let gave_up = tokio::time::timeout(Duration::from_millis(100), shaper.acquire(1)).await;
/// assert!(gave_up.is_err());
/// assert_eq!(shaper.waiting(), 0);
/// // It took nothing: the next caller goes when the second is up, 900 ms later.
/// let start = tokio::time::Instant::now();
/// shaper.acquire(1).await?;
/// assert_eq!(start.elapsed(), Duration::from_millis(900));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, C: Clock> {
    shaper: &'a Shaper<C>,
    n: u32,
    id: Option<u64>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<C: Clock> Future for Acquire<'_, C> {
    type Output = Result<(), InsufficientCapacity>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let quota = this.shaper.quota;
        if this.n > quota.burst() {
            return Poll::Ready(Err(InsufficientCapacity::new(this.n, quota.burst())));
        }
        loop {
            let wait = {
                let mut state = this.shaper.state.lock();
                let now = this.shaper.clock.now().as_nanos();
                let id = match this.id {
                    Some(id) => id,
                    None => {
                        if state.queue.is_empty() && state.pour(&quota, now, this.n).is_ok() {
                            return Poll::Ready(Ok(()));
                        }
                        let id = state.next_id;
                        state.next_id += 1;
                        state.queue.push_back(Waiter {
                            id,
                            waker: cx.waker().clone(),
                        });
                        this.id = Some(id);
                        id
                    }
                };
                let head = state.queue.front().is_some_and(|w| w.id == id);
                if !head {
                    if let Some(me) = state.queue.iter_mut().find(|w| w.id == id) {
                        me.waker.clone_from(cx.waker());
                    }
                    return Poll::Pending;
                }
                match state.pour(&quota, now, this.n) {
                    Ok(()) => {
                        state.queue.pop_front();
                        this.id = None;
                        if let Some(next) = state.queue.front() {
                            next.waker.wake_by_ref();
                        }
                        return Poll::Ready(Ok(()));
                    }
                    Err(wait) => {
                        if let Some(me) = state.queue.front_mut() {
                            me.waker.clone_from(cx.waker());
                        }
                        wait
                    }
                }
            };
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_nanos(wait);
            match &mut this.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            if let Some(sleep) = &mut this.sleep
                && sleep.as_mut().poll(cx).is_pending()
            {
                return Poll::Pending;
            }
        }
    }
}

impl<C: Clock> Drop for Acquire<'_, C> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shaper.state.lock().remove(id);
        }
    }
}

impl<C: Clock> fmt::Debug for Shaper<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shaper")
            .field("quota", &self.quota)
            .field("waiting", &self.waiting())
            .field("clock", &self.clock)
            .finish()
    }
}

impl<C: Clock> fmt::Debug for Acquire<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("n", &self.n)
            .field("queued", &self.id.is_some())
            .finish_non_exhaustive()
    }
}
