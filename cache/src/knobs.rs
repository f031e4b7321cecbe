//! Experiment knobs read once from the environment (this commit only; reverted in the next).
//! Unset, every knob leaves the policy as it was. Scored in the README ("Hit ratios", the
//! seventh round):
//! - `KEEL_RA=1`: a key back from the small queue's ghost that the sketch would send to the
//!   small queue goes to main anyway, at most `KEEL_RA_K`‰ of the shard's capacity (at
//!   least one) such admissions per lap.
//! - `KEEL_RA_LAP`: what a lap is. 0: `KEEL_RA_LAPX`‰ of the capacity in evictions (default
//!   1000‰); 1: a halving of the sketch; 2: `KEEL_RA_LAPX`‰ of the capacity in evictions
//!   from main.
//! - `KEEL_RA_BIG`: 1 only in shards from 128 entries, 2 only below.
//! - `KEEL_RA_MINC`: the key must be counted at least this often by the sketch (0).
//! - `KEEL_DEBUG=1`: each shard prints its queue sizes and re-admissions when dropped.
use std::sync::OnceLock;

pub(crate) fn knob(name: &str, default: i64) -> i64 {
    static K: OnceLock<std::collections::HashMap<String, i64>> = OnceLock::new();
    let m = K.get_or_init(|| {
        std::env::vars()
            .filter(|(k, _)| k.starts_with("KEEL_"))
            .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
            .collect()
    });
    m.get(name).copied().unwrap_or(default)
}
