//! Fault tests against a real 3-member etcd cluster: holders contend for one lock while a
//! member is killed, paused or restarted, and the recorded history is checked: no two holders
//! inside at once, tokens strictly increasing, every current holder's fenced write accepted
//! and every expired holder's refused.

#![cfg(feature = "etcd")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{History, check};
use keel_lock::{EtcdLockService, LockError, LockService};
use keel_testkit::{EtcdCluster, TestkitError};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Long enough that no holder's lease runs out while it is inside, whatever a fault does to
/// one call (3 calls of at most `CALL_TIMEOUT` each).
const TTL: Duration = Duration::from_secs(4);
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
const HOLDERS: usize = 3;
/// Grants wanted after the fault: the service must keep granting.
const AFTER: usize = 10;

#[derive(Debug, Default)]
struct Counts {
    grants: AtomicUsize,
    /// A current holder's fenced write refused: must be 0.
    current_refused: AtomicUsize,
    /// A holder found its lease expired when it left: must be 0.
    expired_inside: AtomicUsize,
    /// Calls that failed (timeouts, unreachable members): expected during faults.
    errors: AtomicUsize,
    /// The first error, to show what a fault looks like to a holder.
    first_error: std::sync::Mutex<Option<String>>,
}

impl Counts {
    fn error(&self, error: &LockError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert_with(|| error.to_string());
    }
}

