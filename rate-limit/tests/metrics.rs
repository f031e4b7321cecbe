//! The `metrics` feature: every decision of a `Limiter` and a `KeyedLimiter` is counted,
//! labelled with the limiter's name and the outcome, checked with metrics-util's debugging
//! recorder.
#![cfg(feature = "metrics")]

use keel_core::ManualClock;
use keel_rate_limit::{FixedWindow, Gcra, KeyedLimiter, Limiter, Quota, RateLimit};
use keel_testkit::recorded::counters;
use metrics_util::debugging::DebuggingRecorder;

fn row(name: &str, outcome: &str, n: u64) -> keel_testkit::recorded::Counter {
    (
        "keel_rate_limit_decisions_total".to_owned(),
        vec![
            ("name".to_owned(), name.to_owned()),
            ("outcome".to_owned(), outcome.to_owned()),
        ],
        n,
    )
}

#[test]
fn decisions_are_counted_per_limiter_and_outcome() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        let login =
            Limiter::<Gcra, _>::with_clock(Quota::per_minute(2).unwrap(), ManualClock::new())
                .with_name("login");
        assert!(login.check().is_allowed());
        assert!(login.check().is_allowed());
        assert!(login.check().is_denied());
        assert!(login.check_n(3).is_err()); // larger than the quota: denied

        let per_ip = KeyedLimiter::<u32, FixedWindow>::builder(Quota::per_minute(1).unwrap())
            .name("per-ip")
            .clock(ManualClock::new())
            .build()
            .unwrap();
        assert!(per_ip.check_key(&1).is_allowed()); // a new key
        assert!(per_ip.check_key(&1).is_denied()); // a known key
        assert!(per_ip.check_key(&2).is_allowed());
        assert!(per_ip.check_key(&2).is_denied());
        assert!(per_ip.check_key(&2).is_denied());

        let unnamed = Limiter::<Gcra>::new(Quota::per_second(10).unwrap());
        assert!(unnamed.check().is_allowed());
    });

    assert_eq!(
        counters(&recorder),
        vec![
            row("default", "admitted", 1),
            row("default", "denied", 0),
            row("login", "admitted", 2),
            row("login", "denied", 2),
            row("per-ip", "admitted", 2),
            row("per-ip", "denied", 3),
        ]
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_decisions_and_fail_closed_refusals_are_counted()
-> Result<(), Box<dyn std::error::Error>> {
    use keel_rate_limit::{FailurePolicy, RedisLimiter};
    use keel_testkit::RedisServer;
    use std::time::Duration;

    let server = RedisServer::start()?;
    let client = redis::Client::open(server.url())?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(200)))
        .set_max_delay(Duration::from_millis(100));
    let connection = redis::aio::ConnectionManager::new_with_config(client, config).await?;
    let recorder = DebuggingRecorder::new();
    let quota = Quota::per_minute(2)?;
    let limiter = metrics::with_local_recorder(&recorder, || {
        RedisLimiter::<Gcra>::builder(quota)
            .name("shared")
            .prefix("metrics:")
            .timeout(Duration::from_millis(500))
            .failure_policy(FailurePolicy::FailClosed)
            .build(connection)
    })?;
    assert!(limiter.check_key("k").await.is_allowed());
    assert!(limiter.check_key("k").await.is_allowed());
    assert!(limiter.check_key("k").await.is_denied());
    assert!(limiter.check_key_n("k", 3).await.is_err()); // larger than the quota: denied
    drop(server); // Redis is gone: fail closed, a denial
    assert!(limiter.check_key("k").await.is_denied());

    assert_eq!(
        counters(&recorder),
        vec![row("shared", "admitted", 2), row("shared", "denied", 3)]
    );
    Ok(())
}
