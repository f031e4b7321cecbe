//! Shared pieces of the keel crates: the [`Clock`] every block reads time from, the one
//! [`Backoff`] every block waits by, and the [`sync`] switch that lets loom model-check
//! lock-free code.
//!
//! # Overview
//!
//! keel's blocks (rate limiters, caches, ID generators, circuit breakers, leases) all depend on
//! time. None of them calls `Instant::now()` itself: each is generic over a [`Clock`], whose
//! [`now`](Clock::now) is a monotonic [`Instant`] (nanoseconds in a `u64`, so it fits one
//! atomic) and whose [`unix_millis`](Clock::unix_millis) is the wall clock, which may step back.
//!
//! | clock | for | monotonic reading | wall clock |
//! |---|---|---|---|
//! | [`SystemClock`] | production, the default | `std::time::Instant` | `SystemTime` |
//! | [`ManualClock`] | tests | moves on [`advance`](ManualClock::advance) | also steps back or forward on its own |
//! | `TokioClock` (feature `tokio`) | async tests with paused time | `tokio::time::Instant` | start time + tokio elapsed |
//!
//! # Example
//!
//! ```
//! use keel_core::{Clock, ManualClock, SystemClock};
//! use std::time::Duration;
//!
//! /// A fixed window counter, generic over its clock.
//! struct Window<C: Clock> {
//!     clock: C,
//!     started: keel_core::Instant,
//!     length: Duration,
//! }
//!
//! impl<C: Clock> Window<C> {
//!     fn is_over(&self) -> bool {
//!         self.clock.now() - self.started >= self.length
//!     }
//! }
//!
//! // In production: the system clock.
//! let live = Window { clock: SystemClock, started: SystemClock.now(), length: Duration::from_secs(60) };
//! assert!(!live.is_over());
//!
//! // In a test: a manual clock, moved without sleeping.
//! let clock = ManualClock::new();
//! let window = Window { clock: clock.clone(), started: clock.now(), length: Duration::from_secs(60) };
//! clock.advance(Duration::from_secs(59));
//! assert!(!window.is_over());
//! clock.advance(Duration::from_secs(1));
//! assert!(window.is_over());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What a reading costs
//!
//! Rate limiters and ID generators read the clock on every call, so the default must be
//! cheap. Measured on the project's machine (2 cores, x86_64, Linux, `tsc` clocksource) with
//! `cargo bench -p keel-benches --bench clock`, two runs:
//!
//! | clock source | ns per reading, idle machine | ns, two runs under compile load | resolution |
//! |---|---:|---:|---|
//! | `std::time::Instant::now` | 22.5 | 21.9, 43.0 | 1 ns |
//! | `std::time::SystemTime::now` | 30.1 | 31.6, 69.9 | 1 ns |
//! | `quanta::Clock::now` | 9.3 | 9.6, 10.2 | ~1 ns |
//! | `CLOCK_MONOTONIC_COARSE` | 3.5 | 5.8, 7.8 | 4 ms (one kernel tick) |
//! | coarse ticker (a thread stores the time every 1 ms) | 0.27 | 0.61, 0.54 | 1 ms, plus a thread |
//! | **`SystemClock::now`** (quanta) | **9.5** | 20.3, 20.7 | ~1 ns |
//! | `SystemClock::unix_millis` (`SystemTime`) | 32.4 | 62.0, 67.4 | 1 ms |
//! | `StdClock::now` (`std::time::Instant`) | 24.5 | 53.2, 63.6 | 1 ns |
//! | `ManualClock::now` | 0.25 | 0.41, 0.63 | what the test sets |
//!
//! [`SystemClock`] takes quanta's calibrated TSC clock: 2.4× cheaper than
//! `std::time::Instant`, full resolution, no background thread. The coarse sources are
//! cheaper still, but 1 to 4 ms coarse is too coarse for a limiter's spacing or a
//! sub-millisecond timeout, and the ticker costs a thread in every process. [`StdClock`] keeps
//! `std::time::Instant` for hosts whose TSC is not trusted.
//!
//! Where a millisecond behind is fine, [`Clock::recent`] and [`Clock::recent_unix_millis`]
//! offer the ticker: [`SystemClock`] starts it at the first such reading and stops it after a
//! second in which nobody read it. A circuit breaker's time window places its calls with
//! `recent`; keel-idgen's per-thread generators stamp IDs with `recent_unix_millis`. Other
//! clocks answer with `now` and `unix_millis`, so tests stay exact.
//!
//! # Backoff and jitter
//!
//! Every keel block that waits and tries again uses one [`Backoff`]: keel-breaker's `Retry`
//! between attempts, keel-rate-limit's `WaitJitter` on top of a retry-after, and
//! keel-lock's Redis waiters between polls. A backoff is a step, constant or exponential
//! (`base × multiplier^n`, capped at `max`), randomized by a [`BackoffJitter`]: none, *full*
//! (uniform in `[0, d]`), *equal* (`d/2` plus uniform in `[0, d/2]`) or *decorrelated*
//! (uniform in `[base, 3 × previous]`, capped), as in the AWS Architecture Blog's
//! "Exponential Backoff And Jitter". Every delay lies within
//! [`min_delay`](Backoff::min_delay) and [`max_delay`](Backoff::max_delay) for any retry
//! number and any settings. Random bits come from a [`RandomSource`] the caller passes:
//! [`JitterRng`] (SplitMix64) seeded per caller in production, with a fixed seed in tests.
//!
//! ```
//! use keel_core::{Backoff, BackoffJitter, JitterRng};
//! use std::time::Duration;
//!
//! let ms = Duration::from_millis;
//! let backoff = Backoff::exponential(ms(100)).max(ms(1_000)).jitter(BackoffJitter::Equal);
//! backoff.validate()?;
//! for (retry, wait) in backoff.delays(JitterRng::seeded(7)).take(6).enumerate() {
//!     let step = ms(100 << retry).min(ms(1_000));
//!     assert!(wait >= step / 2 && wait <= step);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! - `tokio`: adds `TokioClock`, which reads tokio's (pausable) clock.
//!
//! # Loom
//!
//! Under `RUSTFLAGS="--cfg keel_loom"`, [`sync`] re-exports loom's types instead of std's.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod backoff;
mod clock;
mod instant;
mod manual;
mod random;
mod recent;
pub mod sync;
mod system;
#[cfg(feature = "tokio")]
mod tokio_clock;

pub use backoff::{Backoff, BackoffError, BackoffJitter, Delays};
pub use clock::Clock;
pub use instant::Instant;
pub use manual::ManualClock;
pub use random::{JitterRng, RandomSource};
pub use system::{StdClock, SystemClock};
#[cfg(feature = "tokio")]
pub use tokio_clock::TokioClock;

// Compile-time checks that `Clock` and `RandomSource` stay object safe (`Arc<dyn Clock>`
// and `&mut dyn RandomSource` are supported).
const _: Option<&dyn Clock> = None;
const _: Option<&dyn RandomSource> = None;

// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
