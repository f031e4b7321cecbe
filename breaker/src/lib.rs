//! Circuit breakers, retries with backoff, jitter and budgets, and bulkheads.
//!
//! # Overview
//!
//! Four pieces keep a failing dependency from taking its callers down with it:
//!
//! | piece | what it does | cost when nothing fails |
//! |---|---|---|
//! | [`CircuitBreaker`] | stops calling a dependency that keeps failing, probes it, resumes | one atomic load to admit; one atomic RMW to record a success (count window), none with consecutive failures only; the same for a time window of buckets ≥ 100 ms, plus one load of the clock's recent reading; a short lock only for failures, slow calls and a new bucket |
//! | [`Retry`] | retries transient errors with exponential backoff and jitter, within attempt and time limits | no clock read, RNG seeding or allocation until the first failure |
//! | [`RetryBudget`] | caps retries at a percentage of recent requests plus a floor per second | one short lock per request |
//! | [`Bulkhead`] | caps concurrent calls; rejects or waits a bounded time when full | two atomic RMWs |
//!
//! Time is read through [`keel_core::Clock`], so every transition is tested with a
//! `ManualClock` and every retry with tokio's paused time; nothing in the tests sleeps.
//!
//! # Example
//!
//! ```
//! use keel_breaker::{CallError, CircuitBreaker, OpenWait, State, Window};
//! use std::time::Duration;
//!
//! let breaker = CircuitBreaker::builder()
//!     .failure_rate(50.0)                  // trip at 50% failures...
//!     .window(Window::Count(100))          // ...over the last 100 calls...
//!     .minimum_calls(10)                   // ...once at least 10 are in
//!     .open_wait(OpenWait::Fixed(Duration::from_secs(30)))
//!     .build()?;
//!
//! for _ in 0..10 {
//!     let _ = breaker.call(|| Err::<(), _>("connection refused"));
//! }
//! assert_eq!(breaker.state(), State::Open);
//! match breaker.call(|| Ok::<_, &str>("fetched")) {
//!     Err(CallError::Rejected(rejected)) => assert!(rejected.retry_after().is_some()),
//!     other => panic!("expected a rejection, got {other:?}"),
//! }
//!
//! // Code that cannot be wrapped in a closure takes a permit instead.
//! breaker.reset();
//! let permit = breaker.try_acquire()?;
//! permit.success();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The circuit breaker
//!
//! **States.** *Closed* admits every call and counts outcomes. *Open* rejects every call until
//! the open wait is over ([`OpenWait::Fixed`], or [`OpenWait::Exponential`] growing on each
//! trip that follows a failed probe). The first call after the wait moves the breaker to
//! *half-open* and becomes a probe; at most `half_open_probes` probes run at once, that many
//! successes close the breaker and any failure reopens it. *Forced open* and *disabled* are
//! for operators and last until [`reset`](CircuitBreaker::reset).
//!
//! **Trip conditions**, any of which opens a closed breaker:
//! - `consecutive_failures(n)`: n failures in a row;
//! - `failure_rate(p)`: at least p% of the calls in the window failed;
//! - `slow_calls(p, d)`: at least p% of the calls in the window took d or longer;
//! - the rates count only once the window holds `minimum_calls` calls.
//!
//! **Windows.** [`Window::Count`] holds the last N outcomes in a ring of atomic slots: a
//! call does one `fetch_add` on the ring head (on its own cache line) and, only when its
//! outcome differs from the one it displaces, a `swap` of its slot and a CAS on the failure
//! totals. A healthy breaker therefore pays one atomic RMW per call, and its slots stay in
//! shared cache lines across threads. Totals are tagged with an epoch, so emptying the
//! window on close cannot be corrupted by a racing writer. [`Window::Time`] holds buckets
//! of `length / buckets` with running totals behind a short lock: O(1) per call (a bucket
//! is cleared once per lap). A success that cannot trip a rate (no failure in the window, or
//! the minimum of calls reached, and the newest bucket) skips the lock and adds one to a
//! counter of its thread's own, which the next locked call folds in; a success that races a
//! locked call ending that state checks the rates itself (model-checked with loom). Buckets
//! of 100 ms or more place calls with [`Clock::recent`](keel_core::Clock::recent), which
//! [`SystemClock`](keel_core::SystemClock) answers with one load of a time its ticker thread
//! stored up to about a millisecond ago; shorter buckets, and breakers that time slow calls,
//! read [`Clock::now`](keel_core::Clock::now). A breaker with no rate condition (only
//! `consecutive_failures`) keeps no window at all: a success is two atomic loads.
//!
//! **State word.** The state, the probes in flight, the probe successes and a generation
//! share one `AtomicU64`: admitting a closed call is one load, a probe is one CAS, so the
//! half-open limit holds under any interleaving (model-checked with loom in `tests/loom.rs`).
//! Each state change bumps the generation; an outcome reported under an older generation is
//! ignored, so a call that started before the breaker tripped cannot close it again.
//!
//! **Cancellation.** A [`Permit`] dropped without an outcome gives its probe slot back and
//! counts nothing. A probe that never answers is bounded by `probe_timeout`: once every slot
//! has been taken that long, the next call reopens the breaker.
//!
//! **Failure predicate.** [`CircuitBreaker::call_with`] takes a predicate over the result,
//! so a `404` need not count against the dependency.
//!
//! **Observability.** [`CircuitBreakerBuilder::on_state_change`] listeners receive every
//! [`Transition`]; [`CircuitBreaker::metrics`] returns a [`Metrics`] snapshot.
//! [`BreakerRegistry`] keeps one breaker per key.
//!
//! # Retry
//!
//! [`Backoff`] computes waits: constant, or exponential with no jitter, *full* jitter
//! (uniform in `[0, d]`), *equal* jitter (`d/2` plus uniform in `[0, d/2]`) or *decorrelated*
//! jitter (uniform in `[base, 3 × previous]`, capped), as in the AWS Architecture Blog's
//! "Exponential Backoff And Jitter". It is keel-core's backoff, re-exported here with its
//! [`BackoffJitter`]: the same type the rate limiter's waits and the lock's waiters use.
//! Each retrying request draws its jitter from its own `keel_core::JitterRng`, seeded on
//! its first failure. [`Retry`] bounds attempts and total elapsed time and
//! retries only errors its predicate calls transient. A [`RetryBudget`] (Finagle's design)
//! allows retries up to `percent` of the requests of the last `ttl` plus `min_per_second`,
//! so over any `ttl` a failing dependency sees at most `(1 + percent/100) × requests +
//! min_per_second × ttl` calls instead of `max_attempts × requests`.
//!
//! # Bulkhead
//!
//! [`Bulkhead`] caps concurrent calls with a counting semaphore: `try_acquire` never waits;
//! with the `tokio` feature, `Bulkhead::acquire` waits up to a bound for a slot.
//!
//! # tower
//!
//! With the `tower` feature, `CircuitBreakerLayer` (with a failure predicate), `RetryLayer`
//! (with a retry predicate, an optional budget and a request cloner for requests that are not
//! `Clone`) and `BulkheadLayer` wrap any `Service`. Each keeps the inner service's error type
//! ([`CallError<E>`](CallError), [`BulkheadError<E>`](BulkheadError), the retry's last `E`)
//! and names its future (`CircuitBreakerFuture`, `BulkheadFuture`, `RetryFuture`), so
//! nothing is boxed per request. `examples/resilient_client.rs` stacks all three in front of
//! a flaky service.
//!
//! # Crate features
//!
//! - `tokio`: async retries (`Retry::run`) and the bulkhead's bounded wait
//!   (`Bulkhead::acquire`). Their waits need a tokio runtime with timers: outside a runtime
//!   a wait fails instead ([`GiveUp::NoRuntime`], [`BulkheadFull::no_runtime`]); in a
//!   runtime built without `enable_time`, tokio panics.
//! - `tower`: `Layer`s for the breaker, retry (with budget) and bulkhead; implies `tokio`.
//! - `metrics`: each breaker emits, through the `metrics` facade and labelled with its
//!   [`name`](CircuitBreakerBuilder::name): `keel_breaker_transitions_total` (labels `from`,
//!   `to`), `keel_breaker_rejected_total` and the gauge `keel_breaker_state` (0 closed,
//!   1 half-open, 2 open, 3 forced open, 4 disabled). Each [`Retry`], labelled with the
//!   name its [`RetryBuilder`] was given: `keel_breaker_retry_attempts_total` (retries allowed,
//!   the first attempt not counted) and `keel_breaker_retry_budget_exhausted_total`
//!   (retries refused because the [`RetryBudget`] was spent). With `tokio` too, each
//!   [`Bulkhead`] (named by `Bulkhead::with_name`): the gauge
//!   `keel_breaker_bulkhead_queue_depth`, callers waiting in `acquire` for a slot. The
//!   handles are registered at build. Off, nothing is recorded and no handles are held.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod breaker;
mod budget;
mod bulkhead;
mod config;
#[cfg(feature = "metrics")]
mod emit;
mod error;
#[cfg(feature = "tower")]
mod layer;
mod metrics;
mod permit;
mod registry;
mod retry;
mod state;
mod window;

