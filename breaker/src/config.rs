//! The circuit breaker's builder and the configuration errors it reports.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keel_core::{Clock, SystemClock};

use crate::window::MAX_COUNT_WINDOW;
use crate::{CircuitBreaker, Transition};

/// The most probes a half-open breaker can admit (they are counted in 16 bits).
pub(crate) const MAX_PROBES: u32 = u16::MAX as u32;
/// The most buckets a time window can have.
pub(crate) const MAX_BUCKETS: u32 = 1 << 16;

/// What a breaker's closed state measures its failure rate over.
///
/// ```
/// use keel_breaker::{CircuitBreaker, State, Window};
/// use keel_core::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let breaker = CircuitBreaker::builder()
///     .failure_rate(50.0)
///     .minimum_calls(2)
///     .window(Window::Time { length: Duration::from_secs(10), buckets: 10 })
///     .clock(clock.clone())
///     .build()?;
/// let _ = breaker.call(|| Err::<(), _>("refused"));
/// clock.advance(Duration::from_secs(11)); // that failure has left the window
/// let _ = breaker.call(|| Ok::<_, &str>(()));
/// assert_eq!((breaker.metrics().calls, breaker.metrics().failed), (1, 0));
/// assert_eq!(breaker.state(), State::Closed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Window {
    /// The last `n` calls.
    Count(u32),
    /// The calls of the last `length`, counted in `buckets` buckets of `length / buckets`
    /// each; the oldest bucket leaves the window whole. With buckets of 100 ms or more and
    /// no slow-call timing, calls are placed by the clock's
    /// [`recent`](keel_core::Clock::recent) reading, which on the system clock trails real
    /// time by about a millisecond.
    Time {
        /// How far back the window reaches.
        length: Duration,
        /// How many buckets it is counted in (its resolution).
        buckets: u32,
    },
}

/// How long an open breaker waits before letting probes through.
///
/// ```
/// use keel_breaker::{CircuitBreaker, OpenWait, State};
/// use keel_core::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let breaker = CircuitBreaker::builder()
///     .consecutive_failures(1)
///     .half_open_probes(1)
///     .open_wait(OpenWait::Exponential {
///         initial: Duration::from_secs(1),
///         multiplier: 2.0,
///         max: Duration::from_secs(60),
///     })
///     .clock(clock.clone())
///     .build()?;
/// let _ = breaker.call(|| Err::<(), _>("refused"));
/// assert_eq!(breaker.try_acquire().unwrap_err().retry_after(), Some(Duration::from_secs(1)));
/// clock.advance(Duration::from_secs(1));
/// let _ = breaker.call(|| Err::<(), _>("still refused")); // the probe fails
/// assert_eq!(breaker.state(), State::Open);
/// assert_eq!(breaker.try_acquire().unwrap_err().retry_after(), Some(Duration::from_secs(2)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum OpenWait {
    /// The same wait after every trip.
    Fixed(Duration),
    /// `initial` after the first trip, multiplied by `multiplier` after each trip that
    /// follows a failed half-open test, up to `max`. A breaker that closes starts over.
    Exponential {
        /// The wait after the first trip.
        initial: Duration,
        /// The growth per repeated trip, at least 1.
        multiplier: f64,
        /// The longest wait.
        max: Duration,
    },
}

impl OpenWait {
    /// The wait after the `trips`-th consecutive trip (1-based).
    pub(crate) fn after(&self, trips: u32) -> Duration {
        match *self {
            OpenWait::Fixed(wait) => wait,
            OpenWait::Exponential {
                initial,
                multiplier,
                max,
            } => {
                let exponent = i32::try_from(trips.saturating_sub(1)).unwrap_or(i32::MAX);
                let factor = multiplier.powi(exponent);
                let nanos = initial.as_nanos() as f64 * factor;
                if !nanos.is_finite() || nanos >= max.as_nanos() as f64 {
                    max
                } else {
                    Duration::from_nanos(nanos as u64)
                }
            }
        }
    }
}

