//! `Bulkhead`: a cap on concurrent calls, so one slow dependency cannot take every thread.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keel_core::sync::atomic::{AtomicUsize, Ordering};

/// A call the bulkhead turned away because every slot was taken.
///
/// ```
/// use keel_breaker::Bulkhead;
///
/// let bulkhead = Bulkhead::new(1)?;
/// let _held = bulkhead.try_acquire()?;
/// let full = bulkhead.call(|| "never runs").unwrap_err();
/// assert_eq!(full.max_concurrent(), 1);
/// assert_eq!(full.to_string(), "bulkhead full: all 1 concurrent slots are taken");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BulkheadFull {
    max_concurrent: usize,
    waited: Option<Duration>,
    no_runtime: bool,
}

impl BulkheadFull {
    #[cfg(feature = "tower")]
    pub(crate) fn unready(max_concurrent: usize) -> BulkheadFull {
        BulkheadFull {
            max_concurrent,
            waited: None,
            no_runtime: false,
        }
    }

    /// The bulkhead's limit.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::new(3)?;
    /// let _held: Vec<_> = (0..3).map(|_| bulkhead.try_acquire()).collect::<Result<_, _>>()?;
    /// assert_eq!(bulkhead.try_acquire().unwrap_err().max_concurrent(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// How long the call waited for a slot before giving up, if it waited.
    ///
    /// With the `tokio` feature, a full `Bulkhead::acquire` reports its `max_wait` here.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::new(1)?; // never waits
    /// let _held = bulkhead.try_acquire()?;
    /// assert_eq!(bulkhead.try_acquire().unwrap_err().waited(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn waited(&self) -> Option<Duration> {
        self.waited
    }

    /// Whether the call would have waited for a slot but could not: with the `tokio`
    /// feature, a full `Bulkhead::acquire` with a `max_wait` polled outside a tokio runtime
    /// fails at once, without waiting, rather than panic.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    /// use std::time::Duration;
    ///
    /// let bulkhead = Bulkhead::with_max_wait(1, Duration::from_millis(100))?;
    /// let _held = bulkhead.try_acquire()?;
    /// assert!(!bulkhead.try_acquire().unwrap_err().no_runtime()); // never meant to wait
    /// # #[cfg(feature = "tokio")] {
    /// use std::future::Future;
    /// use std::task::{Context, Poll, Waker};
    ///
    /// let acquire = std::pin::pin!(bulkhead.acquire()); // polled by hand: no runtime
    /// let Poll::Ready(Err(full)) = acquire.poll(&mut Context::from_waker(Waker::noop())) else {
    ///     panic!("fails at once");
    /// };
    /// assert!(full.no_runtime());
    /// assert_eq!(full.waited(), None);
    /// assert_eq!(
    ///     full.to_string(),
    ///     "bulkhead full: all 1 concurrent slots are taken (no tokio runtime to wait for one)"
    /// );
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn no_runtime(&self) -> bool {
        self.no_runtime
    }
}

impl fmt::Display for BulkheadFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bulkhead full: all {} concurrent slots are taken",
            self.max_concurrent
        )?;
        if let Some(waited) = self.waited {
            write!(f, " (waited {waited:?})")?;
        }
        if self.no_runtime {
            f.write_str(" (no tokio runtime to wait for one)")?;
        }
        Ok(())
    }
}

impl std::error::Error for BulkheadFull {}

/// A limit on concurrent calls: a call takes a slot or is rejected, and with the `tokio`
/// feature it may wait up to `max_wait` for one.
///
/// Taking and returning a slot is one CAS and one `fetch_sub`; the wait uses a
/// `tokio::sync::Notify` that a returning slot pokes only when someone waits.
///
/// ```
/// use keel_breaker::Bulkhead;
///
/// let bulkhead = Bulkhead::new(2)?;
/// let a = bulkhead.try_acquire()?;
/// let _b = bulkhead.try_acquire()?;
/// let full = bulkhead.try_acquire().unwrap_err();
/// assert_eq!(full.to_string(), "bulkhead full: all 2 concurrent slots are taken");
/// drop(a);
/// assert!(bulkhead.try_acquire().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Bulkhead {
    max_concurrent: usize,
    max_wait: Duration,
    in_use: AtomicUsize,
    #[cfg(feature = "tokio")]
    waiters: AtomicUsize,
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify,
    /// Callers waiting for a slot, as `keel_breaker_bulkhead_queue_depth`.
    #[cfg(all(feature = "metrics", feature = "tokio"))]
    queue_depth: metrics::Gauge,
}

