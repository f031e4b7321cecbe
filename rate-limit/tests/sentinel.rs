//! The Redis limiter on a real Sentinel group (a master, replicas and 3 Sentinels, started
//! by keel-testkit) through `keel_redis::SentinelConnection`: the deployment-independent
//! suite, and what a master's failover does to a hot key's quota.
#![cfg(feature = "redis")]

mod suite;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_rate_limit::{FailurePolicy, Quota, RedisLimiter, SlidingLog};
use keel_redis::SentinelConnection;
use keel_testkit::RedisSentinel;
use suite::{BoxError, hammer};

fn connect(group: &RedisSentinel) -> Result<SentinelConnection, BoxError> {
    Ok(SentinelConnection::new(
        group.sentinel_urls(),
        group.master_name(),
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_sentinel() -> Result<(), BoxError> {
    let group = RedisSentinel::start()?;
    suite::all(connect(&group)?, connect(&group)?).await
}

/// The master is killed while two app servers keep deciding; the Sentinels promote a replica
/// and the connections follow. Bounds as on a cluster (see tests/cluster.rs): with `P` app
/// servers, `(2 + P) × limit` per window under `FailurePolicy::Local`, `2 × limit` under
/// `FailClosed`. The test checks both and prints what it measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_over_admission_stays_within_the_bound() -> Result<(), BoxError> {
    let mut group = RedisSentinel::start()?;
    let limit = 50u32;
    let quota = Quota::per_minute(limit)?; // the whole run fits in one window
    let make = |connection, prefix: &str, policy| -> Result<_, BoxError> {
        Ok(Arc::new(
            RedisLimiter::<SlidingLog>::builder(quota)
                .prefix(prefix)
                .timeout(Duration::from_millis(500))
                .failure_policy(policy)
                .build::<SentinelConnection>(connection)?,
        ))
    };
    let local = [
        make(connect(&group)?, "fo-local:", FailurePolicy::Local)?,
        make(connect(&group)?, "fo-local:", FailurePolicy::Local)?,
    ];
    let closed = [
        make(connect(&group)?, "fo-closed:", FailurePolicy::FailClosed)?,
        make(connect(&group)?, "fo-closed:", FailurePolicy::FailClosed)?,
    ];
    let every: Vec<_> = local.iter().chain(&closed).cloned().collect();
    let done = Arc::new(AtomicBool::new(false));
    let local_run = tokio::spawn(hammer(local, "hot", done.clone()));
    let closed_run = tokio::spawn(hammer(closed, "hot", done.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await; // the quota is used up in Redis
    let started = std::time::Instant::now();
    let (group, promoted) = tokio::task::spawn_blocking(move || {
        let promoted = group.kill_master();
        (group, promoted)
    })
    .await?;
    promoted?;
    let failover = started.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await; // clients find the new master
    done.store(true, Ordering::Relaxed);
    let local_run = local_run.await?;
    let closed_run = closed_run.await?;
    for limiter in &every {
        // Redis decides again: the connection found the promoted master.
        assert!(limiter.try_check_key_n("after", 1).await?.is_allowed());
    }
    drop(group);

    println!(
        "sentinel failover in {failover:?}, quota {limit}/min, 2 servers: \
         Local admitted {} ({} decisions, {} failed over to the policy); \
         FailClosed admitted {} ({} decisions, {} failed)",
        local_run.admitted,
        local_run.decisions,
        local_run.failures,
        closed_run.admitted,
        closed_run.decisions,
        closed_run.failures,
    );
    let limit = u64::from(limit);
    assert!(local_run.admitted >= limit, "{local_run:?}");
    assert!(local_run.admitted <= (2 + 2) * limit, "{local_run:?}");
    assert!(closed_run.admitted >= limit, "{closed_run:?}");
    assert!(closed_run.admitted <= 2 * limit, "{closed_run:?}");
    assert!(local_run.decisions > local_run.admitted && closed_run.decisions > limit);
    Ok(())
}
