//! Rate limiters for one process or a fleet: GCRA, leaky bucket, fixed window, sliding log
//! and sliding counter behind one small trait.
//!
//! # Overview
//!
//! - A [`Quota`] says how many requests per period, and the burst allowed at once; bad ones
//!   are rejected with a [`QuotaError`] that says what is wrong.
//! - A [`Limiter<A>`](Limiter) runs one [`Algorithm`] over one state. It answers the
//!   [`RateLimit`] trait: [`check`](RateLimit::check) and [`check_n`](RateLimit::check_n), all
//!   or nothing, each returning a [`Decision`] (admitted or not, limit, remaining, reset
//!   after, retry-after). Asking for more than the limiter could ever admit is its own error,
//!   [`InsufficientCapacity`], not a denial. The quota can be changed at runtime.
//! - A [`KeyedLimiter`] keeps one state per key (IP, user, token) with per-key quota
//!   overrides and bounded memory, without a background task.
//! - A [`CompactKeyedLimiter`] is GCRA per `u64` key in 12-byte slots: under 16 bytes per
//!   key where concurrent hash maps (and `KeyedLimiter`) take 22 to 36, for one quota.
//! - With feature `redis`, a `RedisLimiter` keeps the state in Redis so many processes
//!   share one quota.
//! - [`KeyedRateLimit`] is the async trait every keyed limiter answers, so middleware (the
//!   tower `RateLimitLayer`) and user code take any of them.
//! - [`Decision::headers`] renders the IETF `RateLimit`/`RateLimit-Policy` fields, legacy
//!   `X-RateLimit-*` headers and `Retry-After`.
//!
//! Time comes from [`keel_core::Clock`], so every window and retry-after is tested with a
//! [`ManualClock`](keel_core::ManualClock) instead of sleeping.
//!
//! # Example
//!
//! ```
//! use keel_rate_limit::{Gcra, KeyedLimiter, Limiter, Quota, RateLimit};
//!
//! // One quota for the whole process: 100 requests per second, bursts of 10.
//! let global = Limiter::<Gcra>::new(Quota::per_second(100)?.with_burst(10)?);
//! let decision = global.check();
//! assert!(decision.is_allowed());
//!
//! // One per client IP: 60 per minute.
//! let per_ip = KeyedLimiter::<&str, Gcra>::new(Quota::per_minute(60)?);
//! assert!(per_ip.check_key(&"10.0.0.1").is_allowed());
//! assert!(per_ip.check_key_n(&"10.0.0.2", 61).is_err()); // never satisfiable
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The algorithms and their bounds
//!
//! Each bound is the most requests the algorithm can admit in *any* window of the quota's
//! period (half-open, at any offset), whatever the arrivals. The crate's property tests drive
//! each algorithm with random arrivals on a manual clock and check its bound against a
//! reference count of the admissions.
//!
//! | algorithm | state per key | most admitted in any `period` | retry-after |
//! |---|---|---|---|
//! | [`Gcra`] (token bucket) | one `AtomicU64`, lock-free | `burst + limit − 1` | exact |
//! | [`LeakyBucket`] (meter) | level + time, mutex | `burst + limit − 1` (same decisions as GCRA) | exact |
//! | [`FixedWindow`] | start + count, mutex | `2·limit` (at a window boundary) | next window |
//! | [`SlidingLog`] | one entry per admission instant | `limit` (exact) | exact |
//! | [`SlidingCounter`] (Cloudflare's) | start + two counts, mutex | `2·limit − 1` (adversarial) | exact for its estimate |
//!
//! Retry-after is computed in integer nanoseconds and rounded up: a request retried after
//! exactly that long is admitted if nothing else arrived.
//!
//! # Crate features
//!
//! - `tokio`: `Limiter::until_ready` / `Limiter::until_n_ready` with optional
//!   `WaitJitter` (extra delays drawn from keel-core's `Backoff`, the backoff every keel
//!   block shares), and the leaky bucket `Shaper` whose callers wait in FIFO order. Both are
//!   cancellation-safe.
//! - `redis` (implies `tokio`): `RedisLimiter`, one quota shared by many processes. GCRA,
//!   fixed window, sliding log and sliding counter run as Lua scripts (one `EVALSHA` per
//!   decision, Redis server time, keys that expire when idle and share one cluster slot for
//!   any key), with a timeout on every call and a `FailurePolicy` (fail open, fail closed, or
//!   a local limiter). Generic over the connection through `keel-redis`: one server,
//!   Sentinel's master, or a Redis Cluster. A check whose answer is lost (a timeout, a
//!   reset) may still have been charged once in Redis, so do not retry a failed check
//!   blindly: each retry is charged again. Let the `FailurePolicy` decide.
//! - `tower`: `RateLimitLayer`, middleware over any [`KeyedRateLimit`] (local, or Redis for a
//!   fleet), keyed by a function of the request, that answers `429` with `Retry-After` and the
//!   rate-limit headers, or passes the decision on. Clones share one limiter. See
//!   `examples/axum.rs`, and `examples/axum_redis.rs` for two server processes sharing one
//!   quota through Redis.
//! - `metrics`: every [`Limiter`], [`KeyedLimiter`] and `RedisLimiter` decision is counted
//!   through the `metrics` facade as `keel_rate_limit_decisions_total`, labelled `name`
//!   (from `Limiter::with_name` or the builders' `name`, `"default"` otherwise) and
//!   `outcome` (`admitted` or `denied`; a request larger than the quota counts as denied, and
//!   so does a Redis failure under `FailClosed`, an admission under `FailOpen`, while the
//!   `Local` fallback counts its own decisions under the same name).
//!   The counters are registered once per limiter, so a decision costs one increment. Off,
//!   nothing is recorded and the limiters hold no handles. `examples/axum.rs` (features
//!   `tower` and `metrics`) serves them on `/metrics` as Prometheus text through
//!   `metrics-exporter-prometheus`.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod algorithm;
mod compact_keyed;
mod decision;
#[cfg(feature = "metrics")]
mod emit;
mod error;
mod fixed_window;
mod gcra;
mod headers;
mod keyed;
mod keyed_rate_limit;
#[cfg(feature = "tower")]
mod layer;
mod leaky_bucket;
mod limiter;
mod quota;
mod quota_cell;
mod rate_limit;
#[cfg(feature = "redis")]
mod redis_limiter;
#[cfg(feature = "tokio")]
mod shaper;
mod sliding_counter;
mod sliding_log;
#[cfg(feature = "tokio")]
mod wait;

