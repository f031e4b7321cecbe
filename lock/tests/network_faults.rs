//! Network faults between a lock holder and a real redis-server, through keel-testkit's
//! `FaultProxy`: a partition longer than the TTL, latency beyond the call timeout, a
//! connection reset in the middle of a renewal script, and a half-open connection.
//!
//! Each scenario checks, on real time (the server counts TTLs on its own clock):
//! - the holder's lost signal fires before a second client, on a healthy path to the same
//!   server, *sends* the request that is granted the lease (so before any grant);
//! - the fence then rejects the old holder's late write;
//! - every call through the faulty path returns within the call timeout plus [`SLACK`].

#![cfg(feature = "redis")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_lock::{FencingToken, KeepAlive, LockError, LockService, LostReason, RedisLockService};
use keel_testkit::{Direction, FaultProxy, RedisServer, Reply};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Short, so each scenario takes about a second; the server expires keys on real time.
const TTL: Duration = Duration::from_millis(600);
/// The holder's call timeout, a quarter of the TTL.
const CALL_TIMEOUT: Duration = Duration::from_millis(150);
/// What a call may take beyond its timeout on a loaded 2-core machine: scheduling, not I/O.
const SLACK: Duration = Duration::from_millis(100);
/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

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

/// What a scenario measured.
#[derive(Debug)]
struct Outcome {
    reason: LostReason,
    /// From the lost signal to the send of the second client's granted request.
    margin: Duration,
    /// The slowest call through the faulty path.
    worst_call: Duration,
}

async fn holder(proxy: &FaultProxy) -> Result<RedisLockService> {
    Ok(RedisLockService::builder()
        .call_timeout(CALL_TIMEOUT)
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
        .connect(&proxy.url())
        .await?)
}

async fn healthy(server: &RedisServer) -> Result<RedisLockService> {
    Ok(RedisLockService::builder()
        .call_timeout(Duration::from_secs(2))
        .connect(&server.url())
        .await?)
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
async fn probe(locks: &RedisLockService, calls: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..calls {
        let start = Instant::now();
        let _ = locks.try_acquire("probe", TTL).await;
        worst = worst.max(start.elapsed());
    }
    worst
}

async fn run(fault: Fault) -> Result<Outcome> {
    let server = RedisServer::start()?;
    let proxy = Arc::new(FaultProxy::start(server.port())?);
    let locks = holder(&proxy).await?;
    let other = healthy(&server).await?;

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

    match fault {
        Fault::Partition => proxy.blackhole(),
        Fault::Latency => proxy.set_latency(CALL_TIMEOUT + Duration::from_millis(250)),
        Fault::HalfOpen => proxy.cut(Direction::Downstream),
        Fault::ResetMidScript => {
            proxy.hold(Direction::Downstream);
            let waiting = Arc::clone(&proxy);
            // The next renewal's reply reaches the proxy: its script has run on the server.
            tokio::task::spawn_blocking(move || {
                waiting.wait_for_held(Direction::Downstream, 1, BOUND)
            })
            .await??;
            assert_eq!(proxy.reset_connections(), 1);
        }
    }

    let reason = tokio::time::timeout(BOUND, watcher).await??;
    let lost_at = lost_at.lock().expect("no panic").ok_or("lost instant")?;
    assert!(guard.is_lost());
    // While the fault is in force, calls on the faulty path still return in time.
    let worst_call = probe(&locks, 3).await;
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
    proxy.heal();
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
        server.command(&["GET", "{job}:report"])?,
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

fn check(fault: Fault, outcome: &Outcome) {
    eprintln!(
        "lock, redis, {fault:?}: lost ({}) {:?} before the next grant was requested; \
         slowest call {:?} (timeout {CALL_TIMEOUT:?})",
        outcome.reason, outcome.margin, outcome.worst_call
    );
    assert!(
        outcome.worst_call <= CALL_TIMEOUT + SLACK,
        "{fault:?}: a call took {:?}",
        outcome.worst_call
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_longer_than_the_ttl_fires_lost_before_a_regrant() -> Result {
    let outcome = run(Fault::Partition).await?;
    // The renewal could not reach the server: it timed out, or the clock passed the expiry.
    assert!(
        matches!(
            outcome.reason,
            LostReason::RenewFailed(LockError::Timeout { .. }) | LostReason::Expired
        ),
        "{}",
        outcome.reason
    );
    check(Fault::Partition, &outcome);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_beyond_the_call_timeout_fires_lost_before_a_regrant() -> Result {
    let outcome = run(Fault::Latency).await?;
    assert!(
        matches!(
            outcome.reason,
            LostReason::RenewFailed(LockError::Timeout { .. }) | LostReason::Expired
        ),
        "{}",
        outcome.reason
    );
    check(Fault::Latency, &outcome);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_renewal_fires_lost_before_a_regrant() -> Result {
    let outcome = run(Fault::ResetMidScript).await?;
    // The renewal ran on the server, but its answer was lost with the connection.
    assert!(
        matches!(outcome.reason, LostReason::RenewFailed(_)),
        "{}",
        outcome.reason
    );
    check(Fault::ResetMidScript, &outcome);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_fires_lost_before_a_regrant() -> Result {
    let outcome = run(Fault::HalfOpen).await?;
    assert!(
        matches!(
            outcome.reason,
            LostReason::RenewFailed(LockError::Timeout { .. }) | LostReason::Expired
        ),
        "{}",
        outcome.reason
    );
    check(Fault::HalfOpen, &outcome);
    Ok(())
}

/// An acquire whose reply is lost to a reset was granted on the server: nobody holds it
/// knowingly, and no one else is granted it until its TTL runs out. The holder that lost the
/// reply cannot take it either (its retry finds it held): the cost is one TTL of
/// unavailability, never two holders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquire_reset_mid_script_orphans_the_lease_for_one_ttl_and_no_more() -> Result {
    let server = RedisServer::start()?;
    let proxy = Arc::new(FaultProxy::start(server.port())?);
    let locks = holder(&proxy).await?;
    let other = healthy(&server).await?;
    // Warm the connection so the acquire below is the only request in flight.
    assert!(locks.try_acquire("warm", TTL).await?.is_some());

    proxy.hold(Direction::Downstream);
    let acquiring = {
        let locks = locks.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            (locks.try_acquire("job", TTL).await, start.elapsed())
        })
    };
    let waiting = Arc::clone(&proxy);
    tokio::task::spawn_blocking(move || waiting.wait_for_held(Direction::Downstream, 1, BOUND))
        .await??;
    let ran_at = Instant::now();
    proxy.reset_connections();
    proxy.heal();
    let (answer, elapsed) = acquiring.await?;
    assert!(
        matches!(
            answer,
            Err(LockError::Backend(_) | LockError::Timeout { .. })
        ),
        "{answer:?}"
    );
    assert!(elapsed <= CALL_TIMEOUT + SLACK, "{elapsed:?}");
    // The server granted it: held, by no one who knows.
    assert!(matches!(
        server.command(&["EXISTS", &other.lock_key("job")])?,
        Reply::Integer(1)
    ));
    let (_, granted_sent) = contend(other).await?;
    let orphaned = granted_sent - ran_at;
    eprintln!("lock, redis, acquire reset mid-script: orphaned for {orphaned:?} (TTL {TTL:?})");
    assert!(orphaned + SLACK >= TTL, "regranted after {orphaned:?}");
    assert!(orphaned <= TTL + Duration::from_secs(1), "{orphaned:?}");
    Ok(())
}
