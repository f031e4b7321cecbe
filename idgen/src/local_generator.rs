//! Per-thread ULID and UUIDv7 generators: one owner, no atomics, the clock's recent reading.

use keel_core::{Clock, SystemClock};

use crate::{GenerateError, Ulid, UuidV7};

/// The last millisecond a 48-bit timestamp holds (the year 10889).
const MAX_MS: u64 = (1 << 48) - 1;

/// The last `(millisecond, random)` issued, for a random part of `BITS` bits.
///
/// Each millisecond's first ID takes a fresh random start below `2^(BITS-1)` from the thread's
/// CSPRNG; later IDs in that millisecond count up from it, as the ULID spec's monotonic mode
/// does. The top bit left clear gives every millisecond at least `2^(BITS-1)` IDs, so the
/// roll-over to the next millisecond is there for correctness only.
#[derive(Clone, Debug)]
struct Monotonic<const BITS: u32> {
    ms: u64,
    /// The random part of the next ID in `ms`; above `MAX` until the first ID.
    next: u128,
    issued: bool,
}

impl<const BITS: u32> Monotonic<BITS> {
    const MAX: u128 = (1 << BITS) - 1;

    fn new() -> Monotonic<BITS> {
        Monotonic {
            ms: 0,
            next: Self::MAX + 1,
            issued: false,
        }
    }

    #[inline]
    fn next(&mut self, now_ms: u64) -> Result<(u64, u128), GenerateError> {
        if now_ms > self.ms || self.next > Self::MAX {
            self.start(now_ms)?;
        }
        let random = self.next;
        self.next += 1;
        Ok((self.ms, random))
    }

    // A new millisecond (the clock's, or the next one when this one is used up).
    #[cold]
    fn start(&mut self, now_ms: u64) -> Result<(), GenerateError> {
        let ms = if now_ms > self.ms || !self.issued {
            now_ms
        } else {
            self.ms + 1
        };
        if ms > MAX_MS {
            return Err(GenerateError::TimestampOverflow);
        }
        self.ms = ms;
        self.next = rand::random::<u128>() & (Self::MAX >> 1);
        self.issued = true;
        Ok(())
    }
}

/// A ULID generator for one thread: strictly increasing ULIDs at a few nanoseconds each,
/// with no atomic read-modify-write and no lock, because it takes `&mut self`.
///
/// Give each thread its own (move it into the thread, or keep it in a `thread_local!`);
/// a generator shared by all threads is [`UlidGenerator`](crate::UlidGenerator).
///
/// # Time
///
/// Each call reads the clock once, through [`Clock::recent_unix_millis`]. On the default
/// [`SystemClock`] that is the wall clock as keel-core's ticker thread (one per process,
/// started on first use, stopped after a second unread) stored it, so a reading is one
/// relaxed atomic load; a ULID's timestamp is then at most 1 ms plus the ticker's scheduling
/// delay behind the system clock. Any other [`Clock`] works through
/// [`with_clock`](LocalUlidGenerator::with_clock); a [`ManualClock`](keel_core::ManualClock)
/// answers exactly.
///
/// # Guarantees
///
/// - **One generator**: every ULID is greater than every ULID it issued before, whatever the
///   clock does. A ULID's timestamp is the highest clock reading the generator has seen: it
///   equals the reading at the call unless the wall clock stepped back, and then runs ahead
///   of the clock by at most that step, until the clock catches up. (A millisecond holds at
///   least 2^79 ULIDs before the timestamp would move on, which no machine reaches.)
/// - **Across threads, ordering by millisecond only**: if one ULID is issued before another
///   on a different thread (synchronised, e.g. through a channel) and both threads read the
///   same clock, the later one's timestamp is not earlier, unless the wall clock stepped back.
///   Within one millisecond, ULIDs of different generators are in random order.
/// - **Across threads, uniqueness by randomness**: each generator starts every millisecond
///   at an independent random point below 2^79 (from `rand`'s thread-local CSPRNG) and
///   counts up. Two generators can collide only if, in the same millisecond, their ranges of
///   `n1` and `n2` ULIDs overlap: probability at most `(n1 + n2) / 2^79` (about
///   `(n1 + n2) × 1.7e-24`). 64 threads issuing 10,000 ULIDs every millisecond for a year
///   collide with probability below 3e-6.
///
/// # Example
///
/// ```
/// use keel_idgen::LocalUlidGenerator;
///
/// let mut generator = LocalUlidGenerator::new();
/// let a = generator.next_id()?;
/// let b = generator.next_id()?;
/// assert!(b > a);
///
/// // One generator per thread, each owned by its thread.
/// let handles: Vec<_> = (0..2)
///     .map(|_| {
///         std::thread::spawn(|| {
///             let mut generator = LocalUlidGenerator::new();
///             (0..1_000).map(|_| generator.next_id()).collect::<Result<Vec<_>, _>>()
///         })
///     })
///     .collect();
/// let mut all = Vec::new();
/// for handle in handles {
///     let ulids = handle.join().expect("thread")?;
///     assert!(ulids.windows(2).all(|pair| pair[0] < pair[1]));
///     all.extend(ulids);
/// }
/// all.sort();
/// all.dedup();
/// assert_eq!(all.len(), 2_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LocalUlidGenerator<C: Clock = SystemClock> {
    clock: C,
    state: Monotonic<80>,
}

