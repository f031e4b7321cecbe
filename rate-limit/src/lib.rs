//! Rate limiters for one process or a fleet.
//!
//! # Overview
//!
//! This crate will hold the classic limiters behind one small trait: a token bucket as GCRA
//! (one lock-free atomic cell), a leaky bucket as meter and shaper, a fixed window, an exact
//! sliding log and an approximate sliding counter; keyed limiters with bounded memory; async
//! waiting on tokio; a Redis store running each decision as one Lua script; and a tower layer.
//! Time comes from [`keel_core::Clock`], so every window is tested without sleeping.
//!
//! The algorithms land in later releases; this release reserves the crate.
