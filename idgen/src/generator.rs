//! The one trait every generator implements.

use crate::GenerateError;

/// A source of unique IDs, shared across threads by `&self`.
///
/// Implemented by [`Snowflake`](crate::Snowflake) (`u64`), [`UlidGenerator`](crate::UlidGenerator)
/// ([`Ulid`](crate::Ulid)) and [`UuidV7Generator`](crate::UuidV7Generator)
/// ([`UuidV7`](crate::UuidV7)), so code that needs "an ID" can take any of them.
///
/// # Example
///
/// ```
/// use keel_idgen::{IdGenerator, Layout, Snowflake, UlidGenerator};
///
/// fn three<G: IdGenerator>(generator: &G) -> Result<Vec<G::Id>, keel_idgen::GenerateError> {
///     (0..3).map(|_| generator.next_id()).collect()
/// }
///
/// let snowflakes = three(&Snowflake::builder(Layout::twitter(), 1).build()?)?;
/// assert!(snowflakes.windows(2).all(|pair| pair[0] < pair[1]));
/// let ulids = three(&UlidGenerator::new())?;
/// assert!(ulids.windows(2).all(|pair| pair[0] < pair[1]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait IdGenerator: Send + Sync {
    /// The ID type.
    type Id;

    /// The next ID: unique, and larger than every ID this generator issued before.
    ///
    /// # Errors
    ///
    /// A [`GenerateError`] when no ID can be issued without risking a duplicate (the clock
    /// stepped back too far, a lease lapsed...); see each generator.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::{IdGenerator, UuidV7Generator};
    ///
    /// let clock = ManualClock::new();
    /// let generator = UuidV7Generator::with_clock(clock.clone());
    /// let id = generator.next_id()?;
    /// assert_eq!(id.unix_millis(), keel_core::Clock::unix_millis(&clock));
    /// assert!(generator.next_id()? > id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn next_id(&self) -> Result<Self::Id, GenerateError>;
}
