//! An axum app rate-limited per API key with `RateLimitLayer`, serving the limiter's metrics
//! as Prometheus text on `/metrics`.
//!
//! `cargo run -p keel-rate-limit --features tower,metrics --example axum` serves on a free
//! local port, sends itself a few requests through real HTTP, prints each status and its
//! rate-limit headers, then the `keel_rate_limit_*` lines of `/metrics`, and exits.
//! `tests/axum_example.rs` builds the same router and checks what `/metrics` serves.

use std::error::Error;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::get;
use keel_rate_limit::{Gcra, KeyedLimiter, Quota, RateLimitLayer};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The client's API key, or "anonymous": every anonymous caller shares one quota.
fn api_key(request: &Request<Body>) -> String {
    request
        .headers()
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("anonymous")
        .to_string()
}

/// 3 requests per minute per key; the paying customer gets 100. Named, so its counters
/// carry `name="api"`. Build it after the recorder is installed: a limiter registers its
/// counters when it is built.
pub(crate) fn limiter() -> Result<KeyedLimiter<String, Gcra>, Box<dyn Error>> {
    let limiter = KeyedLimiter::<String, Gcra>::builder(Quota::per_minute(3)?)
        .max_keys(100_000)
        .name("api")
        .build()?;
    limiter.set_key_quota("paid".to_string(), Quota::per_minute(100)?);
    Ok(limiter)
}

/// `/` behind the limiter, and `/metrics` beside it (not limited, so a scraper is never
/// turned away), rendering whatever the Prometheus recorder holds.
pub(crate) fn app(limiter: KeyedLimiter<String, Gcra>, metrics: PrometheusHandle) -> Router {
    let limited = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .layer(RateLimitLayer::new(limiter, api_key));
    let scrape = Router::new().route(
        "/metrics",
        get(move || {
            let text = metrics.render();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
        }),
    );
    limited.merge(scrape)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // The process's one recorder; every keel block built after this reports to it.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let app = app(limiter()?, metrics);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let get = |path: &'static str, key: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {address}\r\nx-api-key: {key}\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    for key in ["free", "free", "free", "free", "paid"] {
        let response = get("/", key).await?;
        let status = response.lines().next().unwrap_or_default();
        println!("{key}: {status}");
        for line in response.lines().skip(1) {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("ratelimit") || lower.starts_with("retry-after") {
                println!("    {line}");
            }
        }
    }
    println!("GET /metrics:");
    for line in get("/metrics", "ops").await?.lines() {
        if line.starts_with("keel_") {
            println!("    {line}");
        }
    }
    Ok(())
}
