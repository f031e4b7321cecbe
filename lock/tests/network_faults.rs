//! Network faults between a lock holder and Redis, through keel-testkit's `FaultProxy`, on
//! every deployment (`ProxiedRedis`: one server, a Sentinel group and a Cluster, with a proxy
//! in front of every data server that Sentinel answers and Cluster redirects point to): a
//! partition longer than the TTL, latency beyond the call timeout, a connection reset in the
//! middle of a renewal script, and a half-open connection.
//!
//! Each scenario checks, on real time (the server counts TTLs on its own clock):
//! - the holder's lost signal fires before a second client, on a healthy path to the same
//!   master, *sends* the request that is granted the lease (so before any grant);
//! - the fence then rejects the old holder's late write;
//! - every call through the faulty path returns within the call timeout plus [`SLACK`];
//! - the fault cut the client off and nothing else: no failover happened.

#![cfg(feature = "redis")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_core::SystemClock;
use keel_lock::{
    Backoff, FencingToken, KeepAlive, LockError, LockService, LostReason, RedisLockService,
};
use keel_redis::SentinelConnection;
use keel_testkit::{Deployment, Direction, FaultProxy, ProxiedRedis, Reply};
use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Short, so each scenario takes about a second; the server expires keys on real time.
const TTL: Duration = Duration::from_millis(600);
/// The holder's call timeout, a quarter of the TTL.
const CALL_TIMEOUT: Duration = Duration::from_millis(150);
/// What a call may take beyond its timeout on a loaded 2-core machine: scheduling, not I/O.
const SLACK: Duration = Duration::from_millis(100);
/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

/// A connection a lock service can run on: one server's, a Sentinel's or a Cluster's.
trait Conn: ConnectionLike + Clone + Send + Sync + 'static {}
impl<T: ConnectionLike + Clone + Send + Sync + 'static> Conn for T {}

type Locks<C> = RedisLockService<SystemClock, C>;

#[derive(Copy, Clone, Debug)]
enum Fault {
    /// Both ways held for longer than the TTL.
    Partition,
    /// Both ways delayed by more than the call timeout (less than the TTL).
    Latency,
    /// A renewal's reply is held, so its script ran, then both sides are reset.
    ResetMidScript,
    /// Replies are dropped for good; requests still arrive and run.
    HalfOpen,
}

/// What one test does with the faulty holder.
#[derive(Copy, Clone, Debug)]
enum Test {
    /// A lease kept alive through `Fault`: lost before a regrant, fenced after.
    KeepAlive(Fault),
    /// An acquire whose reply is lost to a reset.
    AcquireResetMidScript,
}

/// What a scenario measured.
#[derive(Debug)]
struct Outcome {
    reason: LostReason,
    /// From the lost signal to the send of the second client's granted request.
    margin: Duration,
    /// The slowest call through the faulty path.
    worst_call: Duration,
}

fn service<C: Conn>(connection: C) -> Result<Locks<C>> {
    Ok(RedisLockService::builder()
        .call_timeout(CALL_TIMEOUT)
        .backoff(Backoff::exponential(Duration::from_millis(1)).max(Duration::from_millis(20)))
        .build(connection)?)
}

/// Starts `deployment`, builds the holder on a connection of its kind through the proxies,
/// and runs `test`.
async fn run(deployment: Deployment, test: Test) -> Result {
    let redis = Arc::new(ProxiedRedis::start(deployment)?);
    let urls = redis.client_urls();
    match deployment {
        Deployment::Single => {
            let locks = RedisLockService::builder()
                .call_timeout(CALL_TIMEOUT)
                .backoff(
                    Backoff::exponential(Duration::from_millis(1)).max(Duration::from_millis(20)),
                )
                .connect(&urls[0])
                .await?;
            scenario(&redis, locks, test).await
        }
        Deployment::Sentinel => {
            let name = redis
                .master_name()
                .ok_or("a Sentinel group names its master")?;
            scenario(&redis, service(SentinelConnection::new(urls, name)?)?, test).await
        }
        Deployment::Cluster => {
            let client = ClusterClient::builder(urls)
                .connection_timeout(CALL_TIMEOUT)
                .response_timeout(CALL_TIMEOUT)
                .build()?;
            let connection = client.get_async_connection().await?;
            scenario(&redis, service(connection)?, test).await
        }
    }
}

async fn scenario<C: Conn>(redis: &Arc<ProxiedRedis>, locks: Locks<C>, test: Test) -> Result {
    let key = locks.lock_key("job");
    let master_before = redis.master_for_key(&key)?.port();
    // The second client: straight to the key's master, not through a proxy.
    let other = RedisLockService::builder()
        .call_timeout(Duration::from_secs(2))
        .connect(&redis.master_for_key(&key)?.url())
        .await?;
    match test {
        Test::KeepAlive(fault) => {
            let outcome = keep_alive(redis, &locks, &other, fault).await?;
            check(redis.deployment(), fault, &outcome);
        }
        Test::AcquireResetMidScript => orphaned_acquire(redis, &locks, other).await?,
    }
    assert_eq!(
        redis.master_for_key(&key)?.port(),
        master_before,
        "the fault failed the master over"
    );
    Ok(())
}

