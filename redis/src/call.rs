//! `Redis`: a connection of any kind and the timeout every call through it gets.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use redis::FromRedisValue;
use redis::aio::ConnectionLike;

use crate::{Error, Invocation, RedisConfigError};

/// A Redis connection of any kind with a deadline on every call: the one way keel talks to
/// Redis.
///
/// `C` is any async connection that can be cloned cheaply and shared between tasks:
/// [`ConnectionManager`](redis::aio::ConnectionManager) (reconnects on its own),
/// [`MultiplexedConnection`](redis::aio::MultiplexedConnection),
/// [`cluster_async::ClusterConnection`](redis::cluster_async::ClusterConnection) or a
/// connection to the master a Sentinel names. Each call clones the connection (a handle),
/// so a `Redis` is shared by reference or cloned freely.
///
/// A call that does not finish within the timeout returns an [`Error`] of kind
/// [`Timeout`](crate::ErrorKind::Timeout); it may still run on the server.
///
/// ```
/// use keel_redis::Redis;
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let client = redis::Client::open(server.url())?;
/// let redis = Redis::new(client.get_multiplexed_async_connection().await?, Duration::from_millis(500))?;
/// redis.query::<()>("set", redis::cmd("SET").arg("greeting").arg("hi")).await?;
/// let value: String = redis.query("get", redis::cmd("GET").arg("greeting")).await?;
/// assert_eq!(value, "hi");
/// assert!(Redis::new(redis.connection().clone(), Duration::ZERO).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Redis<C> {
    connection: C,
    timeout: Duration,
}

impl<C> Redis<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Calls through `connection`, each call given `timeout`.
    ///
    /// # Errors
    ///
    /// [`RedisConfigError::ZeroTimeout`] if `timeout` is zero (every call would time out).
    ///
    /// ```
    /// use keel_redis::{RedisConfigError, Redis};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let client = redis::Client::open(server.url())?;
    /// let connection = redis::aio::ConnectionManager::new(client).await?;
    /// let redis = Redis::new(connection.clone(), Duration::from_secs(1))?;
    /// assert_eq!(redis.timeout(), Duration::from_secs(1));
    /// let zero = Redis::new(connection, Duration::ZERO).unwrap_err();
    /// assert_eq!(zero, RedisConfigError::ZeroTimeout);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(connection: C, timeout: Duration) -> Result<Redis<C>, RedisConfigError> {
        if timeout.is_zero() {
            return Err(RedisConfigError::ZeroTimeout);
        }
        Ok(Redis {
            connection,
            timeout,
        })
    }

    /// Runs one command, named `operation` in errors, and converts its reply to `T`.
    ///
    /// # Errors
    ///
    /// [`Error`] when the call times out, the connection fails, the server answers an error,
    /// or the reply does not convert to `T`.
    ///
    /// ```
    /// use keel_redis::{ErrorKind, Redis};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// # let client = redis::Client::open(server.url())?;
    /// let redis = Redis::new(client.get_multiplexed_async_connection().await?, Duration::from_secs(1))?;
    /// let n: i64 = redis.query("incr", redis::cmd("INCR").arg("hits")).await?;
    /// assert_eq!(n, 1);
    /// let wrong = redis.query::<Vec<String>>("incr", redis::cmd("INCR").arg("hits")).await;
    /// assert_eq!(wrong.unwrap_err().kind(), ErrorKind::Response);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        command: &redis::Cmd,
    ) -> Result<T, Error> {
        let mut connection = self.connection.clone();
        let reply = self.deadline(operation, command.query_async(&mut connection));
        reply
            .await?
            .map_err(|error| Error::from_redis(operation, error, false, self.timeout))
    }

    /// Runs a script invocation (`EVALSHA`, loading the script on `NOSCRIPT`) and converts
    /// its reply to `T`. Errors are named after the script.
    ///
    /// # Errors
    ///
    /// As [`query`](Redis::query); a Lua error is of kind [`Script`](crate::ErrorKind::Script),
    /// keys in different cluster slots of kind [`CrossSlot`](crate::ErrorKind::CrossSlot).
    ///
    /// ```
    /// use keel_redis::{Redis, Script};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// # let client = redis::Client::open(server.url())?;
    /// let redis = Redis::new(client.get_multiplexed_async_connection().await?, Duration::from_secs(1))?;
    /// let add = Script::new("add", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    /// assert_eq!(redis.invoke::<i64>(add.key("n").arg(5)).await?, 5);
    /// assert_eq!(redis.invoke::<i64>(add.key("n").arg(2)).await?, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn invoke<T: FromRedisValue>(&self, invocation: &Invocation<'_>) -> Result<T, Error> {
        let operation = invocation.name();
        let mut connection = self.connection.clone();
        let reply = self.deadline(operation, invocation.inner().invoke_async(&mut connection));
        reply
            .await?
            .map_err(|error| Error::from_redis(operation, error, true, self.timeout))
    }

    /// The connection, to run commands keel does not wrap.
    ///
    /// ```
    /// use keel_redis::Redis;
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// # let client = redis::Client::open(server.url())?;
    /// let redis = Redis::new(client.get_multiplexed_async_connection().await?, Duration::from_secs(1))?;
    /// let pong: String = redis::cmd("PING").query_async(&mut redis.connection().clone()).await?;
    /// assert_eq!(pong, "PONG");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connection(&self) -> &C {
        &self.connection
    }

    /// The timeout each call gets.
    ///
    /// ```
    /// use keel_redis::Redis;
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// # let client = redis::Client::open(server.url())?;
    /// let redis = Redis::new(client.get_multiplexed_async_connection().await?, Duration::from_millis(250))?;
    /// assert_eq!(redis.timeout(), Duration::from_millis(250));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Races `call` against the timeout. This is an I/O deadline on tokio's timer, not a
    /// reading of any block's `Clock`: it bounds how long a caller waits on the network.
    async fn deadline<F: Future>(
        &self,
        operation: &'static str,
        call: F,
    ) -> Result<F::Output, Error> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| Error::timed_out(operation, self.timeout))
    }
}

impl<C> fmt::Debug for Redis<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("connection", &std::any::type_name::<C>())
            .field("timeout", &self.timeout)
            .finish()
    }
}
