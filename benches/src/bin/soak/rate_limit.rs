//! `RedisLimiter` (sliding log) under every fault, one limiter per failure policy, each on
//! its own faulty path, with concurrent callers; and the same limiters on a Redis Cluster
//! (three masters, a proxy in front of each), under network faults on the paths to the
//! masters of their keys. The Cluster leg leaves the servers alone: a killed master is
//! failed over, and a write the replica had not yet copied is lost, which no limiter bound
//! holds through.
//!
//! Anomalies:
//! - over-admissions beyond each policy's documented bound, over a window the run never
//!   leaves (an hour): `FailClosed` admits at most the limit (only Redis admits);
//!   `Local` at most twice the limit (the limit in Redis, and the limit again in-process
//!   while Redis is unreachable); `FailOpen` at most the limit plus every call the policy
//!   decided; and no limiter admits more than Redis charged;
//! - decisions counted twice: Redis's own count of a key's admissions (the log's entries,
//!   read on the server after the faults) above the calls made on it;
//! - calls that returned after the call timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_core::SystemClock;
use keel_rate_limit::{FailurePolicy, Quota, RedisLimiter, SlidingLog};
use keel_redis::KeyBuilder;
use keel_testkit::anomalies::{beyond, late_returns};
use keel_testkit::{Deployment, FaultProxy, ProxiedRedis, Reply};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;

use crate::faults::{Injector, Server};
use crate::lock::{REDIS_CALL_TIMEOUT, REDIS_TTL, redis_server};
use crate::{Anomaly, Row, SLACK, runtime};

const PREFIX: &str = "soak:";
/// Small enough that the callers run every policy's quota out during the run.
const LIMIT: u32 = 300;
/// Callers per limiter.
const CALLERS: usize = 2;

/// The limiters' setups: key, policy, limit.
const SETUPS: [(&str, FailurePolicy, u32); 4] = [
    ("open", FailurePolicy::FailOpen, LIMIT),
    ("closed", FailurePolicy::FailClosed, LIMIT),
    ("local", FailurePolicy::Local, LIMIT),
    // A quota never reached, so every admission is in the log: the double count check.
    ("counted", FailurePolicy::FailClosed, 1_000_000),
];

/// A connection a limiter runs on: one server's or a Cluster's.
trait Conn: ConnectionLike + Clone + Send + Sync + 'static {}
impl<T: ConnectionLike + Clone + Send + Sync + 'static> Conn for T {}

struct Limited<C> {
    key: &'static str,
    policy: FailurePolicy,
    limit: u32,
    limiter: RedisLimiter<SlidingLog, SystemClock, C>,
    calls: AtomicU64,
    allowed: AtomicU64,
}

/// Where Redis keeps the limiters' logs, to read what it charged.
enum Charges {
    Server(Arc<std::sync::Mutex<Server>>),
    Cluster(Arc<ProxiedRedis>),
}

async fn connection(url: &str) -> Result<ConnectionManager, String> {
    // As the limiter's docs advise: no reconnect retries and a short connect timeout, so a
    // call made while the path is down fails within the limiter's timeout.
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(REDIS_CALL_TIMEOUT));
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| e.to_string())
}

async fn caller<C: Conn>(limited: Arc<Limited<C>>, deadline: Instant, seed: u64) -> Vec<Duration> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut calls = Vec::new();
    while Instant::now() < deadline {
        let start = Instant::now();
        let failures = limited.limiter.failures();
        let decision = limited.limiter.check_key(limited.key).await;
        let mut allowed = decision.is_allowed();
        if crate::planted() && limited.limiter.failures() > failures {
            // Planted: a caller that retries a failed check once, and admits if that fails.
            allowed = limited
                .limiter
                .try_check_key_n(limited.key, 1)
                .await
                .map_or(true, |d| d.is_allowed());
            if rng.random_bool(0.05) {
                // Planted: a call stalled past its timeout.
                tokio::time::sleep(REDIS_CALL_TIMEOUT + SLACK * 2).await;
            }
        }
        calls.push(start.elapsed());
        limited.calls.fetch_add(1, Ordering::Relaxed);
        if allowed {
            limited.allowed.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(2..15))).await;
    }
    calls
}

