//! The tower layers stacked in front of a flaky service, on tokio's paused clock.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use keel_breaker::{
    Backoff, BoxError, Bulkhead, BulkheadError, BulkheadLayer, CallError, CircuitBreaker,
    CircuitBreakerLayer, OpenWait, Retry, RetryBudget, RetryFuture, RetryLayer, State,
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
    assert!(error.is_full());
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

/// A typed error of the inner service, as a stack of all three layers returns it.
#[derive(Debug, PartialEq)]
enum Upstream {
    Unavailable,
    NotFound,
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Upstream {}

/// Retry over breaker over bulkhead: the caller gets the inner service's own error type back
/// through every layer, never a box to downcast, and each future is a named type.
#[tokio::test(start_paused = true)]
async fn the_inner_error_type_comes_through_every_layer() {
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .consecutive_failures(100)
            .clock(TokioClock::new())
            .build()
            .unwrap(),
    );
    let bulkhead = Arc::new(Bulkhead::new(1).unwrap());
    let retry = Arc::new(
        Retry::builder()
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(10)))
            .clock(TokioClock::new())
            .build()
            .unwrap(),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let inner = service_fn(move |path: &'static str| {
        c.fetch_add(1, Ordering::SeqCst);
        async move {
            match path {
                "/missing" => Err::<(), _>(Upstream::NotFound),
                _ => Err(Upstream::Unavailable),
            }
        }
    });
    type Error = CallError<BulkheadError<Upstream>>;
    let is_transient = |error: &Error| {
        matches!(
            error,
            CallError::Inner(BulkheadError::Inner(Upstream::Unavailable))
        )
    };
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(retry).with_predicate(is_transient))
        .layer(CircuitBreakerLayer::new(breaker))
        .layer(BulkheadLayer::new(bulkhead.clone()))
        .service(inner);

    let started = tokio::time::Instant::now();
    let error: Error = service.clone().oneshot("/flaky").await.unwrap_err();
    assert_eq!(
        error.into_inner().and_then(BulkheadError::into_inner),
        Some(Upstream::Unavailable)
    );
    assert_eq!(calls.swap(0, Ordering::SeqCst), 3, "retried twice");
    assert_eq!(started.elapsed(), Duration::from_millis(20));

    let error = service.clone().oneshot("/missing").await.unwrap_err();
    assert!(matches!(
        error,
        CallError::Inner(BulkheadError::Inner(Upstream::NotFound))
    ));
    assert_eq!(calls.swap(0, Ordering::SeqCst), 1, "a 404 is not retried");

    // The bulkhead's refusal is its own variant, under the breaker's.
    let _held = bulkhead.try_acquire().unwrap();
    let error = service.oneshot("/flaky").await.unwrap_err();
    assert!(matches!(error, CallError::Inner(BulkheadError::Full(_))));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// The bulkhead service passes the inner service's `poll_ready` error through, typed.
#[tokio::test]
async fn the_bulkhead_keeps_a_ready_error_typed() {
    #[derive(Debug)]
    struct NeverReady;
    impl Service<()> for NeverReady {
        type Response = ();
        type Error = Upstream;
        type Future = std::future::Ready<Result<(), Upstream>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Upstream>> {
            std::task::Poll::Ready(Err(Upstream::Unavailable))
        }
        fn call(&mut self, (): ()) -> Self::Future {
            std::future::ready(Ok(()))
        }
    }
    let bulkhead = Arc::new(Bulkhead::new(1).unwrap());
    let mut service = BulkheadLayer::new(bulkhead).layer(NeverReady);
    let error: BulkheadError<Upstream> = service.ready().await.unwrap_err();
    assert_eq!(error, BulkheadError::Inner(Upstream::Unavailable));
}

/// The retry future is a named type with no `Send` or `'static` demands of its own: a request
/// that is neither (`Rc`) is retried on a current-thread runtime, and a success allocates
/// nothing.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_retry_future_is_named_and_needs_no_send() {
    let retry = Arc::new(
        Retry::builder()
            .max_attempts(2)
            .backoff(Backoff::constant(Duration::from_millis(1)))
            .build()
            .unwrap(),
    );
    let failures = std::rc::Rc::new(std::cell::Cell::new(1u32));
    let f = failures.clone();
    let inner = service_fn(move |request: std::rc::Rc<str>| {
        let fail = f.get() > 0;
        f.set(f.get().saturating_sub(1));
        std::future::ready(if fail {
            Err(Upstream::Unavailable)
        } else {
            Ok(request.len())
        })
    });
    let mut service = RetryLayer::new(retry).layer(inner);
    let future: RetryFuture<_, std::rc::Rc<str>, _> =
        service.ready().await.unwrap().call("hello".into());
    assert!(format!("{future:?}").contains("calling"));
    assert_eq!(future.await, Ok(5));
    assert_eq!(failures.get(), 0);
}
