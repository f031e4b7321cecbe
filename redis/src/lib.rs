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
//! | [`ConfigError`] | a zero timeout or a prefix with a brace, refused when built |
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
//! - Sentinel: ask the sentinels for the master's client and connect to it as above.
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
//! The sentinels name the current master; connect to it. After a failover, build the
//! connection again from the sentinels (calls to the old master fail with
//! [`ErrorKind::Connection`] or, once it is a replica, [`ErrorKind::Server`] `READONLY`).
//!
//! ```no_run
//! use keel_redis::Redis;
//! use redis::sentinel::{SentinelClient, SentinelServerType};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let mut sentinels = SentinelClient::build(
//!     vec!["redis://127.0.0.1:26379/"],
//!     "mymaster".to_string(),
//!     None,
//!     SentinelServerType::Master,
//! )?;
//! let master = sentinels.async_get_client().await?;
//! let redis = Redis::new(redis::aio::ConnectionManager::new(master).await?, Duration::from_secs(1))?;
//! let pong: String = redis.query("ping", &redis::cmd("PING")).await?;
//! assert_eq!(pong, "PONG");
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

pub use call::Redis;
pub use config::ConfigError;
pub use error::{Error, ErrorKind};
pub use keys::{KeyBuilder, tag};
pub use script::{Invocation, Script};

/// The `redis` crate this seam is built on, so users name the same version.
pub use redis;
