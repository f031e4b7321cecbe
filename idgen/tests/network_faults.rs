//! Network faults between a worker-id holder and Redis, through keel-testkit's `FaultProxy`,
//! on every deployment (`ProxiedRedis`: one server, a Sentinel group and a Cluster, with a
//! proxy in front of every data server that Sentinel answers and Cluster redirects point to):
//! a partition longer than the TTL, latency beyond the call timeout, a reset in the middle of
//! a renewal script, and a half-open connection.
//!
//! Each scenario checks, on real time (the server counts TTLs on its own clock), that the
//! holder's generator issued its last ID before a second claimant, on a healthy path to the
//! same server, *sent* the request that was granted the same worker id; and that a call
//! through the faulty path returns within the call timeout plus [`SLACK`].

#![cfg(feature = "redis")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keel_core::SystemClock;
use keel_idgen::{GenerateError, Layout, Snowflake, WorkerIdError, WorkerIdProvider, WorkerLease};
use keel_lock::{LockService, RedisLockService};
use keel_redis::SentinelConnection;
use keel_testkit::{Deployment, Direction, FaultProxy, ProxiedRedis};
use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_millis(600);
const CALL_TIMEOUT: Duration = Duration::from_millis(150);
/// What a call may take beyond its timeout on a loaded 2-core machine: scheduling, not I/O.
const SLACK: Duration = Duration::from_millis(100);
const BOUND: Duration = Duration::from_secs(10);

#[derive(Copy, Clone, Debug)]
enum Fault {
    Partition,
    Latency,
    ResetMidScript,
    HalfOpen,
}

/// A connection a lock service can run on: one server's, a Sentinel's or a Cluster's.
trait Conn: ConnectionLike + Clone + Send + Sync + 'static {}
impl<T: ConnectionLike + Clone + Send + Sync + 'static> Conn for T {}

fn service<C: Conn>(connection: C) -> Result<RedisLockService<SystemClock, C>> {
    Ok(RedisLockService::builder()
        .call_timeout(CALL_TIMEOUT)
        .build(connection)?)
}

/// Starts `deployment`, builds the holder's lock service on a connection of its kind through
/// the proxies, and runs the scenario.
async fn run(deployment: Deployment, fault: Fault) -> Result {
    let redis = Arc::new(ProxiedRedis::start(deployment)?);
    let urls = redis.client_urls();
    match deployment {
        Deployment::Single => {
            let faulty = RedisLockService::builder()
                .call_timeout(CALL_TIMEOUT)
                .connect(&urls[0])
                .await?;
            scenario(&redis, faulty, fault).await
        }
        Deployment::Sentinel => {
            let name = redis
                .master_name()
                .ok_or("a Sentinel group names its master")?;
            scenario(
                &redis,
                service(SentinelConnection::new(urls, name)?)?,
                fault,
            )
            .await
        }
        Deployment::Cluster => {
            let client = ClusterClient::builder(urls)
                .connection_timeout(CALL_TIMEOUT)
                .response_timeout(CALL_TIMEOUT)
                .build()?;
            scenario(
                &redis,
                service(client.get_async_connection().await?)?,
                fault,
            )
            .await
        }
    }
}

