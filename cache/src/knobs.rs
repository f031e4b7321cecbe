//! Experiment knobs read once from the environment (seventh #14 round; reverted before
//! anything is kept). Unset, every knob leaves the policy as it was. Scored in the README
//! ("Seventh round: sizing the small queue from main's hits"):
//! - `KEEL_MH=1`: every `KEEL_MH_N`-th main eviction of an entry unread since it entered
//!   main grows the small queue by one; `=2` also shrinks it every `KEEL_MH_M`-th time main's
//!   hand finds a read entry.
//! - `KEEL_MH=3`: a key back from the small queue's ghost after the vote window still votes
//!   for it while the share of main's evictions unread since entering main (an average over
//!   the last ~`KEEL_MH_A` evictions, of 1024, starting at `KEEL_MH_E0`) is at least
//!   `KEEL_MH_T`; `=4` also drops the two-count lead then; `=5` (or `KEEL_MH5=1` beside
//!   another mode) votes while the share is below `KEEL_MH_T`, with `KEEL_MH5_BIG=1` / `2`
//!   only from / below 128 entries.
//! - `KEEL_MH=6` / `7`: a key back from main's ghost votes only if it had (`6`) / had not
//!   (`7`) been read in main.
//! - `KEEL_MH=10`: a main victim replaced as stale grows the small queue by `KEEL_MH_STEP`.
//! - `KEEL_MH=12` / `13`: as 10, and below 128 entries (`13`: everywhere) a main victim that
//!   turned away `KEEL_MH_K` newcomers counted >= `KEEL_MH_C` grows the small queue by one.
//! - `KEEL_FIX_SMALL=n`: the small queue's share fixed at n per mille (diagnostic).
//! - `KEEL_DEBUG=1`: each shard prints its decision counts when dropped.
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
