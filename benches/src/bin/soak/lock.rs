//! Leases on Redis (one server and a Cluster) and etcd under every fault: clients contend for
//! one lease, write through the fence while they hold it, and sometimes write late with an old
//! token.
//!
//! Anomalies: double grants (two holders' spans of belief overlap), stale writes the fence
//! accepted, and calls that returned after their timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_core::SystemClock;
use keel_lock::{EtcdLockService, FencingToken, LockError, LockService, RedisLockService};
use keel_testkit::anomalies::{
    FencedWrite, Holding, double_grants, late_returns, stale_writes_accepted,
};
use keel_testkit::{Deployment, EtcdCluster, FaultProxy, Persistence, ProxiedRedis, RedisServer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redis::aio::ConnectionLike;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

use crate::faults::{Injector, Server};
use crate::{Anomaly, Row, SLACK, runtime};

/// Clients contending for the lease, each on its own faulty path.
const CLIENTS: usize = 3;
const NAME: &str = "job";
const FENCE_KEY: &str = "{job}:fence";

/// A lock service the soak can also write through a fence of.
pub(crate) trait Fenced: LockService + Clone + Send + Sync + 'static {
    fn fenced_write(
        &self,
        token: FencingToken,
    ) -> impl Future<Output = Result<(), LockError>> + Send;
}

impl<R> Fenced for RedisLockService<SystemClock, R>
where
    R: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn fenced_write(
        &self,
        token: FencingToken,
    ) -> impl Future<Output = Result<(), LockError>> + Send {
        // One hash tag: on a Cluster the fence and its data share a slot.
        let fence = self.fence(FENCE_KEY);
        async move { fence.set(token, "{job}:data", token.get()).await }
    }
}

impl Fenced for EtcdLockService {
    fn fenced_write(
        &self,
        token: FencingToken,
    ) -> impl Future<Output = Result<(), LockError>> + Send {
        let fence = self.fence("job-fence");
        async move { fence.set(token, "job-data", token.get().to_string()).await }
    }
}

/// What one client saw.
#[derive(Default)]
struct Record {
    holdings: Vec<Holding>,
    writes: Vec<FencedWrite>,
    calls: Vec<Duration>,
}

impl Record {
    async fn write<S: Fenced>(&mut self, locks: &S, token: FencingToken) {
        let sent = Instant::now();
        let result = locks.fenced_write(token).await;
        let answered = Instant::now();
        self.calls.push(answered - sent);
        self.writes.push(FencedWrite {
            token: token.get(),
            sent,
            answered,
            accepted: result.is_ok(),
        });
    }
}

async fn client<S: Fenced>(
    id: usize,
    locks: S,
    ttl: Duration,
    deadline: Instant,
    seed: u64,
) -> Record {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut record = Record::default();
    while Instant::now() < deadline {
        let started = Instant::now();
        let granted = locks.try_acquire(NAME, ttl).await;
        record.calls.push(started.elapsed());
        let Ok(Some(mut lease)) = granted else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(1..20))).await;
            continue;
        };
        let from = Instant::now();
        let token = lease.token();
        let mut until = from + lease.remaining(locks.now());
        let hold_for = ttl.mul_f64(rng.random::<f64>() * 2.0);
        loop {
            if Instant::now() >= until {
                break; // expired by the holder's own clock: it stops acting
            }
            record.write(&locks, token).await;
            if Instant::now() >= from + hold_for {
                break;
            }
            tokio::time::sleep(ttl / 4).await;
            let sent = Instant::now();
            let extended = locks.extend(&lease, ttl).await;
            let answered = Instant::now();
            record.calls.push(answered - sent);
            match extended {
                Ok(next) if answered < until => {
                    until = answered + next.remaining(locks.now());
                    lease = next;
                }
                _ => {
                    until = until.min(answered);
                    break;
                }
            }
        }
        let release = Instant::now();
        until = until.min(release);
        if crate::planted() {
            until += ttl; // planted: the holder goes on acting for a TTL after its lease
        }
        let _ = locks.release(&lease).await;
        record.calls.push(release.elapsed());
        record.holdings.push(Holding {
            holder: id,
            token: token.get(),
            from,
            until,
        });
        // Sometimes a late write with the old token: the fence must refuse it once a newer
        // holder has written.
        if rng.random_bool(0.3) {
            tokio::time::sleep(ttl.mul_f64(rng.random::<f64>())).await;
            if crate::planted() {
                // Planted: a late write around the fence, which lands whatever the token.
                let now = Instant::now();
                record.writes.push(FencedWrite {
                    token: token.get(),
                    sent: now,
                    answered: now,
                    accepted: true,
                });
            } else {
                record.write(&locks, token).await;
            }
        }
    }
    record
}

