//! `RedisFence`: the fence check and the write it guards, in one Redis script.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use keel_redis::{Redis, Script};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{ToRedisArgs, Value};

use crate::redis_service::{lock_error, unexpected};
use crate::{FencingToken, LockConfigError, LockError, StaleToken};

/// Checks the token against the fence key and, if it is not older, raises the fence and runs
/// the write, all in one atomic script. Tokens are compared as 20-digit zero-padded strings,
/// so every u64 compares exactly (Lua's numbers are doubles).
const FENCED_SET: &str = r"
local seen = redis.call('GET', KEYS[1])
if seen and seen > ARGV[1] then
  return {0, seen}
end
redis.call('SET', KEYS[1], ARGV[1])
if #KEYS > 1 then
  redis.call('SET', KEYS[2], ARGV[2])
end
return {1, seen or '00000000000000000000'}
";

static FENCED_SET_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new("fenced write", FENCED_SET));

/// A [`Fence`](crate::Fence) kept in Redis: a write to a Redis key that is accepted only with
/// a fencing token at least as high as any the fence has accepted.
///
/// [`set`](RedisFence::set) runs the check and the `SET` in one Lua script, so nothing can
/// slip between them: a holder that paused past its lease and writes after a newer holder is
/// rejected with [`LockError::Stale`] and its value is not written. The fence key keeps the
/// highest token accepted; in Redis Cluster, put the fence key and the data keys in one slot
/// with a hash tag (`{orders}:fence`, `{orders}:total`; `keel_redis::KeyBuilder` makes such
/// keys for any name). `R` is the connection, as for
/// [`RedisLockService`](crate::RedisLockService).
///
/// # Example
///
/// ```
/// use keel_lock::{LockError, LockService, RedisLockService};
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # let url = server.url();
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let locks = RedisLockService::connect(&url).await?;
/// let fence = locks.fence("{report}:fence");
/// let ttl = Duration::from_secs(30);
/// let slow = locks.acquire("report", ttl, Duration::ZERO).await?;
/// locks.release(&slow).await?; // stands in for `slow` stalling past its lease
/// let fast = locks.acquire("report", ttl, Duration::ZERO).await?; // a new holder writes first
/// fence.set(fast.token(), "{report}:body", "from the new holder").await?;
/// match fence.set(slow.token(), "{report}:body", "from the paused holder").await {
///     Err(LockError::Stale(stale)) => assert_eq!(stale.highest(), fast.token()),
///     other => panic!("the stale write must be refused, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedisFence<R = ConnectionManager> {
    redis: Redis<R>,
    fence_key: String,
}

