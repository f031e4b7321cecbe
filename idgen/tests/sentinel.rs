//! `WorkerLease` on the Redis lock of a Sentinel group (keel-testkit's `RedisSentinel`):
//! distinct ids on the master, and no duplicate IDs across a failover.
#![cfg(feature = "redis")]

mod failover;

use std::collections::HashSet;
use std::time::Duration;

use failover::FirstWorker;
use keel_idgen::WorkerLease;
use keel_lock::RedisLockService;
use keel_testkit::RedisSentinel;
use redis::sentinel::{SentinelClient, SentinelServerType};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A lock service on the master the Sentinels name now.
async fn master_locks(group: &RedisSentinel) -> Result<RedisLockService> {
    // An owned name fits both signatures of `build` (`String`, or `AsRef<str>` when
    // another crate turns on redis's TLS feature).
    let master_name: String = group.master_name().into();
    let mut sentinels = SentinelClient::build(
        group.sentinel_urls(),
        master_name,
        None,
        SentinelServerType::Master,
    )?;
    let master = sentinels.async_get_client().await?;
    let connection = redis::aio::ConnectionManager::new(master).await?;
    Ok(RedisLockService::builder()
        .call_timeout(Duration::from_millis(250))
        .build(connection)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimants_get_distinct_ids_on_the_sentinel_master() -> Result {
    let group = RedisSentinel::builder().replicas(1)?.start()?;
    let mut ids = HashSet::new();
    let mut held = Vec::new();
    for _ in 0..8 {
        let lease = WorkerLease::builder(master_locks(&group).await?)
            .ids(8)
            .acquire()
            .await?;
        assert!(ids.insert(lease.id()));
        held.push(lease);
    }
    assert!(
        WorkerLease::builder(master_locks(&group).await?)
            .ids(8)
            .acquire()
            .await
            .is_err()
    );
    Ok(())
}

/// A issues IDs with a leased worker id; its master is killed and a replica promoted. A's
/// renewals fail, so it stops; B leases a worker id from the new master, waits one TTL, and
/// issues (`failover::FirstWorker`). No ID repeats, and if B got A's id, A's last ID is
/// stamped before B's first.
#[test]
fn a_failover_issues_no_duplicate_ids() -> Result {
    let mut group = RedisSentinel::builder().replicas(1)?.start()?;
    let runtime = failover::runtime()?;
    let a = FirstWorker::start(&runtime, runtime.block_on(master_locks(&group))?)?;
    let old = group.master()?;
    group.kill(old)?;
    group.wait_for_failover(old)?;
    a.hand_over(&runtime, runtime.block_on(master_locks(&group))?)
}
