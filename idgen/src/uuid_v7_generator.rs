//! The UUIDv7 generator: RFC 9562 method 1 (a dedicated counter), monotonic in the process.

use std::fmt;

use keel_core::{Clock, SystemClock};

use crate::millis_counter::{COUNTER_MAX, MillisCounter};
use crate::{GenerateError, IdGenerator, UuidV7};

/// A UUIDv7 generator, monotonic within the process, shared across threads by `&self`.
///
/// It follows RFC 9562 section 6.2, method 1 ("fixed bit-length dedicated counter"): a 16-bit
/// counter fills `rand_a` (12 bits) and the top 4 bits of `rand_b`, and the other 58 bits of
/// `rand_b` are fresh random bits for every UUID. At each new millisecond the counter is
/// seeded with 15 random bits (its top bit zero, the RFC's rollover guard), so at least
/// 32,768 UUIDs fit in a millisecond; if the counter still overflows, the generator moves to
/// the next millisecond, which the RFC allows. If the clock steps back it keeps the last
/// millisecond. The last `(millisecond, counter)` lives in one `AtomicU64` moved forward by
/// compare-and-swap, so every UUID is larger than the one before.
///
/// # Example
///
/// ```
/// use keel_idgen::UuidV7Generator;
///
/// let generator = UuidV7Generator::new();
/// let a = generator.next_id()?;
/// let b = generator.next_id()?;
/// assert!(b > a);
/// assert_eq!(a.to_string().as_bytes()[14], b'7');
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UuidV7Generator<C = SystemClock> {
    counter: MillisCounter,
    clock: C,
}

/// A new millisecond's counter starts at a random value below half its range (RFC 9562
/// method 1), leaving at least 32,768 steps before it rolls over.
const SEED_MASK: u64 = COUNTER_MAX >> 1;

impl UuidV7Generator<SystemClock> {
    /// A generator on the system clock.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{UuidV7, UuidV7Generator};
    ///
    /// let generator = UuidV7Generator::new();
    /// let uuid = generator.next_id()?;
    /// // Every UUID parses back as a version 7 UUID.
    /// assert_eq!(uuid.to_string().parse::<UuidV7>()?, uuid);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> UuidV7Generator<SystemClock> {
        UuidV7Generator::with_clock(SystemClock)
    }
}

impl Default for UuidV7Generator<SystemClock> {
    fn default() -> UuidV7Generator<SystemClock> {
        UuidV7Generator::new()
    }
}

impl<C: Clock> UuidV7Generator<C> {
    /// A generator reading time from `clock`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::UuidV7Generator;
    ///
    /// let generator = UuidV7Generator::with_clock(ManualClock::at_unix_millis(1_645_557_742_000));
    /// assert!(generator.next_id()?.to_string().starts_with("017f22e2-79b0-7"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_clock(clock: C) -> UuidV7Generator<C> {
        UuidV7Generator {
            counter: MillisCounter::new(),
            clock,
        }
    }

    /// The next UUIDv7: larger than every UUID this generator issued before.
    ///
    /// # Errors
    ///
    /// [`GenerateError::TimestampOverflow`] after the year 10889.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::UuidV7Generator;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let generator = UuidV7Generator::with_clock(clock.clone());
    /// let a = generator.next_id()?;
    /// let b = generator.next_id()?;
    /// // The 16-bit counter (rand_a, then rand_b's top 4 bits) goes up by one.
    /// let counter = |u: keel_idgen::UuidV7| (u64::from(u.rand_a()) << 4) | (u.rand_b() >> 58);
    /// assert_eq!(counter(b), counter(a) + 1);
    /// clock.step_wall_back(Duration::from_secs(1));
    /// assert!(generator.next_id()? > b);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_id(&self) -> Result<UuidV7, GenerateError> {
        let random: u64 = rand::random();
        let (ms, counter) =
            self.counter
                .next(self.clock.unix_millis(), random & SEED_MASK, true)?;
        // Counter: 12 bits of rand_a, then the top 4 of rand_b's 62.
        let rand_a = (counter >> 4) as u16;
        let rand_b = ((counter & 0xF) << 58) | (random >> 6);
        Ok(UuidV7::from_parts(ms, rand_a, rand_b))
    }

    /// The clock.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::UuidV7Generator;
    ///
    /// let generator = UuidV7Generator::with_clock(ManualClock::new());
    /// assert_eq!(generator.next_id()?.unix_millis(), generator.clock().unix_millis());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<C: Clock> IdGenerator for UuidV7Generator<C> {
    type Id = UuidV7;

    fn next_id(&self) -> Result<UuidV7, GenerateError> {
        self.next_id()
    }
}

impl<C: Clock> fmt::Debug for UuidV7Generator<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UuidV7Generator")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::ManualClock;
    use std::time::Duration;

    #[test]
    fn counter_increments_within_a_millisecond_and_reseeds_after() {
        let clock = ManualClock::new();
        let generator = UuidV7Generator::with_clock(clock.clone());
        let a = generator.next_id().expect("uuid");
        let b = generator.next_id().expect("uuid");
        let counter = |u: UuidV7| (u64::from(u.rand_a()) << 4) | (u.rand_b() >> 58);
        assert_eq!(a.unix_millis(), clock.unix_millis());
        assert!(counter(a) <= SEED_MASK, "seeded with the top bit clear");
        assert_eq!(counter(b), counter(a) + 1);
        clock.advance(Duration::from_millis(1));
        let c = generator.next_id().expect("uuid");
        assert_eq!(c.unix_millis(), clock.unix_millis());
        assert!(c > b);
    }

    #[test]
    fn overflow_moves_to_the_next_millisecond_and_a_step_back_keeps_the_last() {
        let clock = ManualClock::new();
        let generator = UuidV7Generator::with_clock(clock.clone());
        let mut last = generator.next_id().expect("uuid");
        for _ in 0..70_000 {
            let next = generator.next_id().expect("uuid");
            assert!(next > last);
            last = next;
        }
        assert!(last.unix_millis() > clock.unix_millis());
        clock.step_wall_back(Duration::from_secs(1));
        assert!(generator.next_id().expect("uuid") > last);
    }
}
