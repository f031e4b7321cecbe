//! Caches for one process.
//!
//! # Overview
//!
//! This crate will hold an exact single-threaded LRU and a concurrent cache with a
//! high-hit-ratio admission and eviction policy, TTL and time-to-idle driven by
//! [`keel_core::Clock`], single-flight loaders, and write-through and write-back over a
//! backing store.
//!
//! The caches land in later releases; this release reserves the crate.
