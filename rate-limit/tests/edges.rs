//! `Algorithm::decide` called directly, as its docs invite, at the edges of what it accepts:
//! clock readings at the end of `Instant`'s range, and requests for more cells than the
//! quota ever holds. Nothing may panic (these tests run with overflow checks on) and nothing
//! may be admitted for free.

use std::time::Duration;

use keel_core::Instant;
use keel_rate_limit::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, Quota, QuotaError, SlidingCounter, SlidingLog,
};

fn quotas() -> Result<Vec<Quota>, QuotaError> {
    Ok(vec![
        Quota::per_second(1)?,
        Quota::per_hour(3)?.with_burst(2)?,
        // The longest period a quota takes.
        Quota::with_period(1, Duration::from_nanos(u64::MAX / 4))?,
    ])
}

/// Three requests at each reading near the end of the clock's range: the answers stay
/// within what the quota allows, and every wait is at most two windows.
fn decides_at_the_end_of_time<A: Algorithm>() -> Result<(), QuotaError> {
    for quota in quotas()? {
        let window = quota.period();
        for now in [
            u64::MAX,
            u64::MAX - 1,
            u64::MAX - window.as_nanos() as u64 / 2,
        ] {
            let state = A::State::default();
            let now = Instant::from_nanos(now);
            let admitted = (0..3)
                .filter(|_| A::decide(&quota, &state, now, 1).is_allowed())
                .count();
            let name = std::any::type_name::<A>();
            assert!(
                admitted as u32 <= A::capacity(&quota).max(quota.limit()),
                "{name} admitted {admitted} at {now:?} under {quota:?}"
            );
            // A state that admitted something at `now` is still in use then.
            assert!(admitted == 0 || !A::is_fresh(&quota, &state, now), "{name}");
            let last = A::decide(&quota, &state, now, 1);
            assert!(last.reset_after() <= 2 * window, "{last:?}");
            if let Some(retry) = last.retry_after() {
                assert!(retry <= 2 * window, "{last:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn every_algorithm_decides_at_the_end_of_time() -> Result<(), QuotaError> {
    decides_at_the_end_of_time::<Gcra>()?;
    decides_at_the_end_of_time::<LeakyBucket>()?;
    decides_at_the_end_of_time::<FixedWindow>()?;
    decides_at_the_end_of_time::<SlidingLog>()?;
    decides_at_the_end_of_time::<SlidingCounter>()
}

/// More cells than the quota holds are denied, also where `n` times the emission interval
/// does not fit in 64 bits (it used to wrap to a free admission in release builds).
fn denies_more_than_capacity<A: Algorithm>() -> Result<(), QuotaError> {
    let mut quotas = quotas()?;
    quotas.push(Quota::with_period(1, Duration::from_nanos(1 << 61))?);
    for quota in quotas {
        let over = A::capacity(&quota) + 1;
        for n in [over, 8, u32::MAX] {
            if n <= A::capacity(&quota) {
                continue;
            }
            let state = A::State::default();
            let decision = A::decide(&quota, &state, Instant::ZERO, n);
            assert!(
                decision.is_denied(),
                "{n} cells under {quota:?}: {decision:?}"
            );
            // Nothing was taken: a request that fits still goes through.
            assert!(A::decide(&quota, &state, Instant::ZERO, 1).is_allowed());
        }
    }
    Ok(())
}

#[test]
fn every_algorithm_denies_more_than_its_capacity() -> Result<(), QuotaError> {
    denies_more_than_capacity::<Gcra>()?;
    denies_more_than_capacity::<LeakyBucket>()?;
    denies_more_than_capacity::<FixedWindow>()?;
    denies_more_than_capacity::<SlidingLog>()?;
    denies_more_than_capacity::<SlidingCounter>()
}
