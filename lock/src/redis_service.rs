//! `RedisLockService`: leases kept in one Redis server, each operation one Lua script.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use keel_core::{Backoff, BackoffJitter, Clock, Delays, Instant, JitterRng, SystemClock};
use keel_redis::{ErrorKind, KeyBuilder, Redis, Script};
use redis::Value;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};

use crate::memory::{check_name, check_ttl};
use crate::{FencingToken, Lease, LockConfigError, LockError, LockService, RedisFence};

/// Grants the lock if its key is absent: `SET NX PX` with a token from the name's counter.
///
/// The counter is `INCR`ed, then raised to at least the server's clock in microseconds, so a
/// server that lost the counter (restarted without persistence) still issues tokens above
/// every token it issued before, as long as its wall clock has not stepped back past them.
const ACQUIRE: &str = r"
local pttl = redis.call('PTTL', KEYS[1])
if pttl ~= -2 then
  return {0, pttl}
end
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
local token = redis.call('INCR', KEYS[2])
if token < floor then
  token = floor
  redis.call('SET', KEYS[2], string.format('%.0f', token))
end
local text = string.format('%.0f', token)
redis.call('SET', KEYS[1], text, 'NX', 'PX', ARGV[1])
return {1, text}
";

/// Compare-and-`PEXPIRE`: only the holder's token extends, and a gone key cannot come back.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Compare-and-delete: only the holder's token releases.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new("acquire", ACQUIRE));
static EXTEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new("extend", EXTEND));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new("release", RELEASE));

/// Tokens above this lose precision in Lua's doubles; the micro-second floor reaches it in 2255.
const MAX_EXACT_TOKEN: u64 = 1 << 53;

/// A lock service on one Redis server (or the master a Sentinel names, or a Redis Cluster),
/// shared by every process that connects to it.
///
/// `R` is the connection: a [`ConnectionManager`] (the default, and what
/// [`connect`](RedisLockServiceBuilder::connect) makes), a `MultiplexedConnection`, a cluster
/// connection, or any `redis::aio::ConnectionLike + Clone + Send + Sync`; see `keel_redis`.
///
/// # Protocol
///
/// A lock `name` is the key `<prefix>{name}` holding the holder's token, with the lease's
/// TTL as its expiry; its token counter is `<prefix>{name}:token`. The braces put both in one
/// cluster slot; `{`, `}` and `%` in a name are escaped (`%7B`, `%7D`, `%25`) so that holds
/// for every name. Each operation is one Lua script, so one round trip and atomic:
///
/// - **acquire**: if the key is absent, `INCR` the counter, raise it to at least the server's
///   `TIME` in microseconds, and `SET key token NX PX ttl`; else return the key's `PTTL`.
/// - **release**: compare-and-delete (`GET` = token, then `DEL`).
/// - **extend**: compare-and-`PEXPIRE`; an expired key is gone, so an expired lease cannot be
///   extended.
///
/// A waiting [`acquire`](LockService::acquire) does not poll in a tight loop: it sleeps for
/// its [`Backoff`] (by default exponential from 5 ms to 250 ms with equal jitter: half to all
/// of the current step), cut short by the holder's remaining TTL and by its own limit.
/// Every call to the server has a timeout ([`LockError::Timeout`]); a call that times out may
/// still have taken effect, and a lease it granted then simply runs out by its TTL.
///
/// The lease's expiry is measured on this process's clock from just before the request was
/// sent, so it is never later than the server's.
///
/// The counter key outlives the lock (it must, for tokens to keep increasing): one small key
/// per lock name ever used. Waiters are not queued: whoever asks first after a release wins,
/// so a holder that releases and asks again at once can keep winning against waiters that
/// are backing off. Hold a lock for a unit of work, not in a tight loop.
///
/// # Tokens across a restart
///
/// Tokens must never repeat or go backwards, also when the server restarts. Two layers:
///
/// 1. **Durability.** Run Redis with `appendonly yes` and `appendfsync always`: the counter's
///    `INCR` is on disk before the token is returned, so a crash loses nothing. This needs no
///    assumption about clocks, and it also keeps the lock key itself across the restart.
/// 2. **A restart-safe floor.** If the counter is lost anyway (persistence off, an older
///    snapshot, a fresh replica promoted), the script raises each new token to the server's
///    wall clock in microseconds. A token is at most the time it was issued plus the count of
///    grants that outran the clock (one per microsecond, far above what a single lock can see),
///    so tokens issued after a restart start above all earlier ones, unless the server's clock
///    stepped back across the restart. Tokens stay below 2^53 (until the year 2255), so Lua's
///    doubles hold them exactly.
///
/// A restart that loses the lock key lets a second holder in while the first may still be
/// working; its higher token is what lets the [`Fence`](crate::Fence) or [`RedisFence`]
/// reject the first one's late writes.
///
/// # Example
///
/// ```
/// use keel_lock::{LockService, RedisLockService};
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # let url = server.url();
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let locks = RedisLockService::builder()
///     .call_timeout(Duration::from_millis(500))
///     .connect(&url)
///     .await?;
/// let ttl = Duration::from_secs(30);
/// let lease = locks.acquire("reindex", ttl, Duration::from_secs(10)).await?;
/// assert!(locks.try_acquire("reindex", ttl).await?.is_none()); // one holder at a time
/// let renewed = locks.extend(&lease, ttl).await?;
/// assert_eq!(renewed.token(), lease.token());
/// locks.release(&renewed).await?;
/// let next = locks.try_acquire("reindex", ttl).await?.ok_or("held")?;
/// assert!(next.token() > lease.token());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisLockService<C: Clock = SystemClock, R = ConnectionManager> {
    redis: Redis<R>,
    shared: Arc<Shared<C>>,
}

