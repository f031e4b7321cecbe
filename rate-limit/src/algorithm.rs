//! `Algorithm`: one rate-limiting rule as a state and a decision function.

use std::fmt;

use keel_core::Instant;

use crate::{Decision, Quota};

/// A rate-limiting algorithm: the state it keeps for one limiter (or one key) and the
/// function that decides a request against it.
///
/// The algorithms are zero-sized types ([`Gcra`](crate::Gcra),
/// [`LeakyBucket`](crate::LeakyBucket), [`FixedWindow`](crate::FixedWindow),
/// [`SlidingLog`](crate::SlidingLog), [`SlidingCounter`](crate::SlidingCounter)) that
/// [`Limiter`](crate::Limiter) and [`KeyedLimiter`](crate::KeyedLimiter) are generic over, so
/// the algorithm, the state's home and the clock are separate pieces. The state brings its
/// own synchronization (an atomic for GCRA, a small mutex for the others), so decisions for
/// one key never take a lock wider than that key.
pub trait Algorithm: Send + Sync + fmt::Debug + 'static {
    /// The state of one limiter or one key. `Default` is the fresh state.
    type State: Default + Send + Sync + fmt::Debug;

    /// The most cells one call may ask for under `quota`.
    fn capacity(quota: &Quota) -> u32;

    /// Decides a request for `n` cells (`n <= capacity`) at `now`, all or nothing: it takes
    /// the cells if admitted and nothing if denied.
    fn decide(quota: &Quota, state: &Self::State, now: Instant, n: u32) -> Decision;

    /// Whether `state` behaves exactly like a fresh state at `now` and later, so a keyed
    /// limiter may drop it.
    fn is_fresh(quota: &Quota, state: &Self::State, now: Instant) -> bool;
}
