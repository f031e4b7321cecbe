//! `WorkerLease` on the Redis lock of a Redis Cluster (keel-testkit's `RedisCluster`):
//! distinct ids with names spread over the masters, and no duplicate IDs across a failover.
#![cfg(feature = "redis")]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel_idgen::{GenerateError, Layout, Snowflake, WorkerIdProvider, WorkerLease};
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
/// and issues. No ID repeats, and if B got A's id, A's last ID is stamped before B's first.
#[test]
fn a_failover_issues_no_duplicate_ids() -> Result {
    const TOTAL: usize = 200_000;
    let ttl = Duration::from_millis(800);
    let mut cluster = RedisCluster::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let layout = Layout::twitter();

    let a = runtime.block_on(async {
        let lease = WorkerLease::builder(cluster_locks(&cluster).await?)
            .ttl(ttl)
            .acquire()
            .await?;
        lease.ready().await?;
        Ok::<_, Box<dyn std::error::Error>>(lease)
    })?;
    let a_generator = Snowflake::builder(layout, a.worker_id()?).build()?;
    let issued_by_a = Arc::new(AtomicUsize::new(0));
    let a_thread = std::thread::spawn({
        let issued = issued_by_a.clone();
        move || {
            let mut ids = Vec::new();
            loop {
                for _ in 0..100 {
                    match a_generator.next_id() {
                        Ok(id) => ids.push(id),
                        Err(GenerateError::LeaseExpired) => return ids,
                        Err(other) => panic!("A: {other}"),
                    }
                }
                issued.store(ids.len(), Ordering::Release);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    while issued_by_a.load(Ordering::Acquire) < 5_000 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let old = cluster.master_for_key(&format!("keel:lock:{{keel:idgen:worker:{}}}", a.id()))?;
    cluster.kill(old)?;
    cluster.wait_for_failover(old)?;

    let b = runtime.block_on(async {
        let lease = WorkerLease::builder(cluster_locks(&cluster).await?)
            .ttl(ttl)
            .acquire()
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(lease)
    })?;
    let b_generator = Snowflake::builder(layout, b.worker_id()?).build()?;
    runtime.block_on(b.ready())?;
    let a_ids = a_thread.join().map_err(|_| "A panicked")?;
    assert!(a.lost().is_lost());
    let mut all: HashSet<u64> = HashSet::with_capacity(TOTAL);
    let mut duplicates = a_ids.iter().filter(|id| !all.insert(**id)).count();
    let mut b_ids = Vec::new();
    while all.len() + duplicates < TOTAL.max(a_ids.len() + 1) {
        let id = b_generator.next_id()?;
        b_ids.push(id);
        if !all.insert(id) {
            duplicates += 1;
        }
    }
    assert_eq!(duplicates, 0);
    if a.id() == b.id() {
        let last_a = a_ids.iter().map(|id| layout.decode(*id).unix_millis).max();
        let first_b = b_ids.iter().map(|id| layout.decode(*id).unix_millis).min();
        assert!(last_a < first_b, "A stopped before B started");
    }
    println!(
        "A (id {}) issued {}, B (id {}) issued {}, duplicates {duplicates}",
        a.id(),
        a_ids.len(),
        b.id(),
        b_ids.len()
    );
    Ok(())
}
