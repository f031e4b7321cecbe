//! Caches for one process: an exact LRU, and a concurrent cache with a scan-resistant,
//! high-hit-ratio policy, expiry, single-flight loaders, write-through and write-behind.
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
//! - [`WriteThrough`] and [`WriteBack`] put a [`Cache`] in front of a [`Store`] (or, with
//!   the `tokio` feature, an `AsyncStore`). Write-back never calls the store from
//!   [`insert`](WriteBack::insert) or [`get`](WriteBack::get): a flusher thread or task does.
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
//! - **S3-FIFO** (Yang et al., SOSP 2023): newcomers enter a small FIFO; two reads there
//!   promote them to the main FIFO (one is not enough: loops and scans read their keys
//!   once more before they age out), where an entry read since the hand last passed goes
//!   around again (a 2-bit CLOCK), and, in shards from 128 entries, one read there before
//!   but not lately goes around once more (a segmented LRU's demotion from protected to
//!   probation). Newcomers read less are dropped unless the admission
//!   check below lets them in. A ghost FIFO as long as the shard remembers the hashes of
//!   entries evicted from either queue; a key dropped from the small queue and asked for
//!   again while remembered goes straight to main if the small queue has grown past a
//!   fifth of the shard (recency pays there); otherwise, and always in shards under 128
//!   entries, only if the sketch below counts it more often than main's oldest entry, and
//!   if not it waits in the small queue, where one more read promotes it. A shard under 128
//!   entries skips that check while main has lately read enough of the keys it let in this
//!   way (a loop whose keys all count alike would otherwise be turned away). Scans and loops,
//!   even loops a little longer than the cache, therefore flow through the small queue
//!   without flushing main.
//! - **Adaptive small queue**: the small queue starts at 7.5% of the shard (2% under 128
//!   entries) and moves by one entry each time a key comes back from the ghost soon after
//!   it left: toward the small queue if it left there within half the queue's length of
//!   evictions, toward main if it left main within the queue's length. Such a key would
//!   have hit had its list been a little longer, so the boundary settles where one more
//!   slot is worth as much on either side (as ARC moves its target, and in the spirit of
//!   Caffeine's hill-climbed window, Einziger et al., Middleware 2018; hill climbing an
//!   admission bias or the sketch's halving period on each shard's sampled hit rate was
//!   measured too, and lost on the held-out traces: see the README). A
//!   recency-biased workload (keys asked for again a few requests later) grows the small
//!   queue until it holds them, up to the whole shard; a frequency-biased one shrinks it
//!   to one entry. It costs the read path nothing: the ghost is touched on writes only.
//! - **TinyLFU admission** (Einziger et al.): a 4-bit count-min sketch with conservative
//!   update, its counters of one key in one 64-byte block (Caffeine's layout), halved every
//!   10 × (entries it is sized for) increments. A newcomer leaving the small queue read less than twice
//!   still displaces main's victim if the sketch has seen it at least 3 times and more
//!   often than the victim: this keeps frequency-skewed traces from losing to plain
//!   S3-FIFO. In shards under 128 entries twice will do against a victim the sketch has
//!   no count for (a key main took in and nobody asked for again); their sketch is four
//!   times wider, so a key asked for once seldom reads as twice.
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
//!   the sketch (8 bytes per entry, 4 in shards of 2,048 entries or more, 32 in shards
//!   under 128) that measured
//!   38.7 bytes per entry at 1M entries, 46.7 with expiry. The sketch and the ghost are
//!   sized by the entries a shard holds, not by its capacity: they start at 16 entries and
//!   double as the shard fills (the sketch keeps its counts as it grows), up to the
//!   capacity. Building a cache therefore allocates by its shard count only (about 640
//!   bytes a shard, up to 1 KB for one under 128 entries): `Cache::new(8_000_000_000)`
//!   takes 38 KB until entries arrive.
//! - **Hashing:** keys hash with [`DefaultHashBuilder`] (foldhash), seeded at random per
//!   cache; [`DefaultHashBuilder::with_seed`] fixes the seed, so a replay of the same
//!   requests makes the same decisions and gives the same hit ratio in every run.
//! - **Loaders:** one mutex-protected map of in-flight keys, touched only on misses.
//!
//! **`WriteThrough`** holds one of 64 key-hash stripes of locks across the store write and
//! the cache update; if the store errors or panics, the key is dropped from the cache (a
//! guard does it on unwind).
//!
//! **`WriteBack`** keeps dirty entries in shards of its own (at least four per CPU, by key hash),
//! each a map from key to its latest value and a version number under its own mutex. An
//! insert locks the key's shard, updates the cache under it (so cache and dirty set see a
//! key's writes in one order) and bumps one shared atomic count only when a key becomes
//! dirty; past the batch size it wakes the flusher once. The flusher, a thread or a tokio
//! task, copies up to a batch of entries, writes them, then removes each entry whose
//! version is still the one it wrote: a failed, panicking or cancelled write removes
//! nothing, and a write made meanwhile stays dirty. Flushes run one at a time, since two at
//! once could write a key's versions out of order. The flusher looks at the clock every
//! [`flusher_tick`](WriteBackBuilder::flusher_tick) when a flush interval is set, and waits a
//! tick before retrying a failed flush. See [`WriteBack`] for the exact no-lost-writes
//! contract, including drop, [`close`](WriteBack::close) and cancellation.
//!
//! # Crate features
//!
//! - `tokio`: `Cache::get_or_insert_with_async`, `Cache::try_get_or_insert_with_async`,
//!   and `AsyncStore` with `WriteBackBuilder::build_async`, whose flusher is a tokio task.
//!   Off by default; the default build depends on `keel-core`, `hashbrown`, `foldhash`,
//!   `parking_lot` and `crossbeam-utils` only.
//! - `metrics`: each cache emits, through the `metrics` facade and labelled with the name
//!   its [`CacheBuilder`] was given (`name`): `keel_cache_hits_total` and `keel_cache_misses_total`
//!   (every [`Cache::get`], whether or not `record_stats` is on),
//!   `keel_cache_evictions_total` (label `cause`: `size` or `expired`) and the gauge
//!   `keel_cache_size` (the [`weighted_size`](Cache::weighted_size), the entry count
//!   without a weigher). The handles are registered at build, so a read costs one counter
//!   increment. Off, nothing is recorded and the cache holds no handles.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "metrics")]
mod emit;
mod error;
pub use error::BuildError;

mod hasher;
pub use hasher::{DefaultHashBuilder, KeyHasher};

mod lru;
pub use lru::{Iter, Lru, MAX_LRU_CAPACITY, Pushed};

mod lock;
#[cfg(keel_loom)]
#[doc(hidden)]
pub use lock::{LoomLocks, loom_thread_slot};
#[cfg(keel_loom)]
#[doc(hidden)]
pub use room::LoomRoom;
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
#[cfg(feature = "tokio")]
pub use store::AsyncStore;
pub use store::Store;

mod write_through;
pub use write_through::WriteThrough;

mod dirty;
mod flusher;
mod room;
mod write_back;
pub use write_back::{DirtyFull, FlushError, Unflushed, WriteBack, WriteBackBuilder};

// Compile-time check that `Store` stays object safe.
const _: Option<&dyn Store<(), (), Error = std::fmt::Error>> = None;

// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
