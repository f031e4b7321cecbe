//! `CompactKeyedLimiter` against a reference model: a `HashMap` of exact nanosecond GCRA TATs
//! per key, never dropped, written out here so a bug in the crate's GCRA cannot hide in both.

use std::collections::HashMap;
use std::time::Duration;

use keel_core::{Clock, ManualClock};
use keel_rate_limit::{CompactKeyedLimiter, Quota};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Check { key: u64, n: u32 },
    Advance(u64),
    Retain,
}

fn ops(keys: u64) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            8 => (0..keys, 0u32..4).prop_map(|(key, n)| Op::Check { key, n }),
            3 => (0u64..400_000_000).prop_map(Op::Advance),
            1 => Just(Op::Retain),
        ],
        1..400,
    )
}

/// The model: GCRA on exact nanosecond TATs, one per key, never dropped.
struct Model {
    tats: HashMap<u64, u64>,
    t: u64,
    tau: u64,
}

impl Model {
    fn check(&mut self, key: u64, n: u32, now: u64) -> (bool, u64) {
        let tat = self.tats.get(&key).copied().unwrap_or(0).max(now);
        let new_tat = tat + u64::from(n) * self.t;
        if new_tat - now > self.tau {
            return (false, new_tat - now - self.tau);
        }
        self.tats.insert(key, new_tat);
        (true, 0)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Quotas whose burst spans at most 0.5 s keep units of at most 1 ns: decisions equal the model's
    /// exactly, through growth, rebases (the clock moves seconds) and `retain_recent`.
    #[test]
    fn decides_as_exact_gcra(
        limit in 1u32..50,
        burst in 1u32..8,
        keys in prop_oneof![Just(3u64), Just(50), Just(5_000)],
        ops in ops(5_000),
    ) {
        let quota = Quota::with_period(limit, Duration::from_millis(50))
            .and_then(|q| q.with_burst(burst))
            .expect("quota");
        let clock = ManualClock::new();
        let limiter = CompactKeyedLimiter::builder(quota).clock(clock.clone()).build().expect("limiter");
        let t = quota.emission_interval().as_nanos() as u64;
        let mut model = Model { tats: HashMap::new(), t, tau: t * u64::from(burst) };
        for op in &ops {
            match *op {
                Op::Check { key, n } => {
                    let key = key % keys;
                    let n = n.min(burst);
                    let now = clock.now().as_nanos();
                    let decision = limiter.check_key_n(key, n).expect("n <= burst");
                    let (allowed, retry) = model.check(key, n, now);
                    prop_assert_eq!(decision.is_allowed(), allowed, "key {} n {}", key, n);
                    if !allowed {
                        prop_assert_eq!(decision.retry_after(), Some(Duration::from_nanos(retry)));
                    }
                }
                Op::Advance(nanos) => clock.advance(Duration::from_nanos(nanos)),
                Op::Retain => limiter.retain_recent(),
            }
        }
        // Only keys still limiting (TAT in the future) may be held, and all of them are.
        let now = clock.now().as_nanos();
        limiter.retain_recent();
        let live = model.tats.values().filter(|tat| **tat > now).count();
        prop_assert_eq!(limiter.len(), live);
    }

    /// With coarse units (a burst spanning hours) a key's TAT is at most one unit (< 8 µs
    /// here) earlier than exact GCRA's fed the same admissions: it admits whatever GCRA admits,
    /// and admits early by less than a unit.
    #[test]
    fn coarse_units_admit_as_gcra_or_less_than_a_unit_early(
        limit in 1u32..20,
        ops in prop::collection::vec((0u64..4, 0u64..600_000_000_000, 1u32..3), 1..200),
    ) {
        let quota = Quota::per_hour(limit).expect("quota").with_burst(limit + 2).expect("quota");
        let clock = ManualClock::new();
        let limiter = CompactKeyedLimiter::builder(quota).clock(clock.clone()).build().expect("limiter");
        let t = quota.emission_interval().as_nanos() as u64;
        let mut model = Model { tats: HashMap::new(), t, tau: t * u64::from(limit + 2) };
        for (key, advance, n) in ops {
            clock.advance(Duration::from_nanos(advance));
            let now = clock.now().as_nanos();
            let compact = limiter.check_key_n(key, n).expect("n <= burst").is_allowed();
            let (exact, retry) = model.check(key, n, now);
            if exact {
                prop_assert!(compact, "denied what GCRA admits");
            } else if compact {
                prop_assert!(retry < 8_000, "admitted {retry} ns early");
                // Follow the admission in the model, as GCRA would `retry` later.
                let (again, _) = model.check(key, n, now + retry);
                prop_assert!(again);
            }
        }
    }
}

#[test]
fn a_million_keys_stay_under_sixteen_bytes_each() {
    let limiter = CompactKeyedLimiter::builder(Quota::per_hour(10).expect("quota"))
        .clock(ManualClock::new())
        .build()
        .expect("limiter");
    for key in 0..1_000_000u64 {
        assert!(
            limiter
                .check_key(key.wrapping_mul(0x9E37_79B9_7F4A_7C15))
                .is_allowed()
        );
    }
    assert_eq!(limiter.len(), 1_000_000);
    let per_key = limiter.table_bytes() as f64 / 1e6;
    assert!(per_key <= 16.0, "{per_key} bytes per key");
}

/// Threads racing on the same keys, time standing still: each key admits exactly its burst.
#[test]
fn racing_threads_admit_exactly_the_burst_per_key() {
    const KEYS: u64 = 2_000;
    let limiter = std::sync::Arc::new(
        CompactKeyedLimiter::builder(Quota::per_hour(40).expect("quota"))
            .clock(ManualClock::new())
            .build()
            .expect("limiter"),
    );
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let limiter = limiter.clone();
            std::thread::spawn(move || {
                let mut admitted = vec![0u32; KEYS as usize];
                for _ in 0..20 {
                    for key in 0..KEYS {
                        if limiter.check_key(key * 7_919).is_allowed() {
                            admitted[key as usize] += 1;
                        }
                    }
                }
                admitted
            })
        })
        .collect();
    let mut total = vec![0u32; KEYS as usize];
    for handle in handles {
        for (sum, count) in total.iter_mut().zip(handle.join().expect("thread")) {
            *sum += count;
        }
    }
    assert!(total.iter().all(|&count| count == 40), "{:?}", &total[..8]);
    assert_eq!(limiter.len(), KEYS as usize);
}