struct Shared<C> {
    clock: C,
    keys: KeyBuilder,
    /// keel-core's backoff: from the minimum, doubling to the maximum, equal jitter.
    backoff: Backoff,
}

/// Configures a [`RedisLockService`]: key prefix, call timeout, backoff and clock.
///
/// ```
/// use keel_lock::{Backoff, RedisLockService};
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # let url = server.url();
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let locks = RedisLockService::builder()
///     .prefix("billing:locks:")
///     .call_timeout(Duration::from_millis(250))
///     .backoff(Backoff::exponential(Duration::from_millis(2)).max(Duration::from_millis(100)))
///     .connect(&url)
///     .await?;
/// assert_eq!(locks.lock_key("invoices"), "billing:locks:{invoices}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RedisLockServiceBuilder<C: Clock = SystemClock> {
    clock: C,
    prefix: String,
    call_timeout: Duration,
    backoff: Backoff,
}

/// What one acquire script found.
enum Attempt {
    Granted(FencingToken),
    /// Held, with the key's remaining TTL in milliseconds (negative: no expiry).
    Held(i64),
}

impl RedisLockService<SystemClock> {
    /// A builder with the defaults: prefix `keel:lock:`, a 1 s call timeout, backoff from
    /// 5 ms to 250 ms, the system clock.
    ///
    /// ```
    /// use keel_lock::RedisLockService;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::builder().connect(&url).await?;
    /// assert_eq!(locks.lock_key("jobs"), "keel:lock:{jobs}"); // the default prefix
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> RedisLockServiceBuilder<SystemClock> {
        RedisLockServiceBuilder {
            clock: SystemClock,
            prefix: "keel:lock:".to_owned(),
            call_timeout: Duration::from_secs(1),
            backoff: default_waiter_backoff(),
        }
    }

    /// Connects to `url` with the defaults of [`builder`](RedisLockService::builder).
    ///
    /// # Errors
    ///
    /// As [`RedisLockServiceBuilder::connect`].
    ///
    /// ```
    /// use keel_lock::{LockService, RedisLockService};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::connect(&url).await?;
    /// let lease = locks.try_acquire("jobs", Duration::from_secs(10)).await?.ok_or("held")?;
    /// assert!(locks.try_acquire("jobs", Duration::from_secs(10)).await?.is_none());
    /// locks.release(&lease).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn connect(url: &str) -> Result<RedisLockService<SystemClock>, LockError> {
        RedisLockService::builder().connect(url).await
    }
}

