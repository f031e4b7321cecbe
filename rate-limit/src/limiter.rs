//! `Limiter`: one algorithm's state, a quota and a clock.

use std::fmt;

use crossbeam_utils::CachePadded;
use keel_core::{Clock, SystemClock};

use crate::quota_cell::QuotaCell;
use crate::{Algorithm, Decision, Gcra, InsufficientCapacity, Quota, RateLimit};

/// A single rate limiter: algorithm `A` over one state, reading time from `C`.
///
/// `Limiter` (the default, `Limiter<Gcra>`) is the lock-free token bucket on the system clock;
/// [`with_algorithm`](Limiter::with_algorithm) picks another algorithm, and tests pass a
/// [`ManualClock`](keel_core::ManualClock) to [`with_clock`](Limiter::with_clock). Share it
/// between threads behind an `Arc` (or a `&`); every method takes `&self`. The quota can be
/// changed while it runs ([`RateLimit::set_quota`]).
///
/// # Example
///
/// ```
/// use keel_rate_limit::{Limiter, Quota, RateLimit};
///
/// let limiter = Limiter::new(Quota::per_second(50)?); // GCRA, the default
/// let decision = limiter.check();
/// assert!(decision.is_allowed());
/// assert_eq!(decision.remaining(), 49);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Limiter<A: Algorithm = Gcra, C: Clock = SystemClock> {
    // On its own cache line: threads writing the state do not also evict the quota and
    // clock they read on every check.
    state: CachePadded<A::State>,
    // Read on every check without a lock (a seqlock); written only by `set_quota`.
    quota: QuotaCell,
    clock: C,
    #[cfg(feature = "metrics")]
    emitter: crate::emit::Emitter,
}

impl Limiter {
    /// A fresh GCRA limiter on the system clock; `Limiter::<Gcra>::new` names the same.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
    ///
    /// let limiter = Limiter::new(Quota::per_minute(100)?);
    /// assert_eq!(limiter.check_n(40)?.remaining(), 60);
    /// let named: Limiter<Gcra> = Limiter::<Gcra>::new(Quota::per_minute(100)?);
    /// assert_eq!(named.quota(), limiter.quota());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(quota: Quota) -> Limiter {
        Limiter::with_clock(quota, SystemClock)
    }
}

impl<A: Algorithm> Limiter<A> {
    /// A fresh limiter running `algorithm` on the system clock. The value only names the
    /// type (the algorithms are unit structs), so no turbofish is needed; `new` is GCRA.
    ///
    /// ```
    /// use keel_rate_limit::{Limiter, Quota, RateLimit, SlidingCounter};
    ///
    /// let limiter = Limiter::with_algorithm(Quota::per_minute(100)?, SlidingCounter);
    /// assert_eq!(limiter.quota(), Quota::per_minute(100)?);
    /// assert_eq!(limiter.check_n(40)?.remaining(), 60);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_algorithm(quota: Quota, algorithm: A) -> Limiter<A> {
        // Only the type matters; the algorithms keep no per-value data.
        let _ = algorithm;
        Limiter::with_clock(quota, SystemClock)
    }
}

impl<A: Algorithm, C: Clock> Limiter<A, C> {
    /// A fresh limiter reading time from `clock`.
    ///
    /// ```
    /// # use keel_core::ManualClock;
    /// # use keel_rate_limit::{Limiter, Quota, RateLimit, SlidingLog};
    /// let limiter = Limiter::<SlidingLog, _>::with_clock(Quota::per_hour(1)?, ManualClock::new());
    /// assert!(limiter.check().is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_clock(quota: Quota, clock: C) -> Limiter<A, C> {
        Limiter {
            state: CachePadded::new(A::State::default()),
            quota: QuotaCell::new(quota),
            clock,
            #[cfg(feature = "metrics")]
            emitter: crate::emit::Emitter::new("default"),
        }
    }

    /// Names the limiter: the `name` label of its `keel_rate_limit_decisions_total`
    /// counters (feature `metrics`), so several limiters in one process are told apart.
    /// Without a name the label is `"default"`.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
    ///
    /// let limiter = Limiter::<Gcra>::new(Quota::per_second(5)?).with_name("login");
    /// assert!(limiter.check().is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn with_name(mut self, name: &str) -> Self {
        self.emitter = crate::emit::Emitter::new(name);
        self
    }

    /// The clock this limiter reads.
    ///
    /// ```
    /// use keel_core::{Clock, Instant, ManualClock};
    /// use keel_rate_limit::{Gcra, Limiter, Quota};
    /// use std::time::Duration;
    ///
    /// let limiter = Limiter::<Gcra, _>::with_clock(Quota::per_second(1)?, ManualClock::new());
    /// limiter.clock().advance(Duration::from_secs(5));
    /// assert_eq!(limiter.clock().now(), Instant::ZERO + Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<A: Algorithm, C: Clock> RateLimit for Limiter<A, C> {
    #[inline]
    fn check_n(&self, n: u32) -> Result<Decision, InsufficientCapacity> {
        let quota = self.quota.load();
        let capacity = A::capacity(&quota);
        if n > capacity {
            #[cfg(feature = "metrics")]
            self.emitter.refused();
            return Err(InsufficientCapacity::new(n, capacity));
        }
        let decision = A::decide(&quota, &self.state, self.clock.now(), n);
        #[cfg(feature = "metrics")]
        self.emitter.decision(&decision);
        Ok(decision)
    }

    fn quota(&self) -> Quota {
        self.quota.load()
    }

    fn set_quota(&self, quota: Quota) {
        self.quota.store(quota);
    }
}

impl<A: Algorithm, C: Clock> fmt::Debug for Limiter<A, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("algorithm", &std::any::type_name::<A>())
            .field("quota", &self.quota.load())
            .field("state", &*self.state)
            .field("clock", &self.clock)
            .finish()
    }
}