impl<R> RedisFence<R>
where
    R: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A fence on `fence_key`, calling through `connection` with `call_timeout` per call.
    ///
    /// # Errors
    ///
    /// [`LockConfigError`] if `call_timeout` is zero (every call would time out).
    ///
    /// ```
    /// use keel_lock::{FencingToken, RedisFence};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let client = redis::Client::open(url.as_str())?;
    /// let connection = redis::aio::ConnectionManager::new(client).await?;
    /// let fence = RedisFence::new(connection.clone(), "{ledger}:fence", Duration::from_millis(500))?;
    /// assert_eq!(fence.advance(FencingToken::new(3)).await?, FencingToken::new(0));
    /// assert!(RedisFence::new(connection, "{ledger}:fence", Duration::ZERO).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        connection: R,
        fence_key: impl Into<String>,
        call_timeout: Duration,
    ) -> Result<RedisFence<R>, LockConfigError> {
        let redis = Redis::new(connection, call_timeout)
            .map_err(|_| LockConfigError::new("fence call timeout must be > 0"))?;
        Ok(RedisFence::from_redis(redis, fence_key))
    }

    /// A fence calling through `redis` (the lock service's connection and timeout).
    pub(crate) fn from_redis(redis: Redis<R>, fence_key: impl Into<String>) -> RedisFence<R> {
        RedisFence {
            redis,
            fence_key: fence_key.into(),
        }
    }

    /// The key that holds the highest token accepted.
    ///
    /// ```
    /// use keel_lock::RedisLockService;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::connect(&url).await?;
    /// assert_eq!(locks.fence("{ledger}:fence").fence_key(), "{ledger}:fence");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fence_key(&self) -> &str {
        &self.fence_key
    }

    /// Sets `key` to `value` if `token` is at least the highest the fence has accepted,
    /// raising the fence to it, atomically.
    ///
    /// # Errors
    ///
    /// [`LockError::Stale`] when a higher token has been accepted (nothing is written);
    /// [`LockError::Timeout`] and [`LockError::Backend`] when the server fails.
    ///
    /// ```
    /// use keel_lock::{FencingToken, LockError, RedisLockService};
    /// use redis::AsyncCommands;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::connect(&url).await?;
    /// let fence = locks.fence("{ledger}:fence");
    /// fence.set(FencingToken::new(8), "{ledger}:balance", 100).await?;
    /// let late = fence.set(FencingToken::new(7), "{ledger}:balance", 90).await;
    /// assert!(matches!(late, Err(LockError::Stale(stale)) if stale.highest() == FencingToken::new(8)));
    /// let balance: i64 = locks.connection().clone().get("{ledger}:balance").await?;
    /// assert_eq!(balance, 100); // the stale write did not land
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn set<V: ToRedisArgs + Send + Sync>(
        &self,
        token: FencingToken,
        key: &str,
        value: V,
    ) -> Result<(), LockError> {
        self.run(token, Some((key, value))).await.map(|_| ())
    }

    /// Accepts `token` if it is at least the highest seen, raising the fence, without a write;
    /// returns the highest token before the call.
    ///
    /// # Errors
    ///
    /// As [`set`](RedisFence::set).
    ///
    /// ```
    /// use keel_lock::{FencingToken, RedisLockService};
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = RedisLockService::connect(&url).await?;
    /// let fence = locks.fence("{ledger}:fence");
    /// assert_eq!(fence.advance(FencingToken::new(5)).await?, FencingToken::new(0));
    /// assert_eq!(fence.advance(FencingToken::new(9)).await?, FencingToken::new(5));
    /// assert!(fence.advance(FencingToken::new(6)).await.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn advance(&self, token: FencingToken) -> Result<FencingToken, LockError> {
        self.run::<&str>(token, None).await
    }

    async fn run<V: ToRedisArgs + Send + Sync>(
        &self,
        token: FencingToken,
        write: Option<(&str, V)>,
    ) -> Result<FencingToken, LockError> {
        let padded = pad(token);
        let mut invocation = FENCED_SET_SCRIPT.key(&self.fence_key);
        invocation.arg(&padded);
        if let Some((key, value)) = write {
            invocation.key(key).arg(value);
        }
        let reply: Value = self.redis.invoke(&invocation).await.map_err(lock_error)?;
        let parse = |value: &Value| match value {
            Value::BulkString(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .map(FencingToken::new),
            _ => None,
        };
        match &reply {
            Value::Array(items) => match items.as_slice() {
                [Value::Int(1), seen] => {
                    parse(seen).ok_or_else(|| unexpected("fenced write", &reply))
                }
                [Value::Int(0), seen] => match parse(seen) {
                    Some(highest) => Err(LockError::Stale(StaleToken::new(token, highest))),
                    None => Err(unexpected("fenced write", &reply)),
                },
                _ => Err(unexpected("fenced write", &reply)),
            },
            _ => Err(unexpected("fenced write", &reply)),
        }
    }
}

impl<R> fmt::Debug for RedisFence<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFence")
            .field("fence_key", &self.fence_key)
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

/// Twenty digits hold every u64, so string order is number order.
fn pad(token: FencingToken) -> String {
    format!("{:020}", token.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_keeps_numeric_order() {
        let tokens = [0, 9, 10, 1 << 53, u64::MAX - 1, u64::MAX].map(FencingToken::new);
        for pair in tokens.windows(2) {
            assert!(pad(pair[0]) < pad(pair[1]), "{:?}", pair);
            assert_eq!(pad(pair[0]).len(), 20);
        }
    }
}
