//! Caches for one process: an exact LRU, and a concurrent cache with a scan-resistant,
//! high-hit-ratio policy, expiry, single-flight loaders and write-behind.
//!
//! # Overview
//!
//! - [`Lru`]: an exact least-recently-used cache for one thread (`&mut self`), O(1) per
//!   operation, with [`peek`](Lru::peek), [`pop`](Lru::pop), [`resize`](Lru::resize) and
//!   iteration in recency order.
//! - [`Cache`]: a concurrent cache (`&self`, `Send + Sync`) built with [`Cache::builder`]:
//!   capacity by entry count or by weight ([`CacheBuilder::weigher`]), time-to-live,
//!   time-to-idle and per-entry expiry read from a [`keel_core::Clock`], an eviction listener
//!   told the [`RemovalCause`], and [`CacheStats`] (hits and misses counted with
//!   [`CacheBuilder::record_stats`]).
//! - Loaders on [`Cache`]: [`get_or_insert_with`](Cache::get_or_insert_with),
//!   [`try_get_or_insert_with`](Cache::try_get_or_insert_with) and, with the `tokio`
//!   feature, their `_async` forms. Concurrent misses of one key run one loader.
//! - [`WriteThrough`] and [`WriteBack`] put a [`Cache`] in front of a [`Store`].
//!
//! # Example
//!
//! ```
//! use keel_cache::{Cache, Lru, RemovalCause};
//! use keel_core::ManualClock;
//! use std::time::Duration;
//!
//! let mut lru = Lru::new(2)?;
//! lru.put(1, "one");
//! lru.put(2, "two");
//! lru.get(&1);
//! lru.put(3, "three"); // evicts 2, the least recently used
//! assert!(!lru.contains(&2));
//!
//! let clock = ManualClock::new();
//! let cache = Cache::builder()
//!     .max_capacity(10_000)
//!     .time_to_live(Duration::from_secs(60))
//!     .clock(clock.clone())
//!     .eviction_listener(|key: u64, _value: String, cause| {
//!         assert_eq!((key, cause), (7, RemovalCause::Expired));
//!     })
//!     .build()?;
//! let v = cache.get_or_insert_with(7, || "loaded once".to_string());
//! assert_eq!(cache.get(&7), Some(v));
//! clock.advance(Duration::from_secs(60));
//! assert_eq!(cache.get(&7), None); // expired entries are never returned
//! cache.purge_expired(); // optional: writes reclaim them a few at a time anyway
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Algorithms
//!
//! **`Lru`** keeps entries in one dense `Vec`, linked by `u32` indexes into a doubly linked
//! recency list, and a `hashbrown` table of those indexes. Every operation is O(1); a
//! removal moves the last slot into the hole so the `Vec` never has gaps. About 36 bytes
//! per `u64 → u64` entry. Its miss counts on the traces of the LIRS, ARC and libCacheSim
//! papers equal the reference LRU simulator's exactly (see `tests/traces.rs`).
//!
//! **`Cache`** is split into a power-of-two number of shards by key hash (by default 16
//! per CPU, so threads seldom meet in one shard, or one per CPU with a weigher, but never
//! under 256 units of capacity per shard, since each shard runs its own policy). Each
//! shard is an index table and a dense slab of nodes behind its own reader-writer lock,
//! and runs this policy, chosen by replaying real traces (see the README):
//!
//! - **S3-FIFO** (Yang et al., SOSP 2023): newcomers enter a small FIFO (7.5% of the
//!   shard, 2% under 128 entries); two reads there promote them to the main FIFO (one is
//!   not enough: loops and scans read their keys once more before they age out), where an
//!   entry read since the hand last passed goes around again (a 2-bit CLOCK). Newcomers
//!   read less are dropped unless the admission check below lets them in, and their hash
//!   is remembered in a ghost FIFO as long as main; a key asked for again while
//!   remembered goes straight to main (in shards under 128 entries, only if the sketch
//!   below counts it more often than main's oldest entry: there main holds just the
//!   hottest few dozen keys). Scans and loops therefore flow through the small queue
//!   without flushing main.
//! - **TinyLFU admission** (Einziger et al.): a 4-bit count-min sketch with conservative
//!   update, its counters of one key in one 64-byte block (Caffeine's layout), halved every
//!   10 × capacity increments. A newcomer leaving the small queue read less than twice
//!   still displaces main's victim if the sketch has seen it at least 3 times and more
//!   often than the victim: this keeps frequency-skewed traces from losing to plain
//!   S3-FIFO.
//! - **Read path:** a hit takes the shard's read lock, which writes only a counter of the
//!   reading thread's own (up to twice as many threads as CPUs get one each; more share
//!   one counter per shard, as readers of a plain `RwLock` share its word). A writer
//!   raises a flag and waits for the shard's counts to drain. Then it does relaxed
//!   writes only: the node's read counter (up to 4 reads between two visits of the
//!   policy) and, for the first 2 of those, the key's sketch counters, so hot keys stop
//!   writing. No global lock, no global counter. Hit and miss counting is opt-in
//!   ([`CacheBuilder::record_stats`], as in Caffeine) and adds one write to a per-thread
//!   stripe.
//! - **Capacity:** each shard gets `capacity / shards` (the remainder spread over the
//!   first), and evicts before its insert returns, so the count (or total weight) never
//!   exceeds the capacity: the slack is 0. An entry heavier than a shard is refused
//!   ([`InsertError::TooHeavy`]).
//! - **Expiry:** a deadline per entry (8 bytes, only when expiry is configured), checked on
//!   every read; time-to-idle reads extend it (by relaxed store, skipped for extensions under
//!   1/64 of the idle time). Expired entries are removed by a cursor that checks two slots
//!   per write, by eviction, or by [`Cache::purge_expired`]: no background thread.
//! - **Memory:** a `u64 → u64` node is 24 bytes (the next index, list and read count share
//!   one 32-bit word, so a shard holds at most 2^28 − 2 entries); with the index table and
//!   the sketch (8 bytes per entry of capacity, 4 in shards of 2,048 entries or more) that
//!   measured 38.7 bytes per entry at 1M entries, 46.7 with expiry. With a weigher the
//!   capacity is a weight, so the sketch and ghost are sized by the entries actually held
//!   instead (from 1,024, doubling as they grow).
//! - **Loaders:** one mutex-protected map of in-flight keys, touched only on misses.
//!
//! # Crate features
//!
//! - `tokio`: `Cache::get_or_insert_with_async`, `Cache::try_get_or_insert_with_async`
//!   and `WriteBack::spawn_flusher`. Off by default; the default build depends on
//!   `keel-core`, `hashbrown`, `foldhash`, `parking_lot` and `crossbeam-utils` only.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
pub use error::BuildError;

mod lru;
pub use lru::{Iter, Lru, MAX_LRU_CAPACITY, Pushed};

mod lock;
mod shard;
mod sketch;
mod striped;
mod thread_slot;

mod removal;
pub use removal::RemovalCause;

mod stats;
pub use stats::CacheStats;

mod loader;

mod cache;
pub use cache::{Cache, CacheBuilder, InsertError, MAX_CACHE_CAPACITY};

mod store;
pub use store::Store;

mod write_through;
pub use write_through::WriteThrough;

mod write_back;
pub use write_back::{FlushError, WriteBack, WriteBackBuilder};

// Compile-time check that `Store` stays object safe.
const _: Option<&dyn Store<(), (), Error = std::fmt::Error>> = None;

// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
