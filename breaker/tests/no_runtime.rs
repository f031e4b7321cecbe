//! Waits polled outside a tokio runtime fail with an error instead of panicking in tokio, and
//! what needs no wait still runs there. Futures are polled by hand with a no-op waker.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use keel_breaker::{Backoff, Bulkhead, GiveUp, Retry, RetryBudget, RetryError};

fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

fn retry(budget: Option<Arc<RetryBudget>>) -> Retry {
    let builder = Retry::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)));
    match budget {
        Some(budget) => builder.budget(budget),
        None => builder,
    }
    .build()
    .unwrap()
}

fn budget() -> Arc<RetryBudget> {
    Arc::new(
        RetryBudget::builder()
            .percent(100.0)
            .min_per_second(0)
            .build()
            .unwrap(),
    )
}

#[test]
fn retry_run_gives_up_instead_of_waiting() {
    let budget = budget();
    let retry = retry(Some(budget.clone()));
    let calls = std::cell::Cell::new(0);
    let run = std::pin::pin!(retry.run(
        |_| {
            calls.set(calls.get() + 1);
            async { Err::<(), _>("busy") }
        },
        |_| true,
    ));
    let expected = RetryError {
        error: "busy",
        attempts: 1,
        reason: GiveUp::NoRuntime,
    };
    assert_eq!(poll(run), Poll::Ready(Err(expected)));
    assert_eq!(calls.get(), 1);
    assert_eq!(budget.balance(), 1, "the one deposit, no retry token spent");
    assert_eq!(
        GiveUp::NoRuntime.to_string(),
        "a tokio runtime is needed to wait before the next attempt"
    );
}

#[test]
fn retry_run_needs_no_runtime_when_it_does_not_wait() {
    let retry = retry(None);
    let ok = std::pin::pin!(retry.run(|_| async { Ok::<_, &str>(7) }, |_| true));
    assert_eq!(poll(ok), Poll::Ready(Ok(7)));
    // A permanent error gives up for that reason, not for want of a runtime.
    let permanent = std::pin::pin!(retry.run(|_| async { Err::<(), _>(404) }, |_| false));
    let Poll::Ready(Err(error)) = poll(permanent) else {
        panic!("gives up at once");
    };
    assert_eq!(error.reason, GiveUp::Permanent);
}

#[test]
fn bulkhead_with_room_or_without_wait_needs_no_runtime() {
    let bulkhead = Bulkhead::with_max_wait(1, Duration::from_millis(50)).unwrap();
    let acquire = std::pin::pin!(bulkhead.acquire());
    let Poll::Ready(Ok(held)) = poll(acquire) else {
        panic!("a free slot is taken at once");
    };
    assert_eq!(bulkhead.in_use(), 1);
    drop(held);

    let never_waits = Bulkhead::new(1).unwrap();
    let _held = never_waits.try_acquire().unwrap();
    let acquire = std::pin::pin!(never_waits.acquire());
    let Poll::Ready(Err(full)) = poll(acquire) else {
        panic!("a bulkhead without max_wait refuses at once");
    };
    assert!(!full.no_runtime());
}

#[test]
fn full_bulkhead_fails_instead_of_waiting() {
    let bulkhead = Arc::new(Bulkhead::with_max_wait(1, Duration::from_millis(50)).unwrap());
    let _held = bulkhead.try_acquire().unwrap();
    let acquire = std::pin::pin!(bulkhead.acquire_owned());
    let Poll::Ready(Err(full)) = poll(acquire) else {
        panic!("fails at once");
    };
    assert!(full.no_runtime());
    assert_eq!((full.max_concurrent(), full.waited()), (1, None));
    assert_eq!(
        full.to_string(),
        "bulkhead full: all 1 concurrent slots are taken (no tokio runtime to wait for one)"
    );
    let call = std::pin::pin!(bulkhead.call_async(async { "never polled" }));
    assert!(matches!(poll(call), Poll::Ready(Err(full)) if full.no_runtime()));
    assert_eq!(bulkhead.in_use(), 1);
}

#[test]
fn unbounded_wait_needs_no_timer() {
    let bulkhead = Bulkhead::with_max_wait(1, Duration::MAX).unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let mut acquire = std::pin::pin!(bulkhead.acquire());
    assert!(poll(acquire.as_mut()).is_pending());
    drop(held);
    let Poll::Ready(Ok(permit)) = poll(acquire) else {
        panic!("the freed slot is taken");
    };
    assert_eq!(bulkhead.in_use(), 1);
    drop(permit);
    assert_eq!(bulkhead.in_use(), 0);
}

#[cfg(feature = "tower")]
mod tower_layers {
    use std::sync::atomic::{AtomicU32, Ordering};

    use keel_breaker::{BulkheadError, BulkheadLayer, RetryLayer};
    use tower::{Layer, Service, service_fn};

    use super::*;

    #[test]
    fn retry_layer_returns_the_first_error_instead_of_waiting() {
        let budget = budget();
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let mut service = RetryLayer::new(Arc::new(retry(Some(budget.clone())))).layer(service_fn(
            move |_: ()| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move { if n == 0 { Err("flaky") } else { Ok(n) } }
            },
        ));
        assert!(
            service
                .poll_ready(&mut Context::from_waker(Waker::noop()))
                .is_ready()
        );
        let future = std::pin::pin!(service.call(()));
        assert_eq!(poll(future), Poll::Ready(Err("flaky")));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(budget.balance(), 1, "no retry token spent");
    }

    #[test]
    fn bulkhead_layer_refuses_instead_of_waiting() {
        let bulkhead = Arc::new(Bulkhead::with_max_wait(1, Duration::from_millis(50)).unwrap());
        let mut service = BulkheadLayer::new(bulkhead.clone())
            .layer(service_fn(|n: u32| async move { Ok::<_, &str>(n) }));
        let held = bulkhead.try_acquire().unwrap();
        // Ready at once; the call reports the refusal.
        assert!(matches!(
            service.poll_ready(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(()))
        ));
        let refused = poll(std::pin::pin!(service.call(3)));
        let Poll::Ready(Err(BulkheadError::Full(full))) = refused else {
            panic!("refuses at once, got {refused:?}");
        };
        assert!(full.no_runtime());
        drop(held);
        assert!(matches!(
            service.poll_ready(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(()))
        ));
        assert!(matches!(
            poll(std::pin::pin!(service.call(4))),
            Poll::Ready(Ok(4))
        ));
    }
}
