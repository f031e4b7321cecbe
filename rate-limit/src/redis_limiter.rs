//! `RedisLimiter`: one quota shared by many processes, each decision one Lua script in Redis.

use std::fmt;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_core::{Clock, Instant, SystemClock};
use keel_redis::{KeyBuilder, Redis, Script};
use redis::aio::{ConnectionLike, ConnectionManager};

use crate::quota_cell::QuotaCell;
use crate::{
    Algorithm, Decision, FixedWindow, Gcra, InsufficientCapacity, KeyedLimiter, Quota,
    SlidingCounter, SlidingLog,
};

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new("gcra", include_str!("lua/gcra.lua")));
static FIXED_WINDOW: LazyLock<Script> =
    LazyLock::new(|| Script::new("fixed window", include_str!("lua/fixed_window.lua")));
static SLIDING_LOG: LazyLock<Script> =
    LazyLock::new(|| Script::new("sliding log", include_str!("lua/sliding_log.lua")));
static SLIDING_COUNTER: LazyLock<Script> =
    LazyLock::new(|| Script::new("sliding counter", include_str!("lua/sliding_counter.lua")));

/// An [`Algorithm`] that also runs in Redis, as a Lua script: [`Gcra`], [`FixedWindow`],
/// [`SlidingLog`] and [`SlidingCounter`].
///
/// Each script reads Redis's own clock (`TIME`, in microseconds), so clients' clocks do not
/// matter, and sets a TTL on its keys so an idle key disappears once it is fresh.
///
/// Code generic over `A: RedisAlgorithm` runs with any of the four:
///
/// ```
/// use keel_rate_limit::{Gcra, Quota, RedisAlgorithm, RedisLimiter, SlidingLog};
/// use redis::aio::ConnectionManager;
/// use std::time::Duration;
///
/// // How many requests a fresh key gets before the first denial.
/// async fn admitted<A: RedisAlgorithm>(
///     quota: Quota,
///     connection: ConnectionManager,
/// ) -> Result<u32, Box<dyn std::error::Error>> {
///     let limiter = RedisLimiter::<A>::builder(quota)
///         .prefix(std::any::type_name::<A>())
///         .timeout(Duration::from_secs(2))
///         .build(connection)?;
///     let mut admitted = 0;
///     while limiter.try_check_key_n("k", 1).await?.is_allowed() {
///         admitted += 1;
///     }
///     Ok(admitted)
/// }
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// # runtime.block_on(async {
/// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
/// let quota = Quota::per_hour(3)?;
/// assert_eq!(admitted::<Gcra>(quota, connection.clone()).await?, 3);
/// assert_eq!(admitted::<SlidingLog>(quota, connection).await?, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait RedisAlgorithm: Algorithm {
    /// The Lua script deciding one request.
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisAlgorithm, RedisLimiter, SlidingCounter};
    /// use keel_testkit::Reply;
    ///
    /// assert_ne!(Gcra::script().hash(), SlidingCounter::script().hash());
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_second(5)?)
    /// #     .timeout(std::time::Duration::from_secs(2))
    ///     .build(connection)?;
    /// assert!(limiter.check_key("k").await.is_allowed());
    /// // The first decision loaded the script into Redis, under its SHA-1.
    /// let loaded = server.command(&["SCRIPT", "EXISTS", Gcra::script().hash()])?;
    /// assert_eq!(loaded, Reply::Array(Some(vec![Reply::Integer(1)])));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn script() -> &'static Script;

    /// The Redis keys one decision touches, all with the same hash tag (the key, escaped by
    /// [`KeyBuilder`]), so a Redis Cluster serves them from one slot whatever the key.
    /// ```
    /// use keel_rate_limit::{Gcra, RedisAlgorithm, SlidingLog};
    /// use keel_redis::KeyBuilder;
    ///
    /// let keys = KeyBuilder::new("rl:")?;
    /// assert_eq!(Gcra::keys(&keys, "user-7"), ["rl:{user-7}"]);
    /// assert_eq!(SlidingLog::keys(&keys, "user-7"), ["rl:{user-7}:log", "rl:{user-7}:meta"]);
    /// // A key that would close the hash tag early is escaped.
    /// assert_eq!(SlidingLog::keys(&keys, "}x"), ["rl:{%7Dx}:log", "rl:{%7Dx}:meta"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn keys(keys: &KeyBuilder, key: &str) -> Vec<String> {
        vec![keys.key(key)]
    }

    /// The script's arguments after the quota's, beyond `n`: the interval (µs) and the count.
    /// ```
    /// use keel_rate_limit::{FixedWindow, Gcra, Quota, RedisAlgorithm};
    ///
    /// let quota = Quota::per_second(10)?.with_burst(5)?;
    /// assert_eq!(Gcra::args(&quota), (100_000, 5)); // emission interval, burst
    /// assert_eq!(FixedWindow::args(&quota), (1_000_000, 10)); // window, limit
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn args(quota: &Quota) -> (u64, u64);
}

