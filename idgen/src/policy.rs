//! What a Snowflake generator does when the clock steps back or a tick's sequence runs out.

use std::time::Duration;

/// What a [`Snowflake`](crate::Snowflake) does when the wall clock reads earlier than the last
/// timestamp it issued (an NTP step, a VM restored from a snapshot).
///
/// Every policy keeps IDs unique and increasing; they differ in whether the caller waits,
/// gets IDs stamped ahead of the clock, or gets an error.
///
/// Under [`SequenceExhausted::BorrowAhead`] `{ max }` the generator's own timestamps may run
/// up to `max` ahead of the clock, and it cannot tell that lead from a step back: a step back
/// of at most `max` is served from the borrowed ticks whatever this policy says, and the
/// policy applies to steps further back.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_idgen::{ClockBackwards, Layout, Snowflake};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let generator = Snowflake::builder(Layout::twitter(), 1)
///     .clock(clock.clone())
///     .on_clock_backwards(ClockBackwards::Borrow { max: Duration::from_millis(50) })
///     .build()?;
/// let before = generator.decode(generator.next_id()?);
/// clock.step_wall_back(Duration::from_millis(10));
/// // Borrow: the next ID keeps the last timestamp, ahead of the clock.
/// let after = generator.decode(generator.next_id()?);
/// assert_eq!(after.ticks, before.ticks);
/// assert_eq!(after.sequence, before.sequence + 1);
/// assert_eq!(
///     ClockBackwards::default(),
///     ClockBackwards::Wait { max: Duration::from_secs(1) }
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClockBackwards {
    /// If the clock is at most `max` behind, wait until it catches up (blocking calls sleep,
    /// `try_` calls return [`WouldBlock`](crate::GenerateError::WouldBlock)); further behind,
    /// return [`ClockMovedBack`](crate::GenerateError::ClockMovedBack) at once.
    Wait {
        /// The longest step back waited out.
        max: Duration,
    },
    /// If the clock is at most `max` behind, keep issuing on the last timestamp, using up its
    /// sequence and then the following ticks', so IDs run ahead of the clock by at most `max`;
    /// further behind, return [`ClockMovedBack`](crate::GenerateError::ClockMovedBack).
    Borrow {
        /// The furthest the issued timestamps may run ahead of the clock.
        max: Duration,
    },
    /// Return [`ClockMovedBack`](crate::GenerateError::ClockMovedBack) as soon as the clock is
    /// behind the last issued timestamp (by more than
    /// [`SequenceExhausted::BorrowAhead`]'s `max`, if that is set).
    Error,
}

impl Default for ClockBackwards {
    /// `Wait { max: 1 s }`: small NTP steps cost a short wait, large ones an error.
    fn default() -> ClockBackwards {
        ClockBackwards::Wait {
            max: Duration::from_secs(1),
        }
    }
}

/// What a [`Snowflake`](crate::Snowflake) does when every sequence number of the current tick
/// has been issued.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_idgen::{GenerateError, Layout, SequenceExhausted, Snowflake};
/// use std::time::Duration;
///
/// // Four IDs per millisecond.
/// let layout = Layout::builder().sequence_bits(2).build()?;
/// let clock = ManualClock::new();
/// let waiting = Snowflake::builder(layout, 0).clock(clock.clone()).build()?;
/// for _ in 0..4 {
///     waiting.try_next_id()?;
/// }
/// // The default waits for the next millisecond.
/// assert_eq!(
///     waiting.try_next_id(),
///     Err(GenerateError::WouldBlock { retry_after: Duration::from_millis(1) })
/// );
///
/// let borrowing = Snowflake::builder(layout, 0)
///     .clock(clock.clone())
///     .on_sequence_exhausted(SequenceExhausted::BorrowAhead { max: Duration::from_millis(2) })
///     .build()?;
/// // Borrowing two milliseconds ahead serves 4 + 2 * 4 IDs at once.
/// let served = (0..20).filter(|_| borrowing.try_next_id().is_ok()).count();
/// assert_eq!(served, 12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SequenceExhausted {
    /// Wait for the next tick (at most one time unit). The default: the layout's rate is a
    /// hard limit and timestamps never run ahead of the clock.
    #[default]
    Wait,
    /// Take sequence numbers from the following ticks, so bursts above the layout's rate are
    /// served at once, as long as the issued timestamps stay at most `max` ahead of the clock;
    /// beyond, wait.
    BorrowAhead {
        /// The furthest the issued timestamps may run ahead of the clock.
        max: Duration,
    },
}
