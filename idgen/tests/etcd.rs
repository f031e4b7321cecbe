//! `WorkerLease` on keel-lock's etcd service (a real 3-member etcd cluster from
//! keel-testkit): the lease is generic over the lock service, so etcd works as Redis does,
//! and a million IDs across member restarts have no duplicates.
#![cfg(feature = "lease")]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use keel_idgen::{GenerateError, Layout, Snowflake, WorkerIdProvider, WorkerLease};
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

/// Two generators on worker ids leased from a 3-member etcd cluster, 1M IDs while every
/// member is restarted in turn (the leader first): 0 duplicates.
///
/// etcd keeps leases through member restarts (Raft, on disk), so the ids stay distinct. A
/// generator whose lease is lost anyway (a keep-alive that cannot reach a quorum in time)
/// stops with `LeaseExpired`; it then leases an id again and waits its one TTL, as a process
/// would, and the test counts how often that happened.
#[test]
fn a_million_ids_across_member_restarts_have_no_duplicates() -> Result {
    const TOTAL: usize = 1_000_000;
    const GENERATORS: usize = 2;
    let mut cluster = EtcdCluster::start()?;
    let endpoints = cluster.endpoints();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let restarts_done = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicUsize::new(0));

    let workers: Vec<_> = (0..GENERATORS)
        .map(|_| {
            let handle = runtime.handle().clone();
            let endpoints = endpoints.clone();
            let restarts_done = restarts_done.clone();
            let issued = issued.clone();
            std::thread::spawn(move || -> std::result::Result<(Vec<u64>, usize), String> {
                let lease_one = || {
                    handle.block_on(async {
                        let locks = EtcdLockService::connect(&endpoints).await?;
                        let lease = WorkerLease::builder(locks)
                            .ids(8)
                            .ttl(Duration::from_secs(2))
                            .acquire()
                            .await?;
                        lease.ready().await?;
                        Ok::<_, Box<dyn std::error::Error>>(lease)
                    })
                };
                let mut ids = Vec::with_capacity(TOTAL / GENERATORS + 4_096);
                let mut leases = 0;
                'lease: loop {
                    let lease = lease_one().map_err(|e| e.to_string())?;
                    leases += 1;
                    let worker = lease.worker_id().map_err(|e| e.to_string())?;
                    let generator = Snowflake::builder(Layout::twitter(), worker)
                        .build()
                        .map_err(|e| e.to_string())?;
                    loop {
                        for _ in 0..1_000 {
                            match generator.next_id() {
                                Ok(id) => ids.push(id),
                                Err(GenerateError::LeaseExpired) => continue 'lease,
                                Err(other) => return Err(other.to_string()),
                            }
                        }
                        issued.fetch_add(1_000, Ordering::Relaxed);
                        if restarts_done.load(Ordering::Acquire) && ids.len() >= TOTAL / GENERATORS
                        {
                            return Ok((ids, leases));
                        }
                        // Spread the IDs over the restarts instead of issuing them all first.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        })
        .collect();

    // Restart each member once IDs are flowing, the leader first.
    while issued.load(Ordering::Relaxed) < 50_000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let leader = cluster.leader()?;
    let order = [leader, (leader + 1) % 3, (leader + 2) % 3];
    for member in order {
        cluster.restart(member)?;
        cluster.wait_until_healthy()?;
    }
    restarts_done.store(true, Ordering::Release);

    let mut seen = HashSet::with_capacity(TOTAL + GENERATORS * 4_096);
    let mut duplicates = 0;
    let mut leases = 0;
    for worker in workers {
        let (ids, taken) = worker.join().expect("generator thread")?;
        leases += taken;
        for id in ids {
            if !seen.insert(id) {
                duplicates += 1;
            }
        }
    }
    println!(
        "{} IDs across {} member restarts, {leases} leases taken by {GENERATORS} generators, \
         {duplicates} duplicates",
        seen.len() + duplicates,
        order.len()
    );
    assert!(seen.len() + duplicates >= TOTAL);
    assert_eq!(duplicates, 0);
    Ok(())
}