impl Bulkhead {
    /// A bulkhead of `max_concurrent` slots that never waits.
    ///
    /// # Errors
    ///
    /// [`BreakerConfigError::Zero`](crate::BreakerConfigError::Zero) if `max_concurrent` is 0.
    ///
    /// ```
    /// use keel_breaker::{Bulkhead, BreakerConfigError};
    ///
    /// let bulkhead = Bulkhead::new(8)?;
    /// assert_eq!((bulkhead.in_use(), bulkhead.max_concurrent()), (0, 8));
    /// assert!(matches!(Bulkhead::new(0), Err(BreakerConfigError::Zero { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(max_concurrent: usize) -> Result<Bulkhead, crate::BreakerConfigError> {
        Bulkhead::with_max_wait(max_concurrent, Duration::ZERO)
    }

    /// A bulkhead of `max_concurrent` slots whose `acquire` (feature
    /// `tokio`) waits up to `max_wait` for a slot.
    ///
    /// # Errors
    ///
    /// [`BreakerConfigError::Zero`](crate::BreakerConfigError::Zero) if `max_concurrent` is 0.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    /// use std::time::Duration;
    ///
    /// let bulkhead = Bulkhead::with_max_wait(1, Duration::from_millis(100))?;
    /// let _held = bulkhead.try_acquire()?;
    /// // `try_acquire` and `call` never wait; only the async `acquire` (feature `tokio`) does.
    /// assert_eq!(bulkhead.try_acquire().unwrap_err().waited(), None);
    /// assert!(bulkhead.call(|| "no slot").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_max_wait(
        max_concurrent: usize,
        max_wait: Duration,
    ) -> Result<Bulkhead, crate::BreakerConfigError> {
        if max_concurrent == 0 {
            return Err(crate::BreakerConfigError::Zero {
                setting: "bulkhead max concurrent calls",
            });
        }
        Ok(Bulkhead {
            max_concurrent,
            max_wait,
            in_use: AtomicUsize::new(0),
            #[cfg(feature = "tokio")]
            waiters: AtomicUsize::new(0),
            #[cfg(feature = "tokio")]
            notify: tokio::sync::Notify::new(),
            #[cfg(all(feature = "metrics", feature = "tokio"))]
            queue_depth: queue_depth_gauge("default"),
        })
    }

    /// Names the bulkhead: the `name` label of its `keel_breaker_bulkhead_queue_depth` gauge
    /// (features `metrics` and `tokio`: only `acquire` waits). Without a name the label is
    /// `"default"`.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    /// use std::time::Duration;
    ///
    /// let bulkhead = Bulkhead::with_max_wait(4, Duration::from_millis(10))?.with_name("db");
    /// assert_eq!(bulkhead.max_concurrent(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(all(feature = "metrics", feature = "tokio"))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "metrics", feature = "tokio"))))]
    pub fn with_name(mut self, name: &str) -> Self {
        self.queue_depth = queue_depth_gauge(name);
        self
    }

    /// Slots taken now.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::new(4)?;
    /// let a = bulkhead.try_acquire()?;
    /// let _b = bulkhead.try_acquire()?;
    /// assert_eq!(bulkhead.in_use(), 2);
    /// drop(a);
    /// assert_eq!(bulkhead.in_use(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    /// The limit.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::new(16)?;
    /// assert_eq!(bulkhead.max_concurrent(), 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    fn take(&self) -> bool {
        let mut current = self.in_use.load(Ordering::Acquire);
        loop {
            if current >= self.max_concurrent {
                return false;
            }
            match self.in_use.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => {
                    current = actual;
                    keel_core::sync::spin_loop();
                }
            }
        }
    }

    fn give_back(&self) {
        // SeqCst pairs with the waiter's SeqCst increment of `waiters`: either the waiter
        // sees the free slot on its retry, or this sees the waiter and wakes it.
        self.in_use.fetch_sub(1, Ordering::SeqCst);
        #[cfg(feature = "tokio")]
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.notify.notify_one();
        }
    }

    fn full(&self, waited: Option<Duration>) -> BulkheadFull {
        BulkheadFull {
            max_concurrent: self.max_concurrent,
            waited,
            no_runtime: false,
        }
    }

    /// Takes a slot without waiting.
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] when every slot is taken.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::new(1)?;
    /// let permit = bulkhead.try_acquire()?;
    /// assert!(bulkhead.try_acquire().is_err());
    /// drop(permit);
    /// assert!(bulkhead.try_acquire().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit<'_>, BulkheadFull> {
        if self.take() {
            Ok(BulkheadPermit { bulkhead: self })
        } else {
            Err(self.full(None))
        }
    }

    /// Takes a slot without waiting; the permit holds the bulkhead by `Arc`.
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] when every slot is taken.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    /// use std::sync::Arc;
    ///
    /// let bulkhead = Arc::new(Bulkhead::new(2)?);
    /// let permit = bulkhead.try_acquire_owned()?;
    /// let worker = std::thread::spawn(move || {
    ///     let _slot = permit; // held for the life of the thread
    ///     "done"
    /// });
    /// assert_eq!(worker.join().unwrap(), "done");
    /// assert_eq!(bulkhead.in_use(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedBulkheadPermit, BulkheadFull> {
        if self.take() {
            Ok(OwnedBulkheadPermit {
                bulkhead: self.clone(),
            })
        } else {
            Err(self.full(None))
        }
    }

    /// Runs `call` in a slot.
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] without running `call` when every slot is taken.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    ///
    /// let bulkhead = Bulkhead::new(1)?;
    /// assert_eq!(bulkhead.call(|| 2 + 2)?, 4);
    /// let nested = bulkhead.call(|| bulkhead.call(|| "inner"))?;
    /// assert!(nested.is_err()); // the outer call holds the only slot
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call<T>(&self, call: impl FnOnce() -> T) -> Result<T, BulkheadFull> {
        let _permit = self.try_acquire()?;
        Ok(call())
    }
}