/// A configuration the builder refused, saying which setting is wrong and why.
///
/// ```
/// use keel_breaker::{CircuitBreaker, BreakerConfigError};
///
/// let error = CircuitBreaker::builder().failure_rate(150.0).build().unwrap_err();
/// assert_eq!(
///     error,
///     BreakerConfigError::Percentage { setting: "failure rate threshold", value: 150.0 }
/// );
/// assert_eq!(error.to_string(), "failure rate threshold must be a percentage in (0, 100], got 150");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BreakerConfigError {
    /// A percentage outside `(0, 100]`.
    Percentage {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: f64,
    },
    /// A setting that must be positive was zero.
    Zero {
        /// The setting.
        setting: &'static str,
    },
    /// A setting above its largest allowed value.
    TooLarge {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: u64,
        /// The largest allowed value.
        max: u64,
    },
    /// A time window shorter than one nanosecond per bucket.
    WindowShorterThanBuckets {
        /// The window length.
        length: Duration,
        /// The bucket count.
        buckets: u32,
    },
    /// An exponential multiplier below 1 or not finite.
    Multiplier {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: f64,
    },
    /// A retry budget percentage outside `[0, 100]`.
    BudgetPercent {
        /// The value given.
        value: f64,
    },
    /// A maximum below its initial value.
    MaxBelowInitial {
        /// The setting.
        setting: &'static str,
    },
    /// A retry budget was set before [`RetryBuilder::clock`](crate::RetryBuilder::clock)
    /// changed the clock type, which dropped it.
    BudgetBeforeClock,
}

impl fmt::Display for BreakerConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerConfigError::Percentage { setting, value } => {
                write!(f, "{setting} must be a percentage in (0, 100], got {value}")
            }
            BreakerConfigError::Zero { setting } => write!(f, "{setting} must be > 0"),
            BreakerConfigError::TooLarge {
                setting,
                value,
                max,
            } => write!(f, "{setting} must be at most {max}, got {value}"),
            BreakerConfigError::WindowShorterThanBuckets { length, buckets } => write!(
                f,
                "time window of {length:?} is too short for {buckets} buckets"
            ),
            BreakerConfigError::Multiplier { setting, value } => {
                write!(
                    f,
                    "{setting} multiplier must be a finite number >= 1, got {value}"
                )
            }
            BreakerConfigError::BudgetPercent { value } => {
                write!(f, "retry budget percent must be in [0, 100], got {value}")
            }
            BreakerConfigError::MaxBelowInitial { setting } => {
                write!(f, "{setting}: max must be >= initial")
            }
            BreakerConfigError::BudgetBeforeClock => write!(
                f,
                "the retry budget was set before the clock, which dropped it: set the clock \
                 first, then a budget built with the same clock"
            ),
        }
    }
}

impl std::error::Error for BreakerConfigError {}

pub(crate) fn check_percentage(
    setting: &'static str,
    value: f64,
) -> Result<(), BreakerConfigError> {
    // `!(x > 0)` also rejects NaN.
    if !(value > 0.0 && value <= 100.0) {
        return Err(BreakerConfigError::Percentage { setting, value });
    }
    Ok(())
}

pub(crate) type Listener = Arc<dyn Fn(&Transition) + Send + Sync>;

