//! `RetryLayer` retries requests that are not `Clone`, through a `CloneRequest` policy.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{Method, Request};
use keel_breaker::{Backoff, Retry, RetryBudget, RetryLayer};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// `http::Request` is not `Clone`: copy what a retry needs, and refuse to resend a POST.
fn clone_idempotent(request: &Request<String>) -> Option<Request<String>> {
    if request.method() == Method::POST {
        return None;
    }
    let mut copy = Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .body(request.body().clone())
        .ok()?;
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

fn retry(max_attempts: u32, budget: Option<Arc<RetryBudget>>) -> Arc<Retry> {
    let mut builder = Retry::builder()
        .max_attempts(max_attempts)
        .backoff(Backoff::constant(Duration::from_millis(10)));
    if let Some(budget) = budget {
        builder = builder.budget(budget);
    }
    Arc::new(builder.build().unwrap())
}

/// Fails the first `failures` calls, recording each request's method, URI, header and body.
fn flaky(
    failures: u32,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
) -> impl tower::Service<
    Request<String>,
    Response = String,
    Error = &'static str,
    Future = impl Future<Output = Result<String, &'static str>> + Send,
> + Clone
+ Send
+ 'static {
    let calls = Arc::new(AtomicU32::new(0));
    service_fn(move |request: Request<String>| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        let trace = request
            .headers()
            .get("x-trace")
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .unwrap_or_default();
        seen.lock().unwrap().push(format!(
            "{} {} {trace} {}",
            request.method(),
            request.uri(),
            request.body()
        ));
        async move {
            if n < failures {
                Err("unavailable")
            } else {
                Ok(format!("ok after {n}"))
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn http_requests_are_retried_with_their_copies() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(retry(4, None)).with_request_cloner(clone_idempotent))
        .service(flaky(2, seen.clone()));
    let request = Request::put("/orders/7")
        .header("x-trace", "abc")
        .body("qty=2".to_owned())
        .unwrap();
    assert_eq!(service.oneshot(request).await, Ok("ok after 2".to_owned()));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|s| s == "PUT /orders/7 abc qty=2"),
        "{seen:?}"
    );
}

/// A request the policy cannot copy is sent once, and takes no retry token from the budget.
#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_copied_is_sent_once() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let budget = Arc::new(
        RetryBudget::builder()
            .percent(0.0)
            .min_per_second(1)
            .build()
            .unwrap(),
    );
    let service = ServiceBuilder::new()
        .layer(
            RetryLayer::new(retry(4, Some(budget.clone()))).with_request_cloner(clone_idempotent),
        )
        .service(flaky(2, seen.clone()));
    let balance = budget.balance();
    let post = Request::post("/orders").body("new".to_owned()).unwrap();
    assert_eq!(service.clone().oneshot(post).await, Err("unavailable"));
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(budget.balance(), balance);

    // A request that can be copied is retried, and its retry is paid from the budget.
    let get = Request::get("/orders").body(String::new()).unwrap();
    assert_eq!(service.oneshot(get).await, Ok("ok after 2".to_owned()));
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(budget.balance(), balance - 1);
}
