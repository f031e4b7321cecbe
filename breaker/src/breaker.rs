//! `CircuitBreaker`: the state machine, its permits and its guarded calls.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use keel_core::sync::Mutex;
use keel_core::sync::atomic::{AtomicU64, Ordering};
use keel_core::{Clock, Instant, SystemClock};

use crate::config::Config;
use crate::state::Word;
use crate::window::{CountWindow, Counts, FAILED, SLOW, TimeWindow};
use crate::{
    CallError, CircuitBreakerBuilder, Metrics, Reason, Rejected, State, Transition, Window,
};

/// Buckets from this length on (100 ms) are placed with `Clock::recent`: the system clock's
/// recent reading trails by about 1 ms, 1% of such a bucket.
const COARSE_BUCKET_NANOS: u128 = 100_000_000;

enum Windowed {
    Count(CountWindow),
    Time(TimeWindow),
}

/// What kind of call a permit admitted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Closed,
    Probe,
    Disabled,
}

/// The breaker-side half of a permit: what it needs to record the call's outcome.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Ticket {
    pub(crate) word: Word,
    pub(crate) kind: Kind,
    pub(crate) start: Instant,
}

/// A circuit breaker: it lets calls through while the dependency behind it is healthy and
/// rejects them, without calling, once it is not.
///
/// See the [crate docs](crate) for the state machine and its costs. Build one with
/// [`CircuitBreaker::builder`]; share it by reference or in an `Arc`.
///
/// # Example
///
/// ```
/// use keel_breaker::{CallError, CircuitBreaker, OpenWait, State};
/// use keel_core::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let breaker = CircuitBreaker::builder()
///     .consecutive_failures(3)
///     .open_wait(OpenWait::Fixed(Duration::from_secs(10)))
///     .half_open_probes(1)
///     .clock(clock.clone())
///     .build()?;
///
/// for _ in 0..3 {
///     let _ = breaker.call(|| Err::<(), _>("connection refused"));
/// }
/// assert_eq!(breaker.state(), State::Open);
/// assert!(matches!(breaker.call(|| Ok::<_, ()>(1)), Err(CallError::Rejected(_))));
///
/// clock.advance(Duration::from_secs(10));
/// assert_eq!(breaker.call(|| Ok::<_, ()>(1)), Ok(1)); // the probe succeeds
/// assert_eq!(breaker.state(), State::Closed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CircuitBreaker<C = SystemClock> {
    word: AtomicU64,
    /// Failures in a row: the generation that counts them (high 32 bits) and the count
    /// (low 32), so an outcome from an older generation cannot add to a newer run.
    consecutive: AtomicU64,
    open_until: AtomicU64,
    last_probe_at: AtomicU64,
    rejected: AtomicU64,
    trips: AtomicU64,
    window: Windowed,
    /// Serializes state changes; holds the number of trips since the breaker last closed.
    transitions: Mutex<u32>,
    timed: bool,
    /// Whether the time window places calls with `Clock::recent` (a load) rather than
    /// `now` (a counter read): no slow-call timing, and buckets long enough that a reading a
    /// millisecond or so behind changes nothing that matters.
    coarse: bool,
    /// Whether a rate condition reads the window; without one, calls skip it entirely.
    rates: bool,
    slow_threshold: Option<Duration>,
    #[cfg(feature = "metrics")]
    emitter: crate::emit::Emitter,
    config: Config,
    clock: C,
}

impl CircuitBreaker<SystemClock> {
    /// A builder with the defaults listed on [`CircuitBreakerBuilder`].
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(5).build()?;
    /// assert_eq!(breaker.state(), State::Closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> CircuitBreakerBuilder<SystemClock> {
        CircuitBreakerBuilder::new()
    }
}

