//! A bulkhead, a circuit breaker and a budgeted retry stacked in front of a flaky service.
//!
//! The service fails every request for its first 300 ms, then recovers. The retry layer
//! retries within a budget, the breaker trips and rejects cheaply while the service is down,
//! and the bulkhead caps concurrency. Run with
//! `cargo run -p keel-breaker --features tower --example resilient_client`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use keel_breaker::{
    Backoff, BoxError, Bulkhead, BulkheadError, BulkheadLayer, CallError, CircuitBreaker,
    CircuitBreakerLayer, OpenWait, Retry, RetryBudget, RetryLayer, Window,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let started = tokio::time::Instant::now();
    let reached = Arc::new(AtomicU32::new(0));
    let seen = reached.clone();
    let flaky = service_fn(move |id: u32| {
        seen.fetch_add(1, Ordering::Relaxed);
        let down = started.elapsed() < Duration::from_millis(300);
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if down {
                Err::<u32, BoxError>("503 service unavailable".into())
            } else {
                Ok(id)
            }
        }
    });

    let breaker = Arc::new(
        CircuitBreaker::builder()
            .failure_rate(50.0)
            .window(Window::Count(20))
            .minimum_calls(10)
            .open_wait(OpenWait::Exponential {
                initial: Duration::from_millis(50),
                multiplier: 2.0,
                max: Duration::from_millis(400),
            })
            .half_open_probes(2)
            .on_state_change(|t| println!("breaker: {} -> {} ({:?})", t.from, t.to, t.reason))
            .build()?,
    );
    let budget = Arc::new(
        RetryBudget::builder()
            .percent(20.0)
            .min_per_second(5)
            .build()?,
    );
    let retry = Arc::new(
        Retry::builder()
            .max_attempts(3)
            .backoff(Backoff::exponential(Duration::from_millis(10)))
            .budget(budget)
            .build()?,
    );
    let bulkhead = Arc::new(Bulkhead::with_max_wait(8, Duration::from_millis(20))?);

    // Outermost first: retry wraps the breaker, which wraps the bulkhead. Each layer keeps
    // the error type of the one inside it, so the predicate matches on it directly: a
    // rejection by the breaker is not worth retrying.
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new(retry).with_predicate(
            |error: &CallError<BulkheadError<BoxError>>| !matches!(error, CallError::Rejected(_)),
        ))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(BulkheadLayer::new(bulkhead))
        .service(flaky);

    let (mut ok, mut failed, mut rejected) = (0, 0, 0);
    for id in 0..100 {
        match client.clone().oneshot(id).await {
            Ok(_) => ok += 1,
            Err(CallError::Rejected(_)) => rejected += 1,
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let metrics = breaker.metrics();
    println!(
        "100 requests: {ok} ok, {failed} failed, {rejected} rejected by the breaker; \
         the service saw {} calls; breaker {} after {} trip(s)",
        reached.load(Ordering::Relaxed),
        metrics.state,
        metrics.trips,
    );
    Ok(())
}
