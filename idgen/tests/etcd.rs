//! `WorkerLease` on keel-lock's etcd service (a real 3-member etcd cluster from
//! keel-testkit): the lease is generic over the lock service, so etcd works as Redis does.
#![cfg(feature = "lease")]

use std::collections::HashSet;
use std::time::Duration;

use keel_idgen::{Layout, Snowflake, WorkerIdProvider, WorkerLease};
use keel_lock::EtcdLockService;
use keel_testkit::EtcdCluster;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_ids_leased_from_etcd_are_distinct_and_issue_ids() -> Result {
    let cluster = EtcdCluster::start()?;
    let ttl = Duration::from_secs(2); // etcd leases count whole seconds
    let mut held = Vec::new();
    for _ in 0..4 {
        let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
        held.push(
            WorkerLease::builder(locks)
                .ids(4)
                .ttl(ttl)
                .acquire()
                .await?,
        );
    }
    let ids: HashSet<u64> = held.iter().map(WorkerLease::id).collect();
    assert_eq!(ids.len(), 4);
    let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    assert!(
        WorkerLease::builder(locks.clone())
            .ids(4)
            .ttl(ttl)
            .acquire()
            .await
            .is_err()
    );

    // One TTL of wait, renewed by keel-lock's keep-alive meanwhile, then IDs flow.
    let lease = &held[0];
    lease.ready().await?;
    let generator = Snowflake::builder(Layout::twitter(), lease.worker_id()?).build()?;
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        assert!(seen.insert(generator.next_id()?));
    }
    assert_eq!(generator.decode(generator.next_id()?).worker, lease.id());

    // Released: the id is free at once for the next process.
    let freed = held.remove(0);
    let freed_id = freed.id();
    freed.release().await?;
    let next = WorkerLease::builder(locks)
        .ids(4)
        .ttl(ttl)
        .acquire()
        .await?;
    assert_eq!(next.id(), freed_id);
    Ok(())
}