pub use breaker::{CircuitBreaker, Permit};
pub use budget::{RetryBudget, RetryBudgetBuilder};
pub use bulkhead::{Bulkhead, BulkheadFull, BulkheadPermit, OwnedBulkheadPermit};
pub use config::{BreakerConfigError, CircuitBreakerBuilder, OpenWait, Window};
pub use error::{BulkheadError, CallError, Rejected};
pub use keel_core::{Backoff, BackoffJitter};
#[cfg(feature = "tower")]
pub use layer::{
    AnyError, BoxError, BulkheadFuture, BulkheadLayer, BulkheadService, ByClone,
    CircuitBreakerFuture, CircuitBreakerLayer, CircuitBreakerService, CloneRequest, ErrIsFailure,
    FailurePredicate, RetryFuture, RetryLayer, RetryPredicate, RetryService,
};
pub use metrics::Metrics;
pub use permit::OwnedPermit;
pub use registry::BreakerRegistry;
pub use retry::{Attempts, GiveUp, Retry, RetryBuilder, RetryError};
pub use state::{Reason, State, Transition};

/// Whether tokio's timer can be reached from here. A runtime built without `enable_time`
/// passes this check and still panics in tokio, which offers no check that does not panic.
#[cfg(feature = "tokio")]
pub(crate) fn has_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
