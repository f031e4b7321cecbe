//! The tower layer: 429 with headers, shared state across clones, keys, and pass-on mode.
#![cfg(feature = "tower")]

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use keel_core::ManualClock;
use keel_rate_limit::{
    Decision, DenialMode, Gcra, HeaderStyle, KeyedLimiter, Quota, RateLimitLayer, SlidingLog,
};
use tower::{Layer, ServiceExt, service_fn};

type BoxError = Box<dyn std::error::Error>;

fn key(request: &Request<String>) -> String {
    request
        .headers()
        .get("x-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string()
}

fn request(key: &str) -> Result<Request<String>, http::Error> {
    Request::builder().header("x-key", key).body(String::new())
}

async fn echo_decision(request: Request<String>) -> Result<Response<String>, Infallible> {
    let allowed = request
        .extensions()
        .get::<Decision>()
        .map(|d| d.is_allowed().to_string())
        .unwrap_or_default();
    Ok(Response::new(allowed))
}

#[tokio::test]
async fn clones_share_one_quota_and_keys_are_separate() -> Result<(), BoxError> {
    let limiter = KeyedLimiter::<String, Gcra>::builder(Quota::per_minute(2)?)
        .clock(ManualClock::new())
        .build()?;
    let layer = RateLimitLayer::new(limiter, key);
    let a = layer.layer(service_fn(echo_decision));
    let b = layer.clone().layer(service_fn(echo_decision));

    let first = a.clone().oneshot(request("k")?).await?;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        first.body(),
        "true",
        "the decision reaches the inner service"
    );
    assert_eq!(first.headers()["ratelimit"], "\"default\";r=1;t=30");
    assert_eq!(first.headers()["ratelimit-policy"], "\"default\";q=2;w=60");
    assert_eq!(
        b.clone().oneshot(request("k")?).await?.status(),
        StatusCode::OK
    );

    let denied = a.clone().oneshot(request("k")?).await?;
    assert_eq!(denied.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(denied.headers()["retry-after"], "30");
    assert_eq!(denied.body(), "", "the inner service was not called");
    assert_eq!(b.oneshot(request("other")?).await?.status(), StatusCode::OK);
    assert_eq!(layer.limiter().len(), 2);
    Ok(())
}

#[tokio::test]
async fn pass_on_mode_lets_the_inner_service_decide() -> Result<(), BoxError> {
    let limiter = KeyedLimiter::<String, SlidingLog>::builder(Quota::per_hour(1)?)
        .clock(ManualClock::new())
        .build()?;
    let layer = RateLimitLayer::with_options(limiter, key, HeaderStyle::Legacy, DenialMode::PassOn);
    let service = layer.layer(service_fn(echo_decision));
    let first = service.clone().oneshot(request("k")?).await?;
    assert_eq!(first.body(), "true");
    assert_eq!(first.headers()["x-ratelimit-remaining"], "0");
    let second = service.oneshot(request("k")?).await?;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.body(), "false", "the denial is passed on");
    assert_eq!(second.headers()["x-ratelimit-limit"], "1");
    assert_eq!(second.headers()["retry-after"], "3600");
    assert!(
        second.headers().get("ratelimit").is_none(),
        "legacy style only"
    );
    Ok(())
}

/// Two layers (two servers of a fleet) over one Redis draw from one quota.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limiter_shares_one_quota_between_layers() -> Result<(), BoxError> {
    use keel_rate_limit::RedisLimiter;

    let server = keel_testkit::RedisServer::start()?;
    let client = redis::Client::open(server.url())?;
    let mut services = Vec::new();
    for _ in 0..2 {
        // Each "process" has its own connection and its own limiter instance.
        let connection = client.get_multiplexed_async_connection().await?;
        let limiter = RedisLimiter::<SlidingLog>::builder(Quota::per_hour(3)?)
            .prefix("fleet:")
            .timeout(std::time::Duration::from_secs(2))
            .build(connection)?;
        services.push(RateLimitLayer::new(limiter, key).layer(service_fn(echo_decision)));
    }
    let mut statuses = Vec::new();
    for i in 0..6 {
        let response = services[i % 2].clone().oneshot(request("k")?).await?;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    let other = services[1].clone().oneshot(request("other")?).await?;
    assert_eq!(
        other.headers()["ratelimit-policy"],
        "\"default\";q=3;w=3600"
    );
    assert_eq!(
        services[0]
            .clone()
            .oneshot(request("}odd")?)
            .await?
            .status(),
        200
    );
    Ok(())
}