fn micros_ceil(nanos: u64) -> u64 {
    nanos.div_ceil(1_000).max(1)
}

impl RedisAlgorithm for Gcra {
    fn script() -> &'static Script {
        &GCRA
    }
    fn args(quota: &Quota) -> (u64, u64) {
        (
            micros_ceil(quota.emission_nanos()),
            u64::from(quota.burst()),
        )
    }
}

impl RedisAlgorithm for FixedWindow {
    fn script() -> &'static Script {
        &FIXED_WINDOW
    }
    fn args(quota: &Quota) -> (u64, u64) {
        (micros_ceil(quota.period_nanos()), u64::from(quota.limit()))
    }
}

impl RedisAlgorithm for SlidingLog {
    fn script() -> &'static Script {
        &SLIDING_LOG
    }
    fn keys(keys: &KeyBuilder, key: &str) -> Vec<String> {
        vec![keys.key_with(key, ":log"), keys.key_with(key, ":meta")]
    }
    fn args(quota: &Quota) -> (u64, u64) {
        (micros_ceil(quota.period_nanos()), u64::from(quota.limit()))
    }
}

impl RedisAlgorithm for SlidingCounter {
    fn script() -> &'static Script {
        &SLIDING_COUNTER
    }
    fn args(quota: &Quota) -> (u64, u64) {
        (micros_ceil(quota.period_nanos()), u64::from(quota.limit()))
    }
}

/// What a [`RedisLimiter`] decides when Redis does not answer in time (down, paused,
/// partitioned).
/// ```
/// use keel_rate_limit::{FailurePolicy, Gcra, Quota, RedisLimiter};
/// use std::time::Duration;
///
/// # let mut server = keel_testkit::RedisServer::start()?;
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// # runtime.block_on(async {
/// # let client = redis::Client::open(server.url())?;
/// // No reconnect retries: while Redis is down a call fails at once instead of waiting out
/// // the reconnect backoff until the limiter's timeout.
/// let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0);
/// let connection = redis::aio::ConnectionManager::new_with_config(client, config).await?;
/// let quota = Quota::per_hour(1)?;
/// let builder = || RedisLimiter::<Gcra>::builder(quota).timeout(Duration::from_secs(1));
/// let open = builder().failure_policy(FailurePolicy::FailOpen).build(connection.clone())?;
/// let closed = builder().failure_policy(FailurePolicy::FailClosed).build(connection.clone())?;
/// let local = builder().build(connection)?; // FailurePolicy::Local, the default
/// server.stop()?;
/// assert!(open.check_key("k").await.is_allowed());
/// assert!(open.check_key("k").await.is_allowed()); // admits everything
/// assert_eq!(closed.check_key("k").await.retry_after(), Some(Duration::from_secs(1)));
/// assert!(local.check_key("k").await.is_allowed()); // the quota, enforced in this process
/// assert!(local.check_key("k").await.is_denied());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit every request: availability over protection. Nothing is recorded, so the
    /// decision reports what a fresh limiter would after admitting the `n` cells:
    /// `remaining` is the algorithm's capacity less `n`, and `reset_after` the time those
    /// `n` cells take to expire from a fresh limiter (for example `n` emission intervals for
    /// GCRA, the whole window for a fixed window).
    FailOpen,
    /// Deny every request, with a retry-after of the call timeout: protection over
    /// availability.
    FailClosed,
    /// Decide with an in-process [`KeyedLimiter`] of the same algorithm and quota, so each
    /// process still enforces the quota on its own share of the traffic. The default.
    #[default]
    Local,
}

