//! Caches for one process.
//!
//! # Overview
//!
//! - [`Lru`]: an exact least-recently-used cache for one thread, O(1) per operation.
//! - [`Cache`]: a concurrent cache with an adaptive W-TinyLFU policy, capacity by count or
//!   weight, time-to-live, time-to-idle and per-entry expiry, an eviction listener and stats.
//!
//! # Example
//!
//! ```
//! use keel_cache::{Cache, Lru};
//!
//! let mut lru = Lru::new(2)?;
//! lru.put(1, "one");
//! lru.put(2, "two");
//! lru.get(&1);
//! lru.put(3, "three"); // evicts 2
//! assert!(!lru.contains(&2));
//!
//! let cache = Cache::new(1_000)?;
//! cache.insert("k", 1);
//! assert_eq!(cache.get("k"), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub use error::BuildError;

mod lru;
pub use lru::{Iter, Lru, MAX_LRU_CAPACITY, Pushed};

mod lock;
mod shard;
mod sketch;

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
