//! Leases with fencing tokens.
//!
//! # Overview
//!
//! This crate will hold a lock service that grants leases carrying strictly increasing
//! fencing tokens, in memory and in Redis, and the `Fence` a protected resource uses to
//! reject writes from a holder whose lease is gone. Time comes from [`keel_core::Clock`].
//!
//! The services land in later releases; this release reserves the crate.
