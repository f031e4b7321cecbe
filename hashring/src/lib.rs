//! Consistent hashing that is stable across processes and releases.
//!
//! # Overview
//!
//! This crate will hold a ring with weighted virtual nodes, jump consistent hash, rendezvous
//! hashing, Maglev, multi-probe consistent hashing, bounded loads and a ketama-compatible
//! ring, all hashing keys with fixed-key SipHash so every process agrees.
//!
//! The algorithms land in later releases; this release reserves the crate.
