//! Keyed limiters: independence of keys, per-key overrides, dropping fresh keys with no change
//! in behaviour, and the hard cap under a flood of distinct keys.

use std::collections::HashMap;
use std::time::Duration;

use keel_core::ManualClock;
use keel_rate_limit::{
    Algorithm, FixedWindow, Gcra, KeyedLimiter, KeyedLimiterError, LeakyBucket, Limiter, Quota,
    RateLimit, SlidingCounter, SlidingLog,
};
use proptest::prelude::*;

#[test]
fn keys_are_independent_and_overrides_apply() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::new();
    let limiter = KeyedLimiter::<String, Gcra>::builder(Quota::per_second(1)?)
        .clock(clock.clone())
        .build()?;
    limiter.set_key_quota("vip".to_string(), Quota::per_second(3)?);
    assert!(limiter.check_key("a").is_allowed());
    assert!(limiter.check_key("a").is_denied());
    assert!(limiter.check_key("b").is_allowed());
    assert!(limiter.check_key_n("vip", 3)?.is_allowed());
    assert_eq!(limiter.check_key_n("a", 2).unwrap_err().capacity(), 1);
    assert_eq!(limiter.remove_key_quota("vip"), Some(Quota::per_second(3)?));
    assert_eq!(limiter.quota_for("vip"), Quota::per_second(1)?);
    // Runtime change of the default quota.
    limiter.set_quota(Quota::per_second(5)?);
    clock.advance(Duration::from_secs(1));
    assert!(limiter.check_key_n("a", 5)?.is_allowed());
    Ok(())
}

#[test]
fn zero_cap_is_rejected() -> Result<(), Box<dyn std::error::Error>> {
    let err = KeyedLimiter::<u64, Gcra>::builder(Quota::per_second(1)?)
        .max_keys(0)
        .build()
        .unwrap_err();
    assert_eq!(err, KeyedLimiterError::ZeroMaxKeys);
    assert_eq!(err.to_string(), "max_keys must be > 0");
    Ok(())
}

#[test]
fn fresh_keys_are_dropped_on_their_own() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::new();
    let limiter = KeyedLimiter::<u64, Gcra>::builder(Quota::per_second(10)?)
        .clock(clock.clone())
        .build()?;
    for key in 0..5_000u64 {
        assert!(limiter.check_key(&key).is_allowed());
        clock.advance(Duration::from_millis(1));
    }
    // Each key is fresh 100 ms after its check; no cap, yet the map stayed small.
    assert!(limiter.len() < 2_500, "{} keys held", limiter.len());
    assert!(limiter.evicted_fresh() > 0);
    assert_eq!(limiter.evicted_live(), 0);
    clock.advance(Duration::from_secs(1));
    limiter.retain_recent();
    assert!(limiter.is_empty());
    Ok(())
}

/// 10 million distinct keys through a capped limiter: the map never exceeds its cap. Each
/// key's bucket is full again after 1 ms (1000 keys later), well inside the cap of 10 000, so
/// every key dropped is a fresh one: memory stays bounded with no change in behaviour.
#[test]
fn ten_million_distinct_keys_stay_under_the_cap() -> Result<(), Box<dyn std::error::Error>> {
    const CAP: usize = 10_000;
    let clock = ManualClock::new();
    let limiter = KeyedLimiter::<u64, Gcra>::builder(Quota::per_second(1_000)?.with_burst(1)?)
        .max_keys(CAP)
        .clock(clock.clone())
        .build()?;
    let mut most = 0;
    for key in 0..10_000_000u64 {
        assert!(limiter.check_key(&key).is_allowed());
        clock.advance(Duration::from_micros(1));
        if key % 100_000 == 0 {
            most = most.max(limiter.len());
        }
    }
    most = most.max(limiter.len());
    assert!(most <= CAP, "held {most} keys, cap {CAP}");
    assert!(limiter.evicted_fresh() >= 10_000_000 - CAP as u64);
    assert_eq!(limiter.evicted_live(), 0);
    Ok(())
}

/// When every key is still limiting, the cap holds anyway by forgetting some live keys.
#[test]
fn cap_holds_when_no_key_is_fresh() -> Result<(), Box<dyn std::error::Error>> {
    const CAP: usize = 2_000;
    let limiter = KeyedLimiter::<u64, SlidingLog>::builder(Quota::per_hour(1)?)
        .max_keys(CAP)
        .clock(ManualClock::new())
        .build()?;
    for key in 0..50_000u64 {
        assert!(limiter.check_key(&key).is_allowed());
        assert!(limiter.len() <= CAP);
    }
    assert!(limiter.evicted_live() >= 48_000);
    assert_eq!(limiter.evicted_fresh(), 0);
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Check { gap: u64, key: u8, n: u32 },
    Sweep,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        8 => (0u64..400_000, 0u8..6, 0u32..4).prop_map(|(gap, key, n)| Op::Check { gap, key, n }),
        1 => Just(Op::Sweep),
    ];
    prop::collection::vec(op, 1..150)
}

/// A keyed limiter that drops fresh keys decides exactly as one limiter per key kept forever.
fn same_as_never_dropping<A: Algorithm>(ops: &[Op]) -> Result<(), TestCaseError> {
    let quota = Quota::with_period(3, Duration::from_millis(1)).unwrap();
    let clock = ManualClock::new();
    let keyed = KeyedLimiter::<u8, A>::builder(quota)
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut reference: HashMap<u8, Limiter<A, ManualClock>> = HashMap::new();
    for op in ops {
        match *op {
            Op::Check { gap, key, n } => {
                clock.advance(Duration::from_nanos(gap));
                let want = reference
                    .entry(key)
                    .or_insert_with(|| Limiter::with_clock(quota, clock.clone()))
                    .check_n(n)
                    .unwrap();
                let got = keyed.check_key_n(&key, n).unwrap();
                prop_assert_eq!(got, want);
            }
            Op::Sweep => keyed.retain_recent(),
        }
    }
    prop_assert_eq!(keyed.evicted_live(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn dropping_fresh_keys_changes_nothing(ops in ops()) {
        same_as_never_dropping::<Gcra>(&ops)?;
        same_as_never_dropping::<LeakyBucket>(&ops)?;
        same_as_never_dropping::<FixedWindow>(&ops)?;
        same_as_never_dropping::<SlidingLog>(&ops)?;
        same_as_never_dropping::<SlidingCounter>(&ops)?;
    }
}
