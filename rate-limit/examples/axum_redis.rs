//! Two axum server processes sharing one quota through Redis, with `RateLimitLayer` over a
//! `RedisLimiter`.
//!
//! ```text
//! redis-server --port 6379 --save '' &        # any reachable Redis will do
//! cargo run -p keel-rate-limit --features tower,redis --example axum_redis [redis://127.0.0.1:6379/]
//! ```
//!
//! The program starts two copies of itself as servers (`axum_redis serve <url> <prefix>`),
//! each with its own connection and limiter, and sends the same API key's requests to both in
//! turn. The quota is 5 per minute per key: 5 requests are admitted in all, not 5 per server.
//! It prints each answer and exits, stopping both servers.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use keel_rate_limit::{FailurePolicy, Quota, RateLimitLayer, RedisLimiter, SlidingLog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const QUOTA_PER_MINUTE: u32 = 5;

fn api_key(request: &Request<Body>) -> String {
    request
        .headers()
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("anonymous")
        .to_string()
}

/// One server process: binds a free port, prints it on the first line, serves until killed.
async fn serve(url: &str, prefix: &str) -> Result<(), Box<dyn Error>> {
    let client = redis::Client::open(url)?;
    let connection = redis::aio::ConnectionManager::new(client).await?;
    let limiter = RedisLimiter::<SlidingLog>::builder(Quota::per_minute(QUOTA_PER_MINUTE)?)
        .prefix(prefix)
        .timeout(Duration::from_millis(200))
        .failure_policy(FailurePolicy::Local)
        .build(connection)?;
    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .layer(RateLimitLayer::new(limiter, api_key));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    axum::serve(listener, app).await?;
    Ok(())
}

/// Starts `axum_redis serve` and reads the port it printed.
fn spawn_server(url: &str, prefix: &str) -> Result<(Child, u16), Box<dyn Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", url, prefix])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    match line.trim().parse() {
        Ok(port) => Ok((child, port)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("the server did not start (is Redis running at {url}?)").into())
        }
    }
}

/// One request; returns the status line and the rate-limit headers.
async fn get_once(port: u16, key: &str) -> Result<(String, Vec<String>), Box<dyn Error>> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "GET / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-api-key: {key}\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.lines().next().unwrap_or_default().to_string();
    let headers = response
        .lines()
        .skip(1)
        .filter(|line| {
            let lower = line.to_ascii_lowercase();
            lower.starts_with("ratelimit:") || lower.starts_with("retry-after")
        })
        .map(str::to_string)
        .collect();
    Ok((status, headers))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, url, prefix] = args.as_slice()
        && mode == "serve"
    {
        return serve(url, prefix).await;
    }
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_string());
    // A fresh prefix per run, so a second run within the minute starts from a full quota.
    let prefix = format!("keel-example:{}:", std::process::id());
    let (mut a, port_a) = spawn_server(&url, &prefix)?;
    let result = match spawn_server(&url, &prefix) {
        Ok((mut b, port_b)) => {
            let run = drive(port_a, port_b).await;
            let _ = b.kill();
            let _ = b.wait();
            run
        }
        Err(err) => Err(err),
    };
    let _ = a.kill();
    let _ = a.wait();
    result
}

async fn drive(port_a: u16, port_b: u16) -> Result<(), Box<dyn Error>> {
    println!(
        "two servers on ports {port_a} and {port_b}, one quota of {QUOTA_PER_MINUTE}/min per key in Redis"
    );
    let mut admitted = 0;
    for i in 0..8 {
        let (name, port) = if i % 2 == 0 {
            ("A", port_a)
        } else {
            ("B", port_b)
        };
        let (status, headers) = get_once(port, "team-blue").await?;
        admitted += u32::from(status.contains(" 200 "));
        println!("request {} -> server {name}: {status}", i + 1);
        for header in headers {
            println!("    {header}");
        }
    }
    println!("admitted {admitted} of 8 across both servers (quota {QUOTA_PER_MINUTE})");
    if admitted != QUOTA_PER_MINUTE {
        return Err(format!("expected {QUOTA_PER_MINUTE} admitted in all, got {admitted}").into());
    }
    Ok(())
}
