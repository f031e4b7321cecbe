//! Network faults between a `RedisLimiter` and a real redis-server, through keel-testkit's
//! `FaultProxy`: a partition, latency beyond the call timeout, a reset in the middle of a
//! script, and a half-open connection.
//!
//! Each scenario checks:
//! - the failure policies do what `FailurePolicy` documents: `FailOpen` admits, `FailClosed`
//!   denies with a retry-after of the call timeout, `Local` enforces the quota in-process;
//! - every call returns within the call timeout plus [`SLACK`];
//! - no decision is counted twice: Redis's own count of admissions (the sliding log's
//!   entries, read on the server) is at least what Redis admitted and at most the calls
//!   made, so no script ran twice. A call whose answer is lost may still be charged once.

#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_rate_limit::{FailurePolicy, Quota, RedisLimiter, SlidingLog};
use keel_redis::KeyBuilder;
use keel_testkit::{Direction, FaultProxy, RedisServer, Reply};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const CALL_TIMEOUT: Duration = Duration::from_millis(150);
/// What a call may take beyond its timeout on a loaded 2-core machine: scheduling, not I/O.
const SLACK: Duration = Duration::from_millis(100);
const BOUND: Duration = Duration::from_secs(10);
const PREFIX: &str = "nf:";
/// The small quota the policies are checked against.
const POLICY_LIMIT: u32 = 3;
const POLICY_CALLS: usize = 5;
/// Calls counted against a quota they never reach, so every admission is in the log.
const COUNTED_CALLS: usize = 6;

#[derive(Copy, Clone, Debug)]
enum Fault {
    Partition,
    Latency,
    HalfOpen,
}

async fn connection(url: &str) -> Result<ConnectionManager> {
    // No reconnect retries and a short connect timeout, as the limiter's docs advise: a call
    // made while the path is down fails within the limiter's timeout.
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(CALL_TIMEOUT));
    Ok(ConnectionManager::new_with_config(redis::Client::open(url)?, config).await?)
}

async fn limiter(
    connection: ConnectionManager,
    limit: u32,
    policy: FailurePolicy,
) -> Result<RedisLimiter<SlidingLog>> {
    Ok(RedisLimiter::<SlidingLog>::builder(Quota::per_hour(limit)?)
        .prefix(PREFIX)
        .timeout(CALL_TIMEOUT)
        .failure_policy(policy)
        .build(connection)?)
}

/// Admissions Redis has recorded for `key`: the sliding log's entries, read on the server.
fn charged(server: &RedisServer, key: &str) -> Result<i64> {
    let log = KeyBuilder::new(PREFIX)?.key_with(key, ":log");
    match server.command(&["ZCARD", &log])? {
        Reply::Integer(n) => Ok(n),
        other => Err(format!("ZCARD answered {other:?}").into()),
    }
}

/// The calls' decisions (allowed?), their retry-afters, and the slowest call.
async fn calls(
    limiter: &RedisLimiter<SlidingLog>,
    key: &str,
    count: usize,
) -> (Vec<bool>, Vec<Option<Duration>>, Duration) {
    let mut worst = Duration::ZERO;
    let (mut allowed, mut retries) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let start = Instant::now();
        let decision = limiter.check_key(key).await;
        worst = worst.max(start.elapsed());
        allowed.push(decision.is_allowed());
        retries.push(decision.retry_after());
    }
    (allowed, retries, worst)
}

/// Waits until the proxy holds nothing and `key`'s count stops moving; returns it.
async fn settled(server: &RedisServer, proxy: &FaultProxy, key: &str) -> Result<i64> {
    let deadline = Instant::now() + BOUND;
    let mut last = charged(server, key)?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = charged(server, key)?;
        if now == last && proxy.held(Direction::Both) == 0 {
            return Ok(now);
        }
        if Instant::now() > deadline {
            return Err(format!("{key}'s count never settled: {now}").into());
        }
        last = now;
    }
}