/// A breaker's validated settings.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) consecutive_failures: Option<u32>,
    pub(crate) failure_rate: Option<f64>,
    pub(crate) slow_call: Option<(f64, Duration)>,
    pub(crate) window: Window,
    pub(crate) minimum_calls: u32,
    pub(crate) open_wait: OpenWait,
    pub(crate) half_open_probes: u32,
    pub(crate) probe_timeout: Duration,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) name: Arc<str>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("consecutive_failures", &self.consecutive_failures)
            .field("failure_rate", &self.failure_rate)
            .field("slow_call", &self.slow_call)
            .field("window", &self.window)
            .field("minimum_calls", &self.minimum_calls)
            .field("open_wait", &self.open_wait)
            .field("half_open_probes", &self.half_open_probes)
            .field("probe_timeout", &self.probe_timeout)
            .field("listeners", &self.listeners.len())
            .field("name", &self.name)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            consecutive_failures: None,
            failure_rate: Some(50.0),
            slow_call: None,
            window: Window::Count(100),
            minimum_calls: 20,
            open_wait: OpenWait::Fixed(Duration::from_secs(30)),
            half_open_probes: 3,
            probe_timeout: Duration::from_secs(30),
            listeners: Vec::new(),
            name: Arc::from("default"),
        }
    }
}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), BreakerConfigError> {
        if self.consecutive_failures == Some(0) {
            return Err(BreakerConfigError::Zero {
                setting: "consecutive failures",
            });
        }
        if let Some(rate) = self.failure_rate {
            check_percentage("failure rate threshold", rate)?;
        }
        if let Some((rate, threshold)) = self.slow_call {
            check_percentage("slow call rate threshold", rate)?;
            if threshold.is_zero() {
                return Err(BreakerConfigError::Zero {
                    setting: "slow call duration threshold",
                });
            }
        }
        match self.window {
            Window::Count(0) => {
                return Err(BreakerConfigError::Zero {
                    setting: "count window",
                });
            }
            Window::Count(n) if n > MAX_COUNT_WINDOW => {
                return Err(BreakerConfigError::TooLarge {
                    setting: "count window",
                    value: u64::from(n),
                    max: u64::from(MAX_COUNT_WINDOW),
                });
            }
            Window::Count(_) => {}
            Window::Time { length, buckets } => {
                if length.is_zero() {
                    return Err(BreakerConfigError::Zero {
                        setting: "time window",
                    });
                }
                if buckets == 0 {
                    return Err(BreakerConfigError::Zero {
                        setting: "time window buckets",
                    });
                }
                if buckets > MAX_BUCKETS {
                    return Err(BreakerConfigError::TooLarge {
                        setting: "time window buckets",
                        value: u64::from(buckets),
                        max: u64::from(MAX_BUCKETS),
                    });
                }
                if length.as_nanos() < u128::from(buckets) {
                    return Err(BreakerConfigError::WindowShorterThanBuckets { length, buckets });
                }
            }
        }
        if self.minimum_calls == 0 {
            return Err(BreakerConfigError::Zero {
                setting: "minimum calls",
            });
        }
        match self.open_wait {
            OpenWait::Fixed(wait) if wait.is_zero() => {
                return Err(BreakerConfigError::Zero {
                    setting: "open wait",
                });
            }
            OpenWait::Fixed(_) => {}
            OpenWait::Exponential {
                initial,
                multiplier,
                max,
            } => {
                if initial.is_zero() {
                    return Err(BreakerConfigError::Zero {
                        setting: "open wait",
                    });
                }
                if !(multiplier.is_finite() && multiplier >= 1.0) {
                    return Err(BreakerConfigError::Multiplier {
                        setting: "open wait",
                        value: multiplier,
                    });
                }
                if max < initial {
                    return Err(BreakerConfigError::MaxBelowInitial {
                        setting: "open wait",
                    });
                }
            }
        }
        if self.half_open_probes == 0 {
            return Err(BreakerConfigError::Zero {
                setting: "half-open probes",
            });
        }
        if self.half_open_probes > MAX_PROBES {
            return Err(BreakerConfigError::TooLarge {
                setting: "half-open probes",
                value: u64::from(self.half_open_probes),
                max: u64::from(MAX_PROBES),
            });
        }
        if self.probe_timeout.is_zero() {
            return Err(BreakerConfigError::Zero {
                setting: "probe timeout",
            });
        }
        Ok(())
    }
}

/// Builds a [`CircuitBreaker`]; start from [`CircuitBreaker::builder`].
///
/// Defaults: trips at a 50% failure rate over the last 100 calls once 20 calls are in the
/// window; no consecutive-failure or slow-call condition; waits 30 s open; closes after 3
/// successful probes; a probe that takes longer than 30 s reopens the breaker.
///
/// ```
/// use keel_breaker::{CircuitBreaker, OpenWait, Window};
/// use std::time::Duration;
///
/// let breaker = CircuitBreaker::builder()
///     .failure_rate(25.0)
///     .window(Window::Time { length: Duration::from_secs(60), buckets: 12 })
///     .minimum_calls(10)
///     .consecutive_failures(5)
///     .slow_calls(50.0, Duration::from_millis(500))
///     .open_wait(OpenWait::Exponential {
///         initial: Duration::from_secs(1),
///         multiplier: 2.0,
///         max: Duration::from_secs(60),
///     })
///     .half_open_probes(2)
///     .build()?;
/// assert!(breaker.try_acquire().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct CircuitBreakerBuilder<C = SystemClock> {
    pub(crate) config: Config,
    pub(crate) clock: C,
}

impl CircuitBreakerBuilder<SystemClock> {
    pub(crate) fn new() -> Self {
        CircuitBreakerBuilder {
            config: Config::default(),
            clock: SystemClock,
        }
    }
}