impl<C: Clock> CircuitBreaker<C> {
    pub(crate) fn from_config(mut config: Config, clock: C) -> CircuitBreaker<C> {
        if let Window::Count(size) = config.window {
            // A minimum above the window could never be reached.
            config.minimum_calls = config.minimum_calls.min(size);
        }
        let slow_threshold = config.slow_call.map(|(_, threshold)| threshold);
        let mut coarse = false;
        let window = match config.window {
            Window::Count(n) => Windowed::Count(CountWindow::new(n)),
            Window::Time { length, buckets } => {
                let bucket_nanos = (length.as_nanos() / u128::from(buckets)).max(1);
                coarse = slow_threshold.is_none() && bucket_nanos >= COARSE_BUCKET_NANOS;
                Windowed::Time(TimeWindow::new(
                    buckets,
                    u64::try_from(bucket_nanos).unwrap_or(u64::MAX),
                    config.minimum_calls,
                ))
            }
        };
        CircuitBreaker {
            word: AtomicU64::new(Word::new(State::Closed, 0).0),
            consecutive: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            last_probe_at: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            trips: AtomicU64::new(0),
            timed: slow_threshold.is_some()
                || (config.failure_rate.is_some() && matches!(window, Windowed::Time(_))),
            rates: config.failure_rate.is_some() || slow_threshold.is_some(),
            coarse,
            window,
            transitions: Mutex::new(0),
            slow_threshold,
            #[cfg(feature = "metrics")]
            emitter: crate::emit::Emitter::new(config.name.clone(), State::Closed),
            config,
            clock,
        }
    }

    /// The name given with [`CircuitBreakerBuilder::name`](crate::CircuitBreakerBuilder::name),
    /// the `name` label of its metrics; `"default"` if none was.
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    ///
    /// assert_eq!(CircuitBreaker::builder().build()?.name(), "default");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The current state.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(1).build()?;
    /// assert_eq!(breaker.state(), State::Closed);
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state(&self) -> State {
        Word(self.word.load(Ordering::Acquire)).state()
    }

    /// The clock the breaker reads.
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    /// use keel_core::{Clock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder().clock(clock.clone()).build()?;
    /// let before = breaker.clock().now();
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(breaker.clock().now() - before, Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Asks to make one call. On `Ok`, make the call and report its outcome with
    /// [`Permit::success`] or [`Permit::failure`]; a permit dropped without either gives its
    /// slot back and counts as nothing (the call was cancelled).
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the breaker is open, forced open, or half-open with every probe
    /// slot taken.
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// let permit = breaker.try_acquire()?;
    /// // ... make the call ...
    /// permit.success();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, Rejected> {
        let ticket = self.acquire_ticket()?;
        Ok(Permit {
            breaker: self,
            ticket,
        })
    }