/// A Redis call that failed, as reported by [`RedisLimiter::try_check_key_n`].
/// ```
/// use keel_rate_limit::{Gcra, Quota, RedisLimitError, RedisLimiter};
/// use std::time::Duration;
///
/// # let mut server = keel_testkit::RedisServer::start()?;
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// # runtime.block_on(async {
/// # let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0);
/// # let client = redis::Client::open(server.url())?;
/// # let connection = redis::aio::ConnectionManager::new_with_config(client, config).await?;
/// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_minute(10)?)
///     .timeout(Duration::from_secs(1))
///     .build(connection)?;
/// let err = limiter.try_check_key_n("k", 11).await.unwrap_err();
/// assert!(matches!(err, RedisLimitError::InsufficientCapacity(_)));
/// assert_eq!(err.to_string(), "asked for 11 cells at once but the limiter holds at most 10");
/// server.stop()?;
/// let err = limiter.try_check_key_n("k", 1).await.unwrap_err();
/// let RedisLimitError::Redis(cause) = err else { panic!("a Redis failure, got {err:?}") };
/// assert!(cause.kind().is_transient()); // down: connection refused or timed out
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisLimitError {
    /// `n` exceeds what the quota could ever admit at once.
    InsufficientCapacity(InsufficientCapacity),
    /// Redis failed: a timeout, a broken connection, an error reply, or a reply that is not
    /// four integers. [`keel_redis::Error::kind`] says which.
    Redis(keel_redis::Error),
}

impl fmt::Display for RedisLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisLimitError::InsufficientCapacity(err) => err.fmt(f),
            RedisLimitError::Redis(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for RedisLimitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedisLimitError::InsufficientCapacity(err) => Some(err),
            RedisLimitError::Redis(err) => Some(err),
        }
    }
}

/// A [`RedisLimiter`] setting that cannot work.
/// ```
/// use keel_rate_limit::{Gcra, Quota, RedisLimiter, RedisLimiterError};
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// # runtime.block_on(async {
/// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
/// let err = RedisLimiter::<Gcra>::builder(Quota::per_second(1)?)
///     .timeout(Duration::ZERO)
///     .build(connection)
///     .unwrap_err();
/// assert_eq!(err, RedisLimiterError::ZeroTimeout);
/// assert_eq!(err.to_string(), "redis call timeout must be > 0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisLimiterError {
    /// The call timeout was zero.
    ZeroTimeout,
    /// The local fallback's key cap was zero.
    ZeroFallbackKeys,
    /// The key prefix held `{` or `}`, which would take the hash tag away from the key.
    BraceInPrefix {
        /// The prefix given.
        prefix: String,
    },
}

impl fmt::Display for RedisLimiterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisLimiterError::ZeroTimeout => f.write_str("redis call timeout must be > 0"),
            RedisLimiterError::ZeroFallbackKeys => {
                f.write_str("local fallback max_keys must be > 0")
            }
            RedisLimiterError::BraceInPrefix { prefix } => {
                write!(f, "key prefix {prefix:?} must not contain '{{' or '}}'")
            }
        }
    }
}

impl std::error::Error for RedisLimiterError {}

