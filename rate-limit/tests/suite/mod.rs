//! The Redis limiter's deployment-independent checks, run on one server (tests/redis.rs), a
//! Redis Cluster (tests/cluster.rs) and a Sentinel group (tests/sentinel.rs): each takes
//! connections of whatever kind the deployment uses.

#![allow(dead_code)] // each test file uses the part it needs

use std::sync::Arc;
use std::time::Duration;

use keel_rate_limit::{
    FailurePolicy, FixedWindow, Gcra, Quota, RedisAlgorithm, RedisLimiter, SlidingCounter,
    SlidingLog,
};
use redis::aio::ConnectionLike;

pub(crate) type BoxError = Box<dyn std::error::Error>;

/// Connections a limiter can be built on.
pub(crate) trait Conn: ConnectionLike + Clone + Send + Sync + 'static {}
impl<T: ConnectionLike + Clone + Send + Sync + 'static> Conn for T {}

pub(crate) fn limiter<A: RedisAlgorithm, R: Conn>(
    connection: R,
    prefix: &str,
    quota: Quota,
    policy: FailurePolicy,
) -> Result<RedisLimiter<A, keel_core::SystemClock, R>, BoxError> {
    // One prefix per algorithm: their states have different Redis types.
    let prefix = format!("{prefix}{}:", std::any::type_name::<A>());
    Ok(RedisLimiter::<A>::builder(quota)
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .failure_policy(policy)
        .build(connection)?)
}

/// Five admitted with the remaining count going down, then a denial with a retry-after.
pub(crate) async fn counts_down<A: RedisAlgorithm, R: Conn>(connection: R) -> Result<(), BoxError> {
    let limiter = limiter::<A, R>(
        connection,
        "suite:down:",
        Quota::per_hour(5)?,
        FailurePolicy::FailClosed,
    )?;
    let key = std::any::type_name::<A>();
    for expected in (0..5).rev() {
        let decision = limiter.try_check_key_n(key, 1).await?;
        assert!(decision.is_allowed(), "{key}");
        assert_eq!(decision.remaining(), expected, "{key}");
    }
    let denied = limiter.try_check_key_n(key, 1).await?;
    assert!(denied.is_denied(), "{key}");
    assert!(
        denied.retry_after().is_some_and(|d| d > Duration::ZERO),
        "{key}"
    );
    Ok(())
}

/// Two instances on two connections: the total admitted is the quota, exactly.
pub(crate) async fn shared_in_one_window<A: RedisAlgorithm, R: Conn>(
    a: R,
    b: R,
) -> Result<(), BoxError> {
    let quota = Quota::per_hour(100)?;
    let policy = FailurePolicy::FailClosed;
    let a = Arc::new(limiter::<A, R>(a, "suite:shared:", quota, policy)?);
    let b = Arc::new(limiter::<A, R>(b, "suite:shared:", quota, policy)?);
    let key = format!("shared-{}", std::any::type_name::<A>());
    let mut tasks = Vec::new();
    for i in 0..6 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0;
            for _ in 0..50 {
                let decision = limiter.try_check_key_n(&key, 1).await.expect("redis up");
                admitted += u32::from(decision.is_allowed());
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

/// Keys that break a naive `{key}` hash tag. Under fail-open a `CROSSSLOT` would admit every
/// try; the limiter must decide in Redis (no failures) and admit one per key.
pub(crate) async fn any_key_one_slot<A: RedisAlgorithm, R: Conn>(
    connection: R,
) -> Result<(), BoxError> {
    let limiter = limiter::<A, R>(
        connection,
        "suite:slot:",
        Quota::per_minute(1)?,
        FailurePolicy::FailOpen,
    )?;
    let keys = ["}x", "{", "}", "", "a{b}c", "}{", "%7D", "%", "{}", "x}"];
    for key in keys {
        let mut admitted = 0;
        for _ in 0..10 {
            admitted += u32::from(limiter.check_key(key).await.is_allowed());
        }
        assert_eq!(admitted, 1, "key {key:?}, {}", std::any::type_name::<A>());
    }
    assert_eq!(limiter.failures(), 0, "{}", std::any::type_name::<A>());
    Ok(())
}

/// Many keys (on every node of a cluster): each admitted once, then denied.
pub(crate) async fn many_keys<A: RedisAlgorithm, R: Conn>(connection: R) -> Result<(), BoxError> {
    let limiter = limiter::<A, R>(
        connection,
        "suite:many:",
        Quota::per_hour(1)?,
        FailurePolicy::FailClosed,
    )?;
    for i in 0..200 {
        let key = format!("user-{i}");
        assert!(
            limiter.try_check_key_n(&key, 1).await?.is_allowed(),
            "{key}"
        );
        assert!(limiter.try_check_key_n(&key, 1).await?.is_denied(), "{key}");
    }
    Ok(())
}

/// Every check above, for every algorithm.
pub(crate) async fn all<R: Conn>(a: R, b: R) -> Result<(), BoxError> {
    macro_rules! each {
        ($($algorithm:ty),*) => {$(
            counts_down::<$algorithm, R>(a.clone()).await?;
            shared_in_one_window::<$algorithm, R>(a.clone(), b.clone()).await?;
            any_key_one_slot::<$algorithm, R>(a.clone()).await?;
            many_keys::<$algorithm, R>(a.clone()).await?;
        )*};
    }
    each!(Gcra, FixedWindow, SlidingLog, SlidingCounter);
    Ok(())
}

/// What a failover did to one hot key: admissions before, during and after, by two limiter
/// instances (two app servers) deciding continuously.
#[derive(Debug, Default)]
pub(crate) struct FailoverRun {
    pub(crate) admitted: u64,
    pub(crate) decisions: u64,
    pub(crate) failures: u64,
}

/// Two instances hammer `key` until `done` is set; returns what they admitted in all.
pub(crate) async fn hammer<A: RedisAlgorithm, R: Conn>(
    limiters: [Arc<RedisLimiter<A, keel_core::SystemClock, R>>; 2],
    key: &str,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> FailoverRun {
    use std::sync::atomic::Ordering;
    let mut tasks = Vec::new();
    for limiter in limiters {
        let key = key.to_string();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut run = FailoverRun::default();
            while !done.load(Ordering::Relaxed) {
                run.decisions += 1;
                run.admitted += u64::from(limiter.check_key(&key).await.is_allowed());
                // Paced: a steady client, not a spin, so the failover gets the CPU it needs.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            run.failures = limiter.failures();
            run
        }));
    }
    let mut total = FailoverRun::default();
    for task in tasks {
        let run = task.await.expect("a hammering task panicked");
        total.admitted += run.admitted;
        total.decisions += run.decisions;
        total.failures += run.failures;
    }
    total
}
