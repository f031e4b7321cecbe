//! The Snowflake generator: 64-bit IDs from a timestamp, a worker id and a sequence, with the
//! last issued timestamp and sequence in one atomic word.

use std::fmt;
use std::time::Duration;

use keel_core::sync::Mutex;
use keel_core::sync::atomic::{AtomicU64, Ordering};
use keel_core::{Clock, SystemClock};

use crate::{
    ClockBackwards, GenerateError, IdConfigError, IdGenerator, Layout, LeaseValidity, MarkStore,
    Parts, SequenceExhausted, StoreError, WorkerId,
};

/// A Snowflake generator: unique, increasing 64-bit IDs, shared across threads by `&self`.
///
/// An ID is `timestamp | worker | sequence` as its [`Layout`] says. The generator keeps the
/// last issued `(timestamp, sequence)` in one `AtomicU64` and moves it forward with a
/// compare-and-swap, so threads never block each other and every ID is larger than the one
/// before. When the clock steps back or a tick's sequence runs out it follows its
/// [`ClockBackwards`] and [`SequenceExhausted`] policies, and never issues a duplicate.
///
/// # Example
///
/// ```
/// use keel_idgen::{Layout, Snowflake};
///
/// let generator = Snowflake::builder(Layout::twitter(), 7).build()?;
/// let first = generator.next_id()?;
/// let second = generator.next_id()?;
/// assert!(second > first);
/// let parts = generator.decode(second);
/// assert_eq!(parts.worker, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Snowflake<C = SystemClock> {
    // One past the last issued `ticks << sequence_bits | sequence`: the smallest value not
    // yet issued. Starting at 0, the first tick's sequence 0 is issued too.
    state: AtomicU64,
    layout: Layout,
    worker: u64,
    clock: C,
    backwards: ClockBackwards,
    // How far, in ticks, issued timestamps may run ahead of the clock once it is behind the
    // last issued tick (a step back, borrowed within the policies' bounds)...
    lead_limit: u64,
    // ...and when it is not: only `SequenceExhausted::BorrowAhead` runs ahead then.
    ahead_limit: u64,
    // The longest a blocking call waits, in total.
    max_block: Duration,
    lease: Option<LeaseValidity>,
    mark: Option<Reservation>,
    /// `keel_idgen_clock_backwards_waits_total`, registered at build.
    #[cfg(feature = "metrics")]
    backwards_waits: metrics::Counter,
}

// A high-water mark reserved ahead: no ID is issued at a tick above `reserved`.
struct Reservation {
    store: Box<dyn MarkStore>,
    window_ticks: u64,
    reserved: AtomicU64,
    writing: Mutex<()>,
}

impl Snowflake<SystemClock> {
    /// A builder for a generator with `layout` and `worker` (a `u64`, or a [`WorkerId`] from
    /// a [`WorkerIdProvider`](crate::WorkerIdProvider)) on the system clock.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{Layout, Snowflake};
    ///
    /// let generator = Snowflake::builder(Layout::discord(), 17).build()?;
    /// assert_eq!(generator.worker(), 17);
    /// assert_eq!(generator.layout(), &Layout::discord());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(layout: Layout, worker: impl Into<WorkerId>) -> SnowflakeBuilder<SystemClock> {
        SnowflakeBuilder {
            layout,
            worker: worker.into(),
            clock: SystemClock,
            backwards: ClockBackwards::default(),
            exhausted: SequenceExhausted::default(),
            mark: None,
            #[cfg(feature = "metrics")]
            name: "default".to_owned(),
        }
    }
}

