//! Network faults between a worker-id holder and a real redis-server, through keel-testkit's
//! `FaultProxy`: a partition longer than the TTL, latency beyond the call timeout, a reset in
//! the middle of a renewal script, and a half-open connection.
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
use keel_testkit::{Direction, FaultProxy, RedisServer};

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

async fn locks(url: &str, call_timeout: Duration) -> Result<RedisLockService<SystemClock>> {
    Ok(RedisLockService::builder()
        .call_timeout(call_timeout)
        .connect(url)
        .await?)
}

async fn run(fault: Fault) -> Result {
    let server = RedisServer::start()?;
    let proxy = Arc::new(FaultProxy::start(server.port())?);
    let faulty = locks(&proxy.url(), CALL_TIMEOUT).await?;
    let healthy = locks(&server.url(), Duration::from_secs(2)).await?;

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

    match fault {
        Fault::Partition => proxy.blackhole(),
        Fault::Latency => proxy.set_latency(CALL_TIMEOUT + Duration::from_millis(250)),
        Fault::HalfOpen => proxy.cut(Direction::Downstream),
        Fault::ResetMidScript => {
            proxy.hold(Direction::Downstream);
            let waiting = Arc::clone(&proxy);
            tokio::task::spawn_blocking(move || {
                waiting.wait_for_held(Direction::Downstream, 1, BOUND)
            })
            .await??;
            assert_eq!(proxy.reset_connections(), 1);
        }
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
        "{fault:?}: an ID was issued at {last_issued:?}, after the id was requested again at \
         {granted_sent:?}"
    );
    eprintln!(
        "idgen, redis, {fault:?}: last ID {:?} before worker id {} was requested again; \
         probe call {probe:?} (timeout {CALL_TIMEOUT:?})",
        granted_sent - last_issued,
        lease.id()
    );
    assert!(
        probe <= CALL_TIMEOUT + SLACK,
        "{fault:?}: a call took {probe:?}"
    );
    proxy.heal();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_longer_than_the_ttl_stops_generation_before_the_id_is_regranted() -> Result {
    run(Fault::Partition).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_beyond_the_call_timeout_stops_generation_before_the_id_is_regranted() -> Result {
    run(Fault::Latency).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_renewal_stops_generation_before_the_id_is_regranted() -> Result {
    run(Fault::ResetMidScript).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_stops_generation_before_the_id_is_regranted() -> Result {
    run(Fault::HalfOpen).await
}
