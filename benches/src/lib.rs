//! Shared workloads for keel's criterion benches and the `compare` program.
//!
//! Not published. Run `cargo bench -p keel-benches` for the benches and
//! `cargo run --release -p keel-benches --bin compare -- help` for the tables.

pub mod cache;
pub mod clocks;
pub mod hashring;
pub mod idgen;