impl LocalUlidGenerator<SystemClock> {
    /// A generator on [`SystemClock`] (whose ticker thread starts on first use).
    ///
    /// ```
    /// use keel_core::Clock;
    /// use keel_idgen::LocalUlidGenerator;
    ///
    /// let mut generator = LocalUlidGenerator::new();
    /// let ulid = generator.next_id()?;
    /// assert!(ulid.timestamp_ms() <= generator.clock().unix_millis()); // read from that clock
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> LocalUlidGenerator<SystemClock> {
        LocalUlidGenerator::with_clock(SystemClock)
    }
}

impl Default for LocalUlidGenerator<SystemClock> {
    fn default() -> LocalUlidGenerator<SystemClock> {
        LocalUlidGenerator::new()
    }
}

impl<C: Clock> LocalUlidGenerator<C> {
    /// A generator reading time from `clock` (its `recent_unix_millis`) on every call.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::LocalUlidGenerator;
    ///
    /// let clock = ManualClock::at_unix_millis(1_469_922_850_259);
    /// let mut generator = LocalUlidGenerator::with_clock(clock);
    /// let ulid = generator.next_id()?;
    /// assert_eq!(ulid.timestamp_ms(), 1_469_922_850_259);
    /// assert!(ulid.to_string().starts_with("01ARZ3NDEK"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_clock(clock: C) -> LocalUlidGenerator<C> {
        LocalUlidGenerator {
            clock,
            state: Monotonic::new(),
        }
    }

    /// The next ULID: greater than every ULID this generator issued before.
    ///
    /// # Errors
    ///
    /// [`GenerateError::TimestampOverflow`] after the year 10889.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::LocalUlidGenerator;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let mut generator = LocalUlidGenerator::with_clock(clock.clone());
    /// let a = generator.next_id()?;
    /// assert_eq!(generator.next_id()?.random(), a.random() + 1); // counts up in a millisecond
    /// clock.step_wall_back(Duration::from_secs(1));
    /// let c = generator.next_id()?; // a step back keeps the last millisecond
    /// assert_eq!((c.timestamp_ms(), c.random()), (a.timestamp_ms(), a.random() + 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn next_id(&mut self) -> Result<Ulid, GenerateError> {
        let (ms, random) = self.state.next(self.clock.recent_unix_millis())?;
        Ok(Ulid::from_parts(ms, random))
    }

    /// The clock.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::LocalUlidGenerator;
    ///
    /// let mut generator = LocalUlidGenerator::with_clock(ManualClock::new());
    /// assert_eq!(generator.next_id()?.timestamp_ms(), generator.clock().unix_millis());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

/// A UUIDv7 generator for one thread: strictly increasing RFC 9562 version 7 UUIDs at a few
/// nanoseconds each, with no atomic read-modify-write and no lock, because it takes
/// `&mut self`.
///
/// It works as [`LocalUlidGenerator`] does (same clock, same guarantees), with the 74 bits of
/// `rand_a` and `rand_b` as the random part counted up within a millisecond (RFC 9562,
/// section 6.2, method 2): each millisecond starts at a random point below 2^73, so two
/// generators issuing `n1` and `n2` UUIDs in one millisecond collide with probability at most
/// `(n1 + n2) / 2^73`. A UUIDv7 generator shared by all threads is
/// [`UuidV7Generator`](crate::UuidV7Generator).
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_idgen::LocalUuidV7Generator;
///
/// let clock = ManualClock::new();
/// let mut generator = LocalUuidV7Generator::with_clock(clock.clone());
/// let a = generator.next_id()?;
/// let b = generator.next_id()?;
/// assert!(b > a);
/// assert_eq!(a.unix_millis(), keel_core::Clock::unix_millis(&clock));
/// assert_eq!(a.to_string().as_bytes()[14], b'7'); // the version digit
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LocalUuidV7Generator<C: Clock = SystemClock> {
    clock: C,
    state: Monotonic<74>,
}

