//! Snowflake generators on worker ids leased through `WorkerLease`, on Redis and etcd,
//! under every fault: more workers than ids, so ids change hands all the time.
//!
//! Anomaly: duplicate IDs among everything every generator issued.

use std::time::{Duration, Instant};

use keel_idgen::{GenerateError, Layout, Snowflake, WorkerIdProvider, WorkerLease};
use keel_lock::LockService;
use keel_testkit::anomalies::duplicates;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::faults::Injector;
use crate::lock::{ETCD_TTL, REDIS_TTL, on_cluster, on_etcd, on_redis};
use crate::{Anomaly, Row};

/// Worker ids to share among the workers (one per fault proxy, so three).
const IDS: u64 = 2;
/// `WorkerLease`'s default lock name prefix: id `n` is the lock `<prefix><n>`.
const PREFIX: &str = "keel:idgen:worker:";

/// One worker: lease an id, generate until the lease is lost or the hold ends, release,
/// again. Returns every ID it issued and how many leases it got.
async fn worker<S>(locks: S, ttl: Duration, deadline: Instant, seed: u64) -> (Vec<u64>, u64)
where
    S: LockService + Clone + Send + Sync + 'static,
{
    let mut rng = SmallRng::seed_from_u64(seed);
    let (mut ids, mut leases) = (Vec::new(), 0);
    while Instant::now() < deadline {
        let lease = match WorkerLease::builder(locks.clone())
            .ids(IDS)
            .name_prefix(PREFIX)
            .ttl(ttl)
            .acquire()
            .await
        {
            Ok(lease) => lease,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(5..50))).await;
                continue;
            }
        };
        leases += 1;
        // A newly granted id is usable once a previous holder's lease has surely run out.
        if lease.ready().await.is_err() {
            continue;
        }
        let Ok(worker) = lease.worker_id() else {
            continue;
        };
        let Ok(generator) = Snowflake::builder(Layout::twitter(), worker).build() else {
            continue;
        };
        let end = (Instant::now() + ttl.mul_f64(1.0 + 3.0 * rng.random::<f64>())).min(deadline);
        let issued = tokio::task::spawn_blocking(move || {
            let mut issued = Vec::new();
            while Instant::now() < end {
                match generator.next_id() {
                    Ok(id) => issued.push(id),
                    Err(GenerateError::LeaseExpired) => break,
                    Err(_) => {}
                }
                std::thread::sleep(Duration::from_micros(300));
            }
            issued
        })
        .await
        .unwrap_or_default();
        ids.extend(issued);
        if crate::planted() {
            // Planted: a generator that ignores its lease goes on for a TTL after it.
            let plain = Snowflake::builder(Layout::twitter(), lease.id()).build();
            if let Ok(plain) = plain {
                let end = Instant::now() + ttl;
                while Instant::now() < end {
                    ids.extend(plain.next_id());
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            }
        }
        let _ = lease.release().await;
    }
    (ids, leases)
}

async fn soak<S>(
    name: &str,
    clients: Vec<S>,
    injector: Injector,
    ttl: Duration,
    time: Duration,
    seed: u64,
) -> Result<Row, String>
where
    S: LockService + Clone + Send + Sync + 'static,
{
    let deadline = Instant::now() + time;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, locks)| tokio::spawn(worker(locks, ttl, deadline, seed ^ (i as u64 + 1))))
        .collect();
    let faults = injector.run(deadline).await?;
    let (mut ids, mut leases) = (Vec::new(), 0);
    for task in tasks {
        let (issued, got) = task.await.map_err(|e| e.to_string())?;
        ids.extend(issued);
        leases += got;
    }
    eprintln!("soak: {name}: {} IDs on {leases} leases", ids.len());
    let mut row = Row::new(name);
    row.faults = faults;
    row.operations = ids.len() as u64;
    row.add(Anomaly::DuplicateIds, duplicates(ids) as u64);
    Ok(row)
}

pub(crate) fn redis(time: Duration, seed: u64) -> Result<Row, String> {
    on_redis(seed, |clients, injector| {
        soak("idgen-redis", clients, injector, REDIS_TTL, time, seed)
    })
}

pub(crate) fn etcd(time: Duration, seed: u64) -> Result<Row, String> {
    on_etcd(seed, |clients, injector| {
        soak("idgen-etcd", clients, injector, ETCD_TTL, time, seed)
    })
}

/// On a Redis Cluster, under network faults on the paths to the ids' locks.
pub(crate) fn cluster(time: Duration, seed: u64) -> Result<Row, String> {
    let keys = |locks: &keel_lock::RedisLockService<_, _>| {
        (0..IDS)
            .flat_map(|id| {
                let name = format!("{PREFIX}{id}");
                [locks.lock_key(&name), locks.counter_key(&name)]
            })
            .collect()
    };
    on_cluster(seed, keys, |clients, injector| {
        soak(
            "idgen-redis-cluster",
            clients,
            injector,
            REDIS_TTL,
            time,
            seed,
        )
    })
}