/// Sets `fault` on every proxy; for a reset, on the proxy of `key`'s master once the
/// holder's next script has run there.
async fn inject(redis: &Arc<ProxiedRedis>, key: &str, fault: Fault) -> Result {
    for proxy in redis.proxies() {
        match fault {
            Fault::Partition => proxy.blackhole(),
            Fault::Latency => proxy.set_latency(CALL_TIMEOUT + Duration::from_millis(250)),
            Fault::HalfOpen => proxy.cut(Direction::Downstream),
            Fault::ResetMidScript => {}
        }
    }
    if let Fault::ResetMidScript = fault {
        let proxy = redis.proxy_for_key(key)?;
        proxy.hold(Direction::Downstream);
        // The next renewal's reply reaches the proxy: its script has run on the server.
        // (Behind Sentinel the Sentinels' pings share the proxy, so a held byte may be a
        // pong; the renewal then fails on the reset or the held reply all the same.)
        held(redis, key).await?;
        assert!(redis.proxy_for_key(key)?.reset_connections() >= 1);
    }
    Ok(())
}

/// Waits, off the runtime, until a reply is held on the proxy of `key`'s master.
async fn held(redis: &Arc<ProxiedRedis>, key: &str) -> Result {
    let (redis, key) = (Arc::clone(redis), key.to_owned());
    tokio::task::spawn_blocking(move || -> Result {
        let proxy: &FaultProxy = redis.proxy_for_key(&key)?;
        Ok(proxy.wait_for_held(Direction::Downstream, 1, BOUND)?)
    })
    .await?
}

