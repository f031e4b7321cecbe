//! Bytes per key of a keyed limiter, measured with a counting allocator.
//!
//! Run with `cargo test -p keel-rate-limit --test memory -- --nocapture` to see the table.

use keel_core::ManualClock;
use keel_rate_limit::{
    Algorithm, CompactKeyedLimiter, FixedWindow, Gcra, KeyedLimiter, LeakyBucket, Quota,
    SlidingCounter, SlidingLog,
};
use keel_testkit::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator::new();

const KEYS: u64 = 200_000;

fn bytes_per_key<A: Algorithm>() -> f64 {
    let before = ALLOCATOR.live_bytes();
    let limiter = KeyedLimiter::<u64, A>::builder(Quota::per_hour(10).unwrap())
        .clock(ManualClock::new())
        .build()
        .unwrap();
    for key in 0..KEYS {
        assert!(limiter.check_key(&key).is_allowed());
    }
    assert_eq!(limiter.len(), KEYS as usize);
    let after = ALLOCATOR.live_bytes();
    drop(limiter);
    (after - before) as f64 / KEYS as f64
}

fn compact_bytes_per_key() -> f64 {
    let before = ALLOCATOR.live_bytes();
    let limiter = CompactKeyedLimiter::builder(Quota::per_hour(10).unwrap())
        .clock(ManualClock::new())
        .build()
        .unwrap();
    for key in 0..KEYS {
        assert!(limiter.check_key(key).is_allowed());
    }
    assert_eq!(limiter.len(), KEYS as usize);
    let after = ALLOCATOR.live_bytes();
    drop(limiter);
    (after - before) as f64 / KEYS as f64
}

#[test]
fn bytes_per_key_stay_small() {
    // One test, so no other test allocates while this one counts.
    let rows = [
        ("Gcra", bytes_per_key::<Gcra>(), 64.0),
        ("LeakyBucket", bytes_per_key::<LeakyBucket>(), 96.0),
        ("FixedWindow", bytes_per_key::<FixedWindow>(), 96.0),
        ("SlidingCounter", bytes_per_key::<SlidingCounter>(), 96.0),
        ("SlidingLog", bytes_per_key::<SlidingLog>(), 192.0),
        ("CompactKeyedLimiter (Gcra)", compact_bytes_per_key(), 16.0),
    ];
    println!("| algorithm | bytes per key (u64 keys, {KEYS} keys) |\n|---|---|");
    for (name, bytes, _) in rows {
        println!("| {name} | {bytes:.1} |");
    }
    for (name, bytes, most) in rows {
        assert!(
            bytes > 8.0 && bytes <= most,
            "{name}: {bytes:.1} bytes per key, expected at most {most}"
        );
    }
}
