//! Network faults between a lock holder and a real etcd member, through keel-testkit's
//! `FaultProxy`: a partition longer than the TTL, and a half-open connection (requests
//! arrive, answers never do).
//!
//! Each scenario checks, on real time (etcd counts lease TTLs on its own clock):
//! - the holder's lost signal fires before a second client, connected straight to the
//!   member, *sends* the request that is granted the lock (so before any grant);
//! - the fence then rejects the old holder's late write;
//! - a call through the faulty path returns within the call timeout plus [`SLACK`].

#![cfg(feature = "etcd")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_lock::{EtcdLockService, FencingToken, KeepAlive, LockError, LockService, LostReason};
use keel_testkit::{Direction, EtcdCluster, FaultProxy};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// etcd's unit is a whole second; one is the shortest lease it grants here.
const TTL: Duration = Duration::from_secs(1);
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// What a call may take beyond its timeout on a loaded 2-core machine: scheduling, not I/O.
const SLACK: Duration = Duration::from_millis(100);
const BOUND: Duration = Duration::from_secs(15);

#[derive(Copy, Clone, Debug)]
enum Fault {
    Partition,
    HalfOpen,
}

async fn contend(locks: EtcdLockService) -> Result<(FencingToken, Instant)> {
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        let sent = Instant::now();
        if let Some(lease) = locks.try_acquire("job", TTL).await? {
            return Ok((lease.token(), sent));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err("the second client was never granted the lock".into())
}

async fn run(fault: Fault) -> Result {
    let cluster = EtcdCluster::builder().members(1)?.start()?;
    let member = cluster.member(0)?;
    let proxy = FaultProxy::start(member.client_port())?;
    let locks = EtcdLockService::builder()
        .call_timeout(CALL_TIMEOUT)
        .connect(&[proxy.endpoint()])
        .await?;
    let other = EtcdLockService::builder()
        .call_timeout(Duration::from_secs(3))
        .connect(&cluster.endpoints())
        .await?;

    let lease = locks.acquire("job", TTL, Duration::ZERO).await?;
    let token = lease.token();
    let guard = KeepAlive::new().start(locks.clone(), lease)?;
    tokio::time::sleep(TTL / 2).await;
    assert!(!guard.is_lost());

    let lost_at = Arc::new(Mutex::new(None));
    let watcher = {
        let (lost, lost_at) = (guard.lost(), Arc::clone(&lost_at));
        tokio::spawn(async move {
            let reason = lost.wait().await;
            *lost_at.lock().expect("no panic") = Some(Instant::now());
            reason
        })
    };
    let contender = tokio::spawn(contend(other.clone()));
    match fault {
        Fault::Partition => proxy.blackhole(),
        Fault::HalfOpen => proxy.cut(Direction::Downstream),
    }
    let reason = tokio::time::timeout(BOUND, watcher).await??;
    let lost_at = lost_at.lock().expect("no panic").ok_or("lost instant")?;
    assert!(
        matches!(
            reason,
            LostReason::RenewFailed(LockError::Timeout { .. }) | LostReason::Expired
        ),
        "{fault:?}: {reason}"
    );
    let start = Instant::now();
    let _ = locks.try_acquire("probe", TTL).await;
    let probe = start.elapsed();

    let (new_token, granted_sent) = tokio::time::timeout(BOUND, contender).await???;
    assert!(
        lost_at < granted_sent,
        "{fault:?}: lost at {lost_at:?}, but a grant was requested at {granted_sent:?}"
    );
    assert!(new_token > token);
    eprintln!(
        "lock, etcd, {fault:?}: lost ({reason}) {:?} before the next grant was requested; \
         probe call {probe:?} (timeout {CALL_TIMEOUT:?})",
        granted_sent - lost_at
    );
    assert!(
        probe <= CALL_TIMEOUT + SLACK,
        "{fault:?}: a call took {probe:?}"
    );

    other
        .fence("job/fence")
        .set(new_token, "job/report", "new")
        .await?;
    proxy.heal();
    let deadline = Instant::now() + BOUND;
    let late = loop {
        match locks
            .fence("job/fence")
            .set(token, "job/report", "old")
            .await
        {
            Err(LockError::Backend(_) | LockError::Timeout { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other,
        }
    };
    assert!(
        matches!(&late, Err(LockError::Stale(stale)) if stale.highest() == new_token),
        "{fault:?}: {late:?}"
    );
    let got = other.client().clone().get("job/report", None).await?;
    assert_eq!(got.kvs()[0].value(), b"new");
    drop(guard);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_longer_than_the_ttl_fires_lost_before_a_regrant() -> Result {
    run(Fault::Partition).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_fires_lost_before_a_regrant() -> Result {
    run(Fault::HalfOpen).await
}
