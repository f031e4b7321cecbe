//! The history of critical sections and its checker, shared with the soak
//! (`keel_testkit::anomalies`).

#![allow(unused_imports)]

pub(crate) use keel_testkit::anomalies::{Event, History, check_sections as check};
