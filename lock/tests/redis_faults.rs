//! Fault tests against a real redis-server: paused holders, a paused server, restarts, and
//! contention checked on a recorded history.

#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use keel_lock::{
    Backoff, FencingToken, KeepAlive, Lease, LockError, LockService, LostReason, RedisLockService,
};
use keel_testkit::{Persistence, RedisServer, Reply};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(30);
/// The call timeout of the tests that pause the server: short, so they time out quickly.
const CALL_TIMEOUT: Duration = Duration::from_millis(200);
/// The call timeout of the other tests: long enough that a loaded machine never times out a
/// call whose script ran (which would leave the lock held for the whole TTL).
const RELAXED_CALL_TIMEOUT: Duration = Duration::from_secs(2);

async fn connect(server: &RedisServer) -> Result<RedisLockService> {
    connect_with(server, RELAXED_CALL_TIMEOUT).await
}

async fn connect_with(server: &RedisServer, call_timeout: Duration) -> Result<RedisLockService> {
    Ok(RedisLockService::builder()
        .call_timeout(call_timeout)
        .backoff(Backoff::exponential(Duration::from_millis(1)).max(Duration::from_millis(20)))
        .connect(&server.url())
        .await?)
}

/// Acquires, retrying while the connection comes back after a restart.
async fn acquire_after_restart(locks: &RedisLockService, name: &str) -> Result<Lease> {
    let mut last = None;
    for _ in 0..50 {
        match locks.acquire(name, TTL, Duration::from_secs(5)).await {
            Ok(lease) => return Ok(lease),
            Err(error @ (LockError::Backend(_) | LockError::Timeout { .. })) => {
                last = Some(error);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(format!("no acquire after restart: {last:?}").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holders_late_write_is_rejected_by_the_fence() -> Result {
    let server = RedisServer::start()?;
    let locks = connect(&server).await?;
    let fence = locks.fence("{account}:fence");
    let ttl = Duration::from_millis(100);

    let paused = locks.acquire("account", ttl, Duration::ZERO).await?;
    fence.set(paused.token(), "{account}:balance", 100).await?;
    // The holder now stalls. Its lease runs out; the next holder waits for that and writes.
    let next = locks
        .acquire("account", TTL, Duration::from_secs(5))
        .await?;
    assert!(next.token() > paused.token());
    fence.set(next.token(), "{account}:balance", 250).await?;
    // The stalled holder wakes up and writes what it computed before the pause.
    match fence.set(paused.token(), "{account}:balance", 90).await {
        Err(LockError::Stale(stale)) => assert_eq!(stale.highest(), next.token()),
        other => panic!("the late write was not rejected: {other:?}"),
    }
    assert_eq!(
        server.command(&["GET", "{account}:balance"])?,
        Reply::Bulk(Some(b"250".to_vec()))
    );
    // Nor can it release or extend the new holder's lease.
    assert!(locks.release(&paused).await.unwrap_err().is_not_held());
    assert!(locks.extend(&paused, TTL).await.unwrap_err().is_not_held());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_makes_acquire_time_out() -> Result {
    let mut server = RedisServer::start()?;
    let locks = connect_with(&server, CALL_TIMEOUT).await?;
    locks.try_acquire("warmup", TTL).await?; // connected, scripts loaded
    server.pause()?;
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        locks.acquire("a", TTL, Duration::from_secs(2)),
    )
    .await?;
    server.resume()?;
    match outcome {
        Err(LockError::Timeout { operation, after }) => {
            assert_eq!(operation, "acquire");
            assert_eq!(after, CALL_TIMEOUT);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_during_renewal_never_leaves_two_holders() -> Result {
    let mut server = RedisServer::start()?;
    let holder = connect_with(&server, CALL_TIMEOUT).await?;
    let contender = connect_with(&server, CALL_TIMEOUT).await?;
    // The renewal that times out starts with two thirds of the TTL left; at 2 s that is
    // over a second more than the 200 ms call timeout, so even a loaded machine reports
    // the timeout rather than an expiry.
    let ttl = Duration::from_secs(2);
    let lease = holder.acquire("job", ttl, Duration::ZERO).await?;
    let guard = KeepAlive::new().start(holder.clone(), lease.clone())?;
    let lost = guard.lost();
    contender.try_acquire("warmup", TTL).await?;

    server.pause()?;
    // A contender calling now times out with an error; it does not get the lock.
    match contender.try_acquire("job", TTL).await {
        Err(LockError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The holder's next renewal times out: it is told to stop, before its lease could run out.
    let reason = tokio::time::timeout(Duration::from_secs(5), lost.wait()).await?;
    assert!(
        matches!(reason, LostReason::RenewFailed(LockError::Timeout { .. })),
        "{reason:?}"
    );
    let stopped_at = holder.now();
    server.resume()?;

    // The contender gets in only once the old lease is gone, and the holder had stopped by then.
    let next = contender
        .acquire("job", TTL, Duration::from_secs(5))
        .await?;
    assert!(guard.is_lost());
    assert!(next.token() > lease.token());
    // Both services read the same process clock: the holder had stopped before the
    // contender even sent the request that was granted.
    assert!(stopped_at <= next.expires_at() - TTL);
    let renewed_until = lost.lease().expires_at();
    assert!(
        stopped_at <= renewed_until,
        "the holder stopped within its (renewed) lease"
    );
    drop(guard);
    contender.release(&next).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_with_fsynced_appends_keeps_lock_and_counter() -> Result {
    let mut server = RedisServer::builder()
        .persistence(Persistence::AppendOnlyAlways)
        .start()?;
    let locks = connect(&server).await?;
    let mut last = FencingToken::default();
    for _ in 0..20 {
        let lease = locks.acquire("ledger", TTL, Duration::ZERO).await?;
        assert!(lease.token() > last);
        last = lease.token();
        locks.release(&lease).await?;
    }
    let held = locks.acquire("ledger", TTL, Duration::ZERO).await?;
    assert!(held.token() > last);
    server.kill()?; // a crash: nothing flushed beyond what fsync wrote
    server.restart()?;
    // The lease survived the crash: nobody else gets it, and the holder can still release it.
    let mut still_held = None;
    for _ in 0..50 {
        match locks.try_acquire("ledger", TTL).await {
            Ok(found) => {
                still_held = Some(found);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(matches!(still_held, Some(None)), "{still_held:?}");
    locks.release(&held).await?;
    let after = locks.acquire("ledger", TTL, Duration::ZERO).await?;
    assert!(
        after.token() > held.token(),
        "{:?} after {:?}",
        after.token(),
        held.token()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_loses_everything_never_reuses_a_token() -> Result {
    let mut server = RedisServer::start()?; // no persistence at all
    let locks = connect(&server).await?;
    let mut issued = Vec::new();
    for round in 0..3 {
        for _ in 0..10 {
            let lease = acquire_after_restart(&locks, "ledger").await?;
            issued.push(lease.token());
            locks.release(&lease).await?;
        }
        if round < 2 {
            server.restart()?;
            assert_eq!(
                server.command(&["DBSIZE"])?,
                Reply::Integer(0),
                "data was lost"
            );
        }
    }
    for pair in issued.windows(2) {
        assert!(pair[0] < pair[1], "token {} after {}", pair[1], pair[0]);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contenders_take_turns_with_increasing_tokens() -> Result {
    const CONTENDERS: usize = 4;
    const ROUNDS: usize = 25;
    let server = RedisServer::start()?;
    let history = Arc::new(common::History::default());
    let mut tasks = Vec::new();
    for holder in 0..CONTENDERS {
        let locks = connect(&server).await?; // one connection per contender
        let history = history.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let lease = locks.acquire("hot", TTL, Duration::from_secs(20)).await?;
                history.enter(holder, lease.token().get());
                tokio::task::yield_now().await;
                history.exit(holder, lease.token().get());
                locks.release(&lease).await?;
            }
            Ok::<(), LockError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let events = history.events();
    assert_eq!(events.len(), CONTENDERS * ROUNDS * 2);
    common::check(&events)?;
    Ok(())
}
