//! Behaviour of a single limiter: runtime quota change, over-capacity vs denied, decision numbers.

use std::time::Duration;

use keel_core::ManualClock;
use keel_rate_limit::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, Limiter, Quota, RateLimit, SlidingCounter,
    SlidingLog,
};

fn runtime_change<A: Algorithm>() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::new();
    let limiter = Limiter::<A, _>::with_clock(Quota::per_second(2)?, clock.clone());
    assert!(limiter.check_n(2)?.is_allowed());
    assert!(limiter.check().is_denied());
    assert!(limiter.check_n(3).is_err());
    limiter.set_quota(Quota::per_second(10)?);
    assert_eq!(limiter.quota(), Quota::per_second(10)?);
    assert!(
        limiter.check_n(3).is_ok(),
        "the new capacity applies at once"
    );
    clock.advance(Duration::from_secs(2));
    assert!(
        limiter.check_n(10)?.is_allowed(),
        "{}",
        std::any::type_name::<A>()
    );
    assert!(limiter.check().is_denied());
    Ok(())
}

#[test]
fn quota_changes_at_runtime() -> Result<(), Box<dyn std::error::Error>> {
    runtime_change::<Gcra>()?;
    runtime_change::<LeakyBucket>()?;
    runtime_change::<FixedWindow>()?;
    runtime_change::<SlidingLog>()?;
    runtime_change::<SlidingCounter>()?;
    Ok(())
}

fn numbers<A: Algorithm>() -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::new();
    let limiter = Limiter::<A, _>::with_clock(Quota::per_minute(4)?, clock.clone());
    let fresh = limiter.check_n(0)?;
    assert!(fresh.is_allowed());
    assert_eq!(
        (fresh.remaining(), fresh.reset_after()),
        (4, Duration::ZERO)
    );
    let first = limiter.check();
    assert_eq!(first.limit(), 4);
    assert_eq!(first.window(), Duration::from_secs(60));
    assert_eq!(first.remaining(), 3);
    assert!(first.reset_after() > Duration::ZERO);
    assert_eq!(first.retry_after(), None);
    let denied = limiter.check_n(4)?;
    assert!(denied.is_denied());
    assert_eq!(denied.remaining(), 3, "a denial takes nothing");
    let err = limiter.check_n(5).unwrap_err();
    assert_eq!((err.requested(), err.capacity()), (5, 4));
    Ok(())
}

#[test]
fn decisions_carry_their_numbers() -> Result<(), Box<dyn std::error::Error>> {
    numbers::<Gcra>()?;
    numbers::<LeakyBucket>()?;
    numbers::<FixedWindow>()?;
    numbers::<SlidingLog>()?;
    numbers::<SlidingCounter>()?;
    Ok(())
}

#[test]
fn shared_between_threads() -> Result<(), Box<dyn std::error::Error>> {
    let limiter = std::sync::Arc::new(Limiter::<Gcra, _>::with_clock(
        Quota::per_hour(1_000)?,
        ManualClock::new(),
    ));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let limiter = limiter.clone();
            std::thread::spawn(move || {
                (0..1_000)
                    .filter(|_| RateLimit::check(&*limiter).is_allowed())
                    .count()
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 1_000, "exactly the burst, with 4 threads racing");
    Ok(())
}

/// A full limiter whose quota shrinks (smaller burst, limit and period, or a longer period)
/// keeps deciding without panicking, and admits again once the new quota allows it.
fn shrink_when_full<A: Algorithm>() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::any::type_name::<A>();
    for smaller in [
        Quota::per_second(2)?,
        Quota::with_period(1, Duration::from_millis(10))?,
        Quota::per_hour(3)?,
    ] {
        let clock = ManualClock::new();
        let limiter = Limiter::<A, _>::with_clock(Quota::per_second(100)?, clock.clone());
        clock.advance(Duration::from_millis(1_700));
        assert!(limiter.check_n(100)?.is_allowed(), "{name}");
        limiter.set_quota(smaller);
        let decision = limiter.check();
        assert!(
            decision.remaining() < smaller.limit(),
            "{name}: {smaller:?}"
        );
        assert!(limiter.check_n(0).is_ok(), "{name}");
        if let Some(retry) = decision.retry_after() {
            clock.advance(retry);
            assert!(limiter.check().is_allowed(), "{name}: {smaller:?}");
        }
        clock.advance(smaller.period() * 2);
        assert!(limiter.check().is_allowed(), "{name}: {smaller:?}");
    }
    Ok(())
}

#[test]
fn shrinking_the_quota_of_a_full_limiter_never_panics() -> Result<(), Box<dyn std::error::Error>> {
    shrink_when_full::<Gcra>()?;
    shrink_when_full::<LeakyBucket>()?;
    shrink_when_full::<FixedWindow>()?;
    shrink_when_full::<SlidingLog>()?;
    shrink_when_full::<SlidingCounter>()?;
    Ok(())
}
