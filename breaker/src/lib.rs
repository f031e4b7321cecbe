//! Circuit breakers, retries and bulkheads.
//!
//! # Overview
//!
//! This crate will hold a circuit breaker with count- and time-based windows, retries with
//! exponential backoff, jitter and retry budgets, a bulkhead, and tower layers for each.
//! Time comes from [`keel_core::Clock`], so every transition is tested without sleeping.
//!
//! The components land in later releases; this release reserves the crate.