impl<C: Clock> RedisLockServiceBuilder<C> {
    /// Prefixes every key the service writes; the default is `keel:lock:`.
    ///
    /// ```
    /// use keel_lock::RedisLockService;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::builder().prefix("billing:").connect(&url).await?;
    /// assert_eq!(locks.lock_key("invoices"), "billing:{invoices}");
    /// // A brace in the prefix would take the hash tag away from the name.
    /// assert!(RedisLockService::builder().prefix("{billing}:").connect(&url).await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> RedisLockServiceBuilder<C> {
        self.prefix = prefix.into();
        self
    }

    /// How long one call to the server may take; the default is 1 s. Keep it well below the
    /// leases' TTL, so a renewal fails before its lease would run out.
    ///
    /// ```
    /// use keel_lock::{LockError, RedisLockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// // Checked before connecting: no server is needed to find a bad setting.
    /// let zero = RedisLockService::builder()
    ///     .call_timeout(Duration::ZERO)
    ///     .connect("redis://127.0.0.1:6379/")
    ///     .await;
    /// assert!(matches!(zero, Err(LockError::Config(error)) if error.to_string() == "call timeout must be > 0"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_timeout(mut self, timeout: Duration) -> RedisLockServiceBuilder<C> {
        self.call_timeout = timeout;
        self
    }

    /// The pauses of a waiting acquire between attempts: keel-core's [`Backoff`], the same
    /// type the breaker's retry and the rate limiter's waits take. The default is
    /// `Backoff::exponential(5 ms).max(250 ms).jitter(BackoffJitter::Equal)`: doubling, each
    /// pause a random point in the upper half of its step. Its base must be above zero, or
    /// waiters would poll Redis in a tight loop.
    ///
    /// ```
    /// use keel_lock::{Backoff, BackoffJitter, LockError, RedisLockService};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let inverted = RedisLockService::builder()
    ///     .backoff(Backoff::exponential(Duration::from_millis(100)).max(Duration::from_millis(10)))
    ///     .connect("redis://127.0.0.1:6379/")
    ///     .await;
    /// let Err(LockError::Config(error)) = inverted else { panic!("max below base is refused") };
    /// assert_eq!(error.to_string(), "waiter backoff: backoff max 10ms must be at least the base 100ms");
    ///
    /// let polling = RedisLockService::builder()
    ///     .backoff(Backoff::constant(Duration::ZERO).jitter(BackoffJitter::None))
    ///     .connect("redis://127.0.0.1:6379/")
    ///     .await;
    /// let Err(LockError::Config(error)) = polling else { panic!("a zero base is refused") };
    /// assert_eq!(error.to_string(), "waiter backoff base must be > 0");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> RedisLockServiceBuilder<C> {
        self.backoff = backoff;
        self
    }

    /// Reads lease expiries and acquire limits from `clock`.
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_lock::{LockService, RedisLockService};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let clock = ManualClock::new();
    /// let locks = RedisLockService::builder().clock(clock.clone()).connect(&url).await?;
    /// let lease = locks.try_acquire("jobs", Duration::from_secs(10)).await?.ok_or("held")?;
    /// assert_eq!(lease.expires_at(), clock.now() + Duration::from_secs(10));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> RedisLockServiceBuilder<C2> {
        RedisLockServiceBuilder {
            clock,
            prefix: self.prefix,
            call_timeout: self.call_timeout,
            backoff: self.backoff,
        }
    }

    /// Builds the service on an existing connection, which it clones per call.
    ///
    /// # Errors
    ///
    /// [`LockConfigError`] when the call timeout or the backoff's base is zero, or the backoff
    /// is invalid ([`Backoff::validate`]).
    ///
    /// ```
    /// use keel_lock::{LockService, RedisLockService};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let client = redis::Client::open(url.as_str())?;
    /// let connection = redis::aio::ConnectionManager::new(client.clone()).await?; // shared with other code
    /// let locks = RedisLockService::builder().build(connection.clone())?;
    /// assert!(locks.try_acquire("jobs", Duration::from_secs(10)).await?.is_some());
    /// assert!(RedisLockService::builder().call_timeout(Duration::ZERO).build(connection).is_err());
    ///
    /// // Any async connection: here a multiplexed one, and a name that starts with `}`.
    /// let multiplexed = client.get_multiplexed_async_connection().await?;
    /// let locks = RedisLockService::builder().build(multiplexed)?;
    /// let lease = locks.try_acquire("}report", Duration::from_secs(10)).await?.ok_or("held")?;
    /// assert_eq!(locks.lock_key("}report"), "keel:lock:{%7Dreport}");
    /// locks.release(&lease).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build<R>(self, connection: R) -> Result<RedisLockService<C, R>, LockConfigError>
    where
        R: ConnectionLike + Clone + Send + Sync + 'static,
    {
        self.validate()?;
        let redis = Redis::new(connection, self.call_timeout)
            .map_err(|error| LockConfigError::new(error.to_string()))?;
        let keys = KeyBuilder::new(self.prefix)
            .map_err(|error| LockConfigError::new(error.to_string()))?;
        Ok(RedisLockService {
            redis,
            shared: Arc::new(Shared {
                clock: self.clock,
                keys,
                backoff: self.backoff,
            }),
        })
    }

    fn validate(&self) -> Result<(), LockConfigError> {
        if self.call_timeout.is_zero() {
            return Err(LockConfigError::new("call timeout must be > 0"));
        }
        if self.prefix.contains(['{', '}']) {
            return Err(LockConfigError::new(format!(
                "key prefix {:?} must not contain '{{' or '}}'",
                self.prefix
            )));
        }
        self.backoff
            .validate()
            .map_err(|error| LockConfigError::new(format!("waiter backoff: {error}")))?;
        if self.backoff.step(0).is_zero() {
            return Err(LockConfigError::new("waiter backoff base must be > 0"));
        }
        Ok(())
    }

    /// Validates the configuration, connects to `url` (with the call timeout on connecting
    /// and on every response), and builds the service.
    ///
    /// # Errors
    ///
    /// [`LockError::Config`] for a bad configuration; [`LockError::Backend`] when the URL is
    /// invalid or the server cannot be reached; [`LockError::Timeout`] when it does not answer.
    ///
    /// ```
    /// use keel_lock::{LockService, RedisLockService};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::builder()
    ///     .call_timeout(Duration::from_millis(200))
    ///     .connect(&url)
    ///     .await?;
    /// assert!(locks.try_acquire("jobs", Duration::from_secs(10)).await?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn connect(self, url: &str) -> Result<RedisLockService<C>, LockError> {
        self.validate().map_err(LockError::Config)?;
        let call_timeout = self.call_timeout;
        let client =
            redis::Client::open(url).map_err(|error| LockError::Backend(Arc::new(error)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(call_timeout))
            .set_response_timeout(Some(call_timeout));
        let connection = tokio::time::timeout(
            call_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| LockError::Timeout {
            operation: "connect",
            after: call_timeout,
        })?
        .map_err(|error| {
            if error.is_timeout() {
                LockError::Timeout {
                    operation: "connect",
                    after: call_timeout,
                }
            } else {
                LockError::Backend(Arc::new(error))
            }
        })?;
        self.build(connection).map_err(LockError::Config)
    }
}

