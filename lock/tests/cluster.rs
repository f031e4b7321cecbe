//! The Redis lock on a Redis Cluster (keel-testkit's `RedisCluster`: 3 masters, 3 replicas):
//! leases and fences through a cluster connection, names that would break hash-slot
//! sharing, and what a failover does to a lease.
//!
//! Replication is asynchronous, so a failover can lose a grant the old master acknowledged:
//! the next holder is then granted the same lock while the first still holds its lease. The
//! fencing token keeps the data safe: the restart-safe token floor (the server's clock in
//! microseconds) makes the second grant's token higher, and the resource's fence rejects the
//! first holder's writes from then on.

#![cfg(feature = "redis")]

use std::time::Duration;

use keel_lock::{Fence, LockError, LockService, RedisLockService};
use keel_testkit::RedisCluster;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(30);

async fn cluster_locks(
    cluster: &RedisCluster,
) -> Result<RedisLockService<keel_core::SystemClock, redis::cluster_async::ClusterConnection>> {
    let client = redis::cluster::ClusterClient::new(cluster.urls())?;
    let connection = client.get_async_connection().await?;
    Ok(RedisLockService::builder()
        .call_timeout(Duration::from_secs(2))
        .build(connection)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_fences_work_through_a_cluster_connection() -> Result {
    let cluster = RedisCluster::start()?;
    let locks = cluster_locks(&cluster).await?;
    // Names spread over the masters, and names with braces that would split a naive key
    // pair across slots.
    for name in ["ledger", "orders", "invoices", "}", "{x}", "a}b{c", "{}"] {
        let first = locks.acquire(name, TTL, Duration::ZERO).await?;
        assert!(locks.try_acquire(name, TTL).await?.is_none(), "{name}");
        let renewed = locks.extend(&first, TTL).await?;
        assert_eq!(renewed.token(), first.token());
        locks.release(&renewed).await?;
        let second = locks.try_acquire(name, TTL).await?.ok_or("free")?;
        assert!(second.token() > first.token(), "{name}");
        locks.release(&second).await?;
    }
    Ok(())
}

/// A grant the old master acknowledged but never replicated is lost in the failover; the
/// next holder is granted the lock during the first one's lease, with a higher token, and
/// the fence rejects the first holder's late write.
///
/// The loss is forced rather than hoped for: the replicas are paused and the master's
/// replication links cut just before the grant, and the master is killed just after, so the
/// grant reaches no replica (as in a replication lag at the moment of a crash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_can_lose_a_lease_and_the_fence_rejects_the_old_holder() -> Result {
    let mut cluster = RedisCluster::start()?;
    let a_locks = cluster_locks(&cluster).await?;
    let probe = a_locks.acquire("ledger", TTL, Duration::ZERO).await?;
    a_locks.release(&probe).await?; // the connection knows the slot map now
    let old = cluster.master_for_key(&a_locks.lock_key("ledger"))?;
    let replicas = cluster.replicas()?;
    let resource = Fence::new(); // the protected resource, outside Redis

    for replica in &replicas {
        cluster.pause(*replica)?;
    }
    cluster
        .node(old)?
        .command(&["CLIENT", "KILL", "TYPE", "replica"])?;
    let a = a_locks.acquire("ledger", TTL, Duration::ZERO).await?;
    resource.advance(a.token())?; // A writes under its lease
    cluster.kill(old)?;
    for replica in &replicas {
        cluster.resume(*replica)?;
    }
    cluster.wait_for_failover(old)?;

    // The promoted replica never saw A's grant: B is granted the lock during A's lease.
    let b_locks = cluster_locks(&cluster).await?;
    let b = b_locks
        .acquire("ledger", TTL, Duration::from_secs(10))
        .await?;
    assert!(
        a.expires_at() > a_locks.now(),
        "A's lease has not run out: the lease was lost, not expired"
    );
    assert!(b.token() > a.token(), "the token floor keeps tokens rising");
    resource.advance(b.token())?;
    assert!(
        resource.advance(a.token()).is_err(),
        "A's late write is refused"
    );
    let Err(error) = b_locks.release(&a).await else {
        return Err("A released B's lease".into());
    };
    assert!(matches!(error, LockError::NotHeld { .. }), "{error}");
    Ok(())
}