/// Admissions Redis recorded for `key`, once the count stops moving (replies held by the
/// proxies may still land).
async fn charged(charges: &Charges, key: &str) -> Result<u64, String> {
    let log = log_key(key)?;
    let read = || -> Result<u64, String> {
        let reply = match charges {
            Charges::Server(server) => {
                let server = server.lock().unwrap_or_else(|e| e.into_inner());
                let Server::Redis(server) = &*server else {
                    return Err("rate-limit runs on Redis".into());
                };
                server.command(&["ZCARD", &log])
            }
            // Read on the key's master directly, not through a faulty path.
            Charges::Cluster(redis) => redis
                .master_for_key(&log)
                .and_then(|master| master.command(&["ZCARD", &log])),
        };
        match reply.map_err(|e| e.to_string())? {
            Reply::Integer(n) => Ok(n as u64),
            other => Err(format!("ZCARD answered {other:?}")),
        }
    };
    let mut last = read()?;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = read()?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

fn log_key(key: &str) -> Result<String, String> {
    Ok(KeyBuilder::new(PREFIX)
        .map_err(|e| e.to_string())?
        .key_with(key, ":log"))
}

fn limiter<C: Conn>(
    (key, policy, limit): (&'static str, FailurePolicy, u32),
    connection: C,
) -> Result<Limited<C>, String> {
    let limiter =
        RedisLimiter::<SlidingLog>::builder(Quota::per_hour(limit).map_err(|e| e.to_string())?)
            .prefix(PREFIX)
            .timeout(REDIS_CALL_TIMEOUT)
            .failure_policy(policy)
            .build(connection)
            .map_err(|e| e.to_string())?;
    Ok(Limited {
        key,
        policy,
        limit,
        limiter,
        calls: AtomicU64::new(0),
        allowed: AtomicU64::new(0),
    })
}

/// One server, a proxy per limiter, and every fault (the server's too).
pub(crate) fn run(time: Duration, seed: u64) -> Result<Row, String> {
    let server = redis_server()?;
    let proxies: Vec<Arc<FaultProxy>> = SETUPS
        .iter()
        .map(|_| {
            FaultProxy::start(server.port())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    runtime()?.block_on(async move {
        let mut limiters = Vec::new();
        for (setup, proxy) in SETUPS.into_iter().zip(&proxies) {
            limiters.push(Arc::new(limiter(setup, connection(&proxy.url()).await?)?));
        }
        let injector = Injector::new(
            Server::Redis(server),
            proxies,
            REDIS_TTL,
            REDIS_CALL_TIMEOUT,
            seed,
        );
        let charges = Charges::Server(injector.server()?);
        soak(
            "rate-limit-redis",
            &limiters,
            injector,
            &charges,
            time,
            seed,
        )
        .await
    })
}

/// A Cluster through its proxies, network faults on the paths to the keys' masters.
pub(crate) fn cluster(time: Duration, seed: u64) -> Result<Row, String> {
    let redis = Arc::new(ProxiedRedis::start(Deployment::Cluster).map_err(|e| e.to_string())?);
    let keys = SETUPS
        .iter()
        .map(|(key, _, _)| log_key(key))
        .collect::<Result<Vec<_>, _>>()?;
    runtime()?.block_on(async move {
        // `retries(0)`: the Cluster client's default re-sends a request whose connection
        // dropped, which charges a call twice (rate-limit/tests/network_faults.rs).
        let connection = ClusterClient::builder(redis.client_urls())
            .connection_timeout(REDIS_CALL_TIMEOUT)
            .response_timeout(REDIS_CALL_TIMEOUT)
            .retries(0)
            .build()
            .map_err(|e| e.to_string())?
            .get_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let mut limiters = Vec::new();
        for setup in SETUPS {
            limiters.push(Arc::new(limiter(setup, connection.clone())?));
        }
        let injector = Injector::network_only(&redis, &keys, REDIS_TTL, REDIS_CALL_TIMEOUT, seed)?;
        let charges = Charges::Cluster(Arc::clone(&redis));
        soak(
            "rate-limit-redis-cluster",
            &limiters,
            injector,
            &charges,
            time,
            seed,
        )
        .await
    })
}

/// Runs the callers against the faults for `time`, then counts the anomalies.
async fn soak<C: Conn>(
    name: &str,
    limiters: &[Arc<Limited<C>>],
    injector: Injector,
    charges: &Charges,
    time: Duration,
    seed: u64,
) -> Result<Row, String> {
    let deadline = Instant::now() + time;
    let mut tasks = Vec::new();
    for (i, limited) in limiters.iter().enumerate() {
        for c in 0..CALLERS {
            let caller_seed = seed ^ ((i * CALLERS + c) as u64 + 1);
            tasks.push(tokio::spawn(caller(
                Arc::clone(limited),
                deadline,
                caller_seed,
            )));
        }
    }
    let faults = injector.run(deadline).await?;
    let mut durations = Vec::new();
    for task in tasks {
        durations.extend(task.await.map_err(|e| e.to_string())?);
    }
    let mut row = Row::new(name);
    row.faults = faults;
    row.operations = durations.len() as u64;
    row.add(
        Anomaly::LateReturns,
        late_returns(&durations, REDIS_CALL_TIMEOUT + SLACK) as u64,
    );
    row.add(Anomaly::OverAdmissions, 0);
    row.add(Anomaly::CountedTwice, 0);
    for limited in limiters {
        let limit = u64::from(limited.limit);
        let (calls, allowed) = (
            limited.calls.load(Ordering::Relaxed),
            limited.allowed.load(Ordering::Relaxed),
        );
        let failures = limited.limiter.failures();
        let bound = match limited.policy {
            FailurePolicy::FailOpen => limit + failures,
            FailurePolicy::Local => 2 * limit,
            _ => limit,
        };
        let charged = charged(charges, limited.key).await?;
        // Only Redis admits under FailClosed: each admission must be charged there.
        let uncharged = match limited.policy {
            FailurePolicy::FailClosed => beyond(allowed, charged),
            _ => 0,
        };
        eprintln!(
            "soak: {name} {}: {calls} calls, {allowed} allowed (bound {bound}), \
             {failures} decided by the policy, {charged} charged in Redis",
            limited.key
        );
        row.add(Anomaly::OverAdmissions, beyond(allowed, bound) + uncharged);
        row.add(Anomaly::CountedTwice, beyond(charged, calls));
    }
    Ok(row)
}
