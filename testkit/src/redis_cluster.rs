//! `RedisCluster`: a real Redis Cluster of three masters and three replicas, owned by a test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::resp::Reply;
use crate::{FaultProxy, RedisServer, TestkitError};

/// Masters, and one replica for each.
const MASTERS: usize = 3;
const NODES: usize = MASTERS * 2;
/// How long a poll of one node may take; a paused node is skipped, not waited for.
const POLL_TIMEOUT: Duration = Duration::from_millis(500);
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Configures a [`RedisCluster`] before it starts.
///
/// ```
/// use std::time::Duration;
/// use keel_testkit::RedisCluster;
///
/// let cluster = RedisCluster::builder()
///     .node_timeout(Duration::from_millis(2000))
///     .wait_timeout(Duration::from_secs(60))
///     .start()?;
/// assert_eq!(cluster.masters()?.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RedisClusterBuilder {
    node_timeout: Duration,
    wait_timeout: Duration,
    config: Vec<(String, String)>,
    binary: Option<PathBuf>,
    cli: Option<PathBuf>,
    fault_proxies: bool,
}

impl Default for RedisClusterBuilder {
    fn default() -> RedisClusterBuilder {
        RedisClusterBuilder {
            node_timeout: Duration::from_millis(1500),
            wait_timeout: Duration::from_secs(30),
            config: Vec::new(),
            binary: None,
            cli: None,
            fault_proxies: false,
        }
    }
}