#[cfg(feature = "tokio")]
impl Bulkhead {
    /// Takes a slot, waiting up to the bulkhead's `max_wait` for one (on tokio's timer).
    ///
    /// A slot that is free is taken anywhere. Outside a tokio runtime, a full bulkhead with
    /// a finite `max_wait` fails at once, with [`BulkheadFull::no_runtime`], as it has no
    /// timer to bound the wait (a `max_wait` of `Duration::MAX` waits without one). Inside
    /// a runtime built without timers (no `enable_time`), tokio panics on the wait.
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] if no slot came free in time, or it could not wait.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bulkhead = Bulkhead::with_max_wait(1, Duration::from_millis(50))?;
    /// let held = bulkhead.acquire().await?;
    /// let full = bulkhead.acquire().await.unwrap_err();
    /// assert_eq!(full.waited(), Some(Duration::from_millis(50)));
    /// drop(held);
    /// assert!(bulkhead.acquire().await.is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub async fn acquire(&self) -> Result<BulkheadPermit<'_>, BulkheadFull> {
        if self.take() {
            return Ok(BulkheadPermit { bulkhead: self });
        }
        self.wait().await?;
        Ok(BulkheadPermit { bulkhead: self })
    }

    /// [`acquire`](Bulkhead::acquire) with a permit that holds the bulkhead by `Arc`; like
    /// it, fails at once rather than wait outside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] if no slot came free in time, or it could not wait.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bulkhead = Arc::new(Bulkhead::with_max_wait(1, Duration::from_secs(1))?);
    /// let held = bulkhead.acquire_owned().await?;
    /// let task = tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_millis(300)).await;
    ///     drop(held); // frees the slot while the caller below waits
    /// });
    /// let permit = bulkhead.acquire_owned().await?;
    /// assert_eq!(bulkhead.in_use(), 1);
    /// # drop(permit);
    /// task.await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub async fn acquire_owned(self: &Arc<Self>) -> Result<OwnedBulkheadPermit, BulkheadFull> {
        if !self.take() {
            self.wait().await?;
        }
        Ok(OwnedBulkheadPermit {
            bulkhead: self.clone(),
        })
    }

    /// Awaits `call` in a slot, waiting up to `max_wait` for one (outside a tokio runtime,
    /// not at all: see [`acquire`](Bulkhead::acquire)). Dropping the returned future gives
    /// the slot back.
    ///
    /// # Errors
    ///
    /// [`BulkheadFull`] without polling `call` if no slot came free in time, or it could not
    /// wait.
    ///
    /// ```
    /// use keel_breaker::Bulkhead;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let bulkhead = Bulkhead::with_max_wait(1, Duration::from_millis(10))?;
    /// assert_eq!(bulkhead.call_async(async { "ok" }).await?, "ok");
    /// let _held = bulkhead.try_acquire()?;
    /// let full = bulkhead.call_async(async { "never polled" }).await.unwrap_err();
    /// assert_eq!(full.waited(), Some(Duration::from_millis(10)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub async fn call_async<F: std::future::Future>(
        &self,
        call: F,
    ) -> Result<F::Output, BulkheadFull> {
        let _permit = self.acquire().await?;
        Ok(call.await)
    }

    /// Waits for a slot and takes it.
    async fn wait(&self) -> Result<(), BulkheadFull> {
        if self.max_wait.is_zero() {
            return Err(self.full(None));
        }
        let started = tokio::time::Instant::now();
        // `None` for a wait past the end of time (`Duration::MAX`): wait without a deadline
        // rather than overflow the instant.
        let deadline = started.checked_add(self.max_wait);
        // A deadline needs tokio's timer, which panics outside a runtime.
        if deadline.is_some() && !crate::has_runtime() {
            return Err(BulkheadFull {
                no_runtime: true,
                ..self.full(None)
            });
        }
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.waiters.fetch_add(1, Ordering::SeqCst);
            #[cfg(feature = "metrics")]
            self.queue_depth.increment(1.0);
            let taken = self.take();
            let timed_out = !taken
                && match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, notified).await.is_err(),
                    None => {
                        notified.await;
                        false
                    }
                };
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            #[cfg(feature = "metrics")]
            self.queue_depth.decrement(1.0);
            if taken || self.take() {
                return Ok(());
            }
            if timed_out {
                // It timed out at its deadline, so it waited exactly `max_wait`.
                return Err(self.full(Some(self.max_wait)));
            }
        }
    }
}

