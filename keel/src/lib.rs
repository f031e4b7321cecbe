//! Building blocks for distributed systems: each keel block, re-exported behind a feature of
//! the same name.
//!
//! # Overview
//!
//! keel is a workspace of small crates, one building block each. This crate gathers them:
//! `keel = { git = "https://github.com/keel-rs/keel", features = ["cache", "rate-limit"] }` gives
//! [`keel::cache`](crate::cache) and [`keel::rate_limit`](crate::rate_limit), and compiles
//! nothing else. Every block reads time through one [`Clock`] (re-exported here with its
//! implementations), so tests drive windows, TTLs and leases with a [`ManualClock`] instead of
//! sleeping.
//!
//! # System-design topics and where they live
//!
//! | topic | feature / module | algorithms |
//! |---|---|---|
//! | [Rate limiting](#rate-limiting) | `rate-limit` / `rate_limit` | GCRA (token bucket), leaky bucket (meter and FIFO shaper), fixed window, sliding log, sliding counter; keyed; in Redis; tower middleware |
//! | [Caching strategies](#caching-strategies) | `cache` / `cache` | exact LRU; S3-FIFO with TinyLFU admission; TTL, time-to-idle, per-entry expiry; single-flight loaders; write-through, write-back |
//! | [Consistent hashing](#consistent-hashing) | `hashring` / `hashring` | ring with virtual nodes, jump hash, rendezvous (HRW), Maglev, multi-probe, bounded loads, ketama (libketama, libmemcached, twemproxy) |
//! | [ID generation](#id-generation) | `idgen` / `idgen` | Snowflake with configurable layouts, ULID, UUIDv7; clock-step policies; worker-id leases; high-water marks |
//! | [Fault tolerance](#fault-tolerance) | `breaker` / `breaker` | circuit breaker (count or time window, slow calls, half-open probes), retry with exponential backoff and jitter, retry budget, bulkhead; tower layers |
//! | [Distributed locking](#distributed-locking) | `lock` / `lock` | leases with fencing tokens (in memory, Redis), keep-alive, lost-lease signal, the resource-side fence |
//!
//! ## Rate limiting
//!
//! Cap how often a client may act. [`rate_limit::Gcra`] is the default (one atomic word per
//! key, exact retry-after); the docs of [`rate_limit`] give each algorithm's bound on what it
//! admits in any window.
//!
//! ```
//! # #[cfg(feature = "rate-limit")] {
//! use keel::rate_limit::{Gcra, KeyedLimiter, Quota};
//!
//! // 60 requests per minute per client, bursts of 5.
//! let per_client = KeyedLimiter::<&str, Gcra>::new(Quota::per_minute(60)?.with_burst(5)?);
//! let admitted = (0..10).filter(|_| per_client.check_key(&"10.0.0.1").is_allowed()).count();
//! assert_eq!(admitted, 5); // the burst, then the rate
//! assert!(per_client.check_key(&"10.0.0.2").is_allowed()); // another client's own quota
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Caching strategies
//!
//! Keep hot data close. [`cache::Lru`] is exact LRU for one thread; [`cache::Cache`] is
//! concurrent, scan-resistant (S3-FIFO, TinyLFU admission) and expires entries by TTL;
//! [`cache::WriteThrough`] and [`cache::WriteBack`] put it in front of a store.
//!
//! ```
//! # #[cfg(feature = "cache")] {
//! use keel::ManualClock;
//! use keel::cache::Cache;
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let cache = Cache::builder()
//!     .max_capacity(10_000)
//!     .time_to_live(Duration::from_secs(30))
//!     .clock(clock.clone())
//!     .build()?;
//! let profile = cache.get_or_insert_with(42_u64, || "loaded from the database".to_owned());
//! assert_eq!(cache.get(&42), Some(profile)); // a hit: the loader is not run again
//! clock.advance(Duration::from_secs(30));
//! assert_eq!(cache.get(&42), None); // expired
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Consistent hashing
//!
//! Spread keys over servers so that a membership change moves only the keys it must.
//!
//! ```
//! # #[cfg(feature = "hashring")] {
//! use keel::hashring::{ConsistentHash, Maglev, Ring};
//!
//! let mut ring = Ring::new();
//! let mut maglev = Maglev::new();
//! for server in ["cache-a", "cache-b", "cache-c"] {
//!     ring.add(server)?;
//!     maglev.add(server)?;
//! }
//! let before: Vec<_> = (0..1000).map(|k| *ring.node(&k).unwrap()).collect();
//! ring.add("cache-d")?;
//! // Only keys that now belong to the new server moved.
//! let moved = (0..1000).filter(|&k| *ring.node(&k).unwrap() != before[k as usize]);
//! assert!(moved.clone().all(|k| *ring.node(&k).unwrap() == "cache-d"));
//! assert!(maglev.node("user:42").is_some());
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## ID generation
//!
//! Unique, time-ordered IDs without coordination on each call: Snowflake's 64 bits, or
//! 128-bit ULIDs and UUIDv7s. None repeats when the clock steps back.
//!
//! ```
//! # #[cfg(feature = "idgen")] {
//! use keel::idgen::{Layout, Snowflake, UlidGenerator};
//!
//! let snowflake = Snowflake::builder(Layout::twitter(), 7).build()?;
//! let (a, b) = (snowflake.next_id()?, snowflake.next_id()?);
//! assert!(b > a);
//! assert_eq!(snowflake.decode(b).worker, 7);
//!
//! let ulids = UlidGenerator::new();
//! let (x, y) = (ulids.next_id()?, ulids.next_id()?);
//! assert!(y > x && y.to_string() > x.to_string()); // sortable as text too
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Fault tolerance
//!
//! Stop calling a dependency that keeps failing, retry what is transient with backoff and
//! jitter (within a budget), and cap concurrent calls.
//!
//! ```
//! # #[cfg(feature = "breaker")] {
//! use keel::breaker::{Bulkhead, CircuitBreaker, State};
//!
//! let breaker = CircuitBreaker::builder().consecutive_failures(3).build()?;
//! for _ in 0..3 {
//!     let _ = breaker.call(|| Err::<(), _>("timeout"));
//! }
//! assert_eq!(breaker.state(), State::Open);
//! assert!(breaker.call(|| Ok::<_, &str>(())).is_err()); // rejected without calling
//!
//! let bulkhead = Bulkhead::new(2)?;
//! let (_one, _two) = (bulkhead.try_acquire()?, bulkhead.try_acquire()?);
//! assert!(bulkhead.try_acquire().is_err()); // a third concurrent call is refused
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Distributed locking
//!
//! A lease alone protects nothing once its holder pauses past it; a fencing token checked at
//! the resource does.
//!
//! ```
//! # #[cfg(feature = "lock")] {
//! use keel::ManualClock;
//! use keel::lock::{Fence, InMemoryLockService, LockService};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let clock = ManualClock::new();
//! let locks = InMemoryLockService::with_clock(clock.clone());
//! let fence = Fence::new();
//! let ttl = Duration::from_secs(10);
//!
//! let first = locks.acquire("ledger", ttl, Duration::ZERO).await?;
//! clock.advance(Duration::from_secs(11)); // the holder stalls past its lease
//! let second = locks.acquire("ledger", ttl, Duration::ZERO).await?;
//! fence.advance(second.token())?;
//! assert!(fence.advance(first.token()).is_err()); // the stale holder's write is refused
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! - `rate-limit`, `cache`, `hashring`, `idgen`, `breaker`, `lock`: each block, as a module
//!   of the same name (`rate_limit` for `rate-limit`).
//! - `tokio`, `redis`, `tower`, `serde`, `uuid`, `metrics`: passed on to the blocks that are on and have
//!   them (for example `redis` turns on `RedisLimiter` only with `rate-limit`).
//! - `etcd`: keel-lock's `EtcdLockService` and `EtcdFence`, with `lock`.
//! - `lease`: keel-idgen's `WorkerLease` (worker ids leased from a keel-lock service), with
//!   `idgen`; with `redis` too, it can lease them from Redis.
//! - `full`: everything.
//!
//! ```
//! # #[cfg(all(feature = "lock", feature = "etcd", feature = "idgen", feature = "lease"))] {
//! // With `lock` + `etcd` and `idgen` + `lease`, the fleet-mode types are under the facade.
//! use keel::idgen::WorkerLease;
//! use keel::lock::{EtcdLockService, InMemoryLockService};
//!
//! let _etcd = EtcdLockService::builder().prefix("jobs/");
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let lease = WorkerLease::builder(InMemoryLockService::new()).ids(16).acquire().await?;
//! assert_eq!(lease.id(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! No feature is on by default; the default build has no network dependency.