impl RedisClusterBuilder {
    /// Sets `cluster-node-timeout`: how long a master may be silent before it is failed over.
    /// A failover takes about this long plus one to two seconds. The default is 1.5 s;
    /// it is clamped to at least 100 ms.
    ///
    /// ```
    /// use std::time::Duration;
    /// use keel_testkit::{RedisCluster, Reply};
    ///
    /// let cluster = RedisCluster::builder().node_timeout(Duration::from_secs(3)).start()?;
    /// let reply = cluster.node(0)?.command(&["CONFIG", "GET", "cluster-node-timeout"])?;
    /// let Reply::Array(Some(pair)) = reply else { return Err("no array".into()) };
    /// assert_eq!(pair[1], Reply::Bulk(Some(b"3000".to_vec())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn node_timeout(mut self, timeout: Duration) -> RedisClusterBuilder {
        self.node_timeout = timeout.max(Duration::from_millis(100));
        self
    }

    /// Sets how long the bounded waits ([`RedisCluster::wait_for_failover`],
    /// [`RedisCluster::wait_until_healthy`], and starting) may take. The default is 30 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::builder().wait_timeout(Duration::from_secs(45)).start()?;
    /// cluster.wait_until_healthy()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(mut self, timeout: Duration) -> RedisClusterBuilder {
        self.wait_timeout = timeout;
        self
    }

    /// Passes `--name value` to every node, after keel's own options.
    ///
    /// ```
    /// use keel_testkit::{RedisCluster, Reply};
    ///
    /// let cluster = RedisCluster::builder().config("maxmemory", "64mb").start()?;
    /// let reply = cluster.node(5)?.command(&["CONFIG", "GET", "maxmemory"])?;
    /// let Reply::Array(Some(pair)) = reply else { return Err("no array".into()) };
    /// assert_eq!(pair[1], Reply::Bulk(Some(b"67108864".to_vec())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> RedisClusterBuilder {
        self.config.push((name.into(), value.into()));
        self
    }

    /// Runs this `redis-server` instead of `$KEEL_REDIS_SERVER` or the one on `PATH`.
    ///
    /// ```
    /// use keel_testkit::{RedisCluster, TestkitError};
    ///
    /// let missing = RedisCluster::builder().binary("/no/such/redis-server").start();
    /// assert!(matches!(missing, Err(TestkitError::NotInstalled { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn binary(mut self, path: impl Into<PathBuf>) -> RedisClusterBuilder {
        self.binary = Some(path.into());
        self
    }

    /// Runs this `redis-cli` (to create the cluster) instead of `$KEEL_REDIS_CLI` or the one
    /// on `PATH` (Debian package `redis-tools`).
    ///
    /// ```
    /// use keel_testkit::{RedisCluster, TestkitError};
    ///
    /// let missing = RedisCluster::builder().cli("/no/such/redis-cli").start();
    /// assert!(matches!(missing, Err(TestkitError::NotInstalled { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cli(mut self, path: impl Into<PathBuf>) -> RedisClusterBuilder {
        self.cli = Some(path.into());
        self
    }

    /// Puts a [`FaultProxy`] in front of every node, and has each node announce its proxy's
    /// port (`cluster-announce-port`), so `CLUSTER SLOTS` and `MOVED` redirects send a cluster
    /// client through the proxies: a test then cuts, delays or resets the path between the
    /// client and one master ([`RedisCluster::proxy`]). Replication also follows the announced
    /// address, so it runs through the proxies too; the cluster bus (gossip and failure
    /// detection) does not, so a fault on a proxy does not fail a master over. Off by default.
    ///
    /// ```
    /// use keel_testkit::{Direction, RedisCluster, Reply};
    ///
    /// let cluster = RedisCluster::builder().fault_proxies(true).start()?;
    /// let master = cluster.master_for_key("k")?;
    /// let proxy = cluster.proxy(master)?;
    /// // A client is redirected to the proxy's port, not the node's.
    /// let other = (master + 1) % cluster.len();
    /// let moved = cluster.node(other)?.command(&["GET", "k"])?;
    /// assert!(matches!(moved, Reply::Error(e) if e.ends_with(&format!(":{}", proxy.port()))));
    /// proxy.hold(Direction::Both); // the client is now cut off from that master
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fault_proxies(mut self, on: bool) -> RedisClusterBuilder {
        self.fault_proxies = on;
        self
    }

    /// Starts six `redis-server --cluster-enabled yes` nodes on free loopback ports, joins
    /// them with `redis-cli --cluster create --cluster-replicas 1`, and waits until every node
    /// reports `cluster_state:ok` and every replica is in sync with its master.
    ///
    /// # Errors
    ///
    /// [`TestkitError::NotInstalled`] when `redis-server` or `redis-cli` is missing,
    /// [`TestkitError::NotReady`] when a node or `redis-cli` fails, and
    /// [`TestkitError::Timeout`] when the cluster is not healthy within the wait timeout.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::builder().start()?;
    /// assert_eq!(cluster.urls().len(), 6);
    /// assert_eq!(cluster.replicas()?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(self) -> Result<RedisCluster, TestkitError> {
        let timeout_ms = self.node_timeout.as_millis().to_string();
        let mut nodes = Vec::with_capacity(NODES);
        for _ in 0..NODES {
            let mut node = RedisServer::builder()
                .config("cluster-enabled", "yes")
                .config("cluster-config-file", "nodes.conf")
                .config("cluster-node-timeout", timeout_ms.as_str())
                // A replica may always take over, however long it was cut off: tests want
                // the failover, not Redis's guard against promoting stale data.
                .config("cluster-replica-validity-factor", "0")
                // A replica's first sync starts at once, not after the default 5 s wait for
                // more replicas to share a diskless transfer.
                .config("repl-diskless-sync-delay", "0");
            for (name, value) in &self.config {
                node = node.config(name.as_str(), value.as_str());
            }
            if let Some(binary) = &self.binary {
                node = node.binary(binary.clone());
            }
            nodes.push(node.start()?);
        }
        let mut proxies = Vec::new();
        if self.fault_proxies {
            for node in &mut nodes {
                let proxy = FaultProxy::start(node.port())?;
                node.set_config("cluster-announce-port", &proxy.port().to_string())?;
                proxies.push(proxy);
            }
        }
        let cluster = RedisCluster {
            nodes,
            proxies,
            wait_timeout: self.wait_timeout,
            held: BTreeMap::new(),
        };
        cluster.create(self.cli)?;
        cluster.wait_until_healthy()?;
        Ok(cluster)
    }
}

