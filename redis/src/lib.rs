//! The one Redis seam of keel: every block that keeps state in Redis (rate-limit, lock,
//! idgen) talks to it through this crate.
//!
//! # Overview
//!
//! | piece | what it does |
//! |---|---|
//! | [`Redis<C>`](Redis) | a connection of any kind plus the timeout every call gets |
//! | [`Script`] / [`Invocation`] | a named Lua script run with `EVALSHA`, loaded again on `NOSCRIPT` |
//! | [`KeyBuilder`] | `<prefix>{<tag>}<suffix>` keys: one hash slot per name, for *any* name |
//! | [`Error`] / [`ErrorKind`] | one error for every call, with the `redis` crate's error as its source |
//! | [`RedisConfigError`] | a zero timeout or a prefix with a brace, refused when built |
//! | [`SentinelConnection`] | a connection to the master the Sentinels name, following failovers |
//!
//! This is the one documented place where types of the [`redis`] crate appear in keel's
//! public signatures: a block generic over a connection names `C` here and takes a
//! [`Redis<C>`](Redis) (or the connection itself) from its user.
//!
//! # Which connection
//!
//! `C` is any `redis::aio::ConnectionLike + Clone + Send + Sync + 'static`:
//!
//! - [`ConnectionManager`](redis::aio::ConnectionManager): one server, reconnects on its own.
//! - [`MultiplexedConnection`](redis::aio::MultiplexedConnection): one server, no reconnect;
//!   the cheapest handle.
//! - [`ClusterConnection`](redis::cluster_async::ClusterConnection): Redis Cluster. Each
//!   call goes to the node owning its keys' slot, so all keys of one script must share a
//!   slot; [`KeyBuilder`] makes sure they do.
//! - [`SentinelConnection`]: the master a group of Sentinels names, found again after a
//!   failover.
//!
//! # Example: one server
//!
//! ```
//! use keel_redis::{KeyBuilder, Redis, Script};
//! use std::time::Duration;
//!
//! # let server = keel_testkit::RedisServer::start()?;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let client = redis::Client::open(server.url())?;
//! // Either kind of single-server connection works.
//! let managed = Redis::new(redis::aio::ConnectionManager::new(client.clone()).await?, Duration::from_secs(1))?;
//! let multiplexed = Redis::new(client.get_multiplexed_async_connection().await?, Duration::from_secs(1))?;
//!
//! let keys = KeyBuilder::new("app:")?;
//! let count = Script::new("count", "redis.call('SET', KEYS[2], 1) return redis.call('INCR', KEYS[1])");
//! let mut call = count.key(keys.key_with("}name", ":n"));
//! call.key(keys.key_with("}name", ":seen"));
//! assert_eq!(managed.invoke::<i64>(&call).await?, 1);
//! assert_eq!(multiplexed.invoke::<i64>(&call).await?, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Example: Redis Cluster
//!
//! A one-node cluster owning every slot stands in for a real one here; the calls are the same.
//!
//! ```
//! use keel_redis::{KeyBuilder, Redis, Script};
//! use std::time::Duration;
//!
//! # let server = keel_testkit::RedisServer::builder().config("cluster-enabled", "yes").start()?;
//! # server.command(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"])?;
//! # while !matches!(server.command(&["CLUSTER", "INFO"])?, keel_testkit::Reply::Bulk(Some(info)) if String::from_utf8_lossy(&info).contains("cluster_state:ok")) {
//! #     std::thread::sleep(Duration::from_millis(20));
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let client = redis::cluster::ClusterClient::new(vec![server.url()])?;
//! let redis = Redis::new(client.get_async_connection().await?, Duration::from_secs(1))?;
//! let keys = KeyBuilder::new("app:")?;
//! let pair = Script::new("pair", "redis.call('SET', KEYS[1], 1) return redis.call('INCR', KEYS[2])");
//! let mut call = pair.key(keys.key_with("}x", ":a"));
//! call.key(keys.key_with("}x", ":b")); // same slot, whatever the name
//! assert_eq!(redis.invoke::<i64>(&call).await?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Example: Sentinel
//!
//! [`SentinelConnection`] asks the Sentinels for the master, and asks again after a call
//! fails because the master went away or became a replica, so it follows a failover.
//!
//! ```
//! use keel_redis::{Redis, Script, SentinelConnection};
//! use std::time::Duration;
//!
//! # let group = keel_testkit::RedisSentinel::start()?;
//! # let sentinel_urls = group.sentinel_urls();
//! # let master_name = group.master_name().to_string();
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let connection = SentinelConnection::new(sentinel_urls, &master_name)?;
//! let redis = Redis::new(connection, Duration::from_secs(1))?;
//! let incr = Script::new("incr", "return redis.call('INCR', KEYS[1])");
//! assert_eq!(redis.invoke::<i64>(&incr.key("n")).await?, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Timeouts and time
//!
//! The call timeout is an I/O deadline on tokio's timer: it bounds how long a caller waits on
//! the network. It decides nothing about windows or leases; blocks read those from
//! `keel_core::Clock` or from the server's own `TIME`.

#![doc(test(attr(deny(warnings))))]

mod call;
mod config;
mod error;
mod keys;
mod script;
mod sentinel;

pub use call::Redis;
pub use config::RedisConfigError;
pub use error::{Error, ErrorKind};
pub use keys::{KeyBuilder, tag};
pub use script::{Invocation, Script};
pub use sentinel::SentinelConnection;

/// The `redis` crate this seam is built on, so users name the same version.
pub use redis;
