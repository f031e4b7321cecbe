//! Property tests: each algorithm against a reference model, on a manual clock with random
//! arrivals. They check the documented bound in any window of the quota's period, that
//! retry-after is exact (denied one nanosecond before, admitted at), that `remaining` is what
//! can really be taken, and each algorithm's decisions against a naive model.

use std::time::Duration;

use keel_core::{Clock, ManualClock};
use keel_rate_limit::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, Limiter, Quota, RateLimit, SlidingCounter,
    SlidingLog,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Advance the clock by this many nanoseconds, then ask for `n` cells.
    Arrive { gap: u64, n: u32 },
    /// Ask for one cell, and if denied, probe retry-after: denied at `retry − 1 ns`, admitted at `retry`.
    Retry { gap: u64 },
    /// Ask for one cell, and if admitted, take `remaining` more at once and see the next one denied.
    Drain { gap: u64 },
}

fn quota_strategy() -> impl Strategy<Value = Quota> {
    (1u32..=8, 1u64..=2_000, 1u32..=8).prop_map(|(limit, period_us, burst)| {
        Quota::with_period(limit, Duration::from_micros(period_us))
            .and_then(|q| q.with_burst(burst))
            .expect("valid quota")
    })
}

fn ops_strategy() -> impl Strategy<Value = Vec<Op>> {
    // Gaps up to ~2 periods of the largest quota, skewed short so limits are reached.
    let gap = prop_oneof![
        3 => 0u64..50_000,
        1 => 0u64..4_000_000,
        1 => Just(0u64),
    ];
    let op = prop_oneof![
        6 => (gap.clone(), 0u32..=9).prop_map(|(gap, n)| Op::Arrive { gap, n }),
        1 => gap.clone().prop_map(|gap| Op::Retry { gap }),
        1 => gap.prop_map(|gap| Op::Drain { gap }),
    ];
    prop::collection::vec(op, 1..200)
}

/// Runs `ops` against a fresh limiter and returns the admissions as (time, n).
fn run<A: Algorithm>(quota: Quota, ops: &[Op]) -> Result<Vec<(u64, u32)>, TestCaseError> {
    let clock = ManualClock::new();
    let limiter = Limiter::<A, _>::with_clock(quota, clock.clone());
    let capacity = A::capacity(&quota);
    let mut admitted = Vec::new();
    let mut take = |n: u32| -> Result<keel_rate_limit::Decision, TestCaseError> {
        let result = limiter.check_n(n);
        if n > capacity {
            let err = result.expect_err("over capacity must be an error");
            prop_assert_eq!(err.capacity(), capacity);
            return Err(TestCaseError::reject("over capacity"));
        }
        let decision = result.expect("within capacity");
        if decision.is_allowed() {
            admitted.push((clock.now().as_nanos(), n));
        } else {
            let retry = decision.retry_after().expect("a denial has a retry-after");
            prop_assert!(retry > Duration::ZERO);
        }
        Ok(decision)
    };
    for op in ops {
        match *op {
            Op::Arrive { gap, n } => {
                clock.advance(Duration::from_nanos(gap));
                let _ = take(n);
            }
            Op::Retry { gap } => {
                clock.advance(Duration::from_nanos(gap));
                let decision = take(1)?;
                if let Some(retry) = decision.retry_after() {
                    clock.advance(retry - Duration::from_nanos(1));
                    prop_assert!(
                        take(1)?.is_denied(),
                        "admitted before retry-after {retry:?}"
                    );
                    clock.advance(Duration::from_nanos(1));
                    prop_assert!(take(1)?.is_allowed(), "denied at retry-after {retry:?}");
                }
            }
            Op::Drain { gap } => {
                clock.advance(Duration::from_nanos(gap));
                let decision = take(1)?;
                if decision.is_allowed() {
                    let remaining = decision.remaining();
                    if remaining > 0 {
                        prop_assert!(
                            take(remaining)?.is_allowed(),
                            "remaining {remaining} not available"
                        );
                    }
                    prop_assert!(
                        take(1)?.is_denied(),
                        "more than remaining {remaining} available"
                    );
                }
            }
        }
    }
    Ok(admitted)
}

/// The most cells admitted in any half-open window of `w` nanoseconds.
fn worst_window(admitted: &[(u64, u32)], w: u64) -> u64 {
    let mut worst = 0;
    let mut sum = 0u64;
    let mut hi = 0;
    for lo in 0..admitted.len() {
        while hi < admitted.len() && admitted[hi].0 < admitted[lo].0 + w {
            sum += u64::from(admitted[hi].1);
            hi += 1;
        }
        worst = worst.max(sum);
        sum -= u64::from(admitted[lo].1);
    }
    worst
}

