//! `KeyedRateLimit`: the async trait every keyed limiter answers, local or in Redis.

use std::borrow::Borrow;
use std::future::{Future, ready};
use std::hash::Hash;

use keel_core::Clock;

use crate::{Algorithm, CompactKeyedLimiter, Decision, InsufficientCapacity, KeyedLimiter};

/// A keyed rate limiter whose decisions may need a round trip: admit or deny a request for a
/// key, all or nothing.
///
/// Implemented by [`KeyedLimiter`] (one process; the future is ready at once) and, with
/// feature `redis`, by `RedisLimiter` (one quota shared by every process on the same Redis),
/// so code written against this trait, such as `RateLimitLayer` (feature `tower`), takes
/// either. `K` is the key type the caller holds: for a `KeyedLimiter<String>`, a `String` or
/// a `str`; for a `RedisLimiter`, anything that is `AsRef<str>`.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{Gcra, KeyedLimiter, KeyedRateLimit, Quota};
///
/// // Written once, run against a local limiter here and a Redis one in production.
/// async fn admitted<L: KeyedRateLimit<str>>(limiter: &L, key: &str, tries: u32) -> u32 {
///     let mut admitted = 0;
///     for _ in 0..tries {
///         admitted += u32::from(limiter.check_key(key).await.is_allowed());
///     }
///     admitted
/// }
///
/// let limiter = KeyedLimiter::<String, Gcra>::builder(Quota::per_minute(3)?)
///     .clock(ManualClock::new())
///     .build()?;
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// assert_eq!(runtime.block_on(admitted(&limiter, "alice", 5)), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait KeyedRateLimit<K: ?Sized> {
    /// Decides one request for `key`.
    ///
    /// ```
    /// use keel_rate_limit::{FixedWindow, KeyedLimiter, KeyedRateLimit, Quota};
    ///
    /// let limiter = KeyedLimiter::<u64, FixedWindow>::new(Quota::per_hour(1)?);
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// assert!(runtime.block_on(KeyedRateLimit::check_key(&limiter, &7)).is_allowed());
    /// assert!(runtime.block_on(KeyedRateLimit::check_key(&limiter, &7)).is_denied());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn check_key(&self, key: &K) -> impl Future<Output = Decision> + Send;

    /// Decides `n` cells for `key`, all or nothing.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, KeyedRateLimit, Quota};
    ///
    /// let limiter = KeyedLimiter::<String, Gcra>::new(Quota::per_minute(10)?);
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let decision = runtime.block_on(KeyedRateLimit::check_key_n(&limiter, "upload", 4))?;
    /// assert_eq!(decision.remaining(), 6);
    /// assert!(runtime.block_on(KeyedRateLimit::check_key_n(&limiter, "upload", 11)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` exceeds what the key's quota could ever admit at once.
    fn check_key_n(
        &self,
        key: &K,
        n: u32,
    ) -> impl Future<Output = Result<Decision, InsufficientCapacity>> + Send;
}

impl<K, Q, A, C> KeyedRateLimit<Q> for KeyedLimiter<K, A, C>
where
    K: Hash + Eq + Send + Sync + Borrow<Q>,
    Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    A: Algorithm,
    C: Clock,
{
    fn check_key(&self, key: &Q) -> impl Future<Output = Decision> + Send {
        ready(KeyedLimiter::check_key(self, key))
    }

    fn check_key_n(
        &self,
        key: &Q,
        n: u32,
    ) -> impl Future<Output = Result<Decision, InsufficientCapacity>> + Send {
        ready(KeyedLimiter::check_key_n(self, key, n))
    }
}

#[cfg(feature = "redis")]
mod redis_impl {
    use std::future::Future;

    use keel_core::Clock;
    use redis::aio::ConnectionLike;

    use super::KeyedRateLimit;
    use crate::{Decision, InsufficientCapacity, RedisAlgorithm, RedisLimiter};

    impl<Q, A, C, R> KeyedRateLimit<Q> for RedisLimiter<A, C, R>
    where
        Q: AsRef<str> + Sync + ?Sized,
        A: RedisAlgorithm,
        C: Clock,
        R: ConnectionLike + Clone + Send + Sync + 'static,
    {
        fn check_key(&self, key: &Q) -> impl Future<Output = Decision> + Send {
            RedisLimiter::check_key(self, key.as_ref())
        }

        fn check_key_n(
            &self,
            key: &Q,
            n: u32,
        ) -> impl Future<Output = Result<Decision, InsufficientCapacity>> + Send {
            RedisLimiter::check_key_n(self, key.as_ref(), n)
        }
    }
}

/// ```
/// use keel_rate_limit::{CompactKeyedLimiter, KeyedRateLimit, Quota};
///
/// async fn admit(limiter: &impl KeyedRateLimit<u64>, user: u64) -> bool {
///     limiter.check_key(&user).await.is_allowed()
/// }
///
/// let limiter = CompactKeyedLimiter::new(Quota::per_minute(1)?)?;
/// let first = std::pin::pin!(admit(&limiter, 9));
/// let waker = std::task::Waker::noop();
/// let mut cx = std::task::Context::from_waker(waker);
/// assert_eq!(first.poll(&mut cx), std::task::Poll::Ready(true)); // ready at once
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<C: Clock> KeyedRateLimit<u64> for CompactKeyedLimiter<C> {
    fn check_key(&self, key: &u64) -> impl Future<Output = Decision> + Send {
        ready(CompactKeyedLimiter::check_key(self, *key))
    }

    fn check_key_n(
        &self,
        key: &u64,
        n: u32,
    ) -> impl Future<Output = Result<Decision, InsufficientCapacity>> + Send {
        ready(CompactKeyedLimiter::check_key_n(self, *key, n))
    }
}
