//! The Redis limiter on a real Redis Cluster (3 masters, 3 replicas, started by
//! keel-testkit): the deployment-independent suite, scripts loaded on every node, and what a
//! master's failover does to a hot key's quota.
#![cfg(feature = "redis")]

mod suite;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_rate_limit::{FailurePolicy, Gcra, Quota, RedisLimiter, SlidingLog};
use keel_redis::KeyBuilder;
use keel_testkit::RedisCluster;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use suite::{BoxError, hammer, limiter};

async fn connect(cluster: &RedisCluster) -> Result<ClusterConnection, BoxError> {
    let client = ClusterClient::builder(cluster.urls())
        .connection_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(500))
        .build()?;
    Ok(client.get_async_connection().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_a_cluster() -> Result<(), BoxError> {
    let cluster = RedisCluster::start()?;
    suite::all(connect(&cluster).await?, connect(&cluster).await?).await
}

/// `EVALSHA` goes to the node owning the key; `NOSCRIPT` there loads the script on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_load_on_every_node_and_again_after_a_flush() -> Result<(), BoxError> {
    let cluster = RedisCluster::start()?;
    let connection = connect(&cluster).await?;
    let limiter = limiter::<Gcra, _>(
        connection,
        "reload:",
        Quota::per_hour(10)?,
        FailurePolicy::FailClosed,
    )?;
    let keys = KeyBuilder::new("reload:")?;
    // Keys on every master.
    let mut masters_seen = std::collections::BTreeSet::new();
    for round in 0..2 {
        for i in 0..30 {
            let key = format!("k{i}");
            masters_seen.insert(cluster.master_for_key(&keys.key(&key))?);
            assert!(limiter.try_check_key_n(&key, 1).await?.is_allowed());
        }
        if round == 0 {
            for node in cluster.masters()? {
                cluster.node(node)?.command(&["SCRIPT", "FLUSH"])?;
            }
        }
    }
    assert_eq!(masters_seen.len(), 3, "the keys cover every master");
    assert_eq!(limiter.failures(), 0);
    Ok(())
}

/// A hot key's master is killed while two app servers keep deciding. Replication is
/// asynchronous, and calls fail until the replica is promoted, so the quota can be exceeded;
/// the bound per window, with `P` app servers, is:
///
/// - `FailurePolicy::Local`: `(2 + P) × limit`: the limit in Redis before, up to the limit
///   again if the promoted replica missed writes, and up to the limit per server decided
///   locally while Redis does not answer;
/// - `FailurePolicy::FailClosed`: `2 × limit` (nothing is admitted while Redis fails).
///
/// The test checks both bounds and prints what it measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_over_admission_stays_within_the_bound() -> Result<(), BoxError> {
    let mut cluster = RedisCluster::start()?;
    let limit = 50u32;
    let quota = Quota::per_minute(limit)?; // the whole run fits in one window
    let make = |connection, prefix: &str, policy| -> Result<_, BoxError> {
        Ok(Arc::new(
            RedisLimiter::<SlidingLog>::builder(quota)
                .prefix(prefix)
                .timeout(Duration::from_millis(500))
                .failure_policy(policy)
                .build::<ClusterConnection>(connection)?,
        ))
    };
    let local = [
        make(connect(&cluster).await?, "fo-local:", FailurePolicy::Local)?,
        make(connect(&cluster).await?, "fo-local:", FailurePolicy::Local)?,
    ];
    let closed = [
        make(
            connect(&cluster).await?,
            "fo-closed:",
            FailurePolicy::FailClosed,
        )?,
        make(
            connect(&cluster).await?,
            "fo-closed:",
            FailurePolicy::FailClosed,
        )?,
    ];
    // Both prefixes tag the key as `{hot}`: one slot, one master to kill.
    let master = cluster.master_for_key(&KeyBuilder::new("fo-local:")?.key("hot"))?;
    assert_eq!(master, cluster.master_for_key("fo-closed:{hot}")?);

    let every: Vec<_> = local.iter().chain(&closed).cloned().collect();
    let done = Arc::new(AtomicBool::new(false));
    let local_run = tokio::spawn(hammer(local, "hot", done.clone()));
    let closed_run = tokio::spawn(hammer(closed, "hot", done.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await; // the quota is used up in Redis
    let started = std::time::Instant::now();
    let (cluster, promoted) = tokio::task::spawn_blocking(move || {
        let promoted = cluster.kill_master(master);
        (cluster, promoted)
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
    drop(cluster);

    println!(
        "cluster failover in {failover:?}, quota {limit}/min, 2 servers: \
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
    // The limiters kept deciding through the failover.
    assert!(local_run.decisions > local_run.admitted && closed_run.decisions > limit);
    Ok(())
}