impl<C: Clock, R> RedisLockService<C, R>
where
    R: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A [`RedisFence`] on `fence_key`, sharing this service's connection and call timeout.
    ///
    /// ```
    /// use keel_lock::{LockService, RedisLockService};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::connect(&url).await?;
    /// let fence = locks.fence("{report}:fence");
    /// let lease = locks.acquire("report", Duration::from_secs(30), Duration::ZERO).await?;
    /// fence.set(lease.token(), "{report}:body", "done").await?;
    /// assert_eq!(fence.fence_key(), "{report}:fence");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fence(&self, fence_key: impl Into<String>) -> RedisFence<R> {
        RedisFence::from_redis(self.redis.clone(), fence_key)
    }

    /// The connection the service uses.
    ///
    /// ```
    /// use keel_lock::{LockService, RedisLockService};
    /// use redis::AsyncCommands;
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::connect(&url).await?;
    /// let lease = locks.acquire("jobs", Duration::from_secs(30), Duration::ZERO).await?;
    /// let stored: u64 = locks.connection().clone().get(locks.lock_key("jobs")).await?;
    /// assert_eq!(stored, lease.token().get()); // the key holds the holder's token
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connection(&self) -> &R {
        self.redis.connection()
    }

    /// The Redis key holding `name`'s lease.
    ///
    /// ```
    /// use keel_lock::RedisLockService;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::connect(&url).await?;
    /// assert_eq!(locks.lock_key("jobs"), "keel:lock:{jobs}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_key(&self, name: &str) -> String {
        self.shared.keys.key(name)
    }

    /// The Redis key holding `name`'s token counter.
    ///
    /// ```
    /// use keel_lock::RedisLockService;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::connect(&url).await?;
    /// assert_eq!(locks.counter_key("jobs"), "keel:lock:{jobs}:token"); // same cluster slot as the lock
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn counter_key(&self, name: &str) -> String {
        self.shared.keys.key_with(name, ":token")
    }

    async fn attempt(&self, name: &str, ttl_ms: u64) -> Result<Attempt, LockError> {
        let mut invocation = ACQUIRE_SCRIPT.key(self.lock_key(name));
        invocation.key(self.counter_key(name)).arg(ttl_ms);
        let reply: Value = self.redis.invoke(&invocation).await.map_err(lock_error)?;
        match reply {
            Value::Array(items) => match items.as_slice() {
                [Value::Int(1), token] => {
                    let token = parse_token(token)?;
                    if token >= MAX_EXACT_TOKEN {
                        return Err(LockError::TokensExhausted { name: name.into() });
                    }
                    Ok(Attempt::Granted(FencingToken::new(token)))
                }
                [Value::Int(0), Value::Int(pttl)] => Ok(Attempt::Held(*pttl)),
                _ => Err(unexpected("acquire", &items)),
            },
            other => Err(unexpected("acquire", &other)),
        }
    }

    async fn compare_and(
        &self,
        script: &Script,
        lease: &Lease,
        ttl_ms: Option<u64>,
    ) -> Result<(), LockError> {
        let operation = script.name();
        let mut invocation = script.key(self.lock_key(lease.name()));
        invocation.arg(lease.token().get());
        if let Some(ttl_ms) = ttl_ms {
            invocation.arg(ttl_ms);
        }
        let reply: Value = self.redis.invoke(&invocation).await.map_err(lock_error)?;
        match reply {
            Value::Int(1) => Ok(()),
            Value::Int(0) => Err(LockError::NotHeld {
                name: lease.shared_name(),
                token: lease.token(),
            }),
            other => Err(unexpected(operation, &other)),
        }
    }
}

