//! Unique ID generators that never repeat, even when the clock steps back.
//!
//! # Overview
//!
//! Every generator implements one small trait, [`IdGenerator`], takes `&self` and is
//! `Send + Sync`, so one instance is shared by all threads of a process without a `Mutex`.
//! Time comes from a [`keel_core::Clock`], so tests drive clock steps with
//! [`ManualClock`](keel_core::ManualClock) instead of waiting for them.
//!
//! - [`Snowflake`]: 64-bit IDs `timestamp | worker | sequence` with a validated, configurable
//!   [`Layout`] (presets for Twitter, Discord, Instagram, Sonyflake and a 53-bit layout that
//!   JavaScript numbers hold exactly). IDs decode back into their [`Parts`].
//! - [`UlidGenerator`]: monotonic [`Ulid`]s (26 characters of Crockford base32), strictly
//!   increasing within a millisecond, with a documented [`UlidOverflow`] rule.
//! - [`UuidV7Generator`]: RFC 9562 version 7 UUIDs ([`UuidV7`]) with a 16-bit counter
//!   (method 1), monotonic within the process.
//! - [`LocalUlidGenerator`] and [`LocalUuidV7Generator`]: one per thread (`&mut self`), a
//!   few nanoseconds per ID on [`Clock::recent_unix_millis`](keel_core::Clock::recent_unix_millis); strictly
//!   increasing per generator, unique across threads by 79 (73) random bits, ordered across
//!   threads by millisecond only.
//! - Parsing never panics: a malformed string gives a [`ParseError`] saying what is wrong and
//!   at which position.
//! - Worker ids come from a [`WorkerIdProvider`]: [`FixedWorkerId`], [`EnvWorkerId`] (a
//!   StatefulSet ordinal), or `WorkerLease` (feature `lease`), a keel-lock lease on any lock
//!   service (in memory, Redis with feature `redis`) that stops the generator before the id
//!   can be granted to anyone else.
//! - A [`MarkStore`] (such as [`FileMark`]) persists a high-water mark, so a restarted
//!   process whose clock is earlier does not reissue IDs.
//!
//! # Example
//!
//! ```
//! use keel_core::ManualClock;
//! use keel_idgen::{ClockBackwards, GenerateError, Layout, Snowflake};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let generator = Snowflake::builder(Layout::twitter(), 3)
//!     .clock(clock.clone())
//!     .on_clock_backwards(ClockBackwards::Borrow { max: Duration::from_secs(1) })
//!     .build()?;
//! let before = generator.next_id()?;
//!
//! // An NTP step of 5 ms back: the generator keeps issuing on its last timestamp.
//! clock.step_wall_back(Duration::from_millis(5));
//! let after = generator.next_id()?;
//! assert!(after > before);
//!
//! // A step of an hour is beyond the bound: an error, never a duplicate.
//! clock.step_wall_back(Duration::from_secs(3600));
//! assert!(matches!(generator.next_id(), Err(GenerateError::ClockMovedBack { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Algorithms and their bounds
//!
//! **Snowflake.** One past the last issued `(ticks, sequence)` pair lives in one `AtomicU64`
//! as `ticks << sequence_bits | sequence`. To issue an ID a thread reads the clock's tick
//! `t`, proposes `max(t << sequence_bits, state)` and installs the proposal plus one with one
//! compare-and-swap; losers retry with the value they saw. Every tick's IDs start at
//! sequence 0, the layout's first tick included: `(0, 0)` is issued too. The state only grows, so IDs from one generator are
//! unique and strictly increasing, whatever the clock does. Throughput is capped by the
//! layout at `2^sequence_bits` IDs per time unit per worker (4,096 per millisecond for
//! Twitter's); the lock-free path costs one clock read and one CAS, far below that cap.
//!
//! The proposal can run ahead of the clock in two ways, each bounded by a policy:
//!
//! | situation | policy | behaviour |
//! |---|---|---|
//! | tick's sequence used up | [`SequenceExhausted::Wait`] (default) | wait for the next tick, at most one unit |
//! | | [`SequenceExhausted::BorrowAhead`] `{ max }` | take later ticks' sequences, at most `max` ahead |
//! | clock behind last issued tick | [`ClockBackwards::Wait`] `{ max }` (default 1 s) | wait for the clock if it is at most `max` behind, else error |
//! | | [`ClockBackwards::Borrow`] `{ max }` | keep issuing on the last timestamp, at most `max` ahead |
//! | | [`ClockBackwards::Error`] | [`GenerateError::ClockMovedBack`] at once |
//!
//! The generator cannot tell a step back from its own lead, so with `BorrowAhead { max }` a
//! step back of at most `max` is served from the borrowed ticks under every
//! `ClockBackwards` policy.
//!
//! A blocking call ([`Snowflake::next_id`]) re-reads the clock while it waits and gives up
//! with [`GenerateError::WaitTimedOut`] after the policy's bound plus two units, measured on
//! the monotonic clock (or slept in total, if the clock does not move at all).
//! [`Snowflake::try_next_id`] never waits: it returns
//! [`GenerateError::WouldBlock`] with how long to wait.
//!
//! **ULID and UUIDv7.** Both keep the last `(millisecond, counter)` in one `AtomicU64`
//! (48 + 16 bits) moved forward by compare-and-swap, so one generator's IDs strictly increase
//! across all threads; a clock step back keeps the last millisecond. A ULID's 80 random bits
//! are a per-millisecond random start (a keyed SipHash of the millisecond, so racing threads
//! agree on it without a lock) plus the counter: 65,536 ULIDs per millisecond, then the
//! [`UlidOverflow`] rule. A UUIDv7's counter is seeded with 15 random bits each millisecond
//! (at least 32,768 per millisecond before it moves to the next one) and the other 58 bits of
//! `rand_b` are fresh random bits per UUID.
//!
//! **Worker-id leases.** `WorkerLease` is keel-lock's lease under another name: worker id
//! `n` is the lock `<prefix><n>`, claimed with `try_acquire` on `0..ids` in order, renewed by
//! keel-lock's `KeepAlive` (the one renewal loop) and watched through its lost signal, which
//! reads the lock service's clock. The generator checks before every ID that the lease is
//! not lost and that its expiry is more than a safety margin away, so it stops before the
//! id can be granted to anyone else, also when the renewal task cannot run. A newly granted
//! id waits one TTL before its first ID ([`GenerateError::LeaseNotYetValid`] until then),
//! because a store that lost state (a Redis restart without persistence, a failover) can
//! grant an id whose previous holder is still issuing; after one TTL that holder has stopped.
//!
//! # Crate features
//!
//! No feature is on by default; the default build has no network dependency.
//!
//! - `uuid`: conversions to and from `uuid::Uuid`.
//! - `serde`: `Serialize` and `Deserialize` as canonical text.
//! - `lease`: `WorkerLease`, worker ids leased from any keel-lock `LockService` (adds
//!   keel-lock and tokio).
//! - `redis`: `lease` plus keel-lock's Redis backend, to lease worker ids from Redis.
//! - `metrics`: each [`Snowflake`], labelled with the name its [`SnowflakeBuilder`] was given,
//!   counts `keel_idgen_clock_backwards_waits_total` through the `metrics` facade: each
//!   time an ID had to wait (or `try_next_id` answered `WouldBlock`) because the clock
//!   stepped back within [`ClockBackwards::Wait`]'s bound; a blocking `next_id` that waits
//!   in several steps counts each. The counter is registered at build. Off, nothing is
//!   recorded and the generator holds no handle.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod generator;
mod high_water;
mod layout;
mod local_generator;
mod millis_counter;
mod policy;
mod snowflake;
mod ulid;
mod ulid_generator;
mod uuid_v7;
mod uuid_v7_generator;
mod worker;
mod worker_id;
#[cfg(feature = "lease")]
mod worker_lease;

pub use error::{GenerateError, IdConfigError, ParseError, StoreError};
pub use generator::IdGenerator;
pub use high_water::{FileMark, MarkStore};
pub use layout::{FieldOrder, Layout, LayoutBuilder, Parts};
pub use local_generator::{LocalUlidGenerator, LocalUuidV7Generator};
pub use policy::{ClockBackwards, SequenceExhausted};
pub use snowflake::{Snowflake, SnowflakeBuilder};
pub use ulid::Ulid;
pub use ulid_generator::{UlidGenerator, UlidOverflow};
pub use uuid_v7::UuidV7;
pub use uuid_v7_generator::UuidV7Generator;
pub use worker::{EnvWorkerId, FixedWorkerId, WorkerIdError, WorkerIdProvider};
pub use worker_id::{LeaseValidity, WorkerId};
#[cfg(feature = "lease")]
pub use worker_lease::{WorkerLease, WorkerLeaseBuilder};

// Compile-time checks that the traits meant for `dyn` stay object safe.
const _: Option<&dyn IdGenerator<Id = u64>> = None;
const _: Option<&dyn MarkStore> = None;
const _: Option<&dyn WorkerIdProvider> = None;

// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