impl<C: Clock> Snowflake<C> {
    /// The next ID, waiting if the policies say so.
    ///
    /// Waits when the current tick's sequence is used up ([`SequenceExhausted::Wait`], at most
    /// one time unit) or the clock stepped back within [`ClockBackwards::Wait`]'s bound. The
    /// wait re-reads the clock, so a [`ManualClock`](keel_core::ManualClock) moved by another
    /// thread ends it, and gives up after the policy's bound (plus two time units) measured
    /// on the monotonic clock, or once it has slept that long in total if the clock does
    /// not move at all.
    ///
    /// # Errors
    ///
    /// [`GenerateError::ClockMovedBack`] if the clock is further behind than the policy
    /// accepts, [`GenerateError::WaitTimedOut`] if the wait outlasts its bound,
    /// [`GenerateError::BeforeEpoch`] or [`GenerateError::TimestampOverflow`] if the clock is
    /// outside the layout's range, [`GenerateError::LeaseExpired`] if the worker id's lease
    /// lapsed or was lost, [`GenerateError::LeaseNotYetValid`] if it was granted less than
    /// one TTL ago, and [`GenerateError::HighWaterMark`] if the mark could not be persisted.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::{GenerateError, Layout, Snowflake};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let generator = Snowflake::builder(Layout::twitter(), 2).clock(clock.clone()).build()?;
    /// let first = generator.next_id()?;
    /// let second = generator.next_id()?;
    /// assert_eq!(second, first + 1);
    /// // A step back of an hour is beyond the default one-second wait: an error at once.
    /// clock.step_wall_back(Duration::from_secs(3600));
    /// assert_eq!(
    ///     generator.next_id(),
    ///     Err(GenerateError::ClockMovedBack { behind: Duration::from_secs(3600) })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_id(&self) -> Result<u64, GenerateError> {
        let mut started = None;
        // Time spent asleep is a lower bound on real time, so a clock that does not move at
        // all (a ManualClock nobody advances) still cannot keep the caller forever.
        let mut slept = Duration::ZERO;
        loop {
            match self.try_next_id() {
                Err(GenerateError::WouldBlock { retry_after }) => {
                    let now = self.clock.now();
                    let waited = now - *started.get_or_insert(now);
                    if waited > self.max_block || slept > self.max_block {
                        return Err(GenerateError::WaitTimedOut {
                            waited: waited.max(slept),
                        });
                    }
                    // The next tick is close: nap briefly. Further off: nap a millisecond at
                    // a time, so a clock moved by a test is noticed quickly.
                    let nap = if retry_after > Duration::from_millis(1) {
                        Duration::from_millis(1)
                    } else {
                        Duration::from_micros(20)
                    };
                    std::thread::sleep(nap);
                    slept += nap;
                }
                other => return other,
            }
        }
    }

    /// The next ID if one can be issued now, without waiting.
    ///
    /// # Errors
    ///
    /// As [`next_id`](Snowflake::next_id), except that where it would wait this returns
    /// [`GenerateError::WouldBlock`] with how long until an ID can be issued.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::{GenerateError, Layout, Snowflake};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let generator = Snowflake::builder(Layout::twitter(), 2).clock(clock.clone()).build()?;
    /// let before = generator.try_next_id()?;
    /// // Within the default policy's one second, a step back asks the caller to wait it out.
    /// clock.step_wall_back(Duration::from_millis(30));
    /// assert_eq!(
    ///     generator.try_next_id(),
    ///     Err(GenerateError::WouldBlock { retry_after: Duration::from_millis(30) })
    /// );
    /// clock.step_wall_forward(Duration::from_millis(30));
    /// assert!(generator.try_next_id()? > before);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_next_id(&self) -> Result<u64, GenerateError> {
        // A lapsed lease fails at once, before any waiting...
        if let Some(lease) = &self.lease {
            lease.check()?;
        }
        let mut unix_millis = self.clock.unix_millis();
        let mut now_ticks = self.ticks(unix_millis)?;
        let shift = self.layout.sequence_bits();
        let mut floor = now_ticks << shift;
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let next = current.max(floor);
            let next_ticks = next >> shift;
            // `u64::MAX` itself is never issued: the state could not move past it.
            if next_ticks > self.layout.max_ticks() || next == u64::MAX {
                return Err(GenerateError::TimestampOverflow);
            }
            let lead = next_ticks - now_ticks;
            let last_ticks = current.saturating_sub(1) >> shift;
            let limit = if last_ticks > now_ticks {
                self.lead_limit
            } else {
                self.ahead_limit
            };
            if lead > limit {
                // The reading may be stale (this thread was preempted while others moved the
                // state on): judge with a fresh one before waiting or failing.
                let fresh = self.clock.unix_millis();
                if fresh > unix_millis {
                    unix_millis = fresh;
                    now_ticks = self.ticks(unix_millis)?;
                    floor = now_ticks << shift;
                    continue;
                }
                let excess = lead - limit;
                return Err(self.blocked(last_ticks, now_ticks, excess, unix_millis));
            }
            if let Some(mark) = &self.mark
                && next_ticks > mark.reserved.load(Ordering::Acquire)
            {
                self.reserve(mark, next_ticks)?;
                current = self.state.load(Ordering::Acquire);
                continue;
            }
            // ...and is checked again after the last clock reading, so a pause between the
            // first check and the reading cannot stamp an ID after the lease's deadline.
            if let Some(lease) = &self.lease {
                lease.check()?;
            }
            match self.state.compare_exchange_weak(
                current,
                next + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let sequence = next & self.layout.max_sequence();
                    return Ok(self
                        .layout
                        .compose_unchecked(next_ticks, self.worker, sequence));
                }
                Err(actual) => {
                    current = actual;
                    keel_core::sync::spin_loop();
                }
            }
        }
    }

    /// Splits an ID of this generator's layout into its fields.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::{Layout, Snowflake};
    ///
    /// let clock = ManualClock::new();
    /// let generator = Snowflake::builder(Layout::sonyflake(), 300).clock(clock.clone()).build()?;
    /// let parts = generator.decode(generator.next_id()?);
    /// assert_eq!(parts.worker, 300);
    /// // Sonyflake counts 10 ms units: the timestamp is the start of the current one.
    /// assert_eq!(parts.unix_millis, clock.unix_millis() / 10 * 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode(&self, id: u64) -> Parts {
        self.layout.decode(id)
    }

    /// The layout.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{Layout, Snowflake};
    ///
    /// let generator = Snowflake::builder(Layout::js_safe(), 1).build()?;
    /// assert_eq!(generator.layout().total_bits(), 53);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The worker id stamped into every ID.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{FixedWorkerId, Layout, Snowflake, WorkerIdProvider};
    ///
    /// let generator = Snowflake::builder(Layout::twitter(), FixedWorkerId::new(8).worker_id()?).build()?;
    /// assert_eq!(generator.worker(), 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn worker(&self) -> u64 {
        self.worker
    }

    /// The clock.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::{Layout, Snowflake};
    ///
    /// let generator = Snowflake::builder(Layout::twitter(), 1).clock(ManualClock::new()).build()?;
    /// let id = generator.next_id()?;
    /// assert_eq!(generator.decode(id).unix_millis, generator.clock().unix_millis());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }

    #[inline]
    fn ticks(&self, unix_millis: u64) -> Result<u64, GenerateError> {
        let epoch = self.layout.epoch_unix_millis();
        let since = unix_millis
            .checked_sub(epoch)
            .ok_or(GenerateError::BeforeEpoch { unix_millis, epoch })?;
        let unit = self.layout.unit_millis();
        let ticks = if unit == 1 { since } else { since / unit };
        if ticks > self.layout.max_ticks() {
            return Err(GenerateError::TimestampOverflow);
        }
        Ok(ticks)
    }

    // Why no ID can be issued now: the next ID would run `excess` ticks further ahead of the
    // clock than allowed.
    #[cold]
    fn blocked(
        &self,
        last_ticks: u64,
        now_ticks: u64,
        excess: u64,
        unix_millis: u64,
    ) -> GenerateError {
        let unit = self.layout.unit_millis();
        let behind = last_ticks.saturating_sub(now_ticks);
        // The clock must reach the start of tick `now_ticks + excess`.
        let target_ticks = now_ticks + excess;
        let target_millis = self
            .layout
            .epoch_unix_millis()
            .saturating_add(target_ticks.saturating_mul(unit));
        let retry_after = Duration::from_millis(target_millis.saturating_sub(unix_millis).max(1));
        if behind <= self.lead_limit {
            // The clock is behind no further than the policies borrow: the excess is this
            // generator's own pace, so wait for the clock to move on.
            return GenerateError::WouldBlock { retry_after };
        }
        let behind = Duration::from_millis(behind.saturating_mul(unit));
        match self.backwards {
            ClockBackwards::Wait { max } if behind <= max => {
                #[cfg(feature = "metrics")]
                self.backwards_waits.increment(1);
                GenerateError::WouldBlock { retry_after }
            }
            _ => GenerateError::ClockMovedBack { behind },
        }
    }

    #[cold]
    fn reserve(&self, mark: &Reservation, ticks: u64) -> Result<(), GenerateError> {
        let _writing = mark
            .writing
            .lock()
            .map_err(|_| GenerateError::HighWaterMark {
                source: StoreError::new(PanickedWriter),
            })?;
        if ticks <= mark.reserved.load(Ordering::Acquire) {
            return Ok(());
        }
        let reserved = ticks
            .saturating_add(mark.window_ticks)
            .min(self.layout.max_ticks());
        let unit = self.layout.unit_millis();
        // The mark is the first millisecond after the reserved ticks.
        let unix_millis = self
            .layout
            .epoch_unix_millis()
            .saturating_add(reserved.saturating_add(1).saturating_mul(unit));
        mark.store
            .store(unix_millis)
            .map_err(|source| GenerateError::HighWaterMark { source })?;
        mark.reserved.store(reserved, Ordering::Release);
        Ok(())
    }
}

