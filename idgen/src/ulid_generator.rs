//! The monotonic ULID generator: strictly increasing ULIDs from one atomic word.

use std::cell::Cell;
use std::fmt;
use std::hash::Hasher;

use keel_core::{Clock, SystemClock};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::millis_counter::{COUNTER_MAX, MillisCounter};
use crate::{GenerateError, IdGenerator, Ulid};

/// What a [`UlidGenerator`] does when a millisecond's ULIDs run out.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_core::Clock;
/// use keel_idgen::{GenerateError, UlidGenerator, UlidOverflow};
///
/// let clock = ManualClock::new();
/// let rolling = UlidGenerator::with_clock(clock.clone());
/// let strict = UlidGenerator::with_clock(clock.clone()).on_overflow(UlidOverflow::Error);
/// let mut last = None;
/// for _ in 0..65_536 {
///     last = Some(rolling.next_id()?);
///     strict.next_id()?;
/// }
/// // The 65,537th ULID of a millisecond: the next millisecond, or an error.
/// assert_eq!(rolling.next_id()?.timestamp_ms(), clock.unix_millis() + 1);
/// assert_eq!(strict.next_id(), Err(GenerateError::Overflow));
/// assert_eq!(last.map(|ulid| ulid.timestamp_ms()), Some(clock.unix_millis()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum UlidOverflow {
    /// Return [`GenerateError::Overflow`], as the ULID spec says; the caller may retry in the
    /// next millisecond.
    Error,
    /// Move on to the next millisecond (stamped ahead of the clock) and continue, so
    /// generation never fails. The default.
    #[default]
    NextMillisecond,
}

/// A monotonic ULID generator: within a millisecond each ULID is the previous one plus one,
/// so ULIDs from one generator are strictly increasing, shared across threads by `&self`.
///
/// # How it works
///
/// The last issued `(millisecond, counter)` lives in one `AtomicU64` (48 + 16 bits), moved
/// forward by compare-and-swap as a [`Snowflake`](crate::Snowflake)'s state is. The 80-bit
/// random part of a millisecond's first ULID is drawn from a keyed hash (SipHash-1-3, a key
/// chosen at random per generator) of the millisecond, and later ULIDs in that millisecond
/// add the counter to it, exactly as the spec's monotonic generator increments the random
/// part. Deriving the random part from the millisecond means racing threads agree on it
/// without a lock.
///
/// # Overflow rule
///
/// A millisecond holds 65,536 ULIDs (the counter's width; the random start is drawn at least
/// 65,536 below 2^80, so adding the counter never overflows the 80 random bits). Past that,
/// the [`UlidOverflow`] rule applies: an error, or the next millisecond. If the clock steps back, the generator keeps the last issued
/// millisecond (ULIDs stay increasing, stamped slightly ahead of the clock).
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_idgen::{GenerateError, UlidGenerator, UlidOverflow};
///
/// let generator = UlidGenerator::with_clock(ManualClock::new());
/// let a = generator.next_id()?;
/// let b = generator.next_id()?;
/// assert_eq!(b.to_u128(), a.to_u128() + 1);
/// assert_eq!(b.timestamp_ms(), a.timestamp_ms());
///
/// let strict = UlidGenerator::with_clock(ManualClock::new()).on_overflow(UlidOverflow::Error);
/// let outcome = (0..70_000).map(|_| strict.next_id()).find(|r| r.is_err());
/// assert_eq!(outcome, Some(Err(GenerateError::Overflow)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UlidGenerator<C = SystemClock> {
    counter: MillisCounter,
    keys: (u64, u64),
    clock: C,
    overflow: UlidOverflow,
}

const RANDOM_MAX: u128 = (1 << 80) - 1;

thread_local! {
    // The last (key, millisecond, random start) this thread computed: the hash is paid once
    // per millisecond per thread, not once per ULID.
    static START: Cell<(u64, u64, u128)> = const { Cell::new((0, u64::MAX, 0)) };
}

impl UlidGenerator<SystemClock> {
    /// A generator on the system clock.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::UlidGenerator;
    ///
    /// let generator = UlidGenerator::new();
    /// let a = generator.next_id()?;
    /// let b = generator.next_id()?;
    /// assert!(b > a);
    /// assert!(b.to_string() > a.to_string());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> UlidGenerator<SystemClock> {
        UlidGenerator::with_clock(SystemClock)
    }
}

impl Default for UlidGenerator<SystemClock> {
    fn default() -> UlidGenerator<SystemClock> {
        UlidGenerator::new()
    }
}