async fn soak<S: Fenced>(
    name: &str,
    clients: Vec<S>,
    injector: Injector,
    ttl: Duration,
    call_timeout: Duration,
    time: Duration,
    seed: u64,
) -> Result<Row, String> {
    let deadline = Instant::now() + time;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, locks)| tokio::spawn(client(i, locks, ttl, deadline, seed ^ (i as u64 + 1))))
        .collect();
    let faults = injector.run(deadline).await?;
    let mut all = Record::default();
    for task in tasks {
        let record = task.await.map_err(|e| e.to_string())?;
        all.holdings.extend(record.holdings);
        all.writes.extend(record.writes);
        all.calls.extend(record.calls);
    }
    let mut row = Row::new(name);
    row.faults = faults;
    row.operations = all.calls.len() as u64;
    row.add(Anomaly::DoubleGrants, double_grants(&all.holdings) as u64);
    row.add(
        Anomaly::StaleWritesAccepted,
        stale_writes_accepted(&all.writes) as u64,
    );
    row.add(
        Anomaly::LateReturns,
        late_returns(&all.calls, call_timeout + SLACK) as u64,
    );
    eprintln!(
        "soak: {name}: {} holdings, {} fenced writes ({} refused)",
        all.holdings.len(),
        all.writes.len(),
        all.writes.iter().filter(|w| !w.accepted).count()
    );
    Ok(row)
}