impl<C: Clock, R> LockService for RedisLockService<C, R>
where
    R: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, LockError> {
        check_name(name)?;
        let ttl_ms = ttl_millis(ttl)?;
        let start = self.shared.clock.now();
        match self.attempt(name, ttl_ms).await? {
            Attempt::Granted(token) => Ok(Some(Lease::new(name.into(), token, start + ttl, ttl))),
            Attempt::Held(_) => Ok(None),
        }
    }

    async fn acquire(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Lease, LockError> {
        check_name(name)?;
        let ttl_ms = ttl_millis(ttl)?;
        let clock = &self.shared.clock;
        let first = clock.now();
        let deadline = first.saturating_add(wait);
        // Seeded on the first busy answer only: an uncontended acquire pays for no generator.
        let mut pauses: Option<Delays<JitterRng>> = None;
        loop {
            let start = clock.now();
            let pttl = match self.attempt(name, ttl_ms).await? {
                Attempt::Granted(token) => {
                    return Ok(Lease::new(name.into(), token, start + ttl, ttl));
                }
                Attempt::Held(pttl) => pttl,
            };
            let now = clock.now();
            if now >= deadline {
                return Err(LockError::Busy {
                    name: name.into(),
                    waited: now - first,
                });
            }
            let pauses =
                pauses.get_or_insert_with(|| self.shared.backoff.delays(JitterRng::from_entropy()));
            let mut pause = pauses.next().unwrap_or_default().min(deadline - now);
            if let Ok(pttl) = u64::try_from(pttl) {
                // Wake when the holder's lease runs out, if that is sooner.
                pause = pause.min(Duration::from_millis(pttl.max(1)));
            }
            tokio::time::sleep(pause).await;
        }
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        let ttl_ms = ttl_millis(ttl)?;
        let start = self.shared.clock.now();
        self.compare_and(&EXTEND_SCRIPT, lease, Some(ttl_ms))
            .await?;
        Ok(Lease::new(
            lease.shared_name(),
            lease.token(),
            start + ttl,
            ttl,
        ))
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        self.compare_and(&RELEASE_SCRIPT, lease, None).await
    }

    fn now(&self) -> Instant {
        self.shared.clock.now()
    }
}

