//! The Redis store against a real `redis-server` (started by keel-testkit): each script's
//! decisions, key layout and expiry, a quota shared by two limiter instances, and the failure
//! policies when the server stops or freezes mid-stream.
#![cfg(feature = "redis")]

mod suite;

use std::sync::Arc;
use std::time::Duration;

use keel_core::ManualClock;
use keel_rate_limit::{
    FailurePolicy, FixedWindow, Gcra, Limiter, Quota, RateLimit, RedisAlgorithm, RedisLimitError,
    RedisLimiter, RedisLimiterError, SlidingCounter, SlidingLog,
};
use keel_testkit::{RedisServer, Reply};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

type BoxError = Box<dyn std::error::Error>;

async fn connect(server: &RedisServer) -> Result<ConnectionManager, BoxError> {
    let client = redis::Client::open(server.url())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(200)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_max_delay(Duration::from_millis(100));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}

/// A limiter with a 2 s call timeout: generous, so a loaded machine does not turn a slow
/// reply into a failure.
async fn limiter<A: RedisAlgorithm>(
    server: &RedisServer,
    quota: Quota,
    policy: FailurePolicy,
) -> Result<RedisLimiter<A>, BoxError> {
    limiter_with_timeout(server, quota, policy, Duration::from_secs(2)).await
}

async fn limiter_with_timeout<A: RedisAlgorithm>(
    server: &RedisServer,
    quota: Quota,
    policy: FailurePolicy,
    timeout: Duration,
) -> Result<RedisLimiter<A>, BoxError> {
    Ok(RedisLimiter::<A>::builder(quota)
        .prefix("t:")
        .timeout(timeout)
        .failure_policy(policy)
        .build(connect(server).await?)?)
}