/// A keyed rate limiter whose state lives in Redis, so every process using the same Redis and
/// key prefix draws from one quota.
///
/// - **One round trip per decision.** Each decision is one `EVALSHA` of the algorithm's Lua
///   script (loaded on first use, and again if Redis was restarted), atomic in Redis.
/// - **Redis time.** Scripts read `TIME` on the server, so skew between app servers does not
///   matter. Resolution is one microsecond; the quota's intervals are rounded up to it.
/// - **Any connection.** `R` is any `redis::aio::ConnectionLike + Clone + Send + Sync`: a
///   [`ConnectionManager`] (the default type), a `MultiplexedConnection`, a Redis Cluster
///   connection, or a connection to the master a Sentinel names (see `keel_redis`).
/// - **Cluster-safe.** A decision touches one key, or keys sharing one hash tag built from
///   the key by [`KeyBuilder`], which escapes `{`, `}` and `%`, so any key stays in one slot.
/// - **Idle keys expire** once they are fresh, so Redis holds only keys that are limiting.
/// - **Failures.** Every call has a timeout; on an error or timeout the [`FailurePolicy`]
///   decides (and [`failures`](RedisLimiter::failures) counts it). Nothing panics or hangs,
///   and the next call goes to Redis again, so it recovers on its own when Redis returns.
///   With redis's default [`ConnectionManager`] settings, though, every call made while
///   Redis is down waits the whole timeout: it waits on the manager's reconnect, which
///   retries 6 times with backoff from 100 ms. To fail at once instead, build the manager
///   with `ConnectionManagerConfig::new().set_number_of_retries(0)` and a short
///   `set_connection_timeout`: a refused connection then fails the call immediately, and
///   the next call tries to connect again.
/// - **A lost answer is still charged once.** keel never re-sends a script (`keel-redis`
///   does not retry, and the `ConnectionManager` does not replay a request in flight), so a
///   call whose reply was lost to a timeout, a reset or a half-open connection ran at most
///   once in Redis, and may have been charged there, while the [`FailurePolicy`] decided the
///   request. No decision is counted twice; the error is towards fewer admissions, never
///   more. **Do not retry a failed check blindly**: a caller that checks again after an
///   error is charged twice for one request (measured in the README's network-fault table:
///   10 charges for 5 requests). Let the failure policy decide instead.
///   redis's Cluster client, though, re-sends a request whose connection dropped or timed
///   out, running the script twice for one call: build it with
///   `ClusterClientBuilder::retries(0)` (measured in `tests/network_faults.rs`).
///
/// The same bounds as the in-memory algorithms hold across processes. The sliding counter's
/// arithmetic runs in Lua doubles, exact while `limit × period in µs` stays under 2^53.
///
/// # Example
///
/// ```
/// use keel_rate_limit::{FailurePolicy, Gcra, Quota, RedisLimiter};
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # let url = server.url();
/// # let runtime = tokio::runtime::Runtime::new()?;
/// # runtime.block_on(async {
/// let client = redis::Client::open(url)?;
/// let connection = redis::aio::ConnectionManager::new(client).await?;
/// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_minute(100)?)
///     .prefix("api:")
///     .timeout(Duration::from_millis(50))
///     .failure_policy(FailurePolicy::Local)
///     .build(connection)?;
/// let decision = limiter.check_key_n("user-42", 1).await?;
/// assert!(decision.is_allowed());
/// assert_eq!(decision.remaining(), 99);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisLimiter<A: RedisAlgorithm = Gcra, C: Clock = SystemClock, R = ConnectionManager> {
    redis: Redis<R>,
    quota: QuotaCell,
    keys: KeyBuilder,
    policy: FailurePolicy,
    local: KeyedLimiter<String, A, C>,
    failures: AtomicU64,
    #[cfg(feature = "metrics")]
    emitter: crate::emit::Emitter,
}

/// Configures a [`RedisLimiter`]; made by [`RedisLimiter::builder`].
/// ```
/// use keel_rate_limit::{FailurePolicy, Quota, RedisLimiter, RedisLimiterBuilder, SlidingLog};
/// use std::time::Duration;
///
/// let builder: RedisLimiterBuilder<SlidingLog> = RedisLimiter::builder(Quota::per_minute(30)?)
///     .prefix("search:")
///     .timeout(Duration::from_millis(500))
///     .failure_policy(FailurePolicy::FailClosed);
/// # let server = keel_testkit::RedisServer::start()?;
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// # runtime.block_on(async {
/// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
/// let limiter = builder.build(connection)?;
/// assert_eq!(limiter.check_key("alice").await.remaining(), 29);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RedisLimiterBuilder<A: RedisAlgorithm = Gcra, C: Clock = SystemClock> {
    quota: Quota,
    prefix: String,
    timeout: Duration,
    policy: FailurePolicy,
    fallback_keys: usize,
    clock: C,
    #[cfg(feature = "metrics")]
    name: String,
    _algorithm: std::marker::PhantomData<fn() -> A>,
}