impl<C: Clock, R: Clone> Clone for RedisLockService<C, R> {
    fn clone(&self) -> RedisLockService<C, R> {
        RedisLockService {
            redis: self.redis.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<C: Clock, R> fmt::Debug for RedisLockService<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLockService")
            .field("prefix", &self.shared.keys.prefix())
            .field("redis", &self.redis)
            .field("backoff", &self.shared.backoff)
            .field("clock", &self.shared.clock)
            .finish_non_exhaustive()
    }
}

/// The waiters' default backoff: from 5 ms, doubling up to 250 ms, each pause in the upper
/// half of its step, so waiters that found the lock busy together spread out without ever
/// polling much sooner than the step.
fn default_waiter_backoff() -> Backoff {
    Backoff::exponential(Duration::from_millis(5))
        .max(Duration::from_millis(250))
        .jitter(BackoffJitter::Equal)
}

/// Whole milliseconds for `PX`, rounded up so the server never expires the key before the
/// holder's own estimate.
fn ttl_millis(ttl: Duration) -> Result<u64, LockError> {
    check_ttl(ttl)?;
    let millis = ttl.as_nanos().div_ceil(1_000_000);
    // Redis keeps expiries as milliseconds since the epoch in an i64.
    match u64::try_from(millis) {
        Ok(millis) if millis <= (i64::MAX as u64) / 2 => Ok(millis),
        _ => Err(LockError::InvalidTtl { ttl }),
    }
}

fn parse_token(value: &Value) -> Result<u64, LockError> {
    let text = match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text.as_str()),
        _ => None,
    };
    text.and_then(|text| text.parse().ok())
        .ok_or_else(|| unexpected("acquire", value))
}

/// A seam error as a lock error: a timeout keeps its own variant, the rest is the backend's
/// (with the seam's error, and the `redis` error under it, as the source).
pub(crate) fn lock_error(error: keel_redis::Error) -> LockError {
    if error.kind() == ErrorKind::Timeout
        && let Some(after) = error.timeout()
    {
        return LockError::Timeout {
            operation: error.operation(),
            after,
        };
    }
    LockError::Backend(Arc::new(error))
}

pub(crate) fn unexpected(operation: &'static str, reply: &dyn fmt::Debug) -> LockError {
    LockError::Backend(Arc::new(keel_redis::Error::unexpected_reply(
        operation,
        format_args!("{reply:?}"),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_micros(1)).ok(), Some(1));
        assert_eq!(ttl_millis(Duration::from_millis(1500)).ok(), Some(1500));
        assert_eq!(ttl_millis(Duration::from_micros(1500)).ok(), Some(2));
        assert!(ttl_millis(Duration::ZERO).is_err());
        assert!(ttl_millis(Duration::MAX).is_err());
    }

    #[test]
    fn backoff_steps_double_up_to_the_cap_without_overflow() {
        let ms = Duration::from_millis;
        let backoff = default_waiter_backoff();
        assert_eq!(backoff.step(1), ms(10));
        assert_eq!(backoff.step(6), ms(250));
        let huge = Backoff::exponential(ms(1))
            .max(Duration::MAX)
            .jitter(BackoffJitter::Equal);
        assert_eq!(huge.step(u32::MAX), Duration::from_nanos(u64::MAX));
        // Each pause is in the upper half of its step.
        let pauses: Vec<_> = backoff.delays(JitterRng::seeded(9)).take(8).collect();
        for (retry, pause) in (0u32..).zip(pauses) {
            let step = backoff.step(retry);
            assert!(
                pause >= step / 2 && pause <= step,
                "{pause:?} for step {step:?}"
            );
        }
    }

    #[test]
    fn tokens_parse_from_bulk_strings() {
        assert_eq!(
            parse_token(&Value::BulkString(b"1764000000000001".to_vec())).ok(),
            Some(1_764_000_000_000_001)
        );
        assert!(parse_token(&Value::Nil).is_err());
        assert!(parse_token(&Value::BulkString(b"x".to_vec())).is_err());
    }
}