/// Polls `try_acquire` on the healthy path; returns the granted token and the instant its
/// request was sent: no grant can happen before that instant.
async fn contend(locks: RedisLockService) -> Result<(FencingToken, Instant)> {
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        let sent = Instant::now();
        if let Some(lease) = locks.try_acquire("job", TTL).await? {
            return Ok((lease.token(), sent));
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    Err("the second client was never granted the lease".into())
}

/// Calls through the faulty path and returns the slowest; each must fail or succeed, but
/// within its timeout.
async fn probe<C: Conn>(locks: &Locks<C>, calls: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..calls {
        let start = Instant::now();
        let _ = locks.try_acquire("probe", TTL).await;
        worst = worst.max(start.elapsed());
    }
    worst
}

async fn keep_alive<C: Conn>(
    redis: &Arc<ProxiedRedis>,
    locks: &Locks<C>,
    other: &RedisLockService,
    fault: Fault,
) -> Result<Outcome> {
    let lease = locks.acquire("job", TTL, Duration::ZERO).await?;
    let token = lease.token();
    let guard = KeepAlive::new().start(locks.clone(), lease)?;
    let lost = guard.lost();
    // A renewal or two on the healthy proxy first.
    tokio::time::sleep(TTL / 2).await;
    assert!(!guard.is_lost());

    let lost_at = Arc::new(Mutex::new(None));
    let watcher = {
        let (lost, lost_at) = (lost.clone(), Arc::clone(&lost_at));
        tokio::spawn(async move {
            let reason = lost.wait().await;
            *lost_at.lock().expect("no panic") = Some(Instant::now());
            reason
        })
    };
    let contender = tokio::spawn(contend(other.clone()));

    inject(redis, &locks.lock_key("job"), fault).await?;

    let reason = tokio::time::timeout(BOUND, watcher).await??;
    let lost_at = lost_at.lock().expect("no panic").ok_or("lost instant")?;
    assert!(guard.is_lost());
    // While the fault is in force, calls on the faulty path still return in time.
    let worst_call = probe(locks, 3).await;
    let (new_token, granted_sent) = tokio::time::timeout(BOUND, contender).await???;
    assert!(
        lost_at < granted_sent,
        "{fault:?}: lost at {lost_at:?}, but a grant was requested at {granted_sent:?}"
    );
    assert!(new_token > token);

    // The old holder's late write, once the path heals, is refused by the fence.
    let fence_key = "{job}:fence";
    other
        .fence(fence_key)
        .set(new_token, "{job}:report", "new")
        .await?;
    redis.heal();
    let late = retry_through_reconnect(|| async {
        locks
            .fence(fence_key)
            .set(token, "{job}:report", "old")
            .await
    })
    .await;
    assert!(
        matches!(&late, Err(LockError::Stale(stale)) if stale.highest() == new_token),
        "{fault:?}: {late:?}"
    );
    assert_eq!(
        redis
            .master_for_key("{job}:report")?
            .command(&["GET", "{job}:report"])?,
        Reply::Bulk(Some(b"new".to_vec()))
    );
    drop(guard);
    Ok(Outcome {
        reason,
        margin: granted_sent - lost_at,
        worst_call,
    })
}

/// Runs `call` until it gets an answer from the server: the first calls after a heal may
/// still meet the reset connection while the connection manager reconnects.
async fn retry_through_reconnect<T, F, Fut>(call: F) -> std::result::Result<T, LockError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, LockError>>,
{
    let deadline = Instant::now() + BOUND;
    loop {
        match call().await {
            Err(LockError::Backend(_) | LockError::Timeout { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

fn check(deployment: Deployment, fault: Fault, outcome: &Outcome) {
    eprintln!(
        "lock, {deployment}, {fault:?}: lost ({}) {:?} before the next grant was requested; \
         slowest call {:?} (timeout {CALL_TIMEOUT:?})",
        outcome.reason, outcome.margin, outcome.worst_call
    );
    match fault {
        // The renewal ran on the server, but its answer was lost with the connection.
        Fault::ResetMidScript => assert!(
            matches!(outcome.reason, LostReason::RenewFailed(_)),
            "{deployment}, {fault:?}: {}",
            outcome.reason
        ),
        // The renewal could not reach the server: it timed out, or the clock passed the expiry.
        _ => assert!(
            matches!(
                outcome.reason,
                LostReason::RenewFailed(LockError::Timeout { .. }) | LostReason::Expired
            ),
            "{deployment}, {fault:?}: {}",
            outcome.reason
        ),
    }
    assert!(
        outcome.worst_call <= CALL_TIMEOUT + SLACK,
        "{deployment}, {fault:?}: a call took {:?}",
        outcome.worst_call
    );
}

/// An acquire whose reply is lost to a reset was granted on the server: nobody holds it
/// knowingly, and no one else is granted it until its TTL runs out. The holder that lost the
/// reply cannot take it either (its retry finds it held): the cost is one TTL of
/// unavailability, never two holders. A Cluster client re-sends a request whose connection
/// dropped, so there the acquire's answer is that retry's: held (by the lost first run).
async fn orphaned_acquire<C: Conn>(
    redis: &Arc<ProxiedRedis>,
    locks: &Locks<C>,
    other: RedisLockService,
) -> Result {
    let deployment = redis.deployment();
    let key = locks.lock_key("job");
    // Warm the connection so the acquire below is the only request in flight.
    assert!(locks.try_acquire("warm", TTL).await?.is_some());
    let proxy = redis.proxy_for_key(&key)?;
    proxy.hold(Direction::Downstream);
    let acquiring = {
        let locks = locks.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            (locks.try_acquire("job", TTL).await, start.elapsed())
        })
    };
    held(redis, &key).await?;
    let ran_at = Instant::now();
    assert!(proxy.reset_connections() >= 1);
    proxy.heal();
    let (answer, elapsed) = acquiring.await?;
    match (deployment, &answer) {
        (_, Err(LockError::Backend(_) | LockError::Timeout { .. })) => {}
        (Deployment::Cluster, Ok(None)) => {}
        _ => panic!("{deployment}: {answer:?}"),
    }
    assert!(elapsed <= CALL_TIMEOUT + SLACK, "{deployment}: {elapsed:?}");
    // The server granted it: held, by no one who knows.
    assert!(matches!(
        redis.master_for_key(&key)?.command(&["EXISTS", &key])?,
        Reply::Integer(1)
    ));
    let (_, granted_sent) = contend(other).await?;
    let orphaned = granted_sent - ran_at;
    eprintln!(
        "lock, {deployment}, acquire reset mid-script: answered {answer:?}, orphaned for \
         {orphaned:?} (TTL {TTL:?})"
    );
    assert!(orphaned + SLACK >= TTL, "regranted after {orphaned:?}");
    assert!(orphaned <= TTL + Duration::from_secs(1), "{orphaned:?}");
    Ok(())
}

/// One test per deployment for each case, named `<case>::<deployment>`.
macro_rules! on_every_deployment {
    ($($(#[$doc:meta])* $case:ident => $test:expr;)*) => {$(
        $(#[$doc])*
        mod $case {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn single() -> Result {
                run(Deployment::Single, $test).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sentinel() -> Result {
                run(Deployment::Sentinel, $test).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() -> Result {
                run(Deployment::Cluster, $test).await
            }
        }
    )*};
}

on_every_deployment! {
    a_partition_longer_than_the_ttl_fires_lost_before_a_regrant =>
        Test::KeepAlive(Fault::Partition);
    latency_beyond_the_call_timeout_fires_lost_before_a_regrant =>
        Test::KeepAlive(Fault::Latency);
    a_reset_mid_renewal_fires_lost_before_a_regrant => Test::KeepAlive(Fault::ResetMidScript);
    a_half_open_connection_fires_lost_before_a_regrant => Test::KeepAlive(Fault::HalfOpen);
    an_acquire_reset_mid_script_orphans_the_lease_for_one_ttl_and_no_more =>
        Test::AcquireResetMidScript;
}