async fn counts_down<A: RedisAlgorithm>(
    server: &RedisServer,
    retry_range: std::ops::RangeInclusive<Duration>,
) -> Result<(), BoxError> {
    let limiter = limiter::<A>(server, Quota::per_hour(5)?, FailurePolicy::FailClosed).await?;
    let key = std::any::type_name::<A>();
    for expected in (0..5).rev() {
        let decision = limiter.try_check_key_n(key, 1).await?;
        assert!(decision.is_allowed(), "{key}");
        assert_eq!(decision.remaining(), expected, "{key}");
        assert!(decision.reset_after() > Duration::ZERO);
    }
    let denied = limiter.try_check_key_n(key, 1).await?;
    assert!(denied.is_denied(), "{key}");
    let retry = denied.retry_after().expect("denied");
    assert!(retry_range.contains(&retry), "{key}: retry after {retry:?}");
    assert!(matches!(
        limiter.try_check_key_n(key, 6).await,
        Err(RedisLimitError::InsufficientCapacity(_))
    ));
    assert!(limiter.check_key_n(key, 6).await.is_err());
    assert_eq!(limiter.failures(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_script_counts_down_then_denies() -> Result<(), BoxError> {
    let server = RedisServer::start()?;
    let secs = Duration::from_secs;
    // GCRA: one emission interval (720 s) after the burst, less the time the calls took.
    counts_down::<Gcra>(&server, secs(710)..=secs(720)).await?;
    // Fixed window: the end of the current hour-long window.
    counts_down::<FixedWindow>(&server, Duration::from_nanos(1)..=secs(3600)).await?;
    // Sliding log: when the first admission leaves the window, an hour after it.
    counts_down::<SlidingLog>(&server, secs(3590)..=secs(3600)).await?;
    // Sliding counter: a fifth into the next window, when the weight of 5 drops to 4.
    counts_down::<SlidingCounter>(&server, secs(720)..=secs(3600 + 720)).await?;
    Ok(())
}

/// The script and the in-memory algorithm make the same decisions for the same requests. The
/// quota's period is a day, so the few milliseconds the calls take change no decision (the
/// in-memory side runs on a manual clock that stands still).
async fn same_as_in_memory<A: RedisAlgorithm>(server: &RedisServer) -> Result<(), BoxError> {
    let quota = Quota::with_period(10, Duration::from_secs(86_400))?.with_burst(6)?;
    let redis = limiter::<A>(server, quota, FailurePolicy::FailClosed).await?;
    let memory = keel_rate_limit::Limiter::<A, _>::with_clock(quota, keel_core::ManualClock::new());
    let key = format!("same-{}", std::any::type_name::<A>());
    let mut seed = 12_345u64;
    for _ in 0..40 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let n = ((seed >> 33) % 5) as u32;
        let want = keel_rate_limit::RateLimit::check_n(&memory, n)?;
        let got = redis.try_check_key_n(&key, n).await?;
        assert_eq!(
            (got.is_allowed(), got.remaining()),
            (want.is_allowed(), want.remaining()),
            "{key}, n = {n}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_decide_as_the_in_memory_algorithms() -> Result<(), BoxError> {
    let server = RedisServer::start()?;
    same_as_in_memory::<Gcra>(&server).await?;
    same_as_in_memory::<FixedWindow>(&server).await?;
    same_as_in_memory::<SlidingLog>(&server).await?;
    same_as_in_memory::<SlidingCounter>(&server).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_hash_tagged_and_expire_when_fresh() -> Result<(), BoxError> {
    let server = RedisServer::start()?;
    let quota = Quota::per_minute(10)?;
    let gcra = limiter::<Gcra>(&server, quota, FailurePolicy::FailClosed).await?;
    let log =
        limiter::<SlidingLog>(&server, Quota::per_minute(10)?, FailurePolicy::FailClosed).await?;
    assert!(gcra.try_check_key_n("alice", 3).await?.is_allowed());
    assert!(log.try_check_key_n("bob", 1).await?.is_allowed());
    // GCRA's key lives exactly until its bucket is full again: 3 × 6 s (long enough that a
    // stalled machine cannot let it expire before PTTL).
    let Reply::Integer(ttl) = server.command(&["PTTL", "t:{alice}"])? else {
        panic!("no TTL reply");
    };
    assert!(ttl > 0 && ttl <= 18_001, "ttl {ttl}");
    for key in ["t:{bob}:log", "t:{bob}:meta"] {
        let Reply::Integer(ttl) = server.command(&["PTTL", key])? else {
            panic!("no TTL reply");
        };
        assert!(ttl > 0 && ttl <= 60_001, "{key}: ttl {ttl}");
    }
    // Both keys of one decision share a hash tag (tests/cluster.rs checks the slots).
    let keys = keel_redis::KeyBuilder::new("t:")?;
    assert_eq!(
        <SlidingLog as RedisAlgorithm>::keys(&keys, "bob"),
        ["t:{bob}:log", "t:{bob}:meta"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_reload_after_a_flush() -> Result<(), BoxError> {
    let server = RedisServer::start()?;
    let limiter =
        limiter::<FixedWindow>(&server, Quota::per_hour(2)?, FailurePolicy::FailClosed).await?;
    assert!(limiter.try_check_key_n("k", 1).await?.is_allowed());
    server.command(&["SCRIPT", "FLUSH"])?;
    assert!(limiter.try_check_key_n("k", 1).await?.is_allowed());
    assert!(limiter.try_check_key_n("k", 1).await?.is_denied());
    Ok(())
}

/// Two instances (two app servers) share one quota: the total admitted is the quota.
async fn shared_in_one_window<A: RedisAlgorithm>(server: &RedisServer) -> Result<(), BoxError> {
    let quota = Quota::per_hour(100)?;
    let a = Arc::new(limiter::<A>(server, quota, FailurePolicy::FailClosed).await?);
    let b = Arc::new(limiter::<A>(server, quota, FailurePolicy::FailClosed).await?);
    let key = format!("shared-{}", std::any::type_name::<A>());
    let mut tasks = Vec::new();
    for i in 0..6 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0;
            for _ in 0..50 {
                if limiter
                    .try_check_key_n(&key, 1)
                    .await
                    .expect("redis up")
                    .is_allowed()
                {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    assert_eq!(total, 100, "{}", std::any::type_name::<A>());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_quota() -> Result<(), BoxError> {
    let server = RedisServer::start()?;
    shared_in_one_window::<Gcra>(&server).await?;
    shared_in_one_window::<FixedWindow>(&server).await?;
    shared_in_one_window::<SlidingLog>(&server).await?;
    shared_in_one_window::<SlidingCounter>(&server).await?;
    Ok(())
}

/// Over many windows of real (Redis) time, two instances together never exceed the bound.
/// Every admission happened on the server between the first send and the last reply, so
/// the span measured by the client covers them all.
async fn shared_over_many_windows<A: RedisAlgorithm>(
    server: &RedisServer,
    quota: Quota,
    bound: impl Fn(Duration) -> u64,
) -> Result<(), BoxError> {
    let a = Arc::new(limiter::<A>(server, quota, FailurePolicy::FailClosed).await?);
    let b = Arc::new(limiter::<A>(server, quota, FailurePolicy::FailClosed).await?);
    let key = format!("windows-{}", std::any::type_name::<A>());
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for limiter in [a, b] {
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0u64;
            while start.elapsed() < Duration::from_millis(800) {
                if limiter
                    .try_check_key_n(&key, 1)
                    .await
                    .expect("redis up")
                    .is_allowed()
                {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    let span = start.elapsed();
    let most = bound(span);
    assert!(total <= most, "{total} admitted in {span:?}, bound {most}");
    assert!(
        total >= u64::from(quota.limit()),
        "only {total} admitted in {span:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_stay_within_the_bound_over_many_windows() -> Result<(), BoxError> {
    let server = RedisServer::start()?;
    let windows = |span: Duration, w: Duration| span.as_micros().div_ceil(w.as_micros()) as u64;
    // GCRA: the burst, then one per emission interval.
    let quota = Quota::with_period(10, Duration::from_millis(100))?.with_burst(3)?;
    shared_over_many_windows::<Gcra>(&server, quota, |span| {
        3 + span.as_micros() as u64 / 10_000 + 1
    })
    .await?;
    // Sliding log: at most `limit` per window of the period.
    let quota = Quota::with_period(10, Duration::from_millis(100))?;
    let w = quota.period();
    shared_over_many_windows::<SlidingLog>(&server, quota, |span| 10 * windows(span, w)).await?;
    // Fixed window: at most `limit` per aligned window the span touches.
    shared_over_many_windows::<FixedWindow>(&server, quota, |span| 10 * (windows(span, w) + 1))
        .await?;
    // Sliding counter: at most `limit` per aligned window it touches, too.
    shared_over_many_windows::<SlidingCounter>(&server, quota, |span| 10 * (windows(span, w) + 1))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_rejects_bad_settings() -> Result<(), BoxError> {
    let server = RedisServer::start()?;
    let err = RedisLimiter::<Gcra>::builder(Quota::per_second(1)?)
        .timeout(Duration::ZERO)
        .build(connect(&server).await?)
        .unwrap_err();
    assert_eq!(err, RedisLimiterError::ZeroTimeout);
    assert_eq!(err.to_string(), "redis call timeout must be > 0");
    let err = RedisLimiter::<Gcra>::builder(Quota::per_second(1)?)
        .fallback_max_keys(0)
        .build(connect(&server).await?)
        .unwrap_err();
    assert_eq!(err, RedisLimiterError::ZeroFallbackKeys);
    let err = RedisLimiter::<Gcra>::builder(Quota::per_second(1)?)
        .prefix("{app}:")
        .build(connect(&server).await?)
        .unwrap_err();
    assert_eq!(
        err,
        RedisLimiterError::BraceInPrefix {
            prefix: "{app}:".into()
        }
    );
    Ok(())
}

/// Calls until a decision comes from Redis again (the connection manager reconnects in the
/// background), giving up after a few seconds.
async fn until_redis_answers(limiter: &RedisLimiter<Gcra>, key: &str) -> Result<(), BoxError> {
    for _ in 0..100 {
        if limiter.try_check_key_n(key, 0).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("redis never came back".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policies_apply_while_redis_is_down_and_recover() -> Result<(), BoxError> {
    let mut server = RedisServer::start()?;
    let quota = Quota::per_hour(2)?;
    let timeout = Duration::from_secs(1);
    let open =
        limiter_with_timeout::<Gcra>(&server, quota, FailurePolicy::FailOpen, timeout).await?;
    let closed =
        limiter_with_timeout::<Gcra>(&server, quota, FailurePolicy::FailClosed, timeout).await?;
    let local = limiter_with_timeout::<Gcra>(&server, quota, FailurePolicy::Local, timeout).await?;
    for (l, key) in [(&open, "o"), (&closed, "c"), (&local, "k")] {
        assert!(l.check_key_n(key, 2).await?.is_allowed());
        assert!(l.check_key(key).await.is_denied(), "spent");
        assert_eq!(l.failures(), 0);
    }
    server.stop()?;
    // Fail open admits everything; fail closed denies everything; local enforces the quota
    // in-process (fresh, since Redis held the state).
    for _ in 0..3 {
        assert!(open.check_key("o").await.is_allowed());
        let denied = closed.check_key("other").await;
        assert!(denied.is_denied());
        assert_eq!(denied.retry_after(), Some(timeout));
    }
    assert!(local.check_key_n("k", 2).await?.is_allowed());
    assert!(local.check_key("k").await.is_denied());
    assert!(open.failures() >= 3 && closed.failures() >= 3 && local.failures() >= 2);
    assert!(matches!(
        open.try_check_key_n("k", 1).await,
        Err(RedisLimitError::Redis(_))
    ));

    server.restart()?;
    for (l, key) in [(&open, "o2"), (&closed, "c2"), (&local, "k2")] {
        until_redis_answers(l, key).await?;
        let failures = l.failures();
        assert!(l.check_key_n(key, 2).await?.is_allowed());
        assert!(l.check_key(key).await.is_denied());
        assert_eq!(l.failures(), failures, "decided by Redis again");
    }
    Ok(())
}

/// A fail-open decision reports the `n` it admitted: `remaining` is the capacity less `n`
/// and `reset_after` what a fresh in-memory limiter reports for its first `n` cells.
async fn fail_open_reports<A: RedisAlgorithm>(quota: Quota) -> Result<(), BoxError> {
    let mut server = RedisServer::start()?;
    let client = redis::Client::open(server.url())?;
    // No reconnect retries: a stopped server fails each call at once.
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(Duration::from_millis(200)));
    let connection = ConnectionManager::new_with_config(client, config).await?;
    let open = RedisLimiter::<A>::builder(quota)
        .timeout(Duration::from_secs(2))
        .failure_policy(FailurePolicy::FailOpen)
        .build(connection)?;
    server.stop()?;
    for n in [0, 1, 3] {
        let decision = open.check_key_n("k", n).await?;
        let fresh = Limiter::<A, _>::with_clock(quota, ManualClock::new()).check_n(n)?;
        assert!(decision.is_allowed());
        let what = format!("{}, n = {n}", std::any::type_name::<A>());
        assert_eq!(decision.remaining(), 5 - n, "{what}");
        assert_eq!(decision.remaining(), fresh.remaining(), "{what}");
        assert_eq!(decision.reset_after(), fresh.reset_after(), "{what}");
    }
    assert_eq!(open.failures(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_decisions_count_what_they_admit() -> Result<(), BoxError> {
    let quota = Quota::per_minute(5)?;
    fail_open_reports::<Gcra>(quota).await?;
    fail_open_reports::<FixedWindow>(quota).await?;
    fail_open_reports::<SlidingLog>(quota).await?;
    fail_open_reports::<SlidingCounter>(quota).await?;
    // Spelled out for two of them: GCRA drains a cell per 12 s, a fixed window resets whole.
    let mut server = RedisServer::start()?;
    let config = ConnectionManagerConfig::new().set_number_of_retries(0);
    let client = redis::Client::open(server.url())?;
    let open = RedisLimiter::<Gcra>::builder(quota)
        .failure_policy(FailurePolicy::FailOpen)
        .build(ConnectionManager::new_with_config(client, config).await?)?;
    server.stop()?;
    let decision = open.check_key_n("k", 3).await?;
    assert_eq!(
        (decision.remaining(), decision.reset_after()),
        (2, Duration::from_secs(36))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_times_out_instead_of_hanging() -> Result<(), BoxError> {
    let mut server = RedisServer::start()?;
    let timeout = Duration::from_millis(500);
    let limiter = limiter_with_timeout::<Gcra>(
        &server,
        Quota::per_hour(10)?,
        FailurePolicy::FailClosed,
        timeout,
    )
    .await?;
    until_redis_answers(&limiter, "k").await?;
    assert!(limiter.check_key("k").await.is_allowed());
    server.pause()?;
    let start = std::time::Instant::now();
    let decision = limiter.check_key("k").await;
    let waited = start.elapsed();
    assert!(decision.is_denied(), "fail closed");
    assert!(
        matches!(
            limiter.try_check_key_n("k", 1).await,
            Err(RedisLimitError::Redis(err)) if err.kind() == keel_redis::ErrorKind::Timeout
        ),
        "a frozen server is a timeout"
    );
    // The 500 ms timeout bounds the call (generous margin for a loaded machine).
    assert!(waited >= timeout, "waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    server.resume()?;
    until_redis_answers(&limiter, "k").await?;
    assert!(limiter.check_key("k").await.is_allowed());
    Ok(())
}

/// The checks tests/cluster.rs and tests/sentinel.rs run, here on one server and on both
/// single-server connection kinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_one_server() -> Result<(), BoxError> {
    let server = RedisServer::start()?;
    suite::all(connect(&server).await?, connect(&server).await?).await?;
    let client = redis::Client::open(server.url())?;
    server.command(&["FLUSHALL"])?;
    suite::all(
        client.get_multiplexed_async_connection().await?,
        client.get_multiplexed_async_connection().await?,
    )
    .await
}