impl<C: Clock> IdGenerator for Snowflake<C> {
    type Id = u64;

    fn next_id(&self) -> Result<u64, GenerateError> {
        self.next_id()
    }
}

impl<C: Clock> fmt::Debug for Snowflake<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snowflake")
            .field("layout", &self.layout)
            .field("worker", &self.worker)
            .field("clock", &self.clock)
            .field("backwards", &self.backwards)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

fn ticks_in(duration: Duration, layout: &Layout) -> u64 {
    u64::try_from(duration.as_millis() / u128::from(layout.unit_millis())).unwrap_or(u64::MAX)
}

/// Builds a [`Snowflake`]; see [`Snowflake::builder`].
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_idgen::{ClockBackwards, Layout, SequenceExhausted, Snowflake};
/// use std::time::Duration;
///
/// let generator = Snowflake::builder(Layout::twitter(), 1)
///     .clock(ManualClock::new())
///     .on_clock_backwards(ClockBackwards::Error)
///     .on_sequence_exhausted(SequenceExhausted::BorrowAhead { max: Duration::from_millis(5) })
///     .build()?;
/// assert_eq!(generator.worker(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SnowflakeBuilder<C = SystemClock> {
    layout: Layout,
    worker: WorkerId,
    clock: C,
    backwards: ClockBackwards,
    exhausted: SequenceExhausted,
    mark: Option<(Box<dyn MarkStore>, Duration)>,
    #[cfg(feature = "metrics")]
    name: String,
}