impl<C: Clock> UlidGenerator<C> {
    /// A generator reading time from `clock`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::UlidGenerator;
    ///
    /// let clock = ManualClock::at_unix_millis(1_469_922_850_259);
    /// let generator = UlidGenerator::with_clock(clock);
    /// let ulid = generator.next_id()?;
    /// assert_eq!(ulid.timestamp_ms(), 1_469_922_850_259);
    /// assert!(ulid.to_string().starts_with("01ARZ3NDEK"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_clock(clock: C) -> UlidGenerator<C> {
        UlidGenerator {
            counter: MillisCounter::new(),
            keys: (rand::random::<u64>() | 1, rand::random()),
            clock,
            overflow: UlidOverflow::default(),
        }
    }

    /// Sets the overflow rule (default: move to the next millisecond).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::{GenerateError, UlidGenerator, UlidOverflow};
    ///
    /// let generator = UlidGenerator::with_clock(ManualClock::new()).on_overflow(UlidOverflow::Error);
    /// let issued = (0..70_000).take_while(|_| generator.next_id().is_ok()).count();
    /// assert_eq!(issued, 65_536);
    /// assert_eq!(generator.next_id(), Err(GenerateError::Overflow));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_overflow(mut self, rule: UlidOverflow) -> UlidGenerator<C> {
        self.overflow = rule;
        self
    }

    /// The next ULID: larger than every ULID this generator issued before.
    ///
    /// # Errors
    ///
    /// [`GenerateError::Overflow`] under [`UlidOverflow::Error`] when the millisecond's ULIDs
    /// are used up, and [`GenerateError::TimestampOverflow`] after the year 10889.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::UlidGenerator;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let generator = UlidGenerator::with_clock(clock.clone());
    /// let a = generator.next_id()?;
    /// // Within a millisecond the random part goes up by one.
    /// assert_eq!(generator.next_id()?.random(), a.random() + 1);
    /// // A step back keeps the last millisecond, so ULIDs still increase.
    /// clock.step_wall_back(Duration::from_secs(1));
    /// let c = generator.next_id()?;
    /// assert_eq!((c.timestamp_ms(), c.random()), (a.timestamp_ms(), a.random() + 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_id(&self) -> Result<Ulid, GenerateError> {
        let roll_over = self.overflow == UlidOverflow::NextMillisecond;
        let (ms, counter) = self.counter.next(self.clock.unix_millis(), 0, roll_over)?;
        Ok(Ulid::from_parts(ms, self.start(ms) + u128::from(counter)))
    }

    /// The clock.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::UlidGenerator;
    ///
    /// let generator = UlidGenerator::with_clock(ManualClock::new());
    /// assert_eq!(generator.next_id()?.timestamp_ms(), generator.clock().unix_millis());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }

    // The random part of millisecond `ms`'s first ULID.
    #[inline]
    fn start(&self, ms: u64) -> u128 {
        START.with(|cache| {
            let (key, cached_ms, start) = cache.get();
            if key == self.keys.0 && cached_ms == ms {
                return start;
            }
            let mut hasher = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
            hasher.write_u64(ms);
            // Kept at least 65,536 below 2^80, so adding the counter never overflows (this
            // moves 2^-64 of the range, a negligible bias).
            let start = (hasher.finish128().as_u128() & RANDOM_MAX)
                .min(RANDOM_MAX - u128::from(COUNTER_MAX));
            cache.set((self.keys.0, ms, start));
            start
        })
    }
}

impl<C: Clock> IdGenerator for UlidGenerator<C> {
    type Id = Ulid;

    fn next_id(&self) -> Result<Ulid, GenerateError> {
        self.next_id()
    }
}

impl<C: Clock> fmt::Debug for UlidGenerator<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UlidGenerator")
            .field("clock", &self.clock)
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::ManualClock;
    use std::time::Duration;

    #[test]
    fn a_new_millisecond_starts_from_a_fresh_random_part() {
        let clock = ManualClock::new();
        let generator = UlidGenerator::with_clock(clock.clone());
        let a = generator.next_id().expect("ulid");
        clock.advance(Duration::from_millis(1));
        let b = generator.next_id().expect("ulid");
        assert_eq!(a.timestamp_ms(), clock.unix_millis() - 1);
        assert_eq!(b.timestamp_ms(), clock.unix_millis());
        assert_ne!(b.random(), a.random() + 1);
    }

    #[test]
    fn next_millisecond_rule_never_fails_and_stays_increasing() {
        let clock = ManualClock::new();
        let generator = UlidGenerator::with_clock(clock.clone());
        let mut last = generator.next_id().expect("ulid");
        for _ in 0..70_000 {
            let next = generator.next_id().expect("ulid");
            assert!(next > last);
            last = next;
        }
        assert_eq!(last.timestamp_ms(), clock.unix_millis() + 1);
    }

    #[test]
    fn a_clock_step_back_keeps_the_last_millisecond() {
        let clock = ManualClock::new();
        let generator = UlidGenerator::with_clock(clock.clone());
        let a = generator.next_id().expect("ulid");
        clock.step_wall_back(Duration::from_secs(5));
        let b = generator.next_id().expect("ulid");
        assert_eq!(b.to_u128(), a.to_u128() + 1);
    }
}