    /// Runs `call` if the breaker admits it; an `Err` counts as a failure.
    ///
    /// A panic in `call` releases the permit without counting the call.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] without running `call`, or [`CallError::Inner`] with its error.
    ///
    /// ```
    /// use keel_breaker::{CallError, CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(2).build()?;
    /// assert_eq!(breaker.call(|| Ok::<_, &str>(42)), Ok(42));
    /// assert_eq!(breaker.call(|| Err::<u32, _>("refused")), Err(CallError::Inner("refused")));
    /// let _ = breaker.call(|| Err::<u32, _>("refused"));
    /// assert_eq!(breaker.state(), State::Open);
    /// let mut ran = false;
    /// let rejected = breaker.call(|| { ran = true; Ok::<_, &str>(1) });
    /// assert!(rejected.unwrap_err().is_rejected());
    /// assert!(!ran, "an open breaker does not run the call");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn call<T, E>(&self, call: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_with(call, Result::is_err)
    }

    /// Runs `call` if the breaker admits it; `is_failure` decides whether its result counts
    /// as a failure, so a `404` or a validation error need not trip the breaker.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] without running `call`, or [`CallError::Inner`] with its error.
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(1).build()?;
    /// let not_found = breaker.call_with(|| Err::<(), u16>(404), |result| {
    ///     matches!(result, Err(status) if *status >= 500)
    /// });
    /// assert!(not_found.is_err());
    /// assert_eq!(breaker.metrics().failed, 0); // a 404 is not the dependency's fault
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn call_with<T, E>(
        &self,
        call: impl FnOnce() -> Result<T, E>,
        is_failure: impl FnOnce(&Result<T, E>) -> bool,
    ) -> Result<T, CallError<E>> {
        let permit = self.try_acquire()?;
        let result = call();
        permit.record(is_failure(&result));
        result.map_err(CallError::Inner)
    }

    /// Awaits `call` if the breaker admits it; an `Err` counts as a failure. Dropping the
    /// returned future before it completes releases the permit without counting the call.
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] without polling `call`, or [`CallError::Inner`] with its error.
    ///
    /// ```
    /// use keel_breaker::{CallError, CircuitBreaker, State};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let breaker = CircuitBreaker::builder().consecutive_failures(1).build()?;
    /// assert_eq!(breaker.call_async(async { Ok::<_, &str>("pong") }).await, Ok("pong"));
    /// let failed = breaker.call_async(async { Err::<&str, _>("timeout") }).await;
    /// assert_eq!(failed, Err(CallError::Inner("timeout")));
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub async fn call_async<T, E, F>(&self, call: F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.call_async_with(call, Result::is_err).await
    }

    /// [`call_async`](Self::call_async) with a failure predicate, as in
    /// [`call_with`](Self::call_with).
    ///
    /// # Errors
    ///
    /// [`CallError::Rejected`] without polling `call`, or [`CallError::Inner`] with its error.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let breaker = CircuitBreaker::builder().consecutive_failures(1).build()?;
    /// let server_error = |result: &Result<(), u16>| matches!(result, Err(status) if *status >= 500);
    /// let _ = breaker.call_async_with(async { Err(404) }, server_error).await;
    /// assert_eq!(breaker.state(), State::Closed); // a 404 is the caller's problem
    /// let _ = breaker.call_async_with(async { Err(503) }, server_error).await;
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }
    /// ```
    pub async fn call_async_with<T, E, F>(
        &self,
        call: F,
        is_failure: impl FnOnce(&Result<T, E>) -> bool,
    ) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire()?;
        let result = call.await;
        permit.record(is_failure(&result));
        result.map_err(CallError::Inner)
    }

    /// Opens the breaker until [`reset`](Self::reset), whatever the calls do.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// breaker.force_open();
    /// assert_eq!(breaker.state(), State::ForcedOpen);
    /// let rejected = breaker.try_acquire().unwrap_err();
    /// assert_eq!(rejected.state(), State::ForcedOpen);
    /// assert_eq!(rejected.retry_after(), None); // no timer: it waits for an operator
    /// breaker.reset();
    /// assert!(breaker.try_acquire().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn force_open(&self) {
        self.transition(
            None,
            State::ForcedOpen,
            Reason::Operator,
            self.clock.now(),
            0,
        );
    }

    /// Lets every call through and counts nothing until [`reset`](Self::reset).
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(1).build()?;
    /// breaker.disable();
    /// for _ in 0..10 {
    ///     let _ = breaker.call(|| Err::<(), _>("refused"));
    /// }
    /// assert_eq!(breaker.state(), State::Disabled);
    /// assert_eq!(breaker.metrics().consecutive_failures, 0); // nothing was counted
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn disable(&self) {
        self.transition(None, State::Disabled, Reason::Operator, self.clock.now(), 0);
    }

    /// Closes the breaker and empties its window, from any state.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().failure_rate(50.0).minimum_calls(2).build()?;
    /// let _ = breaker.call(|| Ok::<_, ()>(()));
    /// let _ = breaker.call(|| Err::<(), _>(()));
    /// assert_eq!(breaker.state(), State::Open);
    /// breaker.reset();
    /// assert_eq!(breaker.state(), State::Closed);
    /// assert_eq!(breaker.metrics().calls, 0); // the window starts empty
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset(&self) {
        self.transition(None, State::Closed, Reason::Operator, self.clock.now(), 0);
    }

    /// A snapshot of the breaker's state and counts.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().failure_rate(50.0).minimum_calls(10).build()?;
    /// for n in 0..4 {
    ///     let _ = breaker.call(|| if n == 0 { Err("refused") } else { Ok(n) });
    /// }
    /// let metrics = breaker.metrics();
    /// assert_eq!(metrics.state, State::Closed);
    /// assert_eq!((metrics.calls, metrics.failed), (4, 1));
    /// assert_eq!(metrics.failure_rate, Some(25.0));
    /// assert_eq!(metrics.consecutive_failures, 0); // the successes ended the run
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        let word = Word(self.word.load(Ordering::Acquire));
        let counts = self.counts(self.window_now());
        let rate =
            |part: u64| (counts.calls > 0).then(|| part as f64 * 100.0 / counts.calls as f64);
        Metrics {
            state: word.state(),
            calls: counts.calls,
            failed: counts.failed,
            slow: counts.slow,
            failure_rate: rate(counts.failed),
            slow_call_rate: rate(counts.slow),
            consecutive_failures: self.failure_run(word),
            rejected: self.rejected.load(Ordering::Relaxed),
            trips: self.trips.load(Ordering::Relaxed),
            probes_in_flight: if word.state() == State::HalfOpen {
                word.in_flight()
            } else {
                0
            },
        }
    }

    /// The time the window places calls at.
    fn window_now(&self) -> Instant {
        if self.coarse {
            self.clock.recent()
        } else {
            self.clock.now()
        }
    }

    fn counts(&self, now: Instant) -> Counts {
        match &self.window {
            Windowed::Count(window) => window.counts(),
            Windowed::Time(window) => window.counts(now),
        }
    }

    #[inline]
    pub(crate) fn acquire_ticket(&self) -> Result<Ticket, Rejected> {
        let word = Word(self.word.load(Ordering::Acquire));
        if word.is_closed_or_disabled() {
            return Ok(self.closed_ticket(word));
        }
        self.acquire_slow(word)
    }

    #[inline]
    fn closed_ticket(&self, word: Word) -> Ticket {
        let kind = if word.state() == State::Closed {
            Kind::Closed
        } else {
            Kind::Disabled
        };
        let start = if self.slow_threshold.is_some() && kind == Kind::Closed {
            self.clock.now()
        } else {
            Instant::ZERO
        };
        Ticket { word, kind, start }
    }

    #[cold]
    fn acquire_slow(&self, mut word: Word) -> Result<Ticket, Rejected> {
        loop {
            match word.state() {
                State::Closed | State::Disabled => return Ok(self.closed_ticket(word)),
                State::ForcedOpen => return Err(self.reject(State::ForcedOpen, None)),
                State::Open => {
                    let now = self.clock.now();
                    let until = Instant::from_nanos(self.open_until.load(Ordering::Acquire));
                    if now < until {
                        return Err(self.reject(State::Open, Some(until - now)));
                    }
                    // The wait is over: this call becomes the first probe.
                    if let Some(next) =
                        self.transition(Some(word), State::HalfOpen, Reason::WaitElapsed, now, 1)
                    {
                        return Ok(Ticket {
                            word: next,
                            kind: Kind::Probe,
                            start: now,
                        });
                    }
                }
                State::HalfOpen => {
                    let (in_flight, successes) = (word.in_flight(), word.successes());
                    if in_flight + successes < self.config.half_open_probes {
                        let next = word.with_probes(in_flight + 1, successes);
                        if self
                            .word
                            .compare_exchange(word.0, next.0, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                        {
                            let now = self.clock.now();
                            self.last_probe_at.store(now.as_nanos(), Ordering::Release);
                            return Ok(Ticket {
                                word: next,
                                kind: Kind::Probe,
                                start: now,
                            });
                        }
                    } else {
                        let now = self.clock.now();
                        let last = Instant::from_nanos(self.last_probe_at.load(Ordering::Acquire));
                        let hung = in_flight > 0 && now - last >= self.config.probe_timeout;
                        if !hung {
                            return Err(self.reject(State::HalfOpen, None));
                        }
                        // Every slot is held by a probe that may never answer: reopen.
                        self.transition(Some(word), State::Open, Reason::ProbeTimedOut, now, 0);
                    }
                }
            }
            word = Word(self.word.load(Ordering::Acquire));
            keel_core::sync::spin_loop();
        }
    }

    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.emitter.rejected();
        Rejected::new(state, retry_after)
    }

    /// Records a call's outcome.
    #[inline(always)]
    pub(crate) fn record(&self, ticket: Ticket, failed: bool) {
        match ticket.kind {
            Kind::Closed if !failed && !self.timed => self.record_closed_success(ticket),
            Kind::Closed if !failed && self.coarse => self.record_coarse_success(ticket),
            Kind::Closed => self.record_closed(ticket, failed),
            Kind::Probe => self.record_probe(ticket, failed),
            Kind::Disabled => {}
        }
    }

    /// Gives back a permit whose call never reported.
    pub(crate) fn release(&self, ticket: Ticket) {
        if ticket.kind != Kind::Probe {
            return; // a closed-state permit holds no slot
        }
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let word = Word(current);
            if word.state() != State::HalfOpen
                || word.generation() != ticket.word.generation()
                || word.in_flight() == 0
            {
                return;
            }
            let next = word.with_probes(word.in_flight() - 1, word.successes());
            match self.word.compare_exchange_weak(
                current,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => {
                    current = actual;
                    keel_core::sync::spin_loop();
                }
            }
        }
    }

    #[inline]
    fn outcome_bits(&self, ticket: &Ticket, failed: bool) -> (u32, Instant) {
        let mut outcome = if failed { FAILED } else { 0 };
        if !self.timed {
            return (outcome, Instant::ZERO);
        }
        if self.coarse {
            return (outcome, self.clock.recent());
        }
        let now = self.clock.now();
        if let Some(threshold) = self.slow_threshold
            && now - ticket.start >= threshold
        {
            outcome |= SLOW;
        }
        (outcome, now)
    }

    /// A success on the closed path with no timing: the call every healthy breaker makes,
    /// kept small so it inlines. One RMW on the count window, none without a rate.
    #[inline(always)]
    fn record_closed_success(&self, ticket: Ticket) {
        if self.word.load(Ordering::Acquire) != ticket.word.0 {
            return;
        }
        // Untimed with a rate condition means a count window (a time window is timed).
        if self.rates
            && let Windowed::Count(window) = &self.window
        {
            let calls = window.record(0);
            // Reaching the minimum is the one moment a success can trip a rate.
            if calls == u64::from(self.config.minimum_calls) {
                self.check_rates(ticket.word, window.counts());
            }
        }
        self.end_failure_run(ticket.word);
    }

    /// A success on the closed path of a coarse time window, the healthy call of a
    /// time-window breaker: one load of the clock's recent reading and, while the window is
    /// quiet, one RMW on this thread's stripe.
    #[inline(always)]
    fn record_coarse_success(&self, ticket: Ticket) {
        if self.word.load(Ordering::Acquire) != ticket.word.0 {
            return;
        }
        let counts = match &self.window {
            Windowed::Time(window) => window.record(self.clock.recent(), 0),
            Windowed::Count(_) => None, // a coarse window is a time window
        };
        self.end_failure_run(ticket.word);
        if let Some(counts) = counts {
            self.check_rates(ticket.word, counts);
        }
    }

    /// The failures in a row counted in `word`'s generation.
    fn failure_run(&self, word: Word) -> u32 {
        let run = self.consecutive.load(Ordering::Acquire);
        if run >> 32 == word.generation() {
            run as u32
        } else {
            0
        }
    }

    /// A success in `word`'s generation ends the run of failures (one load when there is
    /// none, the healthy case).
    #[inline(always)]
    fn end_failure_run(&self, word: Word) {
        let run = self.consecutive.load(Ordering::Relaxed);
        if run as u32 != 0 && run >> 32 == word.generation() {
            // Losing this CAS means a failure or a state change came in between: theirs wins.
            let _ = self.consecutive.compare_exchange(
                run,
                word.generation() << 32,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// Adds a failure to `word`'s generation's run; `None` if the generation is gone.
    fn extend_failure_run(&self, word: Word) -> Option<u32> {
        let mut run = self.consecutive.load(Ordering::Acquire);
        loop {
            if run >> 32 != word.generation() {
                return None;
            }
            let count = (run as u32).saturating_add(1);
            let next = (word.generation() << 32) | u64::from(count);
            match self.consecutive.compare_exchange_weak(
                run,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(count),
                Err(actual) => {
                    run = actual;
                    keel_core::sync::spin_loop();
                }
            }
        }
    }

    #[cold]
    fn check_rates(&self, word: Word, counts: Counts) {
        if let Some(reason) = self.rate_tripped(counts) {
            self.trip(word, reason, Instant::ZERO);
        }
    }

    #[inline(never)]
    fn record_closed(&self, ticket: Ticket, failed: bool) {
        let (outcome, now) = self.outcome_bits(&ticket, failed);
        // An outcome from before a state change belongs to a window that is gone.
        if self.word.load(Ordering::Acquire) != ticket.word.0 {
            return;
        }
        let counts = match &self.window {
            _ if !self.rates => None,
            Windowed::Count(window) => {
                let calls = window.record(outcome);
                // With no failure or slow call, a rate can only cross its threshold on the
                // call that brings the window to the minimum.
                if outcome == 0 && calls != u64::from(self.config.minimum_calls) {
                    None
                } else {
                    Some(window.counts())
                }
            }
            Windowed::Time(window) => window.record(now, outcome),
        };
        if failed {
            if let Some(run) = self.extend_failure_run(ticket.word)
                && let Some(limit) = self.config.consecutive_failures
                && run >= limit
            {
                self.trip(ticket.word, Reason::ConsecutiveFailures(run), now);
                return;
            }
        } else {
            self.end_failure_run(ticket.word);
        }
        if let Some(counts) = counts
            && let Some(reason) = self.rate_tripped(counts)
        {
            self.trip(ticket.word, reason, now);
        }
    }

    /// `now` as `outcome_bits` read it, if it read the exact clock; else the exact clock:
    /// a state change's time and the open wait are not placed in coarse buckets.
    fn exact(&self, now: Instant) -> Instant {
        if self.timed && !self.coarse {
            now
        } else {
            self.clock.now()
        }
    }

    fn rate_tripped(&self, counts: Counts) -> Option<Reason> {
        if counts.calls < u64::from(self.config.minimum_calls) {
            return None;
        }
        let calls = counts.calls as f64;
        if let Some(threshold) = self.config.failure_rate
            && counts.failed as f64 * 100.0 >= threshold * calls
        {
            return Some(Reason::FailureRate);
        }
        if let Some((threshold, _)) = self.config.slow_call
            && counts.slow as f64 * 100.0 >= threshold * calls
        {
            return Some(Reason::SlowCallRate);
        }
        None
    }

    #[cold]
    fn trip(&self, from: Word, reason: Reason, now: Instant) {
        let now = self.exact(now);
        self.transition(Some(from), State::Open, reason, now, 0);
    }

    fn record_probe(&self, ticket: Ticket, failed: bool) {
        let (outcome, now) = self.outcome_bits(&ticket, failed);
        let now = self.exact(now);
        if outcome != 0 {
            // A failed or slow probe: the dependency is not back yet.
            self.transition(Some(ticket.word), State::Open, Reason::ProbeFailed, now, 0);
            return;
        }
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let word = Word(current);
            if word.state() != State::HalfOpen
                || word.generation() != ticket.word.generation()
                || word.in_flight() == 0
            {
                return;
            }
            let successes = word.successes() + 1;
            let next = word.with_probes(word.in_flight() - 1, successes);
            match self.word.compare_exchange_weak(
                current,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if successes >= self.config.half_open_probes {
                        self.transition(Some(next), State::Closed, Reason::ProbesSucceeded, now, 0);
                    }
                    return;
                }
                Err(actual) => {
                    current = actual;
                    keel_core::sync::spin_loop();
                }
            }
        }
    }

    /// Moves to `to` if the breaker is still in `expected`'s state and generation (or from
    /// any state if `expected` is `None`), with `probes` probes in flight. Returns the new
    /// word, or `None` if another thread changed the state first.
    fn transition(
        &self,
        expected: Option<Word>,
        to: State,
        reason: Reason,
        now: Instant,
        probes: u32,
    ) -> Option<Word> {
        let mut trips_since_closed = self
            .transitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut current = Word(self.word.load(Ordering::Acquire));
        let (from, next) = loop {
            if let Some(expected) = expected
                && (current.state() != expected.state()
                    || current.generation() != expected.generation())
            {
                return None;
            }
            let next = current.next(to).with_probes(probes, 0);
            // Publish what the new state relies on before the state itself.
            match to {
                State::Open => {
                    let wait = self.open_wait(*trips_since_closed + 1);
                    self.open_until
                        .store((now + wait).as_nanos(), Ordering::Release);
                }
                State::Closed => {
                    match &self.window {
                        Windowed::Count(window) => window.reset(),
                        Windowed::Time(window) => window.reset(),
                    }
                    // A fresh run, owned by the generation about to be published.
                    self.consecutive
                        .swap(next.generation() << 32, Ordering::AcqRel);
                }
                State::HalfOpen => self.last_probe_at.store(now.as_nanos(), Ordering::Release),
                State::ForcedOpen | State::Disabled => {}
            }
            match self
                .word
                .compare_exchange(current.0, next.0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break (current.state(), next),
                // Probe counts moved under us; check the state again.
                Err(actual) => current = Word(actual),
            }
        };
        match to {
            State::Open => {
                *trips_since_closed = trips_since_closed.saturating_add(1);
                self.trips.fetch_add(1, Ordering::Relaxed);
            }
            State::Closed => *trips_since_closed = 0,
            _ => {}
        }
        drop(trips_since_closed);
        #[cfg(feature = "metrics")]
        self.emitter.transition(from, to);
        if !self.config.listeners.is_empty() {
            let event = Transition {
                from,
                to,
                reason,
                at: now,
                generation: next.generation(),
            };
            for listener in &self.config.listeners {
                listener(&event);
            }
        }
        Some(next)
    }

    fn open_wait(&self, trips: u32) -> Duration {
        self.config.open_wait.after(trips)
    }
}

