//! Caches for one process.
//!
//! # Overview
//!
//! - [`Lru`]: an exact least-recently-used cache for one thread, O(1) per operation.
//!
//! # Example
//!
//! ```
//! use keel_cache::Lru;
//!
//! let mut lru = Lru::new(2)?;
//! lru.put(1, "one");
//! lru.put(2, "two");
//! lru.get(&1);
//! lru.put(3, "three"); // evicts 2
//! assert!(!lru.contains(&2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
pub use error::BuildError;

mod lru;
pub use lru::{Iter, Lru, MAX_LRU_CAPACITY, Pushed};