impl<C: Clock> SnowflakeBuilder<C> {
    /// Reads time from `clock` instead of the system clock.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::{Layout, Snowflake};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let generator = Snowflake::builder(Layout::twitter(), 1).clock(clock.clone()).build()?;
    /// let a = generator.decode(generator.next_id()?);
    /// clock.advance(Duration::from_millis(7));
    /// let b = generator.decode(generator.next_id()?);
    /// assert_eq!(b.unix_millis - a.unix_millis, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock<D: Clock>(self, clock: D) -> SnowflakeBuilder<D> {
        SnowflakeBuilder {
            layout: self.layout,
            worker: self.worker,
            clock,
            backwards: self.backwards,
            exhausted: self.exhausted,
            mark: self.mark,
            #[cfg(feature = "metrics")]
            name: self.name,
        }
    }

    /// Names the generator: the `name` label of its metrics (feature `metrics`), so several
    /// generators in one process are told apart. Defaults to `"default"`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{Layout, Snowflake};
    ///
    /// let generator = Snowflake::builder(Layout::twitter(), 1).name("orders").build()?;
    /// assert!(generator.next_id().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn name(mut self, name: impl Into<String>) -> SnowflakeBuilder<C> {
        self.name = name.into();
        self
    }

    /// What to do when the clock steps back (default: wait up to 1 s).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::{ClockBackwards, GenerateError, Layout, Snowflake};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let generator = Snowflake::builder(Layout::twitter(), 1)
    ///     .clock(clock.clone())
    ///     .on_clock_backwards(ClockBackwards::Error)
    ///     .build()?;
    /// generator.next_id()?;
    /// clock.step_wall_back(Duration::from_millis(1));
    /// assert_eq!(
    ///     generator.try_next_id(),
    ///     Err(GenerateError::ClockMovedBack { behind: Duration::from_millis(1) })
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_clock_backwards(mut self, policy: ClockBackwards) -> SnowflakeBuilder<C> {
        self.backwards = policy;
        self
    }

    /// What to do when a tick's sequence is used up (default: wait for the next tick).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::{Layout, SequenceExhausted, Snowflake};
    /// use std::time::Duration;
    ///
    /// // Two IDs per millisecond; borrowing one millisecond ahead serves a burst of four.
    /// let layout = Layout::builder().sequence_bits(1).build()?;
    /// let generator = Snowflake::builder(layout, 0)
    ///     .clock(ManualClock::new())
    ///     .on_sequence_exhausted(SequenceExhausted::BorrowAhead { max: Duration::from_millis(1) })
    ///     .build()?;
    /// let burst: Vec<u64> = (0..5).filter_map(|_| generator.try_next_id().ok()).collect();
    /// assert_eq!(burst.len(), 4);
    /// assert_eq!(generator.decode(burst[3]).ticks, generator.decode(burst[0]).ticks + 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_sequence_exhausted(mut self, policy: SequenceExhausted) -> SnowflakeBuilder<C> {
        self.exhausted = policy;
        self
    }

    /// Persists a high-water mark in `store`, reserving `window` ahead each time, so that a
    /// restarted generator never issues an ID at or before the last one issued, even if its
    /// clock is earlier.
    ///
    /// The store is written once per `window` of issued time. On
    /// [`build`](SnowflakeBuilder::build) the stored mark is loaded, and a restart with a
    /// correct clock finds it up to `window` ahead, which the [`ClockBackwards`] policy
    /// treats as a step back: [`Wait`](ClockBackwards::Wait) waits if `window` is within its
    /// `max` and fails with `ClockMovedBack` until the clock passes the mark otherwise, and
    /// [`Borrow`](ClockBackwards::Borrow) with `max` at least `window` issues at once, ahead
    /// of the clock. A longer window writes less often but keeps a restart waiting longer.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::{ClockBackwards, FileMark, GenerateError, Layout, Snowflake};
    /// use std::time::Duration;
    ///
    /// let dir = std::env::temp_dir().join(format!("keel-idgen-hwm-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("worker-7.mark");
    /// let clock = ManualClock::new();
    /// let build = || {
    ///     Snowflake::builder(Layout::twitter(), 7)
    ///         .clock(clock.clone())
    ///         .on_clock_backwards(ClockBackwards::Error)
    ///         .high_water_mark(FileMark::new(&path), Duration::from_secs(1))
    ///         .build()
    /// };
    /// let before = build()?.next_id()?;
    ///
    /// // The process restarts with its clock set 10 minutes back: it refuses rather than
    /// // reissue, until the clock is past the mark.
    /// clock.step_wall_back(Duration::from_secs(600));
    /// let restarted = build()?;
    /// assert!(matches!(restarted.next_id(), Err(GenerateError::ClockMovedBack { .. })));
    /// clock.step_wall_forward(Duration::from_secs(602));
    /// assert!(restarted.next_id()? > before);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn high_water_mark(
        mut self,
        store: impl MarkStore + 'static,
        window: Duration,
    ) -> SnowflakeBuilder<C> {
        self.mark = Some((Box::new(store), window));
        self
    }

    /// Validates the configuration and returns the generator.
    ///
    /// # Errors
    ///
    /// [`IdConfigError::WorkerTooLarge`] if the worker id does not fit the layout,
    /// [`IdConfigError::EpochInFuture`] or [`IdConfigError::LifetimeOver`] if the clock reads
    /// outside the layout's range, [`IdConfigError::Invalid`] for a high-water window shorter than one time unit, and
    /// [`IdConfigError::HighWaterMark`] if the stored mark cannot be read.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::{IdConfigError, Layout, Snowflake};
    ///
    /// assert!(Snowflake::builder(Layout::twitter(), 1_023).build().is_ok());
    /// assert_eq!(
    ///     Snowflake::builder(Layout::twitter(), 1_024).build().unwrap_err(),
    ///     IdConfigError::WorkerTooLarge { worker: 1_024, bits: 10 }
    /// );
    /// // A clock before the layout's epoch could never stamp an ID.
    /// let error = Snowflake::builder(Layout::twitter(), 1)
    ///     .clock(ManualClock::at_unix_millis(0))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(error, IdConfigError::EpochInFuture { epoch: 1_288_834_974_657, unix_millis: 0 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Snowflake<C>, IdConfigError> {
        let layout = self.layout;
        let worker = self.worker.id();
        if worker > layout.max_worker() {
            return Err(IdConfigError::WorkerTooLarge {
                worker,
                bits: layout.worker_bits(),
            });
        }
        // A clock outside the layout's range could never stamp an ID: say so now, not at
        // the first call.
        let unix_millis = self.clock.unix_millis();
        let epoch = layout.epoch_unix_millis();
        if unix_millis < epoch {
            return Err(IdConfigError::EpochInFuture { epoch, unix_millis });
        }
        if (unix_millis - epoch) / layout.unit_millis() > layout.max_ticks() {
            let ended = u128::from(layout.max_ticks()) + 1;
            let ended = u128::from(epoch) + ended * u128::from(layout.unit_millis());
            return Err(IdConfigError::LifetimeOver {
                ended: u64::try_from(ended).unwrap_or(u64::MAX),
                unix_millis,
            });
        }
        let borrow_back = match self.backwards {
            ClockBackwards::Borrow { max } => ticks_in(max, &layout),
            _ => 0,
        };
        let borrow_ahead = match self.exhausted {
            SequenceExhausted::BorrowAhead { max } => ticks_in(max, &layout),
            SequenceExhausted::Wait => 0,
        };
        let wait_back = match self.backwards {
            ClockBackwards::Wait { max } => max,
            _ => Duration::ZERO,
        };
        let unit = layout.time_unit();
        let borrowed = |ticks: u64| unit.saturating_mul(u32::try_from(ticks).unwrap_or(u32::MAX));
        let max_block = wait_back
            .max(borrowed(borrow_back.max(borrow_ahead)))
            .saturating_add(unit.saturating_mul(2));
        let mut state = 0;
        let mark = match self.mark {
            None => None,
            Some((store, window)) => {
                let window_ticks = ticks_in(window, &layout);
                if window_ticks == 0 {
                    return Err(IdConfigError::Invalid {
                        reason: "the high-water window must be at least one time unit",
                    });
                }
                let loaded = store
                    .load()
                    .map_err(|source| IdConfigError::HighWaterMark { source })?;
                let mut reserved = 0;
                if let Some(mark) = loaded {
                    // IDs may be issued only at ticks starting at or after the mark.
                    let since = mark.saturating_sub(layout.epoch_unix_millis());
                    let first_free = since.div_ceil(layout.unit_millis());
                    state = if first_free > layout.max_ticks() {
                        // A mark past the layout's lifetime leaves nothing to issue; the
                        // shift below would drop its high bits and start over at zero.
                        u64::MAX
                    } else {
                        first_free << layout.sequence_bits()
                    };
                    reserved = first_free.saturating_sub(1);
                }
                Some(Reservation {
                    store,
                    window_ticks,
                    reserved: AtomicU64::new(reserved),
                    writing: Mutex::new(()),
                })
            }
        };
        Ok(Snowflake {
            state: AtomicU64::new(state),
            layout,
            worker,
            clock: self.clock,
            backwards: self.backwards,
            lead_limit: borrow_back.max(borrow_ahead),
            ahead_limit: borrow_ahead,
            max_block,
            lease: self.worker.lease().cloned(),
            mark,
            #[cfg(feature = "metrics")]
            backwards_waits: metrics::counter!(
                "keel_idgen_clock_backwards_waits_total",
                "name" => self.name,
            ),
        })
    }
}