impl LocalUuidV7Generator<SystemClock> {
    /// A generator on [`SystemClock`] (whose ticker thread starts on first use).
    ///
    /// ```
    /// use keel_idgen::LocalUuidV7Generator;
    ///
    /// let mut generator = LocalUuidV7Generator::new();
    /// let a = generator.next_id()?;
    /// assert!(generator.next_id()? > a);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> LocalUuidV7Generator<SystemClock> {
        LocalUuidV7Generator::with_clock(SystemClock)
    }
}

impl Default for LocalUuidV7Generator<SystemClock> {
    fn default() -> LocalUuidV7Generator<SystemClock> {
        LocalUuidV7Generator::new()
    }
}

impl<C: Clock> LocalUuidV7Generator<C> {
    /// A generator reading time from `clock` (its `recent_unix_millis`) on every call.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::LocalUuidV7Generator;
    ///
    /// let mut generator = LocalUuidV7Generator::with_clock(ManualClock::at_unix_millis(0x017F_22E2_79B0));
    /// assert!(generator.next_id()?.to_string().starts_with("017f22e2-79b0-7"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_clock(clock: C) -> LocalUuidV7Generator<C> {
        LocalUuidV7Generator {
            clock,
            state: Monotonic::new(),
        }
    }

    /// The next UUIDv7: greater than every UUID this generator issued before.
    ///
    /// # Errors
    ///
    /// [`GenerateError::TimestampOverflow`] after the year 10889.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::LocalUuidV7Generator;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let mut generator = LocalUuidV7Generator::with_clock(clock.clone());
    /// let a = generator.next_id()?;
    /// clock.step_wall_back(Duration::from_secs(1));
    /// let b = generator.next_id()?; // a step back keeps the last millisecond
    /// assert!(b > a);
    /// assert_eq!(b.unix_millis(), a.unix_millis());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn next_id(&mut self) -> Result<UuidV7, GenerateError> {
        let (ms, random) = self.state.next(self.clock.recent_unix_millis())?;
        // The top 12 of the 74 bits are rand_a, the low 62 rand_b: the UUID's order is theirs.
        Ok(UuidV7::from_parts(
            ms,
            (random >> 62) as u16,
            random as u64 & ((1 << 62) - 1),
        ))
    }

    /// The clock.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::LocalUuidV7Generator;
    ///
    /// let mut generator = LocalUuidV7Generator::with_clock(ManualClock::new());
    /// assert_eq!(generator.next_id()?.unix_millis(), generator.clock().unix_millis());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_used_up_millisecond_moves_to_the_next() {
        let mut state = Monotonic::<8>::new();
        let first = state.next(1_000).expect("id");
        let mut last = first;
        let mut in_first_ms = 1;
        loop {
            let id = state.next(1_000).expect("id");
            assert!(id > last);
            last = id;
            if id.0 != 1_000 {
                break;
            }
            in_first_ms += 1;
        }
        // A start below 2^7 leaves 129 to 256 IDs before 2^8, then the next millisecond.
        assert!((129..=256).contains(&in_first_ms), "{in_first_ms}");
        assert_eq!(last.0, 1_001);
        assert_eq!(in_first_ms, Monotonic::<8>::MAX + 1 - first.1);
    }

    #[test]
    fn the_first_id_at_the_epoch_is_stamped_with_the_epoch() {
        let mut state = Monotonic::<80>::new();
        assert_eq!(state.next(0).expect("id").0, 0);
    }

    #[test]
    fn past_the_year_10889_is_an_error() {
        let mut state = Monotonic::<80>::new();
        assert_eq!(
            state.next(MAX_MS + 1),
            Err(GenerateError::TimestampOverflow)
        );
        assert_eq!(state.next(MAX_MS).expect("id").0, MAX_MS);
    }
}
