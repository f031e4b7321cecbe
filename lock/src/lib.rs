//! Leases with fencing tokens, in memory and in Redis, and the fence a protected resource
//! uses to reject writers whose lease is gone.
//!
//! # Overview
//!
//! A lock with a time to live protects nothing on its own: a holder can pause (a GC, a
//! stalled VM, a slow disk) past its lease, another process acquires, and the first one wakes
//! up and writes anyway. Chubby (sequencers), ZooKeeper (zxid), etcd (revisions) and
//! Hazelcast's `FencedLock` close that hole the same way, and so does this crate: every grant
//! of a lock name carries a [`FencingToken`] strictly greater than every token issued before
//! for that name, the holder sends it with each write, and the resource keeps a [`Fence`]
//! that rejects any token older than one it has already accepted.
//!
//! | piece | what it is |
//! |---|---|
//! | [`LockService`] | the async trait: [`try_acquire`](LockService::try_acquire), [`acquire`](LockService::acquire) waiting up to a limit, [`extend`](LockService::extend), [`release`](LockService::release) |
//! | [`DynLockService`] | the object-safe twin of [`LockService`] (boxed futures), for a backend chosen at run time; `Box`/`Arc<dyn DynLockService>` are `LockService`s again |
//! | [`Lease`] | what a grant is: name, [`FencingToken`], expiry |
//! | [`InMemoryLockService`] | one process: sharded tables, tokens per shard counter |
//! | `RedisLockService` (feature `redis`) | many processes, one Redis server: one Lua script per operation |
//! | `EtcdLockService` (feature `etcd`) | many processes, an etcd cluster (Raft): an etcd lease per grant, the key's create revision as token |
//! | [`KeepAlive`] / [`LeaseGuard`] | renews a lease in the background; releases on drop (best effort) |
//! | [`LostLease`] | fires as soon as a renewal fails or the lease is known gone; reads the clock, so a holder past its expiry sees it lost at once |
//! | [`Fence`] | the resource side: atomic check-and-advance of the highest token seen |
//! | `RedisFence` (feature `redis`) | the same check inside a Redis write, in one Lua script |
//! | `EtcdFence` (feature `etcd`) | the same check inside an etcd write, in one transaction |
//!
//! Time comes from a [`keel_core::Clock`], so tests drive expiry with `ManualClock` (or
//! `TokioClock` and paused tokio time) instead of sleeping.
//!
//! # Example
//!
//! A holder pauses past its lease; the next holder writes; the first one's late write is
//! rejected by the fence.
//!
//! ```
//! use keel_core::ManualClock;
//! use keel_lock::{Fence, InMemoryLockService, LockService};
//! use std::time::Duration;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let clock = ManualClock::new();
//! let locks = InMemoryLockService::with_clock(clock.clone());
//! let fence = Fence::new(); // lives with the protected resource
//! let ttl = Duration::from_secs(10);
//!
//! let slow = locks.acquire("ledger", ttl, Duration::ZERO).await?;
//! fence.advance(slow.token())?; // its first write is fine
//!
//! clock.advance(Duration::from_secs(11)); // ... then it stalls past its lease
//! let fast = locks.acquire("ledger", ttl, Duration::ZERO).await?;
//! fence.advance(fast.token())?;
//!
//! assert!(fence.advance(slow.token()).is_err()); // the stale holder's write is refused
//! assert!(locks.release(&slow).await.is_err()); // and it cannot release the new lease
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Algorithms and their bounds
//!
//! - **Tokens.** In memory, each of 32 shards counts the grants of its names under its mutex,
//!   so a name's tokens strictly increase and are never reused, even after its entry is swept.
//!   In Redis, the acquire script `INCR`s a per-name counter and raises the result to at least
//!   the server's clock in microseconds (`TIME`); see `RedisLockService` for why this keeps
//!   tokens increasing across a restart that loses data. Tokens stay below 2^53, so Lua's
//!   doubles hold them exactly.
//! - **Mutual exclusion.** A name has at most one unexpired lease at any reading of the
//!   service's clock (model-checked with loom for the in-memory service, and checked on
//!   recorded histories of a real Redis server in the fault tests). It relies on the holder's
//!   clock not running slower than the service's: the [`Fence`] is what keeps data safe when
//!   that, or anything else about timing, fails.
//! - **Release and extend** compare tokens, never times: a holder whose lease was taken over
//!   gets [`LockError::NotHeld`]. An expired lease cannot be extended.
//! - **Cost.** In memory: one uncontended mutex and one hash lookup per operation. Redis: one
//!   round trip per operation (one Lua script); a waiting acquirer sleeps until the holder's
//!   remaining TTL or an exponential backoff with equal jitter (keel-core's `Backoff`, the
//!   one every keel block uses), whichever is sooner. etcd: a call that failed to reach the
//!   cluster is sent again after the same kind of backoff, within the call timeout.
//! - **The fence** is one compare-and-swap loop on an `AtomicU64` (loom-verified: once a
//!   token is accepted, no lower one is).
//! - **Waiting and fairness.** In memory, waiters queue first come, first served, and a
//!   release hands the lock to the next waiter only, reserved for it for up to 10 ms, so a
//!   holder that releases and re-acquires cannot starve them; a waiter too slow to run in
//!   that time loses its turn to whoever asks next. A thread blocked in
//!   [`acquire_blocking`](InMemoryLockService::acquire_blocking) is instead woken to compete
//!   for the free lock (as `parking_lot` does, so a thread that takes the lock again keeps
//!   its cache warm), up to 64 times; then it too is handed the lock. In Redis, waiters are
//!   not queued.
//!
//! # What it costs
//!
//! Measured on the project's machine (2 cores, shared with other builds) with
//! `cargo bench -p keel-benches --bench lock`, two runs, as ratios to a peer in the same run
//! (the in-memory rows with `-- --warm-up-time 1 --measurement-time 3 'in memory/|2 threads'`,
//! at load average 7); the in-memory async rows run inside a tokio runtime, as users run them:
//!
//! | operation | keel | beside | ratio (two runs) |
//! |---|---|---|---|
//! | acquire + release, in memory, uncontended | [`LockHandle`] | `tokio::sync::Mutex` lock + unlock | 0.84x, 0.75x (0.64x, 0.61x after the lease carried its granter's id; idle, `'in memory/'`) |
//! | acquire + release by name, in memory, uncontended | [`InMemoryLockService`] | `tokio::sync::Mutex` lock + unlock | 1.21x, 1.19x, 1.21x, 1.44x, 1.26x, then 1.54x, 1.19x, 1.15x, 1.44x, 1.22x, 1.22x, 1.37x (session 12, once a lease granted by name reads its name from the state it holds; twelve runs on an idle AMD EPYC, median 1.22x; 331 against tokio's 237 instructions, 1.40x; the README's keel-lock section has the earlier builds) |
//! | `try_acquire_now` + `release_now`, in memory, uncontended | [`LockHandle`] | `parking_lot::Mutex` lock + unlock | 2.00x, 1.85x (1.12x, 1.12x after the lease carried its granter's id; idle, `'in memory/'`) |
//! | the same, 2 threads on one name, spinning on a try (throughput) | [`LockHandle`] | `parking_lot::Mutex::lock` | 0.26x, 0.28x |
//! | the same | [`LockHandle`] | `parking_lot::Mutex::try_lock` in the same spin loop | 0.39x, 0.50x |
//! | the same, 2 threads, blocking in [`acquire_blocking`](LockHandle::acquire_blocking) (throughput; seven idle runs of `'2 threads'`, median 0.42x; goal 0.5x not met before session 10) | [`LockHandle`] | `parking_lot::Mutex::lock` | 0.38x–0.52x (0.33x, 0.31x on an idle AMD EPYC); 0.71x, 0.59x, 0.69x once inlined, against 0.33x, 0.28x, 0.32x for the build before in alternate runs (AMD EPYC, session 10; goal met) |
//! | acquire + release, one Redis on loopback | `RedisLockService` | rslock (Redlock, one server) | 1.12x, 1.45x |
//! | acquire + release, one Redis on loopback | `RedisLockService` | `SET NX PX` + `DEL` | 1.33x, 1.23x |
//! | fenced write, one Redis | `RedisFence::set` | `SET` | 1.22x, 1.31x |
//! | fence check-and-advance, newer token | [`Fence::advance`] | `AtomicU64::fetch_max` | 1.95x, 1.47x |
//! | acquire + release, in memory, as `dyn` | `Arc<dyn DynLockService>` | the same, static | 1.31x, 1.27x |
//! | is the lease still held? | [`LostLease::is_lost`] (reads the clock) | `SystemClock::now` alone | 1.03x, 1.36x |
//!
//! # Why there is no Redlock
//!
//! Redlock (as in the `rslock` crate) takes a majority of independent Redis servers and gives
//! a lease with no fencing token: there is nothing a resource can check, so a holder that
//! pauses past its lease writes anyway. Its safety also rests on timing assumptions (bounded
//! pauses, bounded network delay, clocks that do not jump), exactly what fails in the cases
//! it is meant for. Martin Kleppmann's "How to do distributed locking" (2016) sets out both
//! points. A single Redis with durable, fenced tokens is simpler and, together with the
//! [`Fence`], safe whatever the timing; for a lock that must survive a server's loss, use a
//! consensus store (etcd, ZooKeeper) and its revision as the token.
//!
//! # Crate features
//!
//! - `redis`: `RedisLockService` and `RedisFence`, through `keel-redis`: generic over the
//!   connection (`ConnectionManager` by default; multiplexed, Sentinel's master or a Redis
//!   Cluster), names escaped so a lock's keys share one cluster slot, errors that keep their
//!   source.
//! - `etcd`: `EtcdLockService` and `EtcdFence`, on the `etcd-client` crate (its build runs
//!   `protoc`). The default build has no network dependency.
//! - `metrics`: `Metered`, a wrapper around any [`LockService`] that counts, through the
//!   `metrics` facade and labelled with the `name` it is given, `keel_lock_grants_total`,
//!   `keel_lock_waits_total` (acquires that found the lock held and waited) and
//!   `keel_lock_lost_leases_total` (extends and releases answered "not held"). Off, the
//!   services record nothing and hold no handles.
//!
//! tokio (`sync`, `time`, `rt`) is always a dependency: waiting, keep-alive and the lost-lease
//! signal are built on its timer, task and watch channel.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod blocking;
mod dyn_service;
mod error;
#[cfg(feature = "etcd")]
mod etcd_fence;
#[cfg(feature = "etcd")]
mod etcd_service;
mod fence;
mod guard;
mod keep_alive;
mod lease;
mod lost;
mod memory;
#[cfg(feature = "metrics")]
mod metered;
#[cfg(feature = "redis")]
mod redis_fence;
#[cfg(feature = "redis")]
mod redis_service;
mod service;
mod slot;
mod timer;
mod token;

pub use dyn_service::{DynLockService, LockFuture};
pub use error::{LockConfigError, LockError};
#[cfg(feature = "etcd")]
pub use etcd_fence::EtcdFence;
#[cfg(feature = "etcd")]
pub use etcd_service::{EtcdLockService, EtcdLockServiceBuilder};
pub use fence::{Fence, StaleToken};
pub use guard::LeaseGuard;
/// keel-core's backoff, re-exported for [`RedisLockServiceBuilder::backoff`].
#[cfg(feature = "redis")]
pub use keel_core::{Backoff, BackoffJitter};
pub use keep_alive::KeepAlive;
pub use lease::Lease;
pub use lost::{LostLease, LostReason};
pub use memory::{InMemoryLockService, LockHandle};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metered::Metered;
#[cfg(feature = "redis")]
pub use redis_fence::RedisFence;
#[cfg(feature = "redis")]
pub use redis_service::{RedisLockService, RedisLockServiceBuilder};
pub use service::LockService;
pub use token::FencingToken;

// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
