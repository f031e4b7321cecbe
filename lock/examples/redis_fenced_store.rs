//! Two processes' worth of lock holders on one Redis, and a Redis key that rejects stale writers.
//!
//! It starts its own `redis-server` (through keel-testkit), so it needs the Debian package
//! `redis-server` installed.
//!
//! `cargo run -p keel-lock --features redis --example redis_fenced_store`

use std::time::Duration;

use keel_lock::{KeepAlive, LockError, LockService, LostReason, RedisLockService};
use keel_testkit::{RedisServer, Reply};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = RedisServer::start()?;
    // Two services with their own connections, as two processes would have.
    let worker_1 = RedisLockService::connect(&server.url()).await?;
    let worker_2 = RedisLockService::connect(&server.url()).await?;
    let fence = worker_1.fence("{balance}:fence");

    // Worker 1 takes a short lease and writes.
    let lease_1 = worker_1
        .acquire("balance", Duration::from_millis(200), Duration::ZERO)
        .await?;
    fence.set(lease_1.token(), "{balance}:value", 100).await?;
    println!("worker 1 (token {}) wrote 100", lease_1.token());

    // Worker 1 stalls. Worker 2 waits for the lease to run out, then holds it with a
    // keep-alive and writes.
    let lease_2 = worker_2
        .acquire("balance", Duration::from_secs(3), Duration::from_secs(5))
        .await?;
    let guard = KeepAlive::new().start(worker_2.clone(), lease_2)?;
    let lost = guard.lost();
    worker_2
        .fence("{balance}:fence")
        .set(guard.token(), "{balance}:value", 250)
        .await?;
    println!("worker 2 (token {}) wrote 250", guard.token());

    // Worker 1 wakes up and writes: Redis itself refuses, in the same script as the write.
    match fence.set(lease_1.token(), "{balance}:value", 90).await {
        Err(LockError::Stale(stale)) => println!("worker 1 rejected: {stale}"),
        Ok(()) => return Err("the stale write was accepted".into()),
        Err(other) => return Err(other.into()),
    }
    guard.release().await?;
    assert!(matches!(lost.wait().await, LostReason::Released));
    if let Reply::Bulk(Some(value)) = server.command(&["GET", "{balance}:value"])? {
        println!("value = {}", String::from_utf8_lossy(&value));
    }
    Ok(())
}
