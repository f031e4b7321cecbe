//! `WorkerLease` on the Redis lock of a Redis Cluster (keel-testkit's `RedisCluster`):
//! distinct ids with names spread over the masters, and no duplicate IDs across a failover.
#![cfg(feature = "redis")]

mod failover;

use std::collections::HashSet;
use std::time::Duration;

use failover::FirstWorker;
use keel_idgen::WorkerLease;
use keel_lock::RedisLockService;
use keel_testkit::RedisCluster;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

type ClusterLocks =
    RedisLockService<keel_core::SystemClock, redis::cluster_async::ClusterConnection>;

async fn cluster_locks(cluster: &RedisCluster) -> Result<ClusterLocks> {
    let client = redis::cluster::ClusterClient::new(cluster.urls())?;
    let connection = client.get_async_connection().await?;
    Ok(RedisLockService::builder()
        .call_timeout(Duration::from_millis(250))
        .build(connection)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimants_get_distinct_ids_across_the_cluster() -> Result {
    let cluster = RedisCluster::start()?;
    let locks = cluster_locks(&cluster).await?;
    let mut held = Vec::new();
    let mut ids = HashSet::new();
    for _ in 0..16 {
        let lease = WorkerLease::builder(locks.clone())
            .ids(16)
            .acquire()
            .await?;
        assert!(ids.insert(lease.id()));
        held.push(lease);
    }
    assert!(WorkerLease::builder(locks).ids(16).acquire().await.is_err());
    // The 16 names live on more than one master.
    let masters: HashSet<usize> = (0..16)
        .map(|id| cluster.master_for_key(&format!("keel:lock:{{keel:idgen:worker:{id}}}")))
        .collect::<std::result::Result<_, _>>()?;
    assert!(masters.len() > 1, "{masters:?}");
    Ok(())
}

/// A issues IDs with a leased worker id; the master holding its lease is killed and its
/// replica promoted. A's renewals fail, so it stops; B leases a worker id, waits one TTL,
/// and issues (`failover::FirstWorker`). No ID repeats, and if B got A's id, A's last ID is
/// stamped before B's first.
#[test]
fn a_failover_issues_no_duplicate_ids() -> Result {
    let mut cluster = RedisCluster::start()?;
    let runtime = failover::runtime()?;
    let a = FirstWorker::start(&runtime, runtime.block_on(cluster_locks(&cluster))?)?;
    let old = cluster.master_for_key(&format!("keel:lock:{{keel:idgen:worker:{}}}", a.id()))?;
    cluster.kill(old)?;
    cluster.wait_for_failover(old)?;
    a.hand_over(&runtime, runtime.block_on(cluster_locks(&cluster))?)
}