#![cfg_attr(docsrs, feature(doc_cfg))]
// The overview links every block's module, which exists only with its feature: a build
// of some blocks documents the others' names without links rather than failing.
#![cfg_attr(
    not(all(
        feature = "rate-limit",
        feature = "cache",
        feature = "hashring",
        feature = "idgen",
        feature = "breaker",
        feature = "lock"
    )),
    allow(rustdoc::broken_intra_doc_links)
)]
#![forbid(unsafe_code)]

#[cfg(feature = "tokio")]
pub use keel_core::TokioClock;
pub use keel_core::{
    Backoff, BackoffError, BackoffJitter, Clock, Instant, JitterRng, ManualClock, RandomSource,
    StdClock, SystemClock,
};

#[cfg(feature = "breaker")]
#[doc(inline)]
pub use keel_breaker as breaker;
#[cfg(feature = "cache")]
#[doc(inline)]
pub use keel_cache as cache;
#[cfg(feature = "hashring")]
#[doc(inline)]
pub use keel_hashring as hashring;
#[cfg(feature = "idgen")]
#[doc(inline)]
pub use keel_idgen as idgen;
#[cfg(feature = "lock")]
#[doc(inline)]
pub use keel_lock as lock;
#[cfg(feature = "rate-limit")]
#[doc(inline)]
pub use keel_rate_limit as rate_limit;

// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(all(doctest, feature = "rate-limit"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