#[cfg(all(feature = "metrics", feature = "tokio"))]
fn queue_depth_gauge(name: &str) -> metrics::Gauge {
    metrics::gauge!("keel_breaker_bulkhead_queue_depth", "name" => name.to_owned())
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("max_concurrent", &self.max_concurrent)
            .field("max_wait", &self.max_wait)
            .field("in_use", &self.in_use())
            .finish()
    }
}

/// A slot in a [`Bulkhead`], given back on drop.
///
/// ```
/// use keel_breaker::Bulkhead;
///
/// let bulkhead = Bulkhead::new(2)?;
/// {
///     let _permit = bulkhead.try_acquire()?;
///     assert_eq!(bulkhead.in_use(), 1);
/// }
/// assert_eq!(bulkhead.in_use(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the slot is given back when the permit is dropped"]
pub struct BulkheadPermit<'a> {
    bulkhead: &'a Bulkhead,
}

impl Drop for BulkheadPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.give_back();
    }
}

impl fmt::Debug for BulkheadPermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadPermit").finish_non_exhaustive()
    }
}

/// A slot in a [`Bulkhead`] held by `Arc`, given back on drop.
///
/// ```
/// use keel_breaker::{Bulkhead, OwnedBulkheadPermit};
/// use std::sync::Arc;
///
/// let bulkhead = Arc::new(Bulkhead::new(2)?);
/// let permits: Vec<OwnedBulkheadPermit> = vec![bulkhead.try_acquire_owned()?];
/// assert_eq!(bulkhead.in_use(), 1);
/// drop(permits);
/// assert_eq!(bulkhead.in_use(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the slot is given back when the permit is dropped"]
pub struct OwnedBulkheadPermit {
    bulkhead: Arc<Bulkhead>,
}

impl Drop for OwnedBulkheadPermit {
    fn drop(&mut self) {
        self.bulkhead.give_back();
    }
}

impl fmt::Debug for OwnedBulkheadPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedBulkheadPermit")
            .finish_non_exhaustive()
    }
}