/// A Redis Cluster on `127.0.0.1`: six [`RedisServer`] nodes, three masters with one replica
/// each, all killed on drop.
///
/// Nodes are named by their index, `0..6`, which stays with the process across faults; which
/// of them are masters changes with failovers, so ask [`masters`](RedisCluster::masters) or
/// [`master_for_key`](RedisCluster::master_for_key). Faults go through the cluster
/// ([`kill`](RedisCluster::kill), [`pause`](RedisCluster::pause), ...), which remembers the
/// slots a master held so that [`wait_for_failover`](RedisCluster::wait_for_failover) can
/// tell which replica took them over.
///
/// # Example
///
/// ```
/// use keel_testkit::{RedisCluster, Reply};
///
/// let mut cluster = RedisCluster::start()?;
/// let old = cluster.master_for_key("fence")?;
/// cluster.node(old)?.command(&["SET", "fence", "7"])?;
/// cluster.wait_until_replicated(old)?; // its replica acknowledged the write
///
/// cluster.pause(old)?;
/// let new = cluster.wait_for_failover(old)?; // a replica was promoted
/// assert_ne!(new, old);
/// assert_eq!(cluster.master_for_key("fence")?, new);
/// assert_eq!(cluster.node(new)?.command(&["GET", "fence"])?, Reply::Bulk(Some(b"7".to_vec())));
///
/// cluster.resume(old)?; // comes back as a replica of the new master
/// cluster.wait_until_healthy()?;
/// assert!(cluster.replicas()?.contains(&old));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// One per node, in index order, when started with `fault_proxies(true)`.
    proxies: Vec<FaultProxy>,
    wait_timeout: Duration,
    /// The slot ranges each faulted master held just before its fault.
    held: BTreeMap<usize, Vec<(u16, u16)>>,
}

/// One line of `CLUSTER NODES`, as one node sees another.
#[derive(Clone, Debug)]
struct NodeView {
    port: u16,
    /// The node id of its master, for a replica.
    master: Option<String>,
    flags: Vec<String>,
    slots: Vec<(u16, u16)>,
}

impl NodeView {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn failed(&self) -> bool {
        self.has("fail") || self.has("fail?")
    }

    fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

impl RedisCluster {
    /// Starts a cluster with the default options.
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::start()?;
    /// assert_eq!(cluster.masters()?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`RedisClusterBuilder::start`].
    pub fn start() -> Result<RedisCluster, TestkitError> {
        RedisCluster::builder().start()
    }

    /// A builder for a cluster with options: node timeout, wait timeout, extra config.
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::builder().start()?;
    /// assert_eq!(cluster.len(), 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> RedisClusterBuilder {
        RedisClusterBuilder::default()
    }