fn check_bound<A: Algorithm>(quota: Quota, ops: &[Op], bound: u64) -> Result<(), TestCaseError> {
    let admitted = run::<A>(quota, ops)?;
    let worst = worst_window(&admitted, quota.period().as_nanos() as u64);
    prop_assert!(
        worst <= bound,
        "{worst} admitted in one window, bound {bound}, {quota:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn gcra_admits_at_most_burst_plus_limit_minus_one(quota in quota_strategy(), ops in ops_strategy()) {
        check_bound::<Gcra>(quota, &ops, u64::from(quota.burst() + quota.limit() - 1))?;
    }

    #[test]
    fn leaky_bucket_admits_at_most_burst_plus_limit_minus_one(quota in quota_strategy(), ops in ops_strategy()) {
        check_bound::<LeakyBucket>(quota, &ops, u64::from(quota.burst() + quota.limit() - 1))?;
    }

    #[test]
    fn fixed_window_admits_at_most_twice_the_limit(quota in quota_strategy(), ops in ops_strategy()) {
        check_bound::<FixedWindow>(quota, &ops, 2 * u64::from(quota.limit()))?;
    }

    #[test]
    fn sliding_log_admits_at_most_the_limit(quota in quota_strategy(), ops in ops_strategy()) {
        check_bound::<SlidingLog>(quota, &ops, u64::from(quota.limit()))?;
    }

    #[test]
    fn sliding_counter_admits_at_most_twice_the_limit_minus_one(quota in quota_strategy(), ops in ops_strategy()) {
        check_bound::<SlidingCounter>(quota, &ops, 2 * u64::from(quota.limit()) - 1)?;
    }

    /// The meter and GCRA are the same test in two forms: same decisions, same numbers.
    #[test]
    fn leaky_bucket_decides_as_gcra(quota in quota_strategy(), ops in ops_strategy()) {
        let a = run::<Gcra>(quota, &ops)?;
        let b = run::<LeakyBucket>(quota, &ops)?;
        prop_assert_eq!(a, b);
    }

    /// Each window algorithm against a naive model computed from the list of admissions.
    #[test]
    fn windows_decide_as_their_naive_models(quota in quota_strategy(), arrivals in prop::collection::vec((0u64..3_000_000, 1u32..=8), 1..150)) {
        let w = quota.period().as_nanos() as u64;
        let limit = u64::from(quota.limit());
        let clock = ManualClock::new();
        let fixed = Limiter::<FixedWindow, _>::with_clock(quota, clock.clone());
        let log = Limiter::<SlidingLog, _>::with_clock(quota, clock.clone());
        let counter = Limiter::<SlidingCounter, _>::with_clock(quota, clock.clone());
        let (mut fixed_in, mut log_in, mut counter_in) = (Vec::new(), Vec::new(), Vec::new());
        for (gap, n) in arrivals {
            clock.advance(Duration::from_nanos(gap));
            let now = clock.now().as_nanos();
            let n64 = u64::from(n);
            let sum = |v: &Vec<(u64, u64)>, from: u64, to: u64| -> u64 {
                v.iter().filter(|&&(t, _)| t >= from && t < to).map(|&(_, n)| n).sum()
            };
            let start = now - now % w;
            let expect_fixed = n <= quota.limit() && sum(&fixed_in, start, now + 1) + n64 <= limit;
            let expect_log = n <= quota.limit()
                && sum(&log_in, (now + 1).saturating_sub(w), now + 1) + n64 <= limit;
            let prev = if start >= w { sum(&counter_in, start - w, start) } else { 0 };
            let cur = sum(&counter_in, start, now + 1);
            let expect_counter = n <= quota.limit()
                && u128::from(prev) * u128::from(w - (now - start)) + u128::from(cur + n64) * u128::from(w)
                    <= u128::from(limit) * u128::from(w);
            let got = |l: &dyn RateLimit| l.check_n(n).map(|d| d.is_allowed()).unwrap_or(false);
            prop_assert_eq!(got(&fixed), expect_fixed, "fixed window at {}", now);
            prop_assert_eq!(got(&log), expect_log, "sliding log at {}", now);
            prop_assert_eq!(got(&counter), expect_counter, "sliding counter at {}", now);
            if expect_fixed { fixed_in.push((now, n64)); }
            if expect_log { log_in.push((now, n64)); }
            if expect_counter { counter_in.push((now, n64)); }
        }
    }
}
