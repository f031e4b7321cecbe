//! `CoarseClock`: another clock's readings, refreshed every millisecond by a ticker thread.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crate::{Clock, Instant, SystemClock};

/// How often the ticker thread refreshes the readings.
const PERIOD: Duration = Duration::from_millis(1);

/// A clock whose readings are copies of an inner clock's, stored by a background thread
/// every millisecond: a reading is one relaxed atomic load (under a nanosecond), paid for by a
/// thread that wakes 1,000 times a second and by up to a millisecond of staleness.
///
/// It is meant for hot paths that need the time only to the millisecond, such as the
/// per-thread ID generators of keel-idgen, where reading the system wall clock (30 ns or
/// more) would cost more than the rest of the work.
///
/// **Staleness.** Each reading is a reading of the inner clock taken at most one period
/// (1 ms) plus the ticker thread's scheduling delay earlier. On a loaded machine that delay
/// can reach several milliseconds; the readings are still the inner clock's, only older.
/// [`now`](Clock::now) stays monotonic; [`unix_millis`](Clock::unix_millis) follows the inner
/// wall clock, steps included.
///
/// **Lifetime.** Clones share one ticker. The thread holds only a weak reference and ends
/// within a period once the last clone is dropped; [`CoarseClock::system`]'s shared ticker
/// lives as long as the process. If the thread cannot be spawned, the clock reads the inner
/// clock on every call instead: slower, never wrong.
///
/// # Example
///
/// ```
/// use keel_core::{Clock, CoarseClock, ManualClock};
/// use std::time::Duration;
///
/// let manual = ManualClock::new();
/// let coarse = CoarseClock::new(manual.clone());
/// assert_eq!(coarse.unix_millis(), manual.unix_millis());
///
/// manual.advance(Duration::from_millis(5));
/// coarse.refresh(); // the ticker does this every millisecond; a test need not wait for it
/// assert_eq!(coarse.unix_millis(), manual.unix_millis());
/// assert_eq!(coarse.now(), manual.now());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CoarseClock {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Box<dyn Clock>,
    now_nanos: AtomicU64,
    unix_millis: AtomicU64,
    /// False when the ticker thread could not be spawned: read `inner` directly.
    ticking: bool,
}

impl Shared {
    fn refresh(&self) {
        // `fetch_max` keeps `now` monotonic when a caller's refresh races the ticker's.
        self.now_nanos
            .fetch_max(self.inner.now().as_nanos(), Ordering::Relaxed);
        self.unix_millis
            .store(self.inner.unix_millis(), Ordering::Relaxed);
    }
}

impl CoarseClock {
    /// A coarse copy of `clock`, refreshed by a new ticker thread every millisecond.
    ///
    /// ```
    /// use keel_core::{Clock, CoarseClock, SystemClock};
    ///
    /// let coarse = CoarseClock::new(SystemClock);
    /// let behind = SystemClock.unix_millis() - coarse.unix_millis();
    /// assert!(behind < 60_000); // at most a period plus scheduling delay, in practice
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(clock: impl Clock + 'static) -> CoarseClock {
        let now_nanos = AtomicU64::new(clock.now().as_nanos());
        let unix_millis = AtomicU64::new(clock.unix_millis());
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let weak = weak.clone();
            let spawned = std::thread::Builder::new()
                .name("keel-coarse-clock".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(PERIOD);
                        match weak.upgrade() {
                            Some(shared) => shared.refresh(),
                            None => return,
                        }
                    }
                });
            Shared {
                inner: Box::new(clock),
                now_nanos,
                unix_millis,
                ticking: spawned.is_ok(),
            }
        });
        CoarseClock { shared }
    }

    /// The process-wide coarse copy of [`SystemClock`]: its ticker thread starts on the first
    /// call and then serves every caller.
    ///
    /// ```
    /// use keel_core::{Clock, CoarseClock};
    ///
    /// let a = CoarseClock::system();
    /// let b = CoarseClock::system();
    /// assert!(a.shares_ticker_with(&b));
    /// assert!(a.unix_millis() > 1_700_000_000_000); // after November 2023
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn system() -> CoarseClock {
        static SYSTEM: OnceLock<CoarseClock> = OnceLock::new();
        SYSTEM.get_or_init(|| CoarseClock::new(SystemClock)).clone()
    }

    /// Reads the inner clock now, as the ticker does every period.
    ///
    /// ```
    /// use keel_core::{Clock, CoarseClock, ManualClock};
    /// use std::time::Duration;
    ///
    /// let manual = ManualClock::new();
    /// let coarse = CoarseClock::new(manual.clone());
    /// manual.step_wall_back(Duration::from_secs(1));
    /// coarse.refresh();
    /// assert_eq!(coarse.unix_millis(), manual.unix_millis()); // steps are followed
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refresh(&self) {
        self.shared.refresh();
    }

    /// Whether `self` and `other` are clones sharing one ticker.
    ///
    /// ```
    /// use keel_core::{CoarseClock, ManualClock};
    ///
    /// let coarse = CoarseClock::new(ManualClock::new());
    /// assert!(coarse.shares_ticker_with(&coarse.clone()));
    /// assert!(!coarse.shares_ticker_with(&CoarseClock::new(ManualClock::new())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shares_ticker_with(&self, other: &CoarseClock) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Instant {
        if !self.shared.ticking {
            return self.shared.inner.now();
        }
        Instant::from_nanos(self.shared.now_nanos.load(Ordering::Relaxed))
    }

    #[inline]
    fn unix_millis(&self) -> u64 {
        if !self.shared.ticking {
            return self.shared.inner.unix_millis();
        }
        self.shared.unix_millis.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for CoarseClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoarseClock")
            .field("inner", &self.shared.inner)
            .field("period", &PERIOD)
            .field("ticking", &self.shared.ticking)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn the_ticker_follows_the_inner_clock_without_refresh() {
        let manual = ManualClock::new();
        let coarse = CoarseClock::new(manual.clone());
        manual.advance(Duration::from_millis(7));
        // Waits for the background thread, bounded: it is the thing under test.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while coarse.unix_millis() != manual.unix_millis() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(coarse.unix_millis(), manual.unix_millis());
        assert_eq!(coarse.now(), manual.now());
    }

    #[test]
    fn the_ticker_ends_when_the_last_clone_is_dropped() {
        let coarse = CoarseClock::new(ManualClock::new());
        let weak = Arc::downgrade(&coarse.shared);
        drop(coarse);
        // The ticker may hold a strong reference for the length of one refresh, no longer.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while weak.strong_count() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(weak.strong_count(), 0);
    }
}
