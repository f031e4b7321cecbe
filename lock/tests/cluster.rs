//! `RedisLockService` and `RedisFence` on a real Redis Cluster (3 masters, 3 replicas,
//! started by keel-testkit): any name works, and after a failover that lost a lease the
//! fence still rejects the old holder's writes.

#![cfg(feature = "redis")]

use std::time::Duration;

use keel_lock::{LockError, LockService, RedisLockService};
use keel_testkit::{RedisCluster, Reply};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(60);

async fn locks(
    cluster: &RedisCluster,
) -> Result<RedisLockService<keel_core::SystemClock, ClusterConnection>> {
    let client = ClusterClient::builder(cluster.urls())
        .connection_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(1000))
        .build()?;
    Ok(RedisLockService::builder()
        .call_timeout(Duration::from_secs(2))
        .build(client.get_async_connection().await?)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_name_locks_on_a_cluster() -> Result {
    let cluster = RedisCluster::start()?;
    let locks = locks(&cluster).await?;
    let mut masters = std::collections::BTreeSet::new();
    let names = ["jobs", "}x", "{", "}", "a{b}c", "}{", "%7D", "%", "{}"];
    let spread = (0..20).map(|i| format!("job-{i}"));
    for name in names.iter().map(|n| n.to_string()).chain(spread) {
        masters.insert(cluster.master_for_key(&locks.lock_key(&name))?);
        let lease = locks.try_acquire(&name, TTL).await?.ok_or("free")?;
        assert!(locks.try_acquire(&name, TTL).await?.is_none(), "{name:?}");
        let lease = locks.extend(&lease, TTL).await?;
        locks.release(&lease).await?;
        let next = locks.try_acquire(&name, TTL).await?.ok_or("released")?;
        assert!(next.token() > lease.token(), "{name:?}");
    }
    assert_eq!(masters.len(), 3, "the names cover every master");
    Ok(())
}

/// The replicas miss the lock's writes (their links are cut while they are paused), then the
/// master dies: the promoted replica has no lease, a second holder gets it, and the fence
/// rejects the first holder's late write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_rejects_the_old_holder_after_a_failover_lost_the_lease() -> Result {
    let mut cluster = RedisCluster::start()?;
    let locks = locks(&cluster).await?;
    let master = cluster.master_for_key(&locks.lock_key("ledger"))?;
    assert_eq!(master, cluster.master_for_key("{ledger}:fence")?);
    let replicas = cluster.replicas()?;
    for &replica in &replicas {
        cluster.pause(replica)?;
    }
    // Cut the replication links: what the master writes now reaches no replica.
    cluster
        .node(master)?
        .command(&["CLIENT", "KILL", "TYPE", "replica"])?;
    let old = locks.acquire("ledger", TTL, Duration::ZERO).await?;
    let fence = locks.fence("{ledger}:fence");
    fence.set(old.token(), "{ledger}:balance", 100).await?;

    cluster.kill(master)?;
    for &replica in &replicas {
        cluster.resume(replica)?;
    }
    let cluster = tokio::task::spawn_blocking(move || {
        let promoted = cluster.wait_for_failover(master);
        promoted.map(|_| cluster)
    })
    .await??;

    // The lease is gone with the old master: a second holder gets the lock at once.
    let mut new = None;
    for _ in 0..100 {
        match locks.try_acquire("ledger", TTL).await {
            Ok(Some(lease)) => {
                new = Some(lease);
                break;
            }
            Ok(None) => return Err("the lease survived: the replica had it".into()),
            // The client is still finding the new master.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let new = new.ok_or("no grant after the failover")?;
    assert!(
        new.token() > old.token(),
        "tokens keep increasing across the failover"
    );
    fence.set(new.token(), "{ledger}:balance", 200).await?;
    match fence.set(old.token(), "{ledger}:balance", 90).await {
        Err(LockError::Stale(stale)) => assert_eq!(stale.highest(), new.token()),
        other => return Err(format!("the old holder's write must be refused: {other:?}").into()),
    }
    let now_master = cluster.master_for_key("{ledger}:balance")?;
    assert_eq!(
        cluster
            .node(now_master)?
            .command(&["GET", "{ledger}:balance"])?,
        Reply::Bulk(Some(b"200".to_vec()))
    );
    Ok(())
}
