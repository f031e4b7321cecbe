//! Circuit breakers, retries with backoff, jitter and budgets, and bulkheads.
//!
//! # Overview
//!
//! These pieces keep a failing dependency from taking its callers down with it:
//!
//! | piece | what it does | cost when nothing fails |
//! |---|---|---|
//! | [`CircuitBreaker`] | stops calling a dependency that keeps failing, probes it, resumes | one atomic load to admit, two atomic RMWs to record (count window) |
//!
//! Time is read through [`keel_core::Clock`], so every transition is tested with a
//! `ManualClock`; nothing in the tests sleeps.
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
//! call does one `fetch_add` on the ring head and one `swap` of its slot, and touches the
//! failure totals only when its outcome differs from the one it displaces, so a healthy
//! breaker's recording is two uncontended-in-the-common-case atomic operations. Totals are
//! tagged with an epoch, so emptying the window on close cannot be corrupted by a racing
//! writer. [`Window::Time`] holds buckets of `length / buckets` with running totals behind a
//! short lock: O(1) per call, and a bucket is cleared once per lap.
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
//! # Crate features
//!
//! None yet; the breaker works without any runtime.

mod breaker;
mod config;
mod error;
mod metrics;
mod permit;
mod registry;
mod state;
mod window;

pub use breaker::{CircuitBreaker, Permit};
pub use config::{CircuitBreakerBuilder, ConfigError, OpenWait, Window};
pub use error::{CallError, Rejected};
pub use metrics::Metrics;
pub use permit::OwnedPermit;
pub use registry::BreakerRegistry;
pub use state::{Reason, State, Transition};
