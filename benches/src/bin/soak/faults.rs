//! The fault schedule of the server blocks: random faults, at random times drawn from the
//! block's seed, on the server and on each client's path to it (a keel-testkit
//! `FaultProxy` per client).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_testkit::{Direction, EtcdCluster, FaultProxy, ProxiedRedis, RedisServer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The server under the clients, which the schedule kills, restarts, pauses and resumes.
pub(crate) enum Server {
    Redis(RedisServer),
    /// A one-member cluster: member 0.
    Etcd(EtcdCluster),
}

impl Server {
    fn kill(&mut self) -> Result<(), String> {
        match self {
            Server::Redis(s) => s.kill(),
            Server::Etcd(c) => c.kill(0),
        }
        .map_err(|e| e.to_string())
    }

    fn restart(&mut self) -> Result<(), String> {
        match self {
            Server::Redis(s) => s.restart(),
            Server::Etcd(c) => c.restart(0),
        }
        .map_err(|e| e.to_string())
    }

    fn pause(&mut self) -> Result<(), String> {
        match self {
            Server::Redis(s) => s.pause(),
            Server::Etcd(c) => c.pause(0),
        }
        .map_err(|e| e.to_string())
    }

    fn resume(&mut self) -> Result<(), String> {
        match self {
            Server::Redis(s) => s.resume(),
            Server::Etcd(c) => c.resume(0),
        }
        .map_err(|e| e.to_string())
    }
}

/// The fault kinds, in the order the table lists them.
pub(crate) const KINDS: [&str; 6] = [
    "kill+restart",
    "pause",
    "partition>TTL",
    "latency>timeout",
    "reset mid-script",
    "half-open",
];

/// A client path the schedule faults: a proxy of the block's own, or one of a
/// `ProxiedRedis` deployment's (by index), which owns its proxies.
#[derive(Clone)]
enum Proxy {
    Own(Arc<FaultProxy>),
    Of(Arc<ProxiedRedis>, usize),
}

impl Proxy {
    fn get(&self) -> &FaultProxy {
        match self {
            Proxy::Own(proxy) => proxy,
            Proxy::Of(redis, i) => redis.proxies()[*i],
        }
    }
}

/// Injects faults until a deadline, then heals everything.
pub(crate) struct Injector {
    /// `None` when only the network is faulted (a Cluster, whose server faults are
    /// failovers, another kind of test).
    server: Option<Arc<Mutex<Server>>>,
    proxies: Vec<Proxy>,
    ttl: Duration,
    call_timeout: Duration,
    rng: SmallRng,
    counts: [u64; KINDS.len()],
}

impl Injector {
    pub(crate) fn new(
        server: Server,
        proxies: Vec<Arc<FaultProxy>>,
        ttl: Duration,
        call_timeout: Duration,
        seed: u64,
    ) -> Injector {
        Injector {
            server: Some(Arc::new(Mutex::new(server))),
            proxies: proxies.into_iter().map(Proxy::Own).collect(),
            ttl,
            call_timeout,
            rng: SmallRng::seed_from_u64(seed),
            counts: [0; KINDS.len()],
        }
    }

    /// Network faults only, on the client paths to the servers that hold `keys` (each path
    /// once).
    pub(crate) fn network_only(
        redis: &Arc<ProxiedRedis>,
        keys: &[String],
        ttl: Duration,
        call_timeout: Duration,
        seed: u64,
    ) -> Result<Injector, String> {
        let mut paths = Vec::new();
        for key in keys {
            let proxy = redis.proxy_for_key(key).map_err(|e| e.to_string())?;
            let index = redis
                .proxies()
                .iter()
                .position(|p| std::ptr::eq(*p, proxy))
                .ok_or("the proxy for the key is not among the deployment's proxies")?;
            if !paths.contains(&index) {
                paths.push(index);
            }
        }
        Ok(Injector {
            server: None,
            proxies: paths
                .into_iter()
                .map(|i| Proxy::Of(Arc::clone(redis), i))
                .collect(),
            ttl,
            call_timeout,
            rng: SmallRng::seed_from_u64(seed),
            counts: [0; KINDS.len()],
        })
    }

    /// The server, for reading its state once the run is over.
    pub(crate) fn server(&self) -> Result<Arc<Mutex<Server>>, String> {
        self.server
            .clone()
            .ok_or_else(|| "this schedule faults no server".to_string())
    }

    /// Runs a server operation off the runtime's threads (restarts wait for the server).
    async fn on_server(&self, op: fn(&mut Server) -> Result<(), String>) -> Result<(), String> {
        let server = self.server()?;
        tokio::task::spawn_blocking(move || {
            op(&mut server.lock().unwrap_or_else(|e| e.into_inner()))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        low + (high.saturating_sub(low)).mul_f64(self.rng.random::<f64>())
    }

    /// Healthy gaps and faults, one after another, until `deadline`; everything healed and
    /// the server running at the end. Returns the faults injected, by kind.
    pub(crate) async fn run(
        mut self,
        deadline: Instant,
    ) -> Result<Vec<(&'static str, u64)>, String> {
        let ttl = self.ttl;
        while Instant::now() < deadline {
            let gap = self.between(ttl / 4, ttl * 2);
            tokio::time::sleep(gap).await;
            if Instant::now() >= deadline {
                break;
            }
            // Kinds 0 and 1 fault the server.
            let first = if self.server.is_some() { 0 } else { 2 };
            let kind = self.rng.random_range(first..KINDS.len());
            let path = self.proxies[self.rng.random_range(0..self.proxies.len())].clone();
            let proxy = path.get();
            match kind {
                0 => {
                    self.on_server(Server::kill).await?;
                    tokio::time::sleep(self.between(Duration::ZERO, ttl)).await;
                    self.on_server(Server::restart).await?;
                }
                1 => {
                    self.on_server(Server::pause).await?;
                    tokio::time::sleep(self.between(ttl / 2, ttl * 2)).await;
                    self.on_server(Server::resume).await?;
                }
                2 => {
                    proxy.blackhole();
                    tokio::time::sleep(self.between(ttl + ttl / 10, ttl * 2)).await;
                    // Longer than TCP's retransmission timeout half the time: the
                    // connections die rather than deliver what was held.
                    if self.rng.random_bool(0.5) {
                        proxy.reset_connections();
                    }
                    proxy.heal();
                }
                3 => {
                    let extra = self.between(Duration::from_millis(50), Duration::from_millis(300));
                    proxy.set_latency(self.call_timeout + extra);
                    tokio::time::sleep(self.between(ttl / 2, ttl * 2)).await;
                    proxy.heal();
                }
                4 => {
                    // The next reply is held (its request ran), then the connection dies.
                    proxy.hold(Direction::Downstream);
                    let waiting = path.clone();
                    let wait = self.ttl;
                    let _ = tokio::task::spawn_blocking(move || {
                        waiting.get().wait_for_held(Direction::Downstream, 1, wait)
                    })
                    .await;
                    proxy.reset_connections();
                    proxy.heal();
                }
                _ => {
                    // Requests arrive, replies never do; healing kills the half-open
                    // connections, as the peer's TCP eventually would.
                    proxy.cut(Direction::Downstream);
                    tokio::time::sleep(self.between(ttl + ttl / 10, ttl * 2)).await;
                    proxy.heal();
                }
            }
            self.counts[kind] += 1;
        }
        for proxy in &self.proxies {
            proxy.get().heal();
        }
        Ok(KINDS.iter().copied().zip(self.counts).collect())
    }
}