impl<C: fmt::Debug> fmt::Debug for SnowflakeBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnowflakeBuilder")
            .field("layout", &self.layout)
            .field("worker", &self.worker)
            .field("clock", &self.clock)
            .field("backwards", &self.backwards)
            .field("exhausted", &self.exhausted)
            .finish_non_exhaustive()
    }
}

/// A thread panicked while it held the mark's writing lock, so whether the mark was
/// persisted is unknown.
#[derive(Debug)]
struct PanickedWriter;

impl fmt::Display for PanickedWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a thread panicked while persisting the mark")
    }
}

impl std::error::Error for PanickedWriter {}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::ManualClock;

    fn generator(clock: &ManualClock) -> Snowflake<ManualClock> {
        Snowflake::builder(Layout::twitter(), 5)
            .clock(clock.clone())
            .build()
            .expect("valid")
    }

    #[test]
    fn ids_carry_the_clock_worker_and_sequence() {
        let clock = ManualClock::new();
        let generator = generator(&clock);
        let a = generator.decode(generator.next_id().expect("id"));
        let b = generator.decode(generator.next_id().expect("id"));
        assert_eq!(a.unix_millis, clock.unix_millis());
        assert_eq!((a.worker, a.sequence), (5, 0));
        assert_eq!((b.ticks, b.sequence), (a.ticks, 1));
        clock.advance(Duration::from_millis(3));
        let c = generator.decode(generator.next_id().expect("id"));
        assert_eq!((c.ticks, c.sequence), (a.ticks + 3, 0));
    }

    #[test]
    fn worker_must_fit() {
        let error = Snowflake::builder(Layout::twitter(), 1200)
            .build()
            .unwrap_err();
        assert_eq!(error.to_string(), "worker id 1200 does not fit in 10 bits");
    }

    #[test]
    fn exhausted_tick_says_how_long_to_wait() {
        let clock = ManualClock::new();
        let layout = Layout::builder().sequence_bits(2).build().expect("layout");
        let generator = Snowflake::builder(layout, 0)
            .clock(clock.clone())
            .build()
            .expect("valid");
        for _ in 0..4 {
            generator.try_next_id().expect("id");
        }
        assert_eq!(
            generator.try_next_id(),
            Err(GenerateError::WouldBlock {
                retry_after: Duration::from_millis(1)
            })
        );
        clock.advance(Duration::from_millis(1));
        assert!(generator.try_next_id().is_ok());
    }

    #[test]
    fn a_clock_before_the_epoch_or_past_the_lifetime_is_refused_at_build() {
        let error = Snowflake::builder(Layout::twitter(), 0)
            .clock(ManualClock::at_unix_millis(1_000))
            .build()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the layout's epoch 1288834974657 is after the clock's time 1000 (ms since 1970)"
        );
        let tiny = Layout::builder()
            .timestamp_bits(4)
            .epoch_unix_millis(0)
            .build()
            .expect("layout");
        let error = Snowflake::builder(tiny, 0)
            .clock(ManualClock::at_unix_millis(16))
            .build()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the layout's timestamps ran out at 16 ms since 1970; the clock reads 16"
        );
        // The last tick is still usable.
        assert!(
            Snowflake::builder(tiny, 0)
                .clock(ManualClock::at_unix_millis(15))
                .build()
                .is_ok()
        );
    }

    #[test]
    fn before_epoch_and_after_the_lifetime_are_errors() {
        let clock = ManualClock::new();
        let generator = generator(&clock);
        clock.set_unix_millis(1_000);
        assert!(matches!(
            generator.next_id(),
            Err(GenerateError::BeforeEpoch {
                unix_millis: 1_000,
                ..
            })
        ));
        let tiny = Layout::builder()
            .timestamp_bits(4)
            .epoch_unix_millis(0)
            .build()
            .expect("layout");
        let clock = ManualClock::at_unix_millis(15);
        let generator = Snowflake::builder(tiny, 0)
            .clock(clock.clone())
            .build()
            .expect("valid");
        clock.advance(Duration::from_millis(1));
        assert_eq!(generator.next_id(), Err(GenerateError::TimestampOverflow));
    }
}
