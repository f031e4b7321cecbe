//! Retry policy, budget and async runner, on tokio's paused clock (no real sleeps).
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use keel_breaker::{Backoff, BackoffJitter, GiveUp, Retry, RetryBudget};
use keel_core::{Clock, TokioClock};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn waits_follow_the_backoff_on_paused_time() {
    let clock = TokioClock::new();
    let retry = Retry::builder()
        .max_attempts(4)
        .backoff(Backoff::exponential(ms(100)).jitter(BackoffJitter::None))
        .clock(clock)
        .build()
        .unwrap();
    let started = clock.now();
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = times.clone();
    let result = retry
        .run(
            |attempt| {
                seen.lock().unwrap().push(clock.now() - started);
                async move { Err::<(), _>(attempt) }
            },
            |_| true,
        )
        .await
        .unwrap_err();
    assert_eq!(
        (result.error, result.attempts, result.reason),
        (4, 4, GiveUp::Attempts)
    );
    assert_eq!(
        *times.lock().unwrap(),
        vec![ms(0), ms(100), ms(300), ms(700)]
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let retry = Retry::builder().max_attempts(10).build().unwrap();
    let calls = AtomicU32::new(0);
    let error = retry
        .run(
            |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), u16>(404) }
            },
            |status| *status >= 500,
        )
        .await
        .unwrap_err();
    assert_eq!(error.reason, GiveUp::Permanent);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        error.to_string(),
        "gave up after 1 attempt(s) (the error is permanent): 404"
    );
}

#[tokio::test(start_paused = true)]
async fn elapsed_limit_stops_before_a_wait_that_would_pass_it() {
    let clock = TokioClock::new();
    let retry = Retry::builder()
        .max_attempts(100)
        .max_elapsed(ms(1_000))
        .backoff(Backoff::constant(ms(300)))
        .clock(clock)
        .build()
        .unwrap();
    let started = clock.now();
    let error = retry
        .run(|_| async { Err::<(), _>("busy") }, |_| true)
        .await
        .unwrap_err();
    assert_eq!(error.reason, GiveUp::Elapsed);
    assert_eq!(error.attempts, 4, "attempts at 0, 300, 600 and 900 ms");
    assert_eq!(clock.now() - started, ms(900));
}

#[tokio::test(start_paused = true)]
async fn a_shared_budget_caps_retries_across_requests() {
    let clock = TokioClock::new();
    let budget = Arc::new(
        RetryBudget::builder()
            .percent(10.0)
            .min_per_second(0)
            .ttl(Duration::from_secs(10))
            .clock(clock)
            .build()
            .unwrap(),
    );
    let retry = Retry::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(ms(1)))
        .clock(clock)
        .budget(budget.clone())
        .build()
        .unwrap();
    let sent = AtomicU32::new(0);
    let mut gave_up_on_budget = 0;
    for _ in 0..100 {
        let error = retry
            .run(
                |_| {
                    sent.fetch_add(1, Ordering::SeqCst);
                    async { Err::<(), _>("down") }
                },
                |_| true,
            )
            .await
            .unwrap_err();
        if error.reason == GiveUp::Budget {
            gave_up_on_budget += 1;
        }
    }
    // 100 requests earn 10 retries; without the budget the dependency would see 300 calls.
    assert_eq!(sent.load(Ordering::SeqCst), 110);
    assert!(gave_up_on_budget >= 90);
}

#[tokio::test(start_paused = true)]
async fn succeeds_once_the_dependency_recovers() {
    let retry = Retry::builder()
        .max_attempts(5)
        .backoff(Backoff::exponential(ms(10)).jitter(BackoffJitter::Decorrelated))
        .build()
        .unwrap();
    let value = retry
        .run(
            |attempt| async move { if attempt < 4 { Err("503") } else { Ok(attempt) } },
            |_| true,
        )
        .await
        .unwrap();
    assert_eq!(value, 4);
}

#[test]
fn bad_retry_configuration_is_rejected() {
    let message = |b: keel_breaker::RetryBuilder| b.build().unwrap_err().to_string();
    assert_eq!(
        message(Retry::builder().max_attempts(0)),
        "max attempts must be > 0"
    );
    assert_eq!(
        message(Retry::builder().backoff(Backoff::constant(Duration::ZERO))),
        "backoff base must be > 0"
    );
    assert_eq!(
        message(Retry::builder().backoff(Backoff::exponential(ms(1)).multiplier(0.9))),
        "backoff multiplier must be a finite number >= 1, got 0.9"
    );
    assert_eq!(
        message(Retry::builder().backoff(Backoff::exponential(ms(10)).max(ms(1)))),
        "backoff: max must be >= initial"
    );
}

#[test]
fn a_budget_set_before_the_clock_is_an_error_not_silently_dropped() {
    let budget = Arc::new(RetryBudget::builder().build().unwrap());
    let clock = keel_core::ManualClock::new();
    let error = Retry::builder()
        .budget(budget)
        .clock(clock.clone())
        .build()
        .unwrap_err();
    assert_eq!(error, keel_breaker::BreakerConfigError::BudgetBeforeClock);
    assert!(error.to_string().contains("set the clock first"), "{error}");
    // In the right order the budget is kept.
    let budget = Arc::new(RetryBudget::builder().clock(clock.clone()).build().unwrap());
    let retry = Retry::builder()
        .clock(clock)
        .budget(budget)
        .build()
        .unwrap();
    assert!(retry.budget().is_some());
}
