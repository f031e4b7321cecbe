//! Bytes per key of keyed limiters holding `u64` keys, keel beside governor, counted by a
//! counting allocator in one run.
//!
//! `cargo test --release -p keel-benches --test keyed_memory -- --nocapture` prints the table.

use std::num::NonZeroU32;

use keel_core::ManualClock;
use keel_rate_limit::{CompactKeyedLimiter, Gcra, KeyedLimiter, Quota};
use keel_testkit::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator::new();

/// Live bytes per key after `keys` distinct keys each took one request and stayed limited.
fn bytes_per_key<L>(keys: u64, build: impl FnOnce() -> L, check: impl Fn(&L, u64)) -> f64 {
    let before = ALLOCATOR.live_bytes();
    let limiter = build();
    for key in 0..keys {
        // Spread like real ids, not 0..n.
        check(&limiter, key.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    let after = ALLOCATOR.live_bytes();
    drop(limiter);
    (after - before) as f64 / keys as f64
}

#[test]
fn keyed_limiters_bytes_per_key() {
    // One test, so no other test allocates while this one counts.
    let quota = Quota::per_hour(10).expect("quota");
    let governor_quota = governor::Quota::per_hour(NonZeroU32::new(10).expect("non-zero"));
    // The whole table in release; only the headline count in a debug build (CI's test run).
    let counts: &[u64] = if cfg!(debug_assertions) {
        &[1_000_000]
    } else {
        &[
            100_000, 250_000, 500_000, 750_000, 1_000_000, 1_250_000, 1_500_000, 2_000_000,
        ]
    };
    println!("| keys | keel CompactKeyedLimiter | keel KeyedLimiter<u64, Gcra> | governor keyed |");
    println!("|---:|---:|---:|---:|");
    let mut compact_worst: f64 = 0.0;
    let mut at_million = (0.0, 0.0);
    for &keys in counts {
        let compact = bytes_per_key(
            keys,
            || {
                CompactKeyedLimiter::builder(quota)
                    .clock(ManualClock::new())
                    .build()
                    .expect("limiter")
            },
            |limiter, key| assert!(limiter.check_key(key).is_allowed()),
        );
        let keyed = bytes_per_key(
            keys,
            || {
                KeyedLimiter::<u64, Gcra>::builder(quota)
                    .clock(ManualClock::new())
                    .build()
                    .expect("limiter")
            },
            |limiter, key| assert!(limiter.check_key(&key).is_allowed()),
        );
        let governor = bytes_per_key(
            keys,
            || governor::RateLimiter::<u64, _, _>::keyed(governor_quota),
            |limiter, key| assert!(limiter.check_key(&key).is_ok()),
        );
        println!("| {keys} | {compact:.1} | {keyed:.1} | {governor:.1} |");
        compact_worst = compact_worst.max(compact);
        if keys == 1_000_000 {
            at_million = (compact, governor);
        }
    }
    // The slot arrays are at least 0.78 full (15.4 bytes a key), plus 64 shard headers.
    assert!(compact_worst <= 16.0, "{compact_worst:.1} bytes per key");
    assert!(at_million.0 < at_million.1 / 2.0, "{at_million:?}");
}