impl<C: Clock> CircuitBreaker<C> {
    /// Like [`try_acquire`](Self::try_acquire), for a breaker in an `Arc`: the permit owns a
    /// reference, so it can move into a spawned task or a `'static` future.
    ///
    /// # Errors
    ///
    /// [`Rejected`], as for [`try_acquire`](Self::try_acquire).
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    /// use std::sync::Arc;
    ///
    /// let breaker = Arc::new(CircuitBreaker::builder().build()?);
    /// let permit = breaker.try_acquire_owned()?;
    /// std::thread::spawn(move || permit.success()).join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire_owned(
        self: &std::sync::Arc<Self>,
    ) -> Result<crate::OwnedPermit<C>, Rejected> {
        let ticket = self.acquire_ticket()?;
        Ok(crate::OwnedPermit::new(self.clone(), ticket))
    }
}

impl<C: fmt::Debug> fmt::Debug for CircuitBreaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("state", &Word(self.word.load(Ordering::Acquire)).state())
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Leave to make one call through a [`CircuitBreaker`]; report the outcome with
/// [`success`](Permit::success) or [`failure`](Permit::failure).
///
/// Dropping it unreported gives a half-open probe slot back and counts nothing, so a
/// cancelled future cannot wedge the breaker half-open.
///
/// ```
/// use keel_breaker::CircuitBreaker;
///
/// let breaker = CircuitBreaker::builder().failure_rate(50.0).minimum_calls(10).build()?;
/// let permit = breaker.try_acquire()?;
/// let reply: Result<&str, &str> = Ok("200 OK"); // the call, made outside any closure
/// permit.record(reply.is_err());
/// assert_eq!((breaker.metrics().calls, breaker.metrics().failed), (1, 0));
///
/// drop(breaker.try_acquire()?); // cancelled: counts nothing
/// assert_eq!(breaker.metrics().calls, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "report the call with success() or failure(); dropping the permit counts nothing"]
pub struct Permit<'a, C: Clock = SystemClock> {
    breaker: &'a CircuitBreaker<C>,
    ticket: Ticket,
}