async fn scenario<C: Conn>(
    redis: &Arc<ProxiedRedis>,
    faulty: RedisLockService<SystemClock, C>,
    fault: Fault,
) -> Result {
    let deployment = redis.deployment();
    let key = faulty.lock_key("keel:idgen:worker:0");
    let master_before = redis.master_for_key(&key)?.port();
    // The contender: straight to the worker id's master, not through a proxy.
    let healthy = RedisLockService::builder()
        .call_timeout(Duration::from_secs(2))
        .connect(&redis.master_for_key(&key)?.url())
        .await?;

    let lease = WorkerLease::builder(faulty.clone())
        .ids(1)
        .ttl(TTL)
        .acquire()
        .await?;
    lease.ready().await?; // one TTL, renewed meanwhile
    let generator = Snowflake::builder(Layout::twitter(), lease.worker_id()?).build()?;

    // Generate on a thread until the generator stops; note when the last ID was issued.
    let stop = Arc::new(AtomicBool::new(false));
    let generating = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut issued = 0_u64;
            let mut last_issued = None;
            while !stop.load(Ordering::Acquire) {
                match generator.next_id() {
                    Ok(_) => {
                        issued += 1;
                        last_issued = Some(Instant::now());
                    }
                    Err(GenerateError::LeaseExpired) => return Ok((issued, last_issued)),
                    Err(other) => return Err(other),
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok((issued, last_issued))
        })
    };
    // The contender: claims worker id 0 on the healthy path until granted.
    let contender = tokio::spawn(async move {
        let deadline = Instant::now() + BOUND;
        loop {
            let sent = Instant::now();
            match WorkerLease::builder(healthy.clone())
                .ids(1)
                .ttl(TTL)
                .acquire()
                .await
            {
                Ok(lease) => return Ok::<_, WorkerIdError>((lease, sent)),
                Err(WorkerIdError::NoFreeId { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                Err(other) => return Err(other),
            }
        }
    });
    tokio::time::sleep(TTL / 2).await;

    for proxy in redis.proxies() {
        match fault {
            Fault::Partition => proxy.blackhole(),
            Fault::Latency => proxy.set_latency(CALL_TIMEOUT + Duration::from_millis(250)),
            Fault::HalfOpen => proxy.cut(Direction::Downstream),
            Fault::ResetMidScript => {}
        }
    }
    if let Fault::ResetMidScript = fault {
        redis.proxy_for_key(&key)?.hold(Direction::Downstream);
        // The next renewal's reply reaches the proxy (behind Sentinel a held byte may be a
        // Sentinel's pong; the renewal then fails on the reset or its held reply all the same).
        let (waiting, held_key) = (Arc::clone(redis), key.clone());
        tokio::task::spawn_blocking(move || {
            let proxy: &FaultProxy = waiting.proxy_for_key(&held_key)?;
            proxy.wait_for_held(Direction::Downstream, 1, BOUND)
        })
        .await??;
        assert!(redis.proxy_for_key(&key)?.reset_connections() >= 1);
    }
    // A call through the faulty path, while the fault is in force, returns in time.
    let start = Instant::now();
    let _ = faulty.try_acquire("probe", TTL).await;
    let probe = start.elapsed();

    let (second, granted_sent) = tokio::time::timeout(BOUND, contender).await???;
    stop.store(true, Ordering::Release);
    let (issued, last_issued) = generating.join().expect("no panic")?;
    let last_issued = last_issued.ok_or("the generator issued IDs before the fault")?;
    assert!(issued > 0);
    assert_eq!(second.id(), lease.id());
    assert!(lease.lost().is_lost());
    assert!(
        last_issued < granted_sent,
        "{deployment}, {fault:?}: an ID was issued at {last_issued:?}, after the id was \
         requested again at {granted_sent:?}"
    );
    eprintln!(
        "idgen, {deployment}, {fault:?}: last ID {:?} before worker id {} was requested again; \
         probe call {probe:?} (timeout {CALL_TIMEOUT:?})",
        granted_sent - last_issued,
        lease.id()
    );
    assert!(
        probe <= CALL_TIMEOUT + SLACK,
        "{deployment}, {fault:?}: a call took {probe:?}"
    );
    redis.heal();
    assert_eq!(
        redis.master_for_key(&key)?.port(),
        master_before,
        "the fault failed the master over"
    );
    Ok(())
}

/// One test per deployment for each fault, named `<case>::<deployment>`.
macro_rules! on_every_deployment {
    ($($case:ident => $fault:expr;)*) => {$(
        mod $case {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn single() -> Result {
                run(Deployment::Single, $fault).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sentinel() -> Result {
                run(Deployment::Sentinel, $fault).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() -> Result {
                run(Deployment::Cluster, $fault).await
            }
        }
    )*};
}

on_every_deployment! {
    a_partition_longer_than_the_ttl_stops_generation_before_the_id_is_regranted =>
        Fault::Partition;
    latency_beyond_the_call_timeout_stops_generation_before_the_id_is_regranted =>
        Fault::Latency;
    a_reset_mid_renewal_stops_generation_before_the_id_is_regranted => Fault::ResetMidScript;
    a_half_open_connection_stops_generation_before_the_id_is_regranted => Fault::HalfOpen;
}
