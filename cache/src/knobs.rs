//! Experiment knobs read once from the environment (this commit only; reverted in the next).
//! Unset, every knob leaves the policy as it was. Scored in the README ("Hit ratios",
//! the sixth round):
//! - `KEEL_SW=n`: sketch n times wider; `KEEL_SAMPLE=n`: halve it every n× its size (10).
//! - `KEEL_JIT=n`: admit a refused newcomer counted ≥ n with chance 1/128 (from hash bits).
//! - `KEEL_MARGIN=n`: a newcomer must beat main's victim by more than n counts.
//! - `KEEL_AMIN_TINY` / `KEEL_AMIN_BIG`: ADMIT_MIN below / from 128 entries.
//! - `KEEL_SMALL0=n`: the small queue starts at n‰ of a shard from 128 entries (75).
//! - `KEEL_SHARDS=n`: shard count (diagnostic).
//! - `KEEL_VFRONT`: what a main victim that beats a newcomer does. 1: goes to main's front
//!   marked, and a marked victim still unread when met again is evicted; 3: goes to the
//!   front; 4 / 5: as 1 / 3 only against a newcomer counted ≥ `KEEL_VF_MINC` and while the
//!   small queue is ≥ `KEEL_VF_GATE`‰; 6: to the front on ties; 7: to the front when it
//!   beats a newcomer counted ≥ `KEEL_VF7_MINC` (3) by more than `KEEL_VF7_GAP` (0) counts
//!   (and at least `KEEL_VF7_RATIO2`/2 times its count), not within `KEEL_VF_COOL`/10 ×
//!   capacity inserts of a key back from main's ghost; 8: the newcomer also meets main's next
//!   unread entry (up to `KEEL_VF8_STEPS` back) and replaces it if counted less.
//!   `KEEL_VF_BIG=1`: none of this below 128 entries.
//! - `KEEL_DECAY=1|2`, `KEEL_DECAY_MUL=m`: the small queue shrinks by one after m × its
//!   size newcomers left it unread and refused with no vote to grow it (2: a promotion by
//!   reads also restarts the count).
//! - `KEEL_PERM=1|2`, `KEEL_PERM_M=m`: admit a refused newcomer counted ≥ 3 (2: within 2
//!   counts of the victim) while victims of admissions come back from the ghost less often
//!   than m% of the rate at which refused newcomers do.
//! - `KEEL_RVOTE=n`: the small queue shrinks by one every n refusals of keys back from its ghost.
//! - `KEEL_DEBUG=1`: each shard prints its queue sizes and decision counts when dropped.
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