impl<C: Clock> Permit<'_, C> {
    /// The call succeeded.
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().failure_rate(50.0).minimum_calls(10).build()?;
    /// breaker.try_acquire()?.success();
    /// assert_eq!((breaker.metrics().calls, breaker.metrics().failed), (1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn success(self) {
        self.record(false);
    }

    /// The call failed.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(2).build()?;
    /// breaker.try_acquire()?.failure();
    /// assert_eq!(breaker.metrics().consecutive_failures, 1);
    /// breaker.try_acquire()?.failure();
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn failure(self) {
        self.record(true);
    }

    /// The call finished; `failed` says how.
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().failure_rate(50.0).minimum_calls(10).build()?;
    /// for status in [200, 503, 200] {
    ///     breaker.try_acquire()?.record(status >= 500);
    /// }
    /// assert_eq!((breaker.metrics().calls, breaker.metrics().failed), (3, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn record(self, failed: bool) {
        // Reported, so the drop that releases an unreported permit must not run.
        let this = std::mem::ManuallyDrop::new(self);
        this.breaker.record(this.ticket, failed);
    }

    /// Whether this permit is a half-open probe.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, OpenWait, State};
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .consecutive_failures(1)
    ///     .open_wait(OpenWait::Fixed(Duration::from_secs(5)))
    ///     .half_open_probes(1)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// assert!(!breaker.try_acquire()?.is_probe()); // closed: an ordinary call
    /// breaker.try_acquire()?.failure();
    /// clock.advance(Duration::from_secs(5));
    /// let probe = breaker.try_acquire()?;
    /// assert!(probe.is_probe());
    /// assert_eq!(breaker.state(), State::HalfOpen);
    /// probe.success();
    /// assert_eq!(breaker.state(), State::Closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_probe(&self) -> bool {
        self.ticket.kind == Kind::Probe
    }
}

impl<C: Clock> Drop for Permit<'_, C> {
    #[inline]
    fn drop(&mut self) {
        if self.ticket.kind == Kind::Probe {
            self.breaker.release(self.ticket);
        }
    }
}

impl<C: Clock> fmt::Debug for Permit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("ticket", &self.ticket)
            .finish()
    }
}
