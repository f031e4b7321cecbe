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
    pub fn new(quota: Quota) -> Shaper {
        Shaper::with_clock(quota, SystemClock)
    }
}

impl<C: Clock> Shaper<C> {
    /// A shaper reading time from `clock` (use [`keel_core::TokioClock`] with paused time in tests).
    pub fn with_clock(quota: Quota, clock: C) -> Shaper<C> {
        Shaper {
            quota,
            clock,
            state: Mutex::new(State::default()),
        }
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// How many callers are waiting.
    pub fn waiting(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Waits for `n` cells, in FIFO order behind earlier callers, and takes them.
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