/// Runs `HOLDERS` contending holders while `fault` runs on the cluster, then a while after,
/// and checks the history.
fn contend_during(
    fault: impl FnOnce(&mut EtcdCluster) -> std::result::Result<(), TestkitError> + Send + 'static,
) -> Result<Arc<Counts>> {
    let cluster = EtcdCluster::start()?;
    let endpoints = cluster.endpoints();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let history = Arc::new(History::default());
    let counts = Arc::new(Counts::default());
    runtime.block_on(async {
        let locks = EtcdLockService::builder()
            .call_timeout(CALL_TIMEOUT)
            .connect(&endpoints)
            .await?;
        let fence = locks.fence("faults/fence");
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for holder in 0..HOLDERS {
            let (locks, fence, stop) = (locks.clone(), fence.clone(), stop.clone());
            let (history, counts) = (history.clone(), counts.clone());
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let lease = match locks.acquire("faults", TTL, Duration::from_secs(20)).await {
                        Ok(lease) => lease,
                        Err(error) => {
                            counts.error(&error);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let token = lease.token().get();
                    history.enter(holder, token);
                    counts.grants.fetch_add(1, Ordering::Relaxed);
                    match fence
                        .set(lease.token(), "faults/data", holder.to_string())
                        .await
                    {
                        Ok(()) => {}
                        Err(LockError::Stale(_)) => {
                            counts.current_refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => counts.error(&error),
                    }
                    if lease.is_expired(locks.now()) {
                        counts.expired_inside.fetch_add(1, Ordering::Relaxed);
                    }
                    history.exit(holder, token);
                    if let Err(error) = locks.release(&lease).await {
                        // Left anyway: the key goes when its etcd lease runs out.
                        counts.error(&error);
                    }
                }
            }));
        }
        // Some grants before the fault, the fault, then grants after it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = counts.grants.load(Ordering::Relaxed);
        let faulted = tokio::task::spawn_blocking(move || {
            let mut cluster = cluster;
            fault(&mut cluster).map(|()| cluster)
        })
        .await??;
        let after_fault = counts.grants.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while counts.grants.load(Ordering::Relaxed) < after_fault + AFTER
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.await?;
        }
        drop(faulted);
        eprintln!(
            "grants: {before} before the fault, {} in all; {counts:?}",
            counts.grants.load(Ordering::Relaxed)
        );
        assert!(before > 0, "no grant before the fault");
        assert!(
            counts.grants.load(Ordering::Relaxed) >= after_fault + AFTER,
            "fewer than {AFTER} grants after the fault: {counts:?}"
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    let events = history.events();
    check(&events)?;
    assert_eq!(counts.current_refused.load(Ordering::Relaxed), 0);
    assert_eq!(counts.expired_inside.load(Ordering::Relaxed), 0);
    Ok(counts)
}

/// Holds the fault for a little while, so holders run into it.
fn hold() {
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn leader_killed() -> Result {
    contend_during(|cluster| {
        cluster.kill_leader()?;
        hold();
        Ok(())
    })?;
    Ok(())
}

#[test]
fn leader_paused() -> Result {
    contend_during(|cluster| {
        let paused = cluster.pause_leader()?.old;
        hold();
        cluster.resume(paused)?;
        cluster.wait_until_healthy()
    })?;
    Ok(())
}

#[test]
fn follower_paused() -> Result {
    contend_during(|cluster| {
        let follower = cluster.followers()?[0];
        cluster.pause(follower)?;
        hold();
        cluster.resume(follower)?;
        cluster.wait_until_healthy()
    })?;
    Ok(())
}

#[test]
fn member_restarted() -> Result {
    contend_during(|cluster| {
        // The leader, so the restart also forces an election.
        let leader = cluster.leader()?;
        cluster.kill(leader)?;
        hold();
        cluster.restart(leader)?;
        cluster.wait_until_healthy()
    })?;
    Ok(())
}

/// A holder pauses past its TTL (it stops renewing): the lock goes to another, and the
/// paused holder's late write is refused by the fence.
#[test]
fn holder_paused_past_its_ttl() -> Result {
    let cluster = EtcdCluster::start()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
        let fence = locks.fence("paused/fence");
        let history = History::default();
        let mut stale_accepted = 0;
        let mut last = 0;
        for round in 0..3 {
            let paused = locks
                .acquire("paused", Duration::from_secs(1), Duration::from_secs(20))
                .await?;
            history.enter(0, paused.token().get());
            fence.set(paused.token(), "paused/data", "p").await?;
            // Paused: no renewal. Its lease expires (etcd deletes the key); the clock agrees.
            let next = locks
                .acquire("paused", TTL, Duration::from_secs(20))
                .await?;
            assert!(paused.is_expired(locks.now()), "round {round}");
            history.exit(0, paused.token().get());
            history.enter(1, next.token().get());
            assert!(next.token() > paused.token() && paused.token().get() > last);
            last = next.token().get();
            fence.set(next.token(), "paused/data", "n").await?;
            if fence
                .set(paused.token(), "paused/data", "late")
                .await
                .is_ok()
            {
                stale_accepted += 1;
            }
            history.exit(1, next.token().get());
            locks.release(&next).await?;
        }
        assert_eq!(stale_accepted, 0);
        check(&history.events())?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

/// The holder's client is partitioned from etcd (through keel-testkit's fault proxy) for
/// longer than its TTL: its lost signal fires before anyone else is granted the lock, and
/// once the partition heals its late write is refused by the fence.
#[test]
fn partitioned_holder_learns_it_lost_before_anyone_else_is_granted() -> Result {
    use keel_lock::KeepAlive;
    use keel_testkit::FaultProxy;

    let cluster = EtcdCluster::builder().members(1)?.start()?;
    let proxy = FaultProxy::start(cluster.member(0)?.client_port())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let through_proxy = EtcdLockService::builder()
            .call_timeout(Duration::from_millis(300))
            .connect(&[proxy.endpoint()])
            .await?;
        let direct = EtcdLockService::connect(&cluster.endpoints()).await?;
        let ttl = Duration::from_secs(2);
        let lease = through_proxy.acquire("part", ttl, Duration::ZERO).await?;
        let guard = KeepAlive::new().start(through_proxy.clone(), lease.clone())?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!guard.is_lost());

        proxy.blackhole();
        let lost = guard.lost();
        let lost_at = tokio::spawn(async move {
            let reason = lost.wait().await;
            (tokio::time::Instant::now(), reason)
        });
        let next = direct
            .acquire("part", Duration::from_secs(10), Duration::from_secs(20))
            .await?;
        let granted_at = tokio::time::Instant::now();
        let (lost_at, reason) = lost_at.await?;
        eprintln!(
            "lost ({reason:?}) {:?} before the next grant",
            granted_at - lost_at
        );
        assert!(lost_at <= granted_at, "the old holder learned too late");
        assert!(next.token() > lease.token());

        let fence = direct.fence("part/fence");
        fence.set(next.token(), "part/data", "new").await?;
        proxy.heal();
        let late = through_proxy.fence("part/fence");
        let mut refused = false;
        for _ in 0..50 {
            match late.set(lease.token(), "part/data", "late").await {
                Err(LockError::Stale(_)) => {
                    refused = true;
                    break;
                }
                Ok(()) => return Err("a stale write was accepted".into()),
                // The proxied connection is coming back.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        assert!(refused, "the late write never reached the fence");
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