impl<A: RedisAlgorithm> RedisLimiter<A> {
    /// A builder: prefix `"keel-rl:"`, timeout 100 ms, [`FailurePolicy::Local`] with at most
    /// 100 000 local keys.
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisLimiter};
    /// use keel_testkit::Reply;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_minute(10)?)
    /// #     .timeout(std::time::Duration::from_secs(2))
    ///     .build(connection)?;
    /// assert_eq!(limiter.check_key("alice").await.remaining(), 9);
    /// // The state sits under the default prefix, hash-tagged by key.
    /// assert_eq!(server.command(&["EXISTS", "keel-rl:{alice}"])?, Reply::Integer(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(quota: Quota) -> RedisLimiterBuilder<A> {
        RedisLimiterBuilder {
            quota,
            prefix: "keel-rl:".to_string(),
            timeout: Duration::from_millis(100),
            policy: FailurePolicy::Local,
            fallback_keys: 100_000,
            clock: SystemClock,
            #[cfg(feature = "metrics")]
            name: "default".to_owned(),
            _algorithm: std::marker::PhantomData,
        }
    }
}

impl<A: RedisAlgorithm, C: Clock> RedisLimiterBuilder<A, C> {
    /// Names the limiter: the `name` label of its `keel_rate_limit_decisions_total`
    /// counters (feature `metrics`), shared by its local fallback. Defaults to `"default"`.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisLimiter};
    ///
    /// let builder = RedisLimiter::<Gcra>::builder(Quota::per_second(10)?).name("api");
    /// assert!(format!("{builder:?}").contains("api"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The prefix of every Redis key; limiters that should share a quota use the same one.
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisLimiter};
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
    /// let quota = Quota::per_hour(2)?;
    /// let limiter = |prefix: &str| {
    ///     RedisLimiter::<Gcra>::builder(quota)
    ///         .prefix(prefix)
    /// #       .timeout(std::time::Duration::from_secs(2))
    ///         .build(connection.clone())
    /// };
    /// let (web, worker, other) = (limiter("api:")?, limiter("api:")?, limiter("admin:")?);
    /// assert!(web.check_key("alice").await.is_allowed());
    /// assert!(worker.check_key("alice").await.is_allowed());
    /// assert!(web.check_key("alice").await.is_denied()); // one quota for both
    /// assert!(other.check_key("alice").await.is_allowed()); // another prefix, another quota
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The most a call waits for Redis before the failure policy decides.
    /// ```
    /// use keel_rate_limit::{FailurePolicy, Gcra, Quota, RedisLimitError, RedisLimiter};
    /// use std::time::Duration;
    ///
    /// # let mut server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_second(10)?)
    ///     .timeout(Duration::from_millis(50))
    ///     .failure_policy(FailurePolicy::FailClosed)
    ///     .build(connection)?;
    /// server.pause()?; // frozen: connected, but never answers
    /// assert!(matches!(
    ///     limiter.try_check_key_n("k", 1).await,
    ///     Err(RedisLimitError::Redis(err)) if err.kind() == keel_redis::ErrorKind::Timeout
    /// ));
    /// # server.resume()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to decide when Redis fails or times out.
    /// ```
    /// use keel_rate_limit::{FailurePolicy, Gcra, Quota, RedisLimiter};
    /// use std::time::Duration;
    ///
    /// # let mut server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0);
    /// # let client = redis::Client::open(server.url())?;
    /// # let connection = redis::aio::ConnectionManager::new_with_config(client, config).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_hour(1)?)
    ///     .timeout(Duration::from_secs(1))
    ///     .failure_policy(FailurePolicy::FailOpen)
    ///     .build(connection)?;
    /// assert!(limiter.check_key("k").await.is_allowed());
    /// assert!(limiter.check_key("k").await.is_denied()); // Redis decides while it answers
    /// server.stop()?;
    /// assert!(limiter.check_key("k").await.is_allowed()); // then everything passes
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The key cap of the local fallback limiter.
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisLimiter, RedisLimiterError};
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_second(10)?)
    ///     .fallback_max_keys(10_000)
    ///     .build(connection.clone())?;
    /// assert!(limiter.check_key("k").await.is_allowed());
    /// let err = RedisLimiter::<Gcra>::builder(Quota::per_second(10)?)
    ///     .fallback_max_keys(0)
    ///     .build(connection)
    ///     .unwrap_err();
    /// assert_eq!(err, RedisLimiterError::ZeroFallbackKeys);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fallback_max_keys(mut self, max_keys: usize) -> Self {
        self.fallback_keys = max_keys;
        self
    }

    /// The clock of the local fallback limiter (Redis decisions use Redis's clock).
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{Gcra, Quota, RedisLimiter};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// # let mut server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0);
    /// # let client = redis::Client::open(server.url())?;
    /// # let connection = redis::aio::ConnectionManager::new_with_config(client, config).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_minute(1)?)
    ///     .timeout(Duration::from_secs(1))
    ///     .fallback_clock(clock.clone())
    ///     .build(connection)?;
    /// server.stop()?; // from now on the local limiter decides, on the manual clock
    /// assert!(limiter.check_key("k").await.is_allowed());
    /// assert!(limiter.check_key("k").await.is_denied());
    /// clock.advance(Duration::from_secs(60));
    /// assert!(limiter.check_key("k").await.is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fallback_clock<C2: Clock>(self, clock: C2) -> RedisLimiterBuilder<A, C2> {
        RedisLimiterBuilder {
            quota: self.quota,
            prefix: self.prefix,
            timeout: self.timeout,
            policy: self.policy,
            fallback_keys: self.fallback_keys,
            clock,
            #[cfg(feature = "metrics")]
            name: self.name,
            _algorithm: std::marker::PhantomData,
        }
    }

    /// Builds the limiter over `connection`: a [`ConnectionManager`] (which reconnects on its
    /// own after failures), a `MultiplexedConnection`, a cluster connection, or any other
    /// `redis::aio::ConnectionLike + Clone + Send + Sync`.
    /// ```
    /// use keel_rate_limit::{Quota, RedisLimiter, SlidingLog};
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// let client = redis::Client::open(server.url())?;
    /// let multiplexed = client.get_multiplexed_async_connection().await?;
    /// let limiter = RedisLimiter::<SlidingLog>::builder(Quota::per_minute(1)?)
    /// #     .timeout(std::time::Duration::from_secs(2))
    ///     .build(multiplexed)?;
    /// assert!(limiter.check_key("}odd{").await.is_allowed());
    /// assert!(limiter.check_key("}odd{").await.is_denied());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A zero timeout is refused:
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisLimiter};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// let client = redis::Client::open(server.url())?;
    /// let connection = redis::aio::ConnectionManager::new(client).await?;
    /// let zero = RedisLimiter::<Gcra>::builder(Quota::per_second(1)?).timeout(Duration::ZERO);
    /// assert!(zero.build(connection.clone()).is_err());
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_second(1)?)
    /// #     .timeout(std::time::Duration::from_secs(2))
    ///     .build(connection)?;
    /// assert!(limiter.check_key("k").await.is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`RedisLimiterError`] if the timeout or the fallback key cap is zero, or the prefix
    /// holds a brace.
    pub fn build<R>(self, connection: R) -> Result<RedisLimiter<A, C, R>, RedisLimiterError>
    where
        R: ConnectionLike + Clone + Send + Sync + 'static,
    {
        let redis =
            Redis::new(connection, self.timeout).map_err(|_| RedisLimiterError::ZeroTimeout)?;
        let keys = KeyBuilder::new(self.prefix).map_err(|err| match err {
            keel_redis::RedisConfigError::BraceInPrefix { prefix } => {
                RedisLimiterError::BraceInPrefix { prefix }
            }
            _ => RedisLimiterError::BraceInPrefix {
                prefix: String::new(),
            },
        })?;
        let local = KeyedLimiter::<String, A>::builder(self.quota).max_keys(self.fallback_keys);
        // The fallback counts its decisions under the same name.
        #[cfg(feature = "metrics")]
        let local = local.name(self.name.clone());
        let local = local
            .clock(self.clock)
            .build()
            .map_err(|_| RedisLimiterError::ZeroFallbackKeys)?;
        Ok(RedisLimiter {
            redis,
            quota: QuotaCell::new(self.quota),
            keys,
            policy: self.policy,
            local,
            failures: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            emitter: crate::emit::Emitter::new(&self.name),
        })
    }
}

