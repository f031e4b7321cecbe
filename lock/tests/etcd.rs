//! The etcd service and fence against a real 3-member etcd cluster started by keel-testkit.

#![cfg(feature = "etcd")]

use std::time::{Duration, Instant};

use keel_lock::{EtcdLockService, KeepAlive, LockError, LockService};
use keel_testkit::EtcdCluster;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_excludes_and_releases_with_increasing_tokens() -> Result {
    let cluster = EtcdCluster::start()?;
    let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    let mut last = 0;
    for _ in 0..5 {
        let lease = locks.acquire("job", TTL, Duration::ZERO).await?;
        assert!(lease.token().get() > last);
        last = lease.token().get();
        assert!(locks.try_acquire("job", TTL).await?.is_none());
        // The token is the key's create revision.
        let got = locks
            .client()
            .clone()
            .get(locks.lock_key("job"), None)
            .await?;
        assert_eq!(got.kvs()[0].create_revision() as u64, lease.token().get());
        locks.release(&lease).await?;
        assert!(locks.release(&lease).await.unwrap_err().is_not_held());
    }
    assert!(matches!(
        locks.try_acquire("", TTL).await,
        Err(LockError::EmptyName)
    ));
    assert!(matches!(
        locks.try_acquire("job", Duration::ZERO).await,
        Err(LockError::InvalidTtl { .. })
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_keeps_the_token_and_fails_once_released() -> Result {
    let cluster = EtcdCluster::start()?;
    let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    let lease = locks
        .acquire("job", Duration::from_secs(2), Duration::ZERO)
        .await?;
    let same = locks.extend(&lease, Duration::from_secs(2)).await?;
    assert_eq!(same.token(), lease.token());
    // A longer TTL moves the key to a new etcd lease; the token (create revision) stays.
    let longer = locks.extend(&lease, Duration::from_secs(60)).await?;
    assert_eq!(longer.token(), lease.token());
    let key = locks
        .client()
        .clone()
        .get(locks.lock_key("job"), None)
        .await?;
    let etcd_lease = key.kvs()[0].lease();
    let ttl = locks
        .client()
        .clone()
        .lease_time_to_live(etcd_lease, None)
        .await?;
    assert!(ttl.granted_ttl() >= 60);
    locks.release(&longer).await?;
    assert!(locks.extend(&lease, TTL).await.unwrap_err().is_not_held());
    // Release also revoked the etcd lease.
    let gone = locks
        .client()
        .clone()
        .lease_time_to_live(etcd_lease, None)
        .await?;
    assert_eq!(gone.ttl(), -1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_is_woken_by_the_release_not_by_polling() -> Result {
    let cluster = EtcdCluster::start()?;
    let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    let held = locks
        .acquire("job", Duration::from_secs(60), Duration::ZERO)
        .await?;
    let waiter = {
        let locks = locks.clone();
        tokio::spawn(async move {
            let asked = Instant::now();
            let lease = locks.acquire("job", TTL, Duration::from_secs(30)).await;
            (lease, asked.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released = Instant::now();
    locks.release(&held).await?;
    let (lease, waited) = waiter.await?;
    let lease = lease?;
    assert!(lease.token() > held.token());
    assert!(waited >= Duration::from_millis(300));
    // Woken within moments of the release, although the holder's TTL was a minute.
    assert!(
        released.elapsed() < Duration::from_secs(5),
        "{:?}",
        released.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_holder_is_replaced_and_its_late_write_is_fenced() -> Result {
    let cluster = EtcdCluster::start()?;
    let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    let fence = locks.fence("acct/fence");
    // The holder "pauses": it never renews its 1 s lease.
    let paused = locks
        .acquire("acct", Duration::from_secs(1), Duration::ZERO)
        .await?;
    fence.set(paused.token(), "acct/balance", "100").await?;
    // etcd deletes the key when the lease runs out; the waiter's watch sees it.
    let next = locks.acquire("acct", TTL, Duration::from_secs(20)).await?;
    assert!(next.token() > paused.token());
    assert!(paused.is_expired(locks.now()));
    fence.set(next.token(), "acct/balance", "90").await?;
    // The paused holder wakes and writes: refused, nothing written.
    match fence.set(paused.token(), "acct/balance", "0").await {
        Err(LockError::Stale(stale)) => assert_eq!(stale.highest(), next.token()),
        other => return Err(format!("the stale write must be refused, got {other:?}").into()),
    }
    let got = locks.client().clone().get("acct/balance", None).await?;
    assert_eq!(got.kvs()[0].value(), b"90");
    assert!(locks.extend(&paused, TTL).await.unwrap_err().is_not_held());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_keep_alive_holds_an_etcd_lease_past_its_ttl() -> Result {
    let cluster = EtcdCluster::start()?;
    let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    let lease = locks
        .acquire("job", Duration::from_secs(1), Duration::ZERO)
        .await?;
    let guard = KeepAlive::new().start(locks.clone(), lease.clone())?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!guard.is_lost());
    assert!(locks.try_acquire("job", TTL).await?.is_none());
    Ok(())
}