pub use algorithm::Algorithm;
pub use compact_keyed::{
    CompactKeyedLimiter, CompactKeyedLimiterBuilder, CompactKeyedLimiterError,
};
pub use decision::Decision;
pub use error::InsufficientCapacity;
pub use fixed_window::{FixedWindow, FixedWindowState};
pub use gcra::{Gcra, GcraState};
pub use headers::HeaderStyle;
pub use keyed::{KeyedLimiter, KeyedLimiterBuilder, KeyedLimiterError};
pub use keyed_rate_limit::KeyedRateLimit;
#[cfg(feature = "tower")]
pub use layer::{DenialMode, RateLimitLayer, RateLimitService, ResponseFuture};
pub use leaky_bucket::{LeakyBucket, LeakyBucketState};
pub use limiter::Limiter;
pub use quota::{Quota, QuotaError};
pub use rate_limit::RateLimit;
#[cfg(feature = "redis")]
pub use redis_limiter::{
    FailurePolicy, RedisAlgorithm, RedisLimitError, RedisLimiter, RedisLimiterBuilder,
    RedisLimiterError,
};
#[cfg(feature = "tokio")]
pub use shaper::{Acquire, Shaper};
pub use sliding_counter::{SlidingCounter, SlidingCounterState};
pub use sliding_log::{SlidingLog, SlidingLogState};
#[cfg(feature = "tokio")]
pub use wait::WaitJitter;

// Compile-time check that `RateLimit` stays object safe.
const _: Option<&dyn RateLimit> = None;

// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
