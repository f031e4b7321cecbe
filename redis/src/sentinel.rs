//! `SentinelConnection`: a connection to the master the Sentinels name, found again after a
//! failover.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{
    Cmd, ErrorKind as RedisKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value,
};

/// A connection to the current master of a Sentinel-monitored group.
///
/// The first call asks the Sentinels for the master and connects to it. A call that fails
/// because the connection broke, was refused, or reached a server that is now a replica
/// (`READONLY`) drops that connection, so the next call asks the Sentinels again and follows
/// a failover. The failed call itself is not retried: a script may have run before the
/// connection broke, and only the caller knows whether running it twice is safe (keel's
/// blocks hand the failure to their failure policy).
///
/// Clones share one master connection. Use it as the `C` of [`Redis`](crate::Redis).
///
/// ```
/// use keel_redis::{Redis, SentinelConnection};
/// use std::time::Duration;
///
/// # let group = keel_testkit::RedisSentinel::start()?;
/// # let urls = group.sentinel_urls();
/// # let name = group.master_name().to_string();
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let connection = SentinelConnection::new(urls, &name)?;
/// let redis = Redis::new(connection, Duration::from_secs(1))?;
/// let role: Vec<redis::Value> = redis.query("role", &redis::cmd("ROLE")).await?;
/// assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SentinelConnection {
    shared: Arc<Shared>,
}

struct Shared {
    master_name: String,
    sentinels: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<MultiplexedConnection>>,
}

impl SentinelConnection {
    /// A connection to the master named `master_name` by the Sentinels at `sentinel_urls`.
    /// Nothing is connected until the first call.
    ///
    /// # Errors
    ///
    /// The `redis` crate's error when a URL is invalid or the list is empty.
    ///
    /// ```
    /// use keel_redis::SentinelConnection;
    ///
    /// let connection = SentinelConnection::new(vec!["redis://127.0.0.1:26379/"], "mymaster")?;
    /// assert_eq!(connection.master_name(), "mymaster");
    /// assert!(SentinelConnection::new(Vec::<String>::new(), "mymaster").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new<T: redis::IntoConnectionInfo>(
        sentinel_urls: Vec<T>,
        master_name: &str,
    ) -> Result<SentinelConnection, RedisError> {
        // An owned name fits both signatures of `build` (`String`, or `AsRef<str>` when
        // another crate turns on redis's TLS feature).
        let service_name: String = master_name.into();
        let client = SentinelClient::build(
            sentinel_urls,
            service_name,
            None,
            SentinelServerType::Master,
        )?;
        Ok(SentinelConnection {
            shared: Arc::new(Shared {
                master_name: master_name.to_string(),
                sentinels: tokio::sync::Mutex::new(client),
                current: Mutex::new(None),
            }),
        })
    }

    /// The master name the Sentinels are asked for.
    ///
    /// ```
    /// use keel_redis::SentinelConnection;
    ///
    /// let connection = SentinelConnection::new(vec!["redis://127.0.0.1:26379/"], "cache")?;
    /// assert_eq!(connection.master_name(), "cache");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn master_name(&self) -> &str {
        &self.shared.master_name
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        self.shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The master connection: the cached one, or a new one to the master the Sentinels name.
    async fn master(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(connection) = self.cached() {
            return Ok(connection);
        }
        // One lookup at a time; whoever waited finds the connection made.
        let mut sentinels = self.shared.sentinels.lock().await;
        if let Some(connection) = self.cached() {
            return Ok(connection);
        }
        let connection = sentinels.get_async_connection().await?;
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
        Ok(connection)
    }

    /// Drops the cached connection after an error that says it no longer reaches the master.
    fn check(&self, error: &RedisError) {
        let stale = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
            || matches!(
                error.kind(),
                RedisKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
            );
        if stale {
            *self
                .shared
                .current
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut connection = self.master().await?;
            let reply = connection.req_packed_command(cmd).await;
            if let Err(error) = &reply {
                self.check(error);
            }
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut connection = self.master().await?;
            let reply = connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            if let Err(error) = &reply {
                self.check(error);
            }
            reply
        })
    }

    fn get_db(&self) -> i64 {
        self.cached().map_or(0, |connection| connection.get_db())
    }
}

impl fmt::Debug for SentinelConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelConnection")
            .field("master_name", &self.shared.master_name)
            .field("connected", &self.cached().is_some())
            .finish()
    }
}
