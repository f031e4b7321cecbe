//! `Cache` against a reference map: random operations with a manual clock. The cache may
//! forget (evict) an entry, but it must never return a value the model says is stale or
//! expired, and it must never hold more than its capacity.

use std::collections::HashMap;
use std::time::Duration;

use keel_cache::Cache;
use keel_core::ManualClock;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u32),
    InsertTtl(u8, u32, u8),
    Get(u8),
    Remove(u8),
    Advance(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..40, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (0u8..40, any::<u32>(), 1u8..20).prop_map(|(k, v, t)| Op::InsertTtl(k, v, t)),
        6 => (0u8..40).prop_map(Op::Get),
        1 => (0u8..40).prop_map(Op::Remove),
        2 => (0u8..10).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn never_stale_never_expired_never_over_capacity(
        cap in 1u64..24,
        shards_log in 0u32..3,
        ttl in proptest::option::of(5u8..30),
        tti in proptest::option::of(5u8..30),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let shards = 1usize << shards_log;
        prop_assume!(shards as u64 <= cap);
        let clock = ManualClock::new();
        let mut builder = Cache::builder()
            .max_capacity(cap)
            .shards(shards)
            .per_entry_expiry()
            .clock(clock.clone());
        if let Some(t) = ttl {
            builder = builder.time_to_live(Duration::from_secs(u64::from(t)));
        }
        if let Some(t) = tti {
            builder = builder.time_to_idle(Duration::from_secs(u64::from(t)));
        }
        let cache = builder.build().unwrap();
        // key -> (value, write deadline, idle deadline) in whole seconds.
        let mut model: HashMap<u8, (u32, u64, u64)> = HashMap::new();
        let mut now = 0u64;
        let idle = |now: u64| tti.map_or(u64::MAX, |t| now + u64::from(t));
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    cache.insert(k, v);
                    let dl = ttl.map_or(u64::MAX, |t| now + u64::from(t));
                    model.insert(k, (v, dl, idle(now)));
                }
                Op::InsertTtl(k, v, t) => {
                    cache.insert_with_ttl(k, v, Duration::from_secs(u64::from(t))).unwrap();
                    let dl = (now + u64::from(t)).min(ttl.map_or(u64::MAX, |c| now + u64::from(c)));
                    model.insert(k, (v, dl, idle(now)));
                }
                Op::Get(k) => {
                    let got = cache.get(&k);
                    let live = model.get(&k).filter(|e| now < e.1 && now < e.2).map(|e| e.0);
                    match (got, live) {
                        (Some(g), Some(l)) => {
                            prop_assert_eq!(g, l);
                            // A read extends the idle deadline (never past the write one).
                            model.get_mut(&k).unwrap().2 = idle(now);
                        }
                        (Some(g), None) => prop_assert!(false, "key {} returned {} but the model has it stale or expired", k, g),
                        (None, _) => {}
                    }
                }
                Op::Remove(k) => {
                    let got = cache.remove(&k);
                    let live = model.remove(&k).filter(|e| now < e.1 && now < e.2).map(|e| e.0);
                    if let Some(g) = got {
                        prop_assert_eq!(Some(g), live);
                    }
                }
                Op::Advance(s) => {
                    clock.advance(Duration::from_secs(u64::from(s)));
                    now += u64::from(s);
                }
            }
            prop_assert!(cache.entry_count() <= cap);
            prop_assert!(cache.weighted_size() <= cap);
        }
    }
}
