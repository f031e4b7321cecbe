//! `RandomSource` and `JitterRng`: the random bits a [`Backoff`](crate::Backoff) draws its
//! jitter from, injectable so tests replay.

use std::hash::{BuildHasher, Hasher, RandomState};

/// Where jitter gets its random bits: one method, so a test can pass a seeded [`JitterRng`],
/// a closure returning fixed values, or a wrapper around any other generator.
///
/// Every `FnMut() -> u64` is a source, so another crate's generator plugs in as a closure.
///
/// ```
/// use keel_core::{Backoff, BackoffJitter, RandomSource};
/// use std::time::Duration;
///
/// // The lowest and the highest draw: full jitter's range is [0, step].
/// let backoff = Backoff::exponential(Duration::from_millis(100)).jitter(BackoffJitter::Full);
/// assert_eq!(backoff.delay(1, Duration::ZERO, &mut || 0), Duration::ZERO);
/// assert_eq!(backoff.delay(1, Duration::ZERO, &mut || u64::MAX), Duration::from_millis(200));
///
/// let mut counter = 0u64;
/// let mut source = || { counter += 1; counter };
/// assert_eq!(source.next_u64(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait RandomSource {
    /// 64 uniformly random bits.
    ///
    /// ```
    /// use keel_core::{JitterRng, RandomSource};
    ///
    /// let mut a = JitterRng::seeded(9);
    /// let mut b = JitterRng::seeded(9);
    /// assert_eq!(a.next_u64(), b.next_u64()); // the same seed replays
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> RandomSource for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// A small, fast generator (SplitMix64, one `u64` of state) for jitter: seedable, so tests
/// replay, or seeded from the standard library's per-process random keys. Not for secrets.
///
/// ```
/// use keel_core::{Backoff, JitterRng};
/// use std::time::Duration;
///
/// let backoff = Backoff::exponential(Duration::from_millis(10));
/// let a: Vec<_> = backoff.delays(JitterRng::seeded(42)).take(5).collect();
/// let b: Vec<_> = backoff.delays(JitterRng::seeded(42)).take(5).collect();
/// assert_eq!(a, b);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitterRng {
    state: u64,
}

impl JitterRng {
    /// A generator that yields the same sequence for the same seed.
    ///
    /// ```
    /// use keel_core::{JitterRng, RandomSource};
    ///
    /// let mut rng = JitterRng::seeded(1);
    /// let first = rng.next_u64();
    /// assert_ne!(first, rng.next_u64());
    /// assert_eq!(JitterRng::seeded(1).next_u64(), first);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub const fn seeded(seed: u64) -> JitterRng {
        JitterRng { state: seed }
    }

    /// A generator seeded differently on every call, from the standard library's random
    /// hash keys (drawn from the OS once per thread, then stepped per call): no system call
    /// after the first on a thread.
    ///
    /// ```
    /// use keel_core::{JitterRng, RandomSource};
    ///
    /// let (mut a, mut b) = (JitterRng::from_entropy(), JitterRng::from_entropy());
    /// assert_ne!(a.next_u64(), b.next_u64());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_entropy() -> JitterRng {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x6b65_656c); // any input: the keys are what differ
        JitterRng::seeded(hasher.finish())
    }
}

impl RandomSource for JitterRng {
    fn next_u64(&mut self) -> u64 {
        // SplitMix64 (Steele, Lea and Flood 2014), as used to seed xoshiro.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A uniform draw from `[low, high]` (nanoseconds), by Lemire's multiply-shift: one
/// multiplication, no division, bias below 2^-64 per value for any span.
pub(crate) fn uniform<R: RandomSource + ?Sized>(low: u64, high: u64, rng: &mut R) -> u64 {
    debug_assert!(low <= high);
    let span = high - low;
    if span == u64::MAX {
        return rng.next_u64();
    }
    let scaled = u128::from(rng.next_u64()) * u128::from(span + 1);
    low + (scaled >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_output() {
        // First outputs of the reference C implementation seeded with 0.
        let mut rng = JitterRng::seeded(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn uniform_reaches_both_ends_and_stays_inside() {
        assert_eq!(uniform(5, 9, &mut || 0), 5);
        assert_eq!(uniform(5, 9, &mut || u64::MAX), 9);
        assert_eq!(uniform(7, 7, &mut || u64::MAX), 7);
        assert_eq!(uniform(0, u64::MAX, &mut || 123), 123);
        let mut rng = JitterRng::seeded(3);
        for _ in 0..10_000 {
            let x = uniform(10, 20, &mut rng);
            assert!((10..=20).contains(&x));
        }
    }
}
