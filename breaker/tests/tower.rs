//! The tower layers stacked in front of a flaky service, on tokio's paused clock.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use keel_breaker::{
    Backoff, BoxError, Bulkhead, BulkheadLayer, CallError, CircuitBreaker, CircuitBreakerLayer,
    OpenWait, Retry, RetryBudget, RetryLayer, State,
};
use keel_core::TokioClock;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn breaker_rejects_and_probes_through_the_layer() {
    let clock = TokioClock::new();
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .consecutive_failures(2)
            .open_wait(OpenWait::Fixed(Duration::from_secs(5)))
            .half_open_probes(1)
            .clock(clock)
            .build()
            .unwrap(),
    );
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = Arc::new(AtomicU32::new(0));
    let (h, c) = (healthy.clone(), calls.clone());
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(service_fn(move |_: ()| {
            c.fetch_add(1, Ordering::SeqCst);
            let up = h.load(Ordering::SeqCst);
            async move {
                if up {
                    Ok("ok")
                } else {
                    Err::<_, BoxError>("down".into())
                }
            }
        }));
    for _ in 0..2 {
        assert!(service.clone().oneshot(()).await.is_err());
    }
    assert_eq!(breaker.state(), State::Open);
    let error = service.clone().oneshot(()).await.unwrap_err();
    assert!(matches!(error, CallError::Rejected(_)));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a rejected request never reaches the service"
    );
    healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(service.oneshot(()).await.unwrap(), "ok");
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn predicate_keeps_client_errors_from_tripping() {
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .consecutive_failures(1)
            .build()
            .unwrap(),
    );
    let layer = CircuitBreakerLayer::new(breaker.clone())
        .with_predicate(|result: &Result<u16, BoxError>| !matches!(result, Ok(s) if *s < 500));
    let service =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|status: u16| async move {
                Ok::<_, BoxError>(status)
            }));
    assert_eq!(service.clone().oneshot(404).await.unwrap(), 404);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(service.oneshot(503).await.unwrap(), 503);
    assert_eq!(breaker.state(), State::Open);
}

/// A layer with a custom predicate clones (as `RetryLayer` does), and the clone keeps the
/// predicate and the shared breaker.
#[tokio::test(start_paused = true)]
async fn layer_with_a_predicate_clones() {
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .consecutive_failures(1)
            .build()
            .unwrap(),
    );
    let layer = CircuitBreakerLayer::new(breaker.clone())
        .with_predicate(|result: &Result<u16, BoxError>| matches!(result, Ok(s) if *s >= 500));
    let copy = layer.clone();
    let inner = service_fn(|status: u16| async move { Ok::<_, BoxError>(status) });
    let original = ServiceBuilder::new().layer(layer).service(inner);
    let cloned = ServiceBuilder::new().layer(copy).service(inner);
    assert_eq!(cloned.clone().oneshot(404).await.unwrap(), 404);
    assert_eq!(breaker.state(), State::Closed); // the clone's predicate: a 404 is fine
    assert_eq!(cloned.oneshot(503).await.unwrap(), 503);
    assert_eq!(breaker.state(), State::Open); // and the same breaker
    let error = original.oneshot(200).await.unwrap_err();
    assert!(matches!(error, CallError::Rejected(_)));
}

#[tokio::test(start_paused = true)]
async fn retry_layer_honours_predicate_and_budget() {
    let clock = TokioClock::new();
    let budget = Arc::new(
        RetryBudget::builder()
            .percent(50.0)
            .min_per_second(0)
            .clock(clock)
            .build()
            .unwrap(),
    );
    let retry = Arc::new(
        Retry::builder()
            .max_attempts(5)
            .backoff(Backoff::constant(Duration::from_millis(1)))
            .clock(clock)
            .budget(budget)
            .build()
            .unwrap(),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(retry).with_predicate(|e: &u16| *e >= 500))
        .service(service_fn(move |status: u16| {
            c.fetch_add(1, Ordering::SeqCst);
            async move { Err::<(), u16>(status) }
        }));
    assert_eq!(service.clone().oneshot(404).await, Err(404));
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1, "4xx is permanent");
    for _ in 0..10 {
        assert_eq!(service.clone().oneshot(503).await, Err(503));
    }
    // 11 requests at 50% earn 5 retries: 15 calls, not the 50 that 5 attempts each would make.
    assert_eq!(calls.load(Ordering::SeqCst), 15);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_layer_limits_concurrency() {
    let bulkhead = Arc::new(Bulkhead::with_max_wait(2, Duration::from_millis(100)).unwrap());
    let service = ServiceBuilder::new()
        .layer(BulkheadLayer::new(bulkhead.clone()))
        .service(service_fn(|wait: u64| async move {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            Ok::<_, BoxError>(wait)
        }));
    let long: Vec<_> = (0..2)
        .map(|_| tokio::spawn(service.clone().oneshot(1_000)))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.in_use(), 2);
    let mut third = service.clone();
    let error = third.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(error.is::<keel_breaker::BulkheadFull>());
    for task in long {
        assert_eq!(task.await.unwrap().unwrap(), 1_000);
    }
    assert_eq!(service.oneshot(5).await.unwrap(), 5);
    assert_eq!(bulkhead.in_use(), 0);
}

#[test]
fn layers_and_services_with_closure_predicates_print() {
    let breaker = Arc::new(CircuitBreaker::builder().build().unwrap());
    let layer = CircuitBreakerLayer::new(breaker)
        .with_predicate(|result: &Result<u16, BoxError>| result.is_err());
    let service = tower::Layer::layer(
        &layer,
        service_fn(|n: u16| async move { Ok::<_, BoxError>(n) }),
    );
    let retry = Arc::new(Retry::builder().max_attempts(2).build().unwrap());
    let retry_layer = RetryLayer::new(retry).with_predicate(|e: &u16| *e >= 500);
    let retry_service = tower::Layer::layer(&retry_layer, "inner");
    for printed in [
        format!("{layer:?}"),
        format!("{service:?}"),
        format!("{retry_layer:?}"),
        format!("{retry_service:?}"),
    ] {
        assert!(printed.contains("predicate"), "{printed}");
    }
    assert!(format!("{retry_service:?}").contains("\"inner\""));
}

/// The layer's named future keeps the breaker's cancellation rule: dropped before the inner
/// call completes, it records nothing and gives the probe slot back.
#[tokio::test(start_paused = true)]
async fn a_dropped_probe_future_gives_its_slot_back() {
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .consecutive_failures(1)
            .open_wait(OpenWait::Fixed(Duration::from_secs(5)))
            .half_open_probes(1)
            .clock(TokioClock::new())
            .build()
            .unwrap(),
    );
    let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = hang.clone();
    let mut service = CircuitBreakerLayer::new(breaker.clone()).layer(service_fn(move |_: ()| {
        let hang = h.load(Ordering::SeqCst);
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Err::<(), _>(std::io::Error::other("down"))
        }
    }));
    let error = service.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(matches!(error, CallError::Inner(e) if e.to_string() == "down")); // not boxed
    assert_eq!(breaker.state(), State::Open);

    tokio::time::advance(Duration::from_secs(5)).await;
    hang.store(true, Ordering::SeqCst);
    let probe = service.ready().await.unwrap().call(());
    assert_eq!(breaker.state(), State::HalfOpen);
    drop(probe); // cancelled: no outcome, the slot comes back

    hang.store(false, Ordering::SeqCst);
    let error = service.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(
        matches!(error, CallError::Inner(_)),
        "the next probe is admitted: {error:?}"
    );
    assert_eq!(breaker.state(), State::Open); // and its failure reopens the breaker
}