impl<A, C, R> RedisLimiter<A, C, R>
where
    A: RedisAlgorithm,
    C: Clock,
    R: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Decides `n` cells for `key` in Redis; if Redis fails or times out, the
    /// [`FailurePolicy`] decides.
    /// ```
    /// use keel_rate_limit::{Quota, RedisLimiter, SlidingLog};
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
    /// let limiter = RedisLimiter::<SlidingLog>::builder(Quota::per_minute(5)?)
    /// #     .timeout(std::time::Duration::from_secs(2))
    ///     .build(connection)?;
    /// assert_eq!(limiter.check_key_n("upload", 3).await?.remaining(), 2);
    /// assert!(limiter.check_key_n("upload", 3).await?.is_denied()); // only 2 left: nothing taken
    /// assert!(limiter.check_key_n("upload", 2).await?.is_allowed());
    /// assert_eq!(limiter.check_key_n("upload", 6).await.unwrap_err().capacity(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` can never be admitted.
    pub async fn check_key_n(&self, key: &str, n: u32) -> Result<Decision, InsufficientCapacity> {
        match self.try_check_key_n(key, n).await {
            Ok(decision) => Ok(decision),
            Err(RedisLimitError::InsufficientCapacity(err)) => Err(err),
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let quota = self.quota.load();
                match self.policy {
                    FailurePolicy::FailOpen => {
                        // Nothing is recorded: report what a fresh limiter would after `n`.
                        let fresh = A::decide(&quota, &A::State::default(), Instant::ZERO, n);
                        let reset =
                            u64::try_from(fresh.reset_after().as_nanos()).unwrap_or(u64::MAX);
                        let remaining = A::capacity(&quota).saturating_sub(n);
                        #[cfg(feature = "metrics")]
                        self.emitter.admitted();
                        Ok(Decision::allow(&quota, u64::from(remaining), reset))
                    }
                    FailurePolicy::FailClosed => {
                        let retry =
                            u64::try_from(self.redis.timeout().as_nanos()).unwrap_or(u64::MAX);
                        #[cfg(feature = "metrics")]
                        self.emitter.refused();
                        Ok(Decision::deny(&quota, 0, 0, retry))
                    }
                    FailurePolicy::Local => self.local.check_key_n(key, n),
                }
            }
        }
    }

    /// Decides one request for `key`; see [`check_key_n`](RedisLimiter::check_key_n).
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisLimiter};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_hour(2)?)
    /// #     .timeout(std::time::Duration::from_secs(2))
    ///     .build(connection)?;
    /// assert!(limiter.check_key("alice").await.is_allowed());
    /// assert!(limiter.check_key("alice").await.is_allowed());
    /// let denied = limiter.check_key("alice").await;
    /// let retry = denied.retry_after().ok_or("should be denied")?;
    /// // One emission interval (30 min), less the moments since the burst was taken.
    /// assert!(retry > Duration::from_secs(1790) && retry <= Duration::from_secs(1800));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn check_key(&self, key: &str) -> Decision {
        match self.check_key_n(key, 1).await {
            Ok(decision) => decision,
            // Every quota holds at least one cell, so this arm is never taken.
            Err(_) => {
                let quota = self.quota.load();
                Decision::deny(&quota, 0, 0, quota.period_nanos())
            }
        }
    }

    /// Decides `n` cells for `key` in Redis, returning Redis's failure instead of applying
    /// the failure policy.
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisLimitError, RedisLimiter};
    /// use std::time::Duration;
    ///
    /// # let mut server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0);
    /// # let client = redis::Client::open(server.url())?;
    /// # let connection = redis::aio::ConnectionManager::new_with_config(client, config).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_second(10)?)
    ///     .timeout(Duration::from_secs(1))
    ///     .build(connection)?;
    /// assert_eq!(limiter.try_check_key_n("k", 4).await?.remaining(), 6);
    /// server.stop()?;
    /// // The failure itself, where `check_key_n` would have let the local limiter decide.
    /// assert!(matches!(
    ///     limiter.try_check_key_n("k", 1).await,
    ///     Err(RedisLimitError::Redis(_))
    /// ));
    /// assert_eq!(limiter.failures(), 0); // not counted: no policy was applied
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`RedisLimitError`]: over capacity, a Redis error, a timeout, or a malformed reply.
    pub async fn try_check_key_n(&self, key: &str, n: u32) -> Result<Decision, RedisLimitError> {
        let quota = self.quota.load();
        let capacity = A::capacity(&quota);
        if n > capacity {
            #[cfg(feature = "metrics")]
            self.emitter.refused();
            return Err(RedisLimitError::InsufficientCapacity(
                InsufficientCapacity::new(n, capacity),
            ));
        }
        let (interval, count) = A::args(&quota);
        let script = A::script();
        let mut invocation = script.prepare();
        for redis_key in A::keys(&self.keys, key) {
            invocation.key(redis_key);
        }
        invocation.arg(interval).arg(count).arg(n);
        let reply: Vec<i64> = self
            .redis
            .invoke(&invocation)
            .await
            .map_err(RedisLimitError::Redis)?;
        let [allowed, remaining, reset, retry] = reply[..] else {
            return Err(RedisLimitError::Redis(keel_redis::Error::unexpected_reply(
                script.name(),
                format_args!("expected 4 integers, got {reply:?}"),
            )));
        };
        let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        let decision = Decision::from_parts(
            allowed == 1,
            quota.limit(),
            u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            quota.period(),
            micros(reset),
            micros(retry),
        );
        #[cfg(feature = "metrics")]
        self.emitter.decision(&decision);
        Ok(decision)
    }

    /// The quota in force.
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisLimiter};
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_minute(100)?).build(connection)?;
    /// assert_eq!(limiter.quota(), Quota::per_minute(100)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.quota.load()
    }

    /// Replaces the quota at runtime, for this instance's next decisions (and its local
    /// fallback). Instances sharing a prefix should be given the same quota.
    /// ```
    /// use keel_rate_limit::{Quota, RedisLimiter, SlidingLog};
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
    /// let limiter = RedisLimiter::<SlidingLog>::builder(Quota::per_hour(1)?)
    /// #     .timeout(std::time::Duration::from_secs(2))
    ///     .build(connection)?;
    /// assert!(limiter.check_key("k").await.is_allowed());
    /// assert!(limiter.check_key("k").await.is_denied());
    /// limiter.set_quota(Quota::per_hour(2)?);
    /// assert_eq!(limiter.quota(), Quota::per_hour(2)?);
    /// assert!(limiter.check_key("k").await.is_allowed()); // 1 entry in the log, limit 2
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_quota(&self, quota: Quota) {
        self.quota.store(quota);
        self.local.set_quota(quota);
    }

    /// How many calls Redis failed (error or timeout), each decided by the failure policy.
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisLimiter};
    /// use std::time::Duration;
    ///
    /// # let mut server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0);
    /// # let client = redis::Client::open(server.url())?;
    /// # let connection = redis::aio::ConnectionManager::new_with_config(client, config).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_second(10)?)
    ///     .timeout(Duration::from_secs(1))
    ///     .build(connection)?;
    /// assert!(limiter.check_key("k").await.is_allowed());
    /// assert_eq!(limiter.failures(), 0);
    /// server.stop()?;
    /// assert!(limiter.check_key("k").await.is_allowed()); // decided locally
    /// assert_eq!(limiter.failures(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The connection, to run other commands on it.
    /// ```
    /// use keel_rate_limit::{Gcra, Quota, RedisLimiter};
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// # let connection = redis::aio::ConnectionManager::new(redis::Client::open(server.url())?).await?;
    /// let limiter = RedisLimiter::<Gcra>::builder(Quota::per_minute(10)?)
    /// #     .timeout(std::time::Duration::from_secs(2))
    ///     .build(connection)?;
    /// assert!(limiter.check_key("alice").await.is_allowed());
    /// let mut connection = limiter.connection().clone();
    /// let keys: Vec<String> = redis::cmd("KEYS").arg("keel-rl:*").query_async(&mut connection).await?;
    /// assert_eq!(keys, ["keel-rl:{alice}"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connection(&self) -> &R {
        self.redis.connection()
    }
}

impl<A: RedisAlgorithm, C: Clock, R> fmt::Debug for RedisLimiter<A, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("algorithm", &std::any::type_name::<A>())
            .field("quota", &self.quota.load())
            .field("prefix", &self.keys.prefix())
            .field("redis", &self.redis)
            .field("policy", &self.policy)
            .field("failures", &self.failures.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
