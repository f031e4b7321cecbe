//! `RedisLockService` and `RedisFence` behind Sentinel (a master, 2 replicas, 3 Sentinels,
//! started by keel-testkit) through `keel_redis::SentinelConnection`: the lock works, and
//! after a failover that lost a lease the fence still rejects the old holder's writes.

#![cfg(feature = "redis")]

use std::time::Duration;

use keel_lock::{LockError, LockService, RedisLockService};
use keel_redis::SentinelConnection;
use keel_testkit::{RedisSentinel, Reply};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(60);

fn locks(
    group: &RedisSentinel,
) -> Result<RedisLockService<keel_core::SystemClock, SentinelConnection>> {
    let connection = SentinelConnection::new(group.sentinel_urls(), group.master_name())?;
    Ok(RedisLockService::builder()
        .call_timeout(Duration::from_secs(2))
        .build(connection)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_work_behind_sentinel() -> Result {
    let group = RedisSentinel::start()?;
    let locks = locks(&group)?;
    for name in ["jobs", "}x", "a{b}c"] {
        let lease = locks.try_acquire(name, TTL).await?.ok_or("free")?;
        assert!(locks.try_acquire(name, TTL).await?.is_none(), "{name:?}");
        let lease = locks.extend(&lease, TTL).await?;
        locks.release(&lease).await?;
        let next = locks.try_acquire(name, TTL).await?.ok_or("released")?;
        assert!(next.token() > lease.token(), "{name:?}");
    }
    Ok(())
}

/// The replicas miss the lock's writes (their links are cut while they are paused), then the
/// master dies: the promoted replica has no lease, a second holder gets it, and the fence
/// rejects the first holder's late write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_rejects_the_old_holder_after_a_failover_lost_the_lease() -> Result {
    let mut group = RedisSentinel::start()?;
    let locks = locks(&group)?;
    let fence = locks.fence("{ledger}:fence");
    fence.advance(keel_lock::FencingToken::new(0)).await?; // connected before the fault
    let master = group.master()?;
    let replicas = group.replicas()?;
    for &replica in &replicas {
        group.pause(replica)?;
    }
    // Cut the replication links: what the master writes now reaches no replica.
    group
        .server(master)?
        .command(&["CLIENT", "KILL", "TYPE", "replica"])?;
    let old = locks.acquire("ledger", TTL, Duration::ZERO).await?;
    fence.set(old.token(), "{ledger}:balance", 100).await?;
    group.kill(master)?;
    for &replica in &replicas {
        group.resume(replica)?;
    }
    let (group, promoted) = tokio::task::spawn_blocking(move || {
        let promoted = group.wait_for_failover(master);
        (group, promoted)
    })
    .await?;
    let promoted = promoted?;

    // The lease is gone with the old master: a second holder gets the lock.
    let mut new = None;
    for _ in 0..200 {
        match locks.try_acquire("ledger", TTL).await {
            Ok(Some(lease)) => {
                new = Some(lease);
                break;
            }
            Ok(None) => return Err("the lease survived: the replica had it".into()),
            // The connection is still finding the new master.
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
    assert_eq!(
        group
            .server(promoted)?
            .command(&["GET", "{ledger}:balance"])?,
        Reply::Bulk(Some(b"200".to_vec()))
    );
    Ok(())
}
