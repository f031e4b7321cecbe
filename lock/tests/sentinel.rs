//! The Redis lock on a Sentinel group (keel-testkit's `RedisSentinel`: a master, replicas
//! and three Sentinels): leases and fences on the master the Sentinels name, and what a
//! failover does to a lease.
//!
//! Replication is asynchronous, so a failover can lose a grant the old master acknowledged:
//! the next holder is then granted the same lock while the first still holds its lease. The
//! fencing token is what keeps the data safe: the restart-safe token floor (the server's
//! clock in microseconds) makes the second grant's token higher, and the resource's fence
//! rejects the first holder's writes from then on.

#![cfg(feature = "redis")]

use std::time::Duration;

use keel_lock::{Fence, LockError, LockService, RedisLockService};
use keel_testkit::RedisSentinel;
use redis::sentinel::{SentinelClient, SentinelServerType};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(30);

/// A lock service on the master the Sentinels name now.
async fn master_locks(group: &RedisSentinel) -> Result<RedisLockService> {
    let mut sentinels = SentinelClient::build(
        group.sentinel_urls(),
        group.master_name().to_owned(),
        None,
        SentinelServerType::Master,
    )?;
    let master = sentinels.async_get_client().await?;
    let connection = redis::aio::ConnectionManager::new(master).await?;
    Ok(RedisLockService::builder()
        .call_timeout(Duration::from_secs(2))
        .build(connection)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_fences_work_on_the_sentinel_master() -> Result {
    let group = RedisSentinel::builder().replicas(1)?.start()?;
    let locks = master_locks(&group).await?;
    let first = locks.acquire("ledger", TTL, Duration::ZERO).await?;
    assert!(locks.try_acquire("ledger", TTL).await?.is_none());
    let renewed = locks.extend(&first, TTL).await?;
    assert_eq!(renewed.token(), first.token());
    locks.release(&renewed).await?;
    let second = locks.try_acquire("ledger", TTL).await?.ok_or("free")?;
    assert!(second.token() > first.token());
    let fence = locks.fence("{ledger}:fence");
    fence.set(second.token(), "balance", "10").await?;
    assert!(fence.set(first.token(), "balance", "0").await.is_err());
    Ok(())
}

/// A grant the old master acknowledged but never replicated is lost in the failover; the
/// next holder is granted the lock during the first one's lease, with a higher token, and
/// the fence rejects the first holder's late write.
///
/// The loss is forced rather than hoped for: the replica is paused and its replication link
/// cut just before the grant, and the master is killed just after, so the grant reaches no
/// replica (as in a replication lag at the moment of a crash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_can_lose_a_lease_and_the_fence_rejects_the_old_holder() -> Result {
    let mut group = RedisSentinel::builder().replicas(1)?.start()?;
    let old = group.master()?;
    let replica = *group.replicas()?.first().ok_or("a replica")?;
    let resource = Fence::new(); // the protected resource, outside Redis
    let a_locks = master_locks(&group).await?;

    group.pause(replica)?;
    group
        .server(old)?
        .command(&["CLIENT", "KILL", "TYPE", "replica"])?;
    let a = a_locks.acquire("ledger", TTL, Duration::ZERO).await?;
    resource.advance(a.token())?; // A writes under its lease
    group.kill(old)?;
    group.resume(replica)?;
    let new = group.wait_for_failover(old)?;
    assert_eq!(new, replica);

    // The new master never saw A's grant: B is granted the lock during A's lease.
    let b_locks = master_locks(&group).await?;
    let b = b_locks
        .acquire("ledger", TTL, Duration::from_secs(5))
        .await?;
    assert!(
        a.expires_at() > a_locks.now(),
        "A's lease has not run out: the lease was lost, not expired"
    );
    assert!(b.token() > a.token(), "the token floor keeps tokens rising");
    resource.advance(b.token())?;
    // A, unaware, writes again: the fence refuses it.
    assert!(resource.advance(a.token()).is_err());
    // And A cannot touch B's lease through the new master.
    let Err(error) = b_locks.release(&a).await else {
        return Err("A released B's lease".into());
    };
    assert!(matches!(error, LockError::NotHeld { .. }), "{error}");
    Ok(())
}
