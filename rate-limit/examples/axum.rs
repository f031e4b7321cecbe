//! An axum app rate-limited per API key with `RateLimitLayer`.
//!
//! `cargo run -p keel-rate-limit --features tower --example axum` serves on a free local port,
//! sends itself a few requests through real HTTP, prints each status and its rate-limit
//! headers, and exits.

use std::error::Error;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use keel_rate_limit::{Gcra, KeyedLimiter, Quota, RateLimitLayer};
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // 3 requests per minute per key; the paying customer gets 100.
    let limiter = KeyedLimiter::<String, Gcra>::builder(Quota::per_minute(3)?)
        .max_keys(100_000)
        .build()?;
    limiter.set_key_quota("paid".to_string(), Quota::per_minute(100)?);
    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .layer(RateLimitLayer::new(limiter, api_key));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    for key in ["free", "free", "free", "free", "paid"] {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request = format!(
            "GET / HTTP/1.1\r\nhost: {address}\r\nx-api-key: {key}\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let status = response.lines().next().unwrap_or_default();
        println!("{key}: {status}");
        for line in response.lines().skip(1) {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("ratelimit") || lower.starts_with("retry-after") {
                println!("    {line}");
            }
        }
    }
    Ok(())
}
