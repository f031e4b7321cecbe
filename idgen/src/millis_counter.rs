//! The state ULID and UUIDv7 generators share: the last millisecond issued and a 16-bit
//! counter within it, in one atomic word moved forward by compare-and-swap.

use keel_core::sync::atomic::{AtomicU64, Ordering};

use crate::GenerateError;

pub(crate) const COUNTER_BITS: u32 = 16;
pub(crate) const COUNTER_MAX: u64 = (1 << COUNTER_BITS) - 1;
/// The last millisecond a 48-bit timestamp holds (the year 10889).
const MAX_MS: u64 = (1 << 48) - 1;

/// `(millisecond << 16) | counter`, strictly increasing across calls.
#[derive(Debug)]
pub(crate) struct MillisCounter {
    state: AtomicU64,
}

impl MillisCounter {
    pub(crate) fn new() -> MillisCounter {
        MillisCounter {
            state: AtomicU64::new(0),
        }
    }

    /// The next `(millisecond, counter)`, greater than every one returned before.
    ///
    /// When the clock has moved past the last millisecond, the counter starts at `seed`
    /// (at most [`COUNTER_MAX`]); otherwise the last millisecond's counter goes up by one. A
    /// used-up counter moves to the next millisecond when `roll_over`, or fails with
    /// [`GenerateError::Overflow`].
    #[inline]
    pub(crate) fn next(
        &self,
        now_ms: u64,
        seed: u64,
        roll_over: bool,
    ) -> Result<(u64, u64), GenerateError> {
        if now_ms > MAX_MS {
            return Err(GenerateError::TimestampOverflow);
        }
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let last_ms = current >> COUNTER_BITS;
            let next = if now_ms > last_ms {
                (now_ms << COUNTER_BITS) | (seed & COUNTER_MAX)
            } else if current & COUNTER_MAX < COUNTER_MAX {
                current + 1
            } else if !roll_over {
                return Err(GenerateError::Overflow);
            } else if last_ms < MAX_MS {
                (last_ms + 1) << COUNTER_BITS
            } else {
                return Err(GenerateError::TimestampOverflow);
            };
            match self.state.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok((next >> COUNTER_BITS, next & COUNTER_MAX)),
                Err(actual) => {
                    current = actual;
                    keel_core::sync::spin_loop();
                }
            }
        }
    }
}
