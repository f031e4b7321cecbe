//! The Redis service and fence against a real redis-server started by keel-testkit.

#![cfg(feature = "redis")]

use std::time::Duration;

use keel_lock::{
    Backoff, KeepAlive, LockError, LockService, LostReason, RedisFence, RedisLockService,
};
use keel_testkit::{RedisServer, Reply};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(30);

async fn connect(server: &RedisServer) -> Result<RedisLockService> {
    Ok(RedisLockService::builder()
        // Generous: a call that times out after its script ran leaves the lock held for
        // the whole TTL, and a loaded CI machine can take hundreds of milliseconds.
        .call_timeout(Duration::from_secs(2))
        .connect(&server.url())
        .await?)
}

/// Waits (polling the server, not sleeping a fixed time) until `key` is gone.
async fn until_gone(server: &RedisServer, key: &str) -> Result {
    for _ in 0..500 {
        if server.command(&["EXISTS", key])? == Reply::Integer(0) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("{key} never expired").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_release_extend_compare_on_the_token() -> Result {
    let server = RedisServer::start()?;
    let locks = connect(&server).await?;
    let first = locks.try_acquire("jobs", TTL).await?.ok_or("free")?;
    assert!(locks.try_acquire("jobs", TTL).await?.is_none());
    assert_eq!(
        server.command(&["GET", &locks.lock_key("jobs")])?,
        Reply::Bulk(Some(first.token().to_string().into_bytes()))
    );
    // The token is at least the server's clock in microseconds.
    let Reply::Array(Some(time)) = server.command(&["TIME"])? else {
        return Err("TIME".into());
    };
    let Reply::Bulk(Some(seconds)) = &time[0] else {
        return Err("TIME".into());
    };
    let seconds: u64 = std::str::from_utf8(seconds)?.parse()?;
    assert!(first.token().get() / 1_000_000 + 5 >= seconds);

    let extended = locks.extend(&first, Duration::from_secs(60)).await?;
    assert_eq!(extended.token(), first.token());
    let Reply::Integer(pttl) = server.command(&["PTTL", &locks.lock_key("jobs")])? else {
        return Err("PTTL".into());
    };
    assert!(pttl > 30_000, "{pttl}");

    locks.release(&first).await?;
    assert!(locks.release(&first).await.unwrap_err().is_not_held());
    let second = locks.try_acquire("jobs", TTL).await?.ok_or("free")?;
    assert!(second.token() > first.token());
    assert!(locks.extend(&first, TTL).await.unwrap_err().is_not_held());
    assert!(locks.release(&first).await.unwrap_err().is_not_held());
    locks.release(&second).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_cannot_be_extended() -> Result {
    let server = RedisServer::start()?;
    let locks = connect(&server).await?;
    let lease = locks
        .try_acquire("short", Duration::from_millis(50))
        .await?
        .ok_or("free")?;
    until_gone(&server, &locks.lock_key("short")).await?;
    assert!(locks.extend(&lease, TTL).await.unwrap_err().is_not_held());
    assert_eq!(
        server.command(&["EXISTS", &locks.lock_key("short")])?,
        Reply::Integer(0)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_acquire_gets_the_lock_after_release_or_gives_up() -> Result {
    let server = RedisServer::start()?;
    let locks = connect(&server).await?;
    let first = locks.acquire("a", TTL, Duration::ZERO).await?;
    match locks.acquire("a", TTL, Duration::from_millis(100)).await {
        Err(LockError::Busy { waited, .. }) => assert!(waited >= Duration::from_millis(100)),
        other => panic!("expected Busy, got {other:?}"),
    }
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move { locks.acquire("a", TTL, Duration::from_secs(10)).await }
    });
    tokio::task::yield_now().await;
    locks.release(&first).await?;
    let second = waiter.await??;
    assert!(second.token() > first.token());
    Ok(())
}

/// How many times the server ran `PTTL`: once per acquire attempt (only the script calls it).
fn acquire_attempts(server: &RedisServer) -> Result<u64> {
    let Reply::Bulk(Some(text)) = server.command(&["INFO", "commandstats"])? else {
        return Err("INFO".into());
    };
    let text = String::from_utf8(text)?;
    let calls = text
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_pttl:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(Ok(0), str::parse)?;
    Ok(calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_acquire_backs_off_instead_of_polling() -> Result {
    let server = RedisServer::start()?;
    let locks = connect(&server).await?; // backoff from 5 ms doubling to 250 ms
    let _held = locks.acquire("busy", TTL, Duration::ZERO).await?;
    let before = acquire_attempts(&server)?;
    match locks.acquire("busy", TTL, Duration::from_secs(1)).await {
        Err(LockError::Busy { .. }) => {}
        other => panic!("expected Busy, got {other:?}"),
    }
    let attempts = acquire_attempts(&server)? - before;
    // 5, 10, 20, ... 250 ms steps, each slept for half to all of it, fill a second with at
    // most 16 attempts; polling every millisecond would be hundreds.
    assert!((4..=16).contains(&attempts), "{attempts} attempts in 1 s");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_acquire_gets_the_lock_when_the_lease_runs_out() -> Result {
    let server = RedisServer::start()?;
    let locks = connect(&server).await?;
    let first = locks
        .acquire("a", Duration::from_millis(100), Duration::ZERO)
        .await?;
    let second = locks.acquire("a", TTL, Duration::from_secs(5)).await?;
    assert!(second.token() > first.token());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_outlives_the_ttl() -> Result {
    let server = RedisServer::start()?;
    let locks = connect(&server).await?;
    // Renewed every third of the TTL: each renewal has over a second of slack, which a
    // loaded CI machine needs (a 500 ms TTL left it a third of a second).
    let ttl = Duration::from_secs(2);
    let lease = locks.acquire("kept", ttl, Duration::ZERO).await?;
    let guard = KeepAlive::new().start(locks.clone(), lease)?;
    // A contender waits for two TTLs and never gets in.
    match locks.acquire("kept", ttl, ttl * 2).await {
        Err(LockError::Busy { .. }) => {}
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(!guard.is_lost());
    let lost = guard.lost();
    guard.release().await?;
    assert!(matches!(lost.wait().await, LostReason::Released));
    assert!(locks.try_acquire("kept", ttl).await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_guard_releases_through_the_runtime() -> Result {
    let server = RedisServer::start()?;
    let locks = connect(&server).await?;
    let lease = locks.acquire("dropped", TTL, Duration::ZERO).await?;
    drop(KeepAlive::new().start(locks.clone(), lease)?);
    // Released in the background long before the 30 s TTL.
    let again = locks
        .acquire("dropped", TTL, Duration::from_secs(5))
        .await?;
    locks.release(&again).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fence_rejects_older_tokens_and_keeps_the_newer_value() -> Result {
    let server = RedisServer::start()?;
    let locks = connect(&server).await?;
    let fence = locks.fence("{doc}:fence");
    let old = locks.acquire("doc", TTL, Duration::ZERO).await?;
    fence.set(old.token(), "{doc}:body", "v1").await?;
    locks.release(&old).await?;
    let new = locks.acquire("doc", TTL, Duration::ZERO).await?;
    fence.set(new.token(), "{doc}:body", "v2").await?;
    fence.set(new.token(), "{doc}:body", "v2 again").await?; // same holder, again
    match fence.set(old.token(), "{doc}:body", "late").await {
        Err(LockError::Stale(stale)) => {
            assert_eq!(stale.offered(), old.token());
            assert_eq!(stale.highest(), new.token());
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    assert_eq!(
        server.command(&["GET", "{doc}:body"])?,
        Reply::Bulk(Some(b"v2 again".to_vec()))
    );
    assert!(fence.advance(old.token()).await.is_err());
    assert_eq!(fence.advance(new.token()).await?, new.token());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fence_with_a_zero_call_timeout_is_refused() -> Result {
    let server = RedisServer::start()?;
    let locks = connect(&server).await?;
    let connection = locks.connection().clone();
    let error = RedisFence::new(connection.clone(), "{z}:fence", Duration::ZERO).unwrap_err();
    assert_eq!(error.to_string(), "fence call timeout must be > 0");
    let fence = RedisFence::new(connection, "{z}:fence", Duration::from_secs(2))?;
    fence.advance(keel_lock::FencingToken::new(3)).await?;
    assert_eq!(
        server.command(&["GET", "{z}:fence"])?,
        Reply::Bulk(Some(b"00000000000000000003".to_vec()))
    );
    Ok(())
}

#[tokio::test]
async fn bad_configuration_is_refused() -> Result {
    let cases = [
        (
            RedisLockService::builder().call_timeout(Duration::ZERO),
            "call timeout must be > 0",
        ),
        (
            RedisLockService::builder().backoff(Backoff::constant(Duration::ZERO)),
            "waiter backoff base must be > 0",
        ),
        (
            RedisLockService::builder().backoff(
                Backoff::exponential(Duration::from_millis(9)).max(Duration::from_millis(1)),
            ),
            "waiter backoff: backoff max 1ms must be at least the base 9ms",
        ),
        (
            RedisLockService::builder()
                .backoff(Backoff::exponential(Duration::from_millis(9)).multiplier(f64::NAN)),
            "waiter backoff: backoff multiplier must be a finite number >= 1, got NaN",
        ),
    ];
    let server = RedisServer::start()?;
    for (builder, message) in cases {
        match builder.connect(&server.url()).await {
            Err(LockError::Config(error)) => assert_eq!(error.to_string(), message),
            other => panic!("expected a config error, got {other:?}"),
        }
    }
    let locks = connect(&server).await?;
    assert!(matches!(
        locks.try_acquire("", TTL).await,
        Err(LockError::EmptyName)
    ));
    assert!(matches!(
        locks.try_acquire("a", Duration::ZERO).await,
        Err(LockError::InvalidTtl { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_not_a_hang() -> Result {
    let mut server = RedisServer::start()?;
    let url = server.url();
    server.stop()?;
    let connecting = RedisLockService::builder()
        .call_timeout(Duration::from_millis(300))
        .connect(&url);
    let outcome = tokio::time::timeout(Duration::from_secs(5), connecting).await?;
    assert!(outcome.is_err());
    Ok(())
}