async fn run(fault: Fault) -> Result {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.port())?;
    let through = connection(&proxy.url()).await?;
    let open = limiter(through.clone(), POLICY_LIMIT, FailurePolicy::FailOpen).await?;
    let closed = limiter(through.clone(), POLICY_LIMIT, FailurePolicy::FailClosed).await?;
    let local = limiter(through.clone(), POLICY_LIMIT, FailurePolicy::Local).await?;
    let counted = limiter(through, 1000, FailurePolicy::FailClosed).await?;
    // Healthy first: Redis decides, and counts each admission once.
    let (healthy, _, _) = calls(&counted, "counted", 2).await;
    assert_eq!((healthy, counted.failures()), (vec![true, true], 0));
    assert_eq!(charged(&server, "counted")?, 2);

    match fault {
        Fault::Partition => proxy.blackhole(),
        Fault::Latency => proxy.set_latency(CALL_TIMEOUT * 2),
        Fault::HalfOpen => proxy.cut(Direction::Downstream),
    }
    let (
        (open_allowed, _, w1),
        (closed_allowed, closed_retries, w2),
        (local_allowed, _, w3),
        (counted_allowed, _, w4),
    ) = tokio::join!(
        calls(&open, "open", POLICY_CALLS),
        calls(&closed, "closed", POLICY_CALLS),
        calls(&local, "local", POLICY_CALLS),
        calls(&counted, "counted", COUNTED_CALLS),
    );
    let worst = w1.max(w2).max(w3).max(w4);
    assert_eq!(
        open_allowed,
        vec![true; POLICY_CALLS],
        "{fault:?}: FailOpen admits"
    );
    assert_eq!(
        closed_allowed,
        vec![false; POLICY_CALLS],
        "{fault:?}: FailClosed denies"
    );
    assert_eq!(
        closed_retries,
        vec![Some(CALL_TIMEOUT); POLICY_CALLS],
        "{fault:?}: FailClosed retries after the call timeout"
    );
    let mut expected_local = vec![true; POLICY_LIMIT as usize];
    expected_local.resize(POLICY_CALLS, false);
    assert_eq!(
        local_allowed, expected_local,
        "{fault:?}: Local keeps the quota in-process"
    );
    assert_eq!(counted_allowed, vec![false; COUNTED_CALLS]);
    let failures = counted.failures();
    assert_eq!(
        failures, COUNTED_CALLS as u64,
        "{fault:?}: every call failed over"
    );
    assert!(
        worst <= CALL_TIMEOUT + SLACK,
        "{fault:?}: a call took {worst:?}"
    );

    proxy.heal();
    // Redis admitted 2 (before the fault) and none during it. Scripts whose answers were
    // lost may have run (late, for latency and a partition's held bytes), each at most once.
    let total = settled(&server, &proxy, "counted").await?;
    let redis_admitted = 2;
    let calls_made = 2 + COUNTED_CALLS as i64;
    eprintln!(
        "rate-limit, redis, {fault:?}: {calls_made} calls, {redis_admitted} admitted by Redis, \
         {failures} decided by the policy, {total} charged in Redis; slowest call {worst:?} \
         (timeout {CALL_TIMEOUT:?})"
    );
    assert!(
        (redis_admitted..=calls_made).contains(&total),
        "{fault:?}: {total} charged for {calls_made} calls"
    );
    // Recovered: Redis decides again.
    let recovered = Instant::now() + BOUND;
    let before = counted.failures();
    while counted.try_check_key_n("counted", 1).await.is_err() {
        assert!(Instant::now() < recovered, "{fault:?}: never recovered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counted.failures(), before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_applies_each_policy_within_the_timeout_and_counts_nothing_twice() -> Result {
    run(Fault::Partition).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_beyond_the_timeout_applies_each_policy_and_counts_nothing_twice() -> Result {
    run(Fault::Latency).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_applies_each_policy_and_counts_nothing_twice() -> Result {
    run(Fault::HalfOpen).await
}

/// One reset in the middle of a script, `ROUNDS` times: the script ran (its reply reached the
/// proxy) and the connection died before the client heard it.
///
/// The limiter never re-sends a script (`keel-redis` does not retry, and redis's
/// `ConnectionManager` does not replay a request in flight), so each reset call is charged
/// exactly once in Redis while the policy decides it. A caller that retries the call itself
/// is charged twice: measured here, and documented in the README as the reason not to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_script_charges_once_and_a_retrying_caller_twice() -> Result {
    const ROUNDS: usize = 5;
    let server = RedisServer::start()?;
    let proxy = Arc::new(FaultProxy::start(server.port())?);
    let limiter = Arc::new(
        limiter(
            connection(&proxy.url()).await?,
            1000,
            FailurePolicy::FailClosed,
        )
        .await?,
    );

    let mut worst = Duration::ZERO;
    for retrying in [false, true] {
        let key = if retrying { "retried" } else { "once" };
        for _ in 0..ROUNDS {
            // A healthy connection first (the manager reconnects after the last reset).
            let ready = Instant::now() + BOUND;
            while limiter.try_check_key_n("warm", 1).await.is_err() {
                assert!(Instant::now() < ready, "never reconnected");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            proxy.hold(Direction::Downstream);
            let call = {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    let start = Instant::now();
                    let answer = limiter.try_check_key_n(key, 1).await;
                    (answer, start.elapsed())
                })
            };
            let waiting = Arc::clone(&proxy);
            tokio::task::spawn_blocking(move || {
                waiting.wait_for_held(Direction::Downstream, 1, BOUND)
            })
            .await??;
            assert_eq!(proxy.reset_connections(), 1);
            proxy.heal();
            let (answer, elapsed) = call.await?;
            assert!(
                answer.is_err(),
                "the reply was lost, so the call failed: {answer:?}"
            );
            worst = worst.max(elapsed);
            if retrying {
                let again = Instant::now() + BOUND;
                while limiter.try_check_key_n(key, 1).await.is_err() {
                    assert!(Instant::now() < again, "the retry never got through");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    let once = charged(&server, "once")?;
    let retried = charged(&server, "retried")?;
    eprintln!(
        "rate-limit, redis, reset mid-script: {ROUNDS} reset calls charged {once} times; \
         a caller retrying each once is charged {retried} times; slowest call {worst:?}"
    );
    assert_eq!(once, ROUNDS as i64, "each reset script ran exactly once");
    assert_eq!(
        retried,
        2 * ROUNDS as i64,
        "a retried call is counted twice"
    );
    assert!(worst <= CALL_TIMEOUT + SLACK, "a call took {worst:?}");
    Ok(())
}
