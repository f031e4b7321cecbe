//! The cache's default key hasher: foldhash behind a type of our own, randomly seeded by
//! default and seedable for replays that must give the same result twice.

use std::hash::{BuildHasher, Hasher};

/// Builds the hashers [`Cache`](crate::Cache) and [`Lru`](crate::Lru) use by default: a fast
/// non-cryptographic hash (foldhash), randomly seeded per cache so one client cannot aim
/// keys at one shard.
///
/// [`with_seed`](DefaultHashBuilder::with_seed) fixes the seed: the hash of every key, and
/// so its shard and its admission counters, are then the same in every run, and a replay
/// of a trace gives the same hit ratio twice.
///
/// ```
/// use keel_cache::{Cache, DefaultHashBuilder};
/// use std::hash::BuildHasher;
///
/// let a = DefaultHashBuilder::with_seed(7);
/// let b = DefaultHashBuilder::with_seed(7);
/// assert_eq!(a.hash_one(42u64), b.hash_one(42u64));
/// let cache: Cache<u64, u64> = Cache::builder().max_capacity(100).hasher(a).build()?;
/// cache.insert(1, 1);
/// assert_eq!(cache.get(&1), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct DefaultHashBuilder(foldhash::fast::SeedableRandomState);

impl DefaultHashBuilder {
    /// A builder seeded at random (the default).
    ///
    /// ```
    /// use keel_cache::DefaultHashBuilder;
    /// use std::hash::BuildHasher;
    ///
    /// let h = DefaultHashBuilder::random();
    /// assert_eq!(h.hash_one("k"), h.hash_one("k")); // stable within one builder
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn random() -> Self {
        DefaultHashBuilder(foldhash::fast::SeedableRandomState::random())
    }

    /// A builder whose hashes depend only on `seed` and the key: the same in every run and
    /// every process.
    ///
    /// ```
    /// use keel_cache::DefaultHashBuilder;
    /// use std::hash::BuildHasher;
    ///
    /// let h = DefaultHashBuilder::with_seed(1);
    /// assert_eq!(h.hash_one(5u64), DefaultHashBuilder::with_seed(1).hash_one(5u64));
    /// assert_ne!(h.hash_one(5u64), DefaultHashBuilder::with_seed(2).hash_one(5u64));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_seed(seed: u64) -> Self {
        DefaultHashBuilder(foldhash::fast::SeedableRandomState::with_seed(
            seed,
            foldhash::SharedSeed::global_fixed(),
        ))
    }
}

impl BuildHasher for DefaultHashBuilder {
    type Hasher = KeyHasher;

    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0.build_hasher())
    }
}

/// The hasher [`DefaultHashBuilder`] builds.
///
/// ```
/// use keel_cache::DefaultHashBuilder;
/// use std::hash::{BuildHasher, Hasher};
///
/// let mut h = DefaultHashBuilder::with_seed(3).build_hasher();
/// h.write_u64(9);
/// assert_eq!(h.finish(), DefaultHashBuilder::with_seed(3).hash_one(9u64));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct KeyHasher(foldhash::fast::FoldHasher<'static>);

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyHasher").finish_non_exhaustive()
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0.finish()
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.0.write_u16(i);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0.write_u32(i);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.0.write_u128(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cache;

    /// Misses of get-then-insert-on-miss over a skewed sequence with reuse.
    fn replay(seed: u64, salt: u64) -> usize {
        let cache: Cache<u64, u64> = Cache::builder()
            .max_capacity(300)
            .shards(2)
            .hasher(DefaultHashBuilder::with_seed(seed))
            .build()
            .unwrap();
        let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ salt;
        let mut misses = 0;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly a hot set of 200 keys, sometimes one of 5,000.
            let k = if x.is_multiple_of(4) {
                x % 5_000
            } else {
                x % 200
            };
            if cache.get(&k).is_none() {
                misses += 1;
                cache.insert(k, k);
            }
        }
        misses
    }

    #[test]
    fn a_seeded_replay_gives_the_same_misses_twice() {
        let first = replay(11, 0);
        // Other replays on this thread in between must not change the next one.
        replay(12, 1);
        replay(13, 2);
        assert_eq!(replay(11, 0), first);
        assert!(first > 0 && first < 50_000);
    }
}
