//! Unique ID generators that never repeat, even when the clock steps back.
//!
//! # Overview
//!
//! This crate will hold Snowflake generators with configurable layouts, ULID and UUIDv7,
//! shared across threads by `&self`, with policies for clock steps and sequence exhaustion,
//! and worker ids leased from Redis. Time comes from [`keel_core::Clock`].
//!
//! The generators land in later releases; this release reserves the crate.
