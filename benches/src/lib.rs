//! Shared workloads for keel's criterion benches and the `compare` program.
//!
//! Not published. Run `cargo bench -p keel-benches` for the benches,
//! `cargo run --release -p keel-benches --bin compare -- help` for the tables, and
//! `scripts/soak [MINUTES]` (the `soak` binary) for every fault scenario against real servers.

pub mod cache;
pub mod clocks;
pub mod hashring;
pub mod idgen;