impl<C: Clock> CircuitBreakerBuilder<C> {
    /// Trips after `n` failures in a row (in addition to any rate condition).
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().consecutive_failures(3).build()?;
    /// for _ in 0..2 {
    ///     let _ = breaker.call(|| Err::<(), _>("refused"));
    /// }
    /// let _ = breaker.call(|| Ok::<_, &str>(())); // a success ends the run
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// assert_eq!(breaker.metrics().consecutive_failures, 1);
    /// assert_eq!(breaker.state(), State::Closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.config.consecutive_failures = Some(n);
        self
    }

    /// Trips when at least `percent` of the calls in the window failed.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State, Window};
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .failure_rate(30.0)
    ///     .window(Window::Count(10))
    ///     .minimum_calls(10)
    ///     .build()?;
    /// for n in 0..10 {
    ///     let _ = breaker.call(|| if n % 4 == 0 { Err("refused") } else { Ok(n) });
    /// }
    /// // 3 failures in 10 calls: 30%, at the threshold.
    /// assert_eq!(breaker.state(), State::Open);
    /// assert_eq!(breaker.metrics().trips, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failure_rate(mut self, percent: f64) -> Self {
        self.config.failure_rate = Some(percent);
        self
    }

    /// Removes the failure-rate condition (for a breaker that trips on consecutive failures
    /// or slow calls only).
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .no_failure_rate()
    ///     .consecutive_failures(100)
    ///     .minimum_calls(1)
    ///     .build()?;
    /// for n in 0..50 {
    ///     let _ = breaker.call(|| if n % 2 == 0 { Err("refused") } else { Ok(n) });
    /// }
    /// assert_eq!(breaker.state(), State::Closed); // 50% failures, never 100 in a row
    /// assert_eq!(breaker.metrics().calls, 0); // and no window is kept
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn no_failure_rate(mut self) -> Self {
        self.config.failure_rate = None;
        self
    }

    /// Trips when at least `percent` of the calls in the window took `threshold` or longer.
    /// Timing each call reads the clock twice.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .no_failure_rate()
    ///     .slow_calls(50.0, Duration::from_millis(500))
    ///     .minimum_calls(2)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let _ = breaker.call(|| Ok::<_, ()>(()));
    /// let _ = breaker.call(|| {
    ///     clock.advance(Duration::from_secs(1)); // the call takes a second
    ///     Ok::<_, ()>(())
    /// });
    /// assert_eq!(breaker.state(), State::Open); // 1 of 2 calls was slow
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slow_calls(mut self, percent: f64, threshold: Duration) -> Self {
        self.config.slow_call = Some((percent, threshold));
        self
    }

    /// What the rates are measured over.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, Window};
    ///
    /// let breaker = CircuitBreaker::builder()
    ///     .window(Window::Count(3))
    ///     .minimum_calls(3)
    ///     .failure_rate(100.0)
    ///     .build()?;
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// for _ in 0..3 {
    ///     let _ = breaker.call(|| Ok::<_, &str>(()));
    /// }
    /// // Only the last 3 calls count: the failure has been pushed out.
    /// assert_eq!((breaker.metrics().calls, breaker.metrics().failed), (3, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn window(mut self, window: Window) -> Self {
        self.config.window = window;
        self
    }

    /// How many calls the window must hold before a rate can trip the breaker.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, State};
    ///
    /// let breaker = CircuitBreaker::builder().failure_rate(50.0).minimum_calls(5).build()?;
    /// for _ in 0..4 {
    ///     let _ = breaker.call(|| Err::<(), _>("refused"));
    /// }
    /// assert_eq!(breaker.state(), State::Closed); // 100% failures, but only 4 calls
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.config.minimum_calls = n;
        self
    }

    /// How long the breaker stays open before it lets probes through.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, OpenWait, State};
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .consecutive_failures(1)
    ///     .open_wait(OpenWait::Fixed(Duration::from_secs(10)))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// clock.advance(Duration::from_secs(4));
    /// assert_eq!(breaker.try_acquire().unwrap_err().retry_after(), Some(Duration::from_secs(6)));
    /// clock.advance(Duration::from_secs(6));
    /// assert!(breaker.try_acquire()?.is_probe());
    /// assert_eq!(breaker.state(), State::HalfOpen);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_wait(mut self, wait: OpenWait) -> Self {
        self.config.open_wait = wait;
        self
    }

    /// How many probes the half-open state admits; that many successes close the breaker,
    /// any failure reopens it.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, OpenWait, State};
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .consecutive_failures(1)
    ///     .open_wait(OpenWait::Fixed(Duration::from_secs(1)))
    ///     .half_open_probes(2)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// clock.advance(Duration::from_secs(1));
    /// let (first, second) = (breaker.try_acquire()?, breaker.try_acquire()?);
    /// assert_eq!(breaker.try_acquire().unwrap_err().state(), State::HalfOpen); // both slots taken
    /// first.success();
    /// assert_eq!(breaker.state(), State::HalfOpen);
    /// second.success();
    /// assert_eq!(breaker.state(), State::Closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.config.half_open_probes = n;
        self
    }

    /// How long a probe may run: once every probe slot is taken and the latest was admitted
    /// this long ago, the next call reopens the breaker instead of waiting on a hung probe.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, OpenWait, State};
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .consecutive_failures(1)
    ///     .open_wait(OpenWait::Fixed(Duration::from_secs(1)))
    ///     .half_open_probes(1)
    ///     .probe_timeout(Duration::from_secs(5))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// clock.advance(Duration::from_secs(1));
    /// let hung = breaker.try_acquire()?; // a probe that never answers
    /// clock.advance(Duration::from_secs(5));
    /// assert!(breaker.try_acquire().is_err());
    /// assert_eq!(breaker.state(), State::Open); // reopened instead of waiting forever
    /// # drop(hung);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.config.probe_timeout = timeout;
        self
    }

    /// Names the breaker: the `name` label of its metrics (feature `metrics`), so several
    /// breakers in one process are told apart. Defaults to `"default"`.
    ///
    /// ```
    /// use keel_breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().name("payments-api").build()?;
    /// assert_eq!(breaker.name(), "payments-api");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Arc::from(name.into());
        self
    }

    /// Calls `listener` after every state change. It runs on the thread that caused the
    /// change, outside the breaker's locks, so it may read the breaker or change its state.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, Reason, State};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let breaker = CircuitBreaker::builder()
    ///     .consecutive_failures(1)
    ///     .on_state_change(move |t| log.lock().unwrap().push((t.from, t.to, t.reason)))
    ///     .build()?;
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// breaker.reset();
    /// assert_eq!(
    ///     *seen.lock().unwrap(),
    ///     [
    ///         (State::Closed, State::Open, Reason::ConsecutiveFailures(1)),
    ///         (State::Open, State::Closed, Reason::Operator),
    ///     ]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_state_change(
        mut self,
        listener: impl Fn(&Transition) + Send + Sync + 'static,
    ) -> Self {
        self.config.listeners.push(Arc::new(listener));
        self
    }

    /// Reads time from `clock` instead of the system clock.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, OpenWait};
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .consecutive_failures(1)
    ///     .open_wait(OpenWait::Fixed(Duration::from_secs(30)))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// clock.advance(Duration::from_secs(30)); // no real waiting
    /// assert!(breaker.try_acquire()?.is_probe());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> CircuitBreakerBuilder<C2> {
        CircuitBreakerBuilder {
            config: self.config,
            clock,
        }
    }

    /// Validates the settings and builds the breaker.
    ///
    /// # Errors
    ///
    /// [`BreakerConfigError`] names the first invalid setting:
    ///
    /// * [`Percentage`](BreakerConfigError::Percentage): a failure-rate or slow-call threshold
    ///   outside (0, 100];
    /// * [`Zero`](BreakerConfigError::Zero): a consecutive-failure count, slow-call duration,
    ///   count window, time window length, bucket count, minimum calls, open wait (fixed or
    ///   initial), half-open probe count or probe timeout of zero;
    /// * [`TooLarge`](BreakerConfigError::TooLarge): a count window above 2,097,151 calls, more
    ///   than 65,536 time-window buckets, or more than 65,535 half-open probes;
    /// * [`WindowShorterThanBuckets`](BreakerConfigError::WindowShorterThanBuckets): a time window
    ///   shorter than one nanosecond per bucket;
    /// * [`Multiplier`](BreakerConfigError::Multiplier): an exponential open-wait multiplier below 1
    ///   or not finite;
    /// * [`MaxBelowInitial`](BreakerConfigError::MaxBelowInitial): an exponential open wait whose
    ///   max is below its initial wait.
    ///
    /// ```
    /// use keel_breaker::{CircuitBreaker, BreakerConfigError, Window};
    ///
    /// assert!(CircuitBreaker::builder().build().is_ok());
    /// let error = CircuitBreaker::builder().window(Window::Count(0)).build().unwrap_err();
    /// assert_eq!(error, BreakerConfigError::Zero { setting: "count window" });
    /// assert_eq!(error.to_string(), "count window must be > 0");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<CircuitBreaker<C>, BreakerConfigError> {
        self.config.validate()?;
        Ok(CircuitBreaker::from_config(self.config, self.clock))
    }
}