    /// The URL of every node, in index order, to seed a cluster client
    /// (`redis::cluster::ClusterClient::new(cluster.urls())`).
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::start()?;
    /// let urls = cluster.urls();
    /// assert_eq!(urls[2], cluster.node(2)?.url());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The [`FaultProxy`] in front of node `index`, for a cluster started with
    /// [`fault_proxies(true)`](RedisClusterBuilder::fault_proxies).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when there is no such node or the cluster has no proxies.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisCluster, Reply, TestkitError};
    ///
    /// let cluster = RedisCluster::builder().fault_proxies(true).start()?;
    /// assert_eq!(cluster.proxy(3)?.target().port(), cluster.node(3)?.port());
    /// assert_eq!(cluster.proxy(3)?.command(&["PING"])?, Reply::Simple("PONG".into()));
    /// assert!(matches!(RedisCluster::start()?.proxy(0), Err(TestkitError::Topology(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn proxy(&self, index: usize) -> Result<&FaultProxy, TestkitError> {
        self.node(index)?;
        self.proxies.get(index).ok_or_else(|| {
            TestkitError::Topology("this cluster was started without fault proxies".into())
        })
    }

    /// The URL of every node's [`FaultProxy`], in index order, to seed a cluster client that
    /// goes through the proxies; empty for a cluster without proxies.
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::builder().fault_proxies(true).start()?;
    /// assert_eq!(cluster.proxy_urls()[2], cluster.proxy(2)?.url());
    /// assert!(RedisCluster::start()?.proxy_urls().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn proxy_urls(&self) -> Vec<String> {
        self.proxies.iter().map(FaultProxy::url).collect()
    }

    /// How many nodes the cluster has (six).
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::start()?;
    /// assert_eq!(cluster.len(), cluster.urls().len());
    /// assert!(!cluster.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never, once started).
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// assert!(!RedisCluster::start()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `index`, to read its URL, port or pid, or send it a command.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when there is no such node.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisCluster, Reply, TestkitError};
    ///
    /// let cluster = RedisCluster::start()?;
    /// assert_eq!(cluster.node(0)?.command(&["PING"])?, Reply::Simple("PONG".into()));
    /// assert!(matches!(cluster.node(6), Err(TestkitError::Topology(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn node(&self, index: usize) -> Result<&RedisServer, TestkitError> {
        self.nodes.get(index).ok_or_else(|| no_such_node(index))
    }

    /// The indexes of the masters that serve slots, ordered by their first slot (so
    /// `masters()?[0]` serves slot 0), as a healthy node sees them.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when no running node answers.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::start()?;
    /// let masters = cluster.masters()?;
    /// assert_eq!(masters.len(), 3);
    /// assert_eq!(cluster.master_for_slot(0)?, masters[0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn masters(&self) -> Result<Vec<usize>, TestkitError> {
        let view = self.healthy_view()?;
        let mut masters: Vec<(u16, usize)> = view
            .iter()
            .filter(|n| n.has("master") && !n.failed() && !n.slots.is_empty())
            .filter_map(|n| {
                let first = n.slots.iter().map(|&(a, _)| a).min()?;
                Some((first, self.index_of(n.port)?))
            })
            .collect();
        masters.sort_unstable();
        Ok(masters.into_iter().map(|(_, index)| index).collect())
    }

    /// The indexes of the replicas that are not marked failed, in index order, as a healthy
    /// node sees them.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when no running node answers.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::start()?;
    /// let (masters, replicas) = (cluster.masters()?, cluster.replicas()?);
    /// assert!(replicas.iter().all(|r| !masters.contains(r)));
    /// assert_eq!(masters.len() + replicas.len(), 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replicas(&self) -> Result<Vec<usize>, TestkitError> {
        let view = self.healthy_view()?;
        let mut replicas: Vec<usize> = view
            .iter()
            .filter(|n| n.has("slave") && !n.failed())
            .filter_map(|n| self.index_of(n.port))
            .collect();
        replicas.sort_unstable();
        Ok(replicas)
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`, asked of a running node).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when no running node answers.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::start()?;
    /// assert_eq!(cluster.slot("{user1}.a")?, cluster.slot("{user1}.b")?); // one hash tag
    /// assert_eq!(cluster.slot("foo")?, 12182);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slot(&self, key: &str) -> Result<u16, TestkitError> {
        let mut last = String::from("no running node");
        for node in self.nodes.iter().filter(|n| n.is_up()) {
            match node.command_within(&["CLUSTER", "KEYSLOT", key], POLL_TIMEOUT) {
                Ok(Reply::Integer(slot)) => {
                    return u16::try_from(slot).map_err(|_| {
                        TestkitError::Protocol(format!("CLUSTER KEYSLOT answered {slot}"))
                    });
                }
                Ok(other) => last = format!("{other:?}"),
                Err(error) => last = error.to_string(),
            }
        }
        Err(TestkitError::Topology(format!(
            "no node answered CLUSTER KEYSLOT: {last}"
        )))
    }

    /// The index of the master that serves `slot`, as a healthy node sees it.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when no running node answers or no live master serves it.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let cluster = RedisCluster::start()?;
    /// assert_eq!(cluster.master_for_slot(16383)?, cluster.masters()?[2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn master_for_slot(&self, slot: u16) -> Result<usize, TestkitError> {
        let view = self.healthy_view()?;
        view.iter()
            .find(|n| n.has("master") && !n.failed() && n.owns(slot))
            .and_then(|n| self.index_of(n.port))
            .ok_or_else(|| TestkitError::Topology(format!("no live master serves slot {slot}")))
    }

    /// The index of the master that serves `key`'s slot.
    ///
    /// # Errors
    ///
    /// As [`slot`](RedisCluster::slot) and [`master_for_slot`](RedisCluster::master_for_slot).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisCluster, Reply};
    ///
    /// let cluster = RedisCluster::start()?;
    /// let master = cluster.master_for_key("k")?;
    /// // The owner answers; any other node redirects with MOVED.
    /// assert_eq!(cluster.node(master)?.command(&["SET", "k", "v"])?, Reply::Simple("OK".into()));
    /// let other = (master + 1) % cluster.len();
    /// let moved = cluster.node(other)?.command(&["GET", "k"])?;
    /// assert!(matches!(moved, Reply::Error(e) if e.starts_with("MOVED")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn master_for_key(&self, key: &str) -> Result<usize, TestkitError> {
        self.master_for_slot(self.slot(key)?)
    }

    /// Kills node `index` with `SIGKILL`, as a crash would.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; as [`RedisServer::kill`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let mut cluster = RedisCluster::start()?;
    /// let replica = cluster.replicas()?[0];
    /// cluster.kill(replica)?;
    /// assert!(!cluster.node(replica)?.is_running());
    /// assert_eq!(cluster.masters()?.len(), 3); // losing a replica loses no slots
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill(&mut self, index: usize) -> Result<(), TestkitError> {
        self.remember_slots(index)?;
        self.nodes[index].kill()
    }

    /// Stops node `index` gracefully (`SIGTERM`).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; as [`RedisServer::stop`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let mut cluster = RedisCluster::start()?;
    /// cluster.stop(5)?;
    /// assert!(!cluster.node(5)?.is_running());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&mut self, index: usize) -> Result<(), TestkitError> {
        self.remember_slots(index)?;
        self.nodes[index].stop()
    }

    /// Freezes node `index` with `SIGSTOP`: its connections stay open, nothing answers.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; as [`RedisServer::pause`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let mut cluster = RedisCluster::start()?;
    /// cluster.pause(1)?;
    /// assert!(cluster.node(1)?.is_paused());
    /// cluster.resume(1)?;
    /// cluster.wait_until_healthy()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(&mut self, index: usize) -> Result<(), TestkitError> {
        self.remember_slots(index)?;
        self.nodes[index].pause()
    }

    /// Lets a paused node `index` run again (`SIGCONT`).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; as [`RedisServer::resume`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisCluster, Reply};
    ///
    /// let mut cluster = RedisCluster::start()?;
    /// cluster.pause(4)?;
    /// cluster.resume(4)?;
    /// assert_eq!(cluster.node(4)?.command(&["PING"])?, Reply::Simple("PONG".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume(&mut self, index: usize) -> Result<(), TestkitError> {
        self.node(index)?;
        self.nodes[index].resume()
    }

    /// Restarts node `index` on its port and data directory (its `nodes.conf` survives, so it
    /// rejoins; its data does not). Returns once it answers `PING`; call
    /// [`wait_until_healthy`](RedisCluster::wait_until_healthy) to wait until it has rejoined.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; as [`RedisServer::restart`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let mut cluster = RedisCluster::start()?;
    /// let replica = cluster.replicas()?[1];
    /// cluster.kill(replica)?;
    /// cluster.restart(replica)?;
    /// cluster.wait_until_healthy()?;
    /// assert!(cluster.replicas()?.contains(&replica));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restart(&mut self, index: usize) -> Result<(), TestkitError> {
        self.node(index)?;
        self.nodes[index].restart()
    }

    /// Kills master `index` and waits until a replica has taken over its slots; returns the
    /// new master's index.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when `index` is not a master; as
    /// [`kill`](RedisCluster::kill) and [`wait_for_failover`](RedisCluster::wait_for_failover).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let mut cluster = RedisCluster::start()?;
    /// let old = cluster.masters()?[1];
    /// let new = cluster.kill_master(old)?;
    /// assert_eq!(cluster.masters()?[1], new);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill_master(&mut self, index: usize) -> Result<usize, TestkitError> {
        self.require_master(index)?;
        self.kill(index)?;
        self.wait_for_failover(index)
    }

    /// Pauses master `index` and waits until a replica has taken over its slots; returns the
    /// new master's index. The old master stays paused until [`resume`](RedisCluster::resume).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when `index` is not a master; as
    /// [`pause`](RedisCluster::pause) and [`wait_for_failover`](RedisCluster::wait_for_failover).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisCluster, TestkitError};
    ///
    /// let mut cluster = RedisCluster::start()?;
    /// let replica = cluster.replicas()?[0];
    /// assert!(matches!(cluster.pause_master(replica), Err(TestkitError::Topology(_))));
    /// let old = cluster.master_for_key("k")?;
    /// let new = cluster.pause_master(old)?;
    /// assert_eq!(cluster.master_for_key("k")?, new);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause_master(&mut self, index: usize) -> Result<usize, TestkitError> {
        self.require_master(index)?;
        self.pause(index)?;
        self.wait_for_failover(index)
    }

    /// Waits until the slots that master `old` held when it was last faulted (killed, stopped
    /// or paused through this cluster) are served by another master, in the view of every
    /// running node, every running node reports `cluster_state:ok`, and the new master sees
    /// itself as master. Returns the new master's index.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when `old` held no slots when faulted;
    /// [`TestkitError::Timeout`] when the failover does not complete within the wait timeout
    /// (30 s unless the builder set another), with the last state seen.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let mut cluster = RedisCluster::start()?;
    /// let old = cluster.masters()?[0];
    /// cluster.kill(old)?;
    /// let new = cluster.wait_for_failover(old)?;
    /// assert_eq!(cluster.master_for_slot(0)?, new);
    /// cluster.restart(old)?; // rejoins as a replica
    /// cluster.wait_until_healthy()?;
    /// assert!(cluster.replicas()?.contains(&old));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_failover(&self, old: usize) -> Result<usize, TestkitError> {
        self.node(old)?;
        let slot = match self.held.get(&old).and_then(|ranges| ranges.first()) {
            Some(&(first, _)) => first,
            None => {
                return Err(TestkitError::Topology(format!(
                    "node {old} served no slots when it was last faulted"
                )));
            }
        };
        let old_port = self.announced_port(old);
        self.wait_for(
            &format!("a replica to take over node {old}'s slots"),
            || {
                let mut owner = None;
                for (index, node) in self.nodes.iter().enumerate() {
                    if index == old || !node.is_up() {
                        continue;
                    }
                    let state = cluster_state(node)?;
                    if state != "ok" {
                        return Err(format!("node {index}: cluster_state:{state}"));
                    }
                    let view = nodes_view(node)?;
                    let serving = view
                        .iter()
                        .find(|n| n.has("master") && !n.failed() && n.owns(slot))
                        .ok_or_else(|| {
                            format!("node {index} sees no live master for slot {slot}")
                        })?;
                    if serving.port == old_port {
                        return Err(format!(
                            "node {index} still routes slot {slot} to node {old}"
                        ));
                    }
                    match owner {
                        None => owner = Some(serving.port),
                        Some(port) if port == serving.port => {}
                        Some(port) => {
                            return Err(format!(
                                "nodes disagree on slot {slot}: port {port} or {}",
                                serving.port
                            ));
                        }
                    }
                }
                let port = owner.ok_or("no running node")?;
                let new = self
                    .index_of(port)
                    .ok_or("slot served by an unknown node")?;
                let role = role_of(&self.nodes[new])?;
                if role != "master" {
                    return Err(format!(
                        "node {new} serves slot {slot} but says role:{role}"
                    ));
                }
                Ok(new)
            },
        )
    }

    /// Waits until every replica of master `index` has acknowledged everything the master had
    /// written when the wait began (each replica's offset in the master's `INFO replication`
    /// reaches the master's `master_repl_offset`), so a write made before the call survives a
    /// failover. `WAIT` on a fresh connection cannot tell this: it counts only the writes of
    /// its own connection. Replicas acknowledge once a second, so this takes up to a second.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; [`TestkitError::Timeout`] when the master
    /// has no replica or one does not catch up within the wait timeout.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisCluster, Reply};
    ///
    /// let mut cluster = RedisCluster::start()?;
    /// let old = cluster.master_for_key("k")?;
    /// cluster.node(old)?.command(&["SET", "k", "v"])?;
    /// cluster.wait_until_replicated(old)?;
    /// let new = cluster.kill_master(old)?; // the promoted replica has the write
    /// assert_eq!(cluster.node(new)?.command(&["GET", "k"])?, Reply::Bulk(Some(b"v".to_vec())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_until_replicated(&self, index: usize) -> Result<(), TestkitError> {
        let node = self.node(index)?;
        let offset = |info: &str| field(info, "master_repl_offset")?.parse::<u64>().ok();
        let target = info(node, "replication")
            .ok()
            .as_deref()
            .and_then(offset)
            .ok_or_else(|| {
                TestkitError::Topology(format!("node {index} reports no replication offset"))
            })?;
        self.wait_for(
            &format!("node {index}'s replicas to reach offset {target}"),
            || {
                let info = info(node, "replication")?;
                // `slaveN:ip=...,port=...,state=online,offset=N,lag=0`
                let acknowledged: Vec<u64> = info
                    .lines()
                    .filter(|line| line.starts_with("slave") && line.contains(":ip="))
                    .filter_map(|line| {
                        line.split(',')
                            .find_map(|part| part.strip_prefix("offset="))
                            .and_then(|n| n.trim().parse().ok())
                    })
                    .collect();
                if acknowledged.is_empty() {
                    return Err(format!("node {index} has no replica"));
                }
                if acknowledged.iter().all(|&n| n >= target) {
                    Ok(())
                } else {
                    Err(format!("replica offsets {acknowledged:?}, master {target}"))
                }
            },
        )
    }

    /// Waits until every running node reports `cluster_state:ok`, sees every other running
    /// node as healthy, agrees with the others on which master serves each slot range, and
    /// every running replica's link to its master is up.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Timeout`] when that does not hold within the wait timeout.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisCluster;
    ///
    /// let mut cluster = RedisCluster::start()?;
    /// let replica = cluster.replicas()?[2];
    /// cluster.restart(replica)?;
    /// cluster.wait_until_healthy()?;
    /// assert_eq!(cluster.replicas()?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_until_healthy(&self) -> Result<(), TestkitError> {
        let up: Vec<u16> = (0..self.nodes.len())
            .filter(|&index| self.nodes[index].is_up())
            .map(|index| self.announced_port(index))
            .collect();
        self.wait_for("every running node to be healthy", || {
            let mut agreed: Option<Vec<Agreed>> = None;
            for (index, node) in self.nodes.iter().enumerate() {
                if !node.is_up() {
                    continue;
                }
                let state = cluster_state(node)?;
                if state != "ok" {
                    return Err(format!("node {index}: cluster_state:{state}"));
                }
                let view = nodes_view(node)?;
                for port in &up {
                    let seen = view.iter().find(|n| n.port == *port);
                    match seen {
                        Some(n) if !n.failed() && !n.has("handshake") && !n.has("noaddr") => {}
                        _ => return Err(format!("node {index} does not yet see port {port} up")),
                    }
                }
                // Roles spread by gossip: wait until every view has the same ones.
                let mut roles: Vec<Agreed> = view
                    .iter()
                    .filter(|n| up.contains(&n.port))
                    .map(|n| (n.port, n.has("master"), n.master.clone(), n.slots.clone()))
                    .collect();
                roles.sort_unstable();
                match &agreed {
                    None => agreed = Some(roles),
                    Some(first) if *first == roles => {}
                    Some(_) => return Err(format!("node {index} disagrees on roles or slots")),
                }
                if let Some(me) = view.iter().find(|n| n.has("myself"))
                    && me.has("slave")
                {
                    let info = info(node, "replication")?;
                    if field(&info, "master_link_status") != Some("up") {
                        return Err(format!("replica {index}: master link not up"));
                    }
                }
            }
            Ok(())
        })
    }

    fn create(&self, cli: Option<PathBuf>) -> Result<(), TestkitError> {
        let cli = cli
            .or_else(|| std::env::var_os("KEEL_REDIS_CLI").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("redis-cli"));
        let mut command = Command::new(&cli);
        command.args(["--cluster", "create"]);
        for node in &self.nodes {
            command.arg(format!("127.0.0.1:{}", node.port()));
        }
        let output = command
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TestkitError::NotInstalled {
                    binary: cli.clone(),
                },
                _ => TestkitError::io(format!("running {}", cli.display()), e),
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || !stdout.contains("[OK] All 16384 slots covered") {
            let tail: Vec<&str> = stdout.lines().rev().take(5).collect();
            return Err(TestkitError::NotReady {
                port: self.nodes[0].port(),
                detail: format!(
                    "redis-cli --cluster create exited with {}: {} {}",
                    output.status,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
        Ok(())
    }

    /// Polls `check` until it returns a value or the wait timeout passes.
    fn wait_for<T>(
        &self,
        what: &str,
        mut check: impl FnMut() -> Result<T, String>,
    ) -> Result<T, TestkitError> {
        let start = Instant::now();
        loop {
            match check() {
                Ok(value) => return Ok(value),
                Err(last_seen) if start.elapsed() >= self.wait_timeout => {
                    return Err(TestkitError::Timeout {
                        waited_for: what.to_owned(),
                        after: start.elapsed(),
                        last_seen,
                    });
                }
                Err(_) => std::thread::sleep(POLL_EVERY),
            }
        }
    }

    /// The node whose announced port (its proxy's, when it has one) is `port`.
    fn index_of(&self, port: u16) -> Option<usize> {
        (0..self.nodes.len()).find(|&index| self.announced_port(index) == port)
    }

    /// The port node `index` gives in `CLUSTER NODES` and redirects.
    fn announced_port(&self, index: usize) -> u16 {
        self.proxies
            .get(index)
            .map_or_else(|| self.nodes[index].port(), FaultProxy::port)
    }

    fn require_master(&self, index: usize) -> Result<(), TestkitError> {
        if self.masters()?.contains(&index) {
            Ok(())
        } else {
            Err(TestkitError::Topology(format!(
                "node {index} is not a master"
            )))
        }
    }

    /// Records the slots `index` serves now, before a fault hides them.
    fn remember_slots(&mut self, index: usize) -> Result<(), TestkitError> {
        let node = self.node(index)?;
        if !node.is_up() {
            // Already down: keep what it held before its first fault.
            return Ok(());
        }
        let port = self.announced_port(index);
        let slots = self
            .healthy_view()
            .ok()
            .and_then(|view| view.into_iter().find(|n| n.port == port))
            .filter(|n| n.has("master") && !n.failed())
            .map(|n| n.slots)
            .unwrap_or_default();
        self.held.insert(index, slots);
        Ok(())
    }

    /// `CLUSTER NODES` from a running node reporting `cluster_state:ok`, or from any running
    /// node when none does.
    fn healthy_view(&self) -> Result<Vec<NodeView>, TestkitError> {
        let mut fallback = None;
        let mut last = String::from("no running node");
        for node in self.nodes.iter().filter(|n| n.is_up()) {
            match nodes_view(node) {
                Ok(view) => {
                    if cluster_state(node).as_deref() == Ok("ok") {
                        return Ok(view);
                    }
                    fallback.get_or_insert(view);
                }
                Err(error) => last = error,
            }
        }
        fallback.ok_or_else(|| TestkitError::Topology(format!("no node answered: {last}")))
    }
}

/// What every node's view must agree on: port, master or not, its master, its slots.
type Agreed = (u16, bool, Option<String>, Vec<(u16, u16)>);

fn no_such_node(index: usize) -> TestkitError {
    TestkitError::Topology(format!("no node {index}: a cluster has nodes 0..{NODES}"))
}

fn text(node: &RedisServer, args: &[&str]) -> Result<String, String> {
    match node.command_within(args, POLL_TIMEOUT) {
        Ok(Reply::Bulk(Some(bytes))) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(Reply::Simple(text)) => Ok(text),
        Ok(other) => Err(format!("port {}: {args:?} answered {other:?}", node.port())),
        Err(error) => Err(format!("port {}: {error}", node.port())),
    }
}

fn info(node: &RedisServer, section: &str) -> Result<String, String> {
    text(node, &["INFO", section])
}

pub(crate) fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

fn cluster_state(node: &RedisServer) -> Result<String, String> {
    let info = text(node, &["CLUSTER", "INFO"])?;
    Ok(field(&info, "cluster_state").unwrap_or("?").to_owned())
}

fn role_of(node: &RedisServer) -> Result<String, String> {
    let info = info(node, "replication")?;
    Ok(field(&info, "role").unwrap_or("?").to_owned())
}

fn nodes_view(node: &RedisServer) -> Result<Vec<NodeView>, String> {
    let text = text(node, &["CLUSTER", "NODES"])?;
    Ok(text.lines().filter_map(parse_node_line).collect())
}

/// `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`
fn parse_node_line(line: &str) -> Option<NodeView> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let address = fields.get(1)?;
    let port = address
        .split('@')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()?;
    let flags = fields.get(2)?.split(',').map(str::to_owned).collect();
    let master = fields
        .get(3)
        .filter(|m| **m != "-")
        .map(|m| (*m).to_owned());
    let slots = fields
        .iter()
        .skip(8)
        // `[slot->-id]` entries are migrations in progress, not ownership.
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|n| (n, n)),
        })
        .collect();
    Some(NodeView {
        port,
        master,
        flags,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_nodes_lines() {
        let line = "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host \
                    slave,fail e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 \
                    connected";
        let node = parse_node_line(line).expect("parses");
        assert_eq!(node.port, 30004);
        assert!(node.has("slave") && node.failed());
        assert!(node.slots.is_empty());

        let line = "e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 \
                    7000 [5461->-abcd]";
        let node = parse_node_line(line).expect("parses");
        assert_eq!(node.slots, vec![(0, 5460), (7000, 7000)]);
        assert!(node.owns(5460) && node.owns(7000) && !node.owns(5461));
        assert!(!node.failed());
    }

    #[test]
    fn reads_info_fields() {
        let info = "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\n";
        assert_eq!(field(info, "role"), Some("slave"));
        assert_eq!(field(info, "master_link_status"), Some("up"));
        assert_eq!(field(info, "master"), None);
    }
}
