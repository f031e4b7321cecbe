//! Test helpers for keel: real servers for each test (a `redis-server`, a Redis Cluster, a
//! Sentinel group, an etcd cluster), a network fault proxy, and a counting allocator.
//!
//! # Overview
//!
//! [`RedisServer::start`] launches the machine's `redis-server` on a free loopback port in a
//! temporary directory and waits until it answers `PING`. A test then points its client at
//! [`RedisServer::url`] and can inject faults: [`stop`](RedisServer::stop) and
//! [`kill`](RedisServer::kill) it, [`restart`](RedisServer::restart) it on the same port and data
//! directory, or [`pause`](RedisServer::pause) and [`resume`](RedisServer::resume) it with
//! `SIGSTOP`/`SIGCONT`. The server is killed when the value drops, also when the test panics.
//!
//! [`RedisCluster::start`] runs six such servers as a real Redis Cluster (three masters, one
//! replica each, joined by `redis-cli --cluster create`), with faults by node index and waits
//! for a replica's promotion ([`RedisCluster::kill_master`], [`RedisCluster::wait_for_failover`]).
//!
//! [`RedisSentinel::start`] runs a master, its replicas and three Sentinels (quorum 2), with
//! [`RedisSentinel::kill_master`] and [`RedisSentinel::pause_master`] waiting until the
//! Sentinels have promoted a replica.
//!
//! [`EtcdCluster::start`] runs a real three-member etcd cluster (Debian's `etcd-server`), with
//! kill, pause, resume and restart of any member, [`EtcdCluster::leader`], and
//! [`EtcdCluster::kill_leader`] and [`EtcdCluster::pause_leader`] waiting for the next leader.
//!
//! [`recorded`] reads a `metrics-util` debugging recorder into plain values, the one helper
//! behind every keel crate's metrics tests.
//!
//! [`FaultProxy`] sits between a client and any of these servers and injects network faults:
//! latency, a blackhole (partition), one direction cut (half-open), refused connections, and
//! a reset of every open connection. [`ProxiedRedis`] runs any of the three Redis deployments
//! with a proxy in front of every data server (Sentinel answers and Cluster redirects name
//! the proxies), so one network-fault test covers all three.
//!
//! [`anomalies`] counts what a history must not hold (double grants, stale writes accepted,
//! duplicate IDs, lost writes, late returns): the checkers of the fault tests and the soak.
//!
//! If `redis-server` is not installed, [`RedisServer::start`] returns
//! [`TestkitError::NotInstalled`], whose message names the Debian package to install. Set
//! `KEEL_REDIS_SERVER` to use a binary that is not on `PATH`.
//!
//! # Example
//!
//! ```
//! use keel_testkit::{Persistence, RedisServer, Reply};
//!
//! let mut server = RedisServer::builder()
//!     .persistence(Persistence::AppendOnlyAlways)
//!     .start()?;
//! assert!(server.url().starts_with("redis://127.0.0.1:"));
//!
//! server.command(&["SET", "fence", "7"])?;
//! server.restart()?; // same port, same data directory
//! assert_eq!(server.command(&["GET", "fence"])?, Reply::Bulk(Some(b"7".to_vec())));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod anomalies;
mod counting_allocator;
mod error;
mod etcd_cluster;
mod fault_proxy;
mod process;
mod proxied_redis;
pub mod recorded;
mod redis_cluster;
mod redis_sentinel;
mod redis_server;
mod resp;

pub use counting_allocator::CountingAllocator;
pub use error::TestkitError;
pub use etcd_cluster::{EtcdCluster, EtcdClusterBuilder, EtcdMember, LeaderChange};
pub use fault_proxy::{Direction, FaultProxy};
pub use proxied_redis::{Deployment, ProxiedRedis};
pub use redis_cluster::{RedisCluster, RedisClusterBuilder};
pub use redis_sentinel::{RedisSentinel, RedisSentinelBuilder};
pub use redis_server::{Persistence, RedisServer, RedisServerBuilder};
pub use resp::Reply;

// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