pub(crate) fn proxies(port: u16) -> Result<Vec<Arc<FaultProxy>>, String> {
    (0..CLIENTS)
        .map(|_| {
            FaultProxy::start(port)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Redis with an fsynced append-only file, so a kill loses no acknowledged grant.
pub(crate) fn redis_server() -> Result<RedisServer, String> {
    RedisServer::builder()
        .persistence(Persistence::AppendOnlyAlways)
        .start()
        .map_err(|e| e.to_string())
}

pub(crate) fn etcd_server() -> Result<EtcdCluster, String> {
    EtcdCluster::builder()
        .members(1)
        .and_then(|b| b.start())
        .map_err(|e| e.to_string())
}

/// Short, so a fault outlasts it; the server expires keys on real time.
pub(crate) const REDIS_TTL: Duration = Duration::from_millis(600);
pub(crate) const REDIS_CALL_TIMEOUT: Duration = Duration::from_millis(150);
/// etcd's unit is a whole second.
pub(crate) const ETCD_TTL: Duration = Duration::from_secs(1);
pub(crate) const ETCD_CALL_TIMEOUT: Duration = Duration::from_millis(250);

/// Runs `body` on one Redis lock client per fault proxy, with the injector that faults them
/// (a fresh server with an fsynced append-only file): what the lock and idgen soaks share.
pub(crate) fn on_redis<F, Fut>(seed: u64, body: F) -> Result<Row, String>
where
    F: FnOnce(Vec<RedisLockService>, Injector) -> Fut,
    Fut: Future<Output = Result<Row, String>>,
{
    let server = redis_server()?;
    let proxies = proxies(server.port())?;
    runtime()?.block_on(async move {
        let mut clients = Vec::new();
        for proxy in &proxies {
            clients.push(
                RedisLockService::builder()
                    .call_timeout(REDIS_CALL_TIMEOUT)
                    .connect(&proxy.url())
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let injector = Injector::new(
            Server::Redis(server),
            proxies,
            REDIS_TTL,
            REDIS_CALL_TIMEOUT,
            seed,
        );
        body(clients, injector).await
    })
}

/// Runs `body` on one etcd lock client per fault proxy, with the injector that faults them
/// (a fresh one-member cluster).
pub(crate) fn on_etcd<F, Fut>(seed: u64, body: F) -> Result<Row, String>
where
    F: FnOnce(Vec<EtcdLockService>, Injector) -> Fut,
    Fut: Future<Output = Result<Row, String>>,
{
    let cluster = etcd_server()?;
    let port = cluster.member(0).map_err(|e| e.to_string())?.client_port();
    let proxies = proxies(port)?;
    runtime()?.block_on(async move {
        let mut clients = Vec::new();
        for proxy in &proxies {
            clients.push(
                EtcdLockService::builder()
                    .call_timeout(ETCD_CALL_TIMEOUT)
                    .connect(&[proxy.endpoint()])
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let injector = Injector::new(
            Server::Etcd(cluster),
            proxies,
            ETCD_TTL,
            ETCD_CALL_TIMEOUT,
            seed,
        );
        body(clients, injector).await
    })
}

pub(crate) fn redis(time: Duration, seed: u64) -> Result<Row, String> {
    on_redis(seed, |clients, injector| {
        soak(
            "lock-redis",
            clients,
            injector,
            REDIS_TTL,
            REDIS_CALL_TIMEOUT,
            time,
            seed,
        )
    })
}

pub(crate) fn etcd(time: Duration, seed: u64) -> Result<Row, String> {
    on_etcd(seed, |clients, injector| {
        soak(
            "lock-etcd",
            clients,
            injector,
            ETCD_TTL,
            ETCD_CALL_TIMEOUT,
            time,
            seed,
        )
    })
}

/// Runs `body` on one Redis Cluster lock client per contender, each with its own Cluster
/// connection (the client's default retries), through the proxies of a fresh `ProxiedRedis`
/// Cluster (3 masters, 3 replicas), with an injector of network faults on the paths to the
/// masters of the keys `keys` names. Network faults only: a Cluster's server faults are
/// failovers, which `lock/tests/cluster.rs` covers.
pub(crate) fn on_cluster<K, F, Fut>(seed: u64, keys: K, body: F) -> Result<Row, String>
where
    K: FnOnce(&RedisLockService<SystemClock, ClusterConnection>) -> Vec<String>,
    F: FnOnce(Vec<RedisLockService<SystemClock, ClusterConnection>>, Injector) -> Fut,
    Fut: Future<Output = Result<Row, String>>,
{
    let redis = Arc::new(ProxiedRedis::start(Deployment::Cluster).map_err(|e| e.to_string())?);
    runtime()?.block_on(async move {
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let connection = ClusterClient::builder(redis.client_urls())
                .connection_timeout(REDIS_CALL_TIMEOUT)
                .response_timeout(REDIS_CALL_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())?
                .get_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            clients.push(
                RedisLockService::builder()
                    .call_timeout(REDIS_CALL_TIMEOUT)
                    .build(connection)
                    .map_err(|e| e.to_string())?,
            );
        }
        let keys = keys(&clients[0]);
        let injector = Injector::network_only(&redis, &keys, REDIS_TTL, REDIS_CALL_TIMEOUT, seed)?;
        body(clients, injector).await
    })
}

/// The lease on a Redis Cluster, under network faults on the paths to the lock and the fence.
pub(crate) fn cluster(time: Duration, seed: u64) -> Result<Row, String> {
    let keys = |locks: &RedisLockService<_, _>| vec![locks.lock_key(NAME), FENCE_KEY.to_string()];
    on_cluster(seed, keys, |clients, injector| {
        soak(
            "lock-redis-cluster",
            clients,
            injector,
            REDIS_TTL,
            REDIS_CALL_TIMEOUT,
            time,
            seed,
        )
    })
}
