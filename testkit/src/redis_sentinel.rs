//! `RedisSentinel`: a master, its replicas and three Sentinels watching them, owned by a test.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::redis_cluster::field;
use crate::resp::Reply;
use crate::{FaultProxy, RedisServer, TestkitError};

const SENTINELS: usize = 3;
const QUORUM: usize = 2;
const POLL_TIMEOUT: Duration = Duration::from_millis(500);
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Configures a [`RedisSentinel`] group before it starts.
///
/// ```
/// use std::time::Duration;
/// use keel_testkit::RedisSentinel;
///
/// let group = RedisSentinel::builder()
///     .master_name("orders")
///     .replicas(1)?
///     .down_after(Duration::from_millis(1500))
///     .start()?;
/// assert_eq!(group.master_name(), "orders");
/// assert_eq!(group.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RedisSentinelBuilder {
    master_name: String,
    replicas: usize,
    down_after: Duration,
    failover_timeout: Duration,
    wait_timeout: Duration,
    binary: Option<PathBuf>,
    fault_proxies: bool,
}

impl Default for RedisSentinelBuilder {
    fn default() -> RedisSentinelBuilder {
        RedisSentinelBuilder {
            master_name: "keel".to_owned(),
            replicas: 2,
            down_after: Duration::from_millis(1000),
            failover_timeout: Duration::from_millis(4000),
            wait_timeout: Duration::from_secs(30),
            binary: None,
            fault_proxies: false,
        }
    }
}

impl RedisSentinelBuilder {
    /// The name the Sentinels know the master by (the default is `keel`); a client asks for it.
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::builder().master_name("cache").start()?;
    /// assert_eq!(group.master_name(), "cache");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn master_name(mut self, name: impl Into<String>) -> RedisSentinelBuilder {
        self.master_name = name.into();
        self
    }

    /// How many replicas follow the master: 1 or 2 (the default).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for any other count.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisSentinel, TestkitError};
    ///
    /// assert!(matches!(RedisSentinel::builder().replicas(0), Err(TestkitError::Topology(_))));
    /// let group = RedisSentinel::builder().replicas(1)?.start()?;
    /// assert_eq!(group.replicas()?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replicas(mut self, replicas: usize) -> Result<RedisSentinelBuilder, TestkitError> {
        if !(1..=2).contains(&replicas) {
            return Err(TestkitError::Topology(format!(
                "a Sentinel group has 1 or 2 replicas, not {replicas}"
            )));
        }
        self.replicas = replicas;
        Ok(self)
    }

    /// Sets `down-after-milliseconds`: how long the master may be silent before the
    /// Sentinels call it down. A failover takes about this long plus two to three seconds.
    /// The default is 1 s; it is clamped to at least 100 ms.
    ///
    /// ```
    /// use std::time::Duration;
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::builder().down_after(Duration::from_secs(2)).start()?;
    /// assert!(group.master().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn down_after(mut self, after: Duration) -> RedisSentinelBuilder {
        self.down_after = after.max(Duration::from_millis(100));
        self
    }

    /// Sets Sentinel's `failover-timeout`. A second failover of the same master cannot start
    /// until twice this has passed since the first. The default is 4 s; it is clamped to at
    /// least 1 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::builder().failover_timeout(Duration::from_secs(3)).start()?;
    /// assert_eq!(group.sentinel_urls().len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failover_timeout(mut self, timeout: Duration) -> RedisSentinelBuilder {
        self.failover_timeout = timeout.max(Duration::from_secs(1));
        self
    }

    /// Sets how long the bounded waits (starting, [`RedisSentinel::wait_for_failover`],
    /// [`RedisSentinel::wait_until_healthy`]) may take. The default is 30 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::builder().wait_timeout(Duration::from_secs(60)).start()?;
    /// group.wait_until_healthy()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(mut self, timeout: Duration) -> RedisSentinelBuilder {
        self.wait_timeout = timeout;
        self
    }

    /// Runs this `redis-server` for every process instead of `$KEEL_REDIS_SERVER` or the
    /// one on `PATH`. Sentinels run it as `redis-server sentinel.conf --sentinel`, which is
    /// what Debian's `redis-sentinel` command does.
    ///
    /// ```
    /// use keel_testkit::{RedisSentinel, TestkitError};
    ///
    /// let missing = RedisSentinel::builder().binary("/no/such/redis-server").start();
    /// assert!(matches!(missing, Err(TestkitError::NotInstalled { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn binary(mut self, path: impl Into<PathBuf>) -> RedisSentinelBuilder {
        self.binary = Some(path.into());
        self
    }

    /// Puts a [`FaultProxy`] in front of every data server and has the Sentinels know each
    /// server by its proxy's address (the master is monitored through its proxy; a server
    /// announces its proxy's port as a replica, `replica-announce-port`), so a client that asks
    /// the Sentinels for the master connects through the proxy: a test then cuts, delays or
    /// resets the path to the master ([`RedisSentinel::proxy`]). The Sentinels' own checks go
    /// through the proxies too, so a fault that outlasts
    /// [`down_after`](RedisSentinelBuilder::down_after) fails the master over; set it longer
    /// than the fault to test the client's path alone. Replicas first connect to the master
    /// directly. Off by default.
    ///
    /// ```
    /// use keel_testkit::{RedisSentinel, Reply};
    ///
    /// let group = RedisSentinel::builder().fault_proxies(true).start()?;
    /// let proxy = group.proxy(group.master()?)?;
    /// let reply = group.sentinel(0)?.command(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "keel"])?;
    /// let Reply::Array(Some(address)) = reply else { return Err("no address".into()) };
    /// assert_eq!(address[1], Reply::Bulk(Some(proxy.port().to_string().into_bytes())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fault_proxies(mut self, on: bool) -> RedisSentinelBuilder {
        self.fault_proxies = on;
        self
    }

    /// Starts the master, then its replicas (waiting until they are in sync), then three
    /// Sentinels with quorum 2, and waits until every Sentinel knows the other two and every
    /// replica.
    ///
    /// # Errors
    ///
    /// [`TestkitError::NotInstalled`] when `redis-server` is missing, [`TestkitError::NotReady`]
    /// when a process fails to start, and [`TestkitError::Timeout`] when the group is not
    /// healthy within the wait timeout.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::builder().start()?;
    /// assert_eq!(group.master()?, 0); // the first server starts as master
    /// assert_eq!(group.replicas()?, vec![1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(self) -> Result<RedisSentinel, TestkitError> {
        let server = || {
            let builder = RedisServer::builder().config("repl-diskless-sync-delay", "0");
            match &self.binary {
                Some(binary) => builder.binary(binary.clone()),
                None => builder,
            }
        };
        let mut proxies = Vec::new();
        let mut proxied = |server: &mut RedisServer| -> Result<(), TestkitError> {
            if self.fault_proxies {
                let proxy = FaultProxy::start(server.port())?;
                server.set_config("replica-announce-port", &proxy.port().to_string())?;
                proxies.push(proxy);
            }
            Ok(())
        };
        let mut master = server().start()?;
        proxied(&mut master)?;
        let master_port = master.port();
        let mut servers = vec![master];
        for _ in 0..self.replicas {
            // The announced port is set before the replica first syncs: the master lists a
            // replica by the port it gave when it connected.
            let mut replica = server().start()?;
            proxied(&mut replica)?;
            let replicaof = format!("127.0.0.1 {master_port}");
            match replica.command(&["REPLICAOF", "127.0.0.1", &master_port.to_string()])? {
                Reply::Simple(ok) if ok == "OK" => {}
                other => {
                    return Err(TestkitError::Protocol(format!(
                        "REPLICAOF answered {other:?}"
                    )));
                }
            }
            replica.keep_config("replicaof", &replicaof);
            servers.push(replica);
        }
        let monitored_port = proxies.first().map_or(master_port, FaultProxy::port);
        let mut group = RedisSentinel {
            servers,
            proxies,
            sentinels: Vec::new(),
            name: self.master_name.clone(),
            wait_timeout: self.wait_timeout,
        };
        // Replicas first: a Sentinel learns them from the master's INFO, which it reads at
        // once on start and then only every 10 s.
        group.wait_for("the replicas to sync", || group.replication_healthy(0))?;
        let name = &self.master_name;
        let config = format!(
            "sentinel monitor {name} 127.0.0.1 {monitored_port} {QUORUM}\n\
             sentinel down-after-milliseconds {name} {}\n\
             sentinel failover-timeout {name} {}\n\
             sentinel parallel-syncs {name} {}\n",
            self.down_after.as_millis(),
            self.failover_timeout.as_millis(),
            self.replicas,
        );
        for _ in 0..SENTINELS {
            let sentinel = server().sentinel(config.clone()).start()?;
            group.sentinels.push(sentinel);
        }
        group.wait_until_healthy()?;
        Ok(group)
    }
}

/// A Sentinel-managed Redis on `127.0.0.1`: data servers (index 0 starts as master, the
/// others as its replicas) and three Sentinels with quorum 2, all killed on drop.
///
/// Servers keep their index across faults; which one is master changes with failovers, so
/// ask [`master`](RedisSentinel::master). A client connects through
/// [`sentinel_urls`](RedisSentinel::sentinel_urls) and
/// [`master_name`](RedisSentinel::master_name).
///
/// # Example
///
/// ```
/// use keel_testkit::{RedisSentinel, Reply};
///
/// let mut group = RedisSentinel::start()?;
/// let old = group.master()?;
/// group.server(old)?.command(&["SET", "fence", "7"])?;
/// // Read the write back from both replicas (bounded), so the promoted one has it. (`WAIT`
/// // on a fresh connection would not tell: it counts only that connection's writes.)
/// let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
/// for replica in group.replicas()? {
///     while group.server(replica)?.command(&["GET", "fence"])? != Reply::Bulk(Some(b"7".to_vec())) {
///         assert!(std::time::Instant::now() < deadline, "replica {replica} never got the write");
///         std::thread::sleep(std::time::Duration::from_millis(20));
///     }
/// }
///
/// let new = group.kill_master()?; // a replica was promoted
/// assert_ne!(new, old);
/// assert_eq!(group.master()?, new);
/// assert_eq!(group.server(new)?.command(&["GET", "fence"])?, Reply::Bulk(Some(b"7".to_vec())));
///
/// group.restart(old)?; // the Sentinels turn it into a replica of the new master
/// group.wait_until_healthy()?;
/// assert!(group.replicas()?.contains(&old));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RedisSentinel {
    servers: Vec<RedisServer>,
    /// One per data server, in index order, when started with `fault_proxies(true)`.
    proxies: Vec<FaultProxy>,
    sentinels: Vec<RedisServer>,
    name: String,
    wait_timeout: Duration,
}

impl RedisSentinel {
    /// Starts a group with the default options: master `keel`, two replicas.
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::start()?;
    /// assert_eq!(group.master_name(), "keel");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`RedisSentinelBuilder::start`].
    pub fn start() -> Result<RedisSentinel, TestkitError> {
        RedisSentinel::builder().start()
    }

    /// A builder for a group with options: master name, replicas, timings.
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::builder().replicas(1)?.start()?;
    /// assert_eq!(group.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> RedisSentinelBuilder {
        RedisSentinelBuilder::default()
    }

    /// The name the Sentinels monitor the master under.
    ///
    /// ```
    /// use keel_testkit::{RedisSentinel, Reply};
    ///
    /// let group = RedisSentinel::start()?;
    /// let reply = group.sentinel(0)?.command(&["SENTINEL", "MASTER", group.master_name()])?;
    /// assert!(matches!(reply, Reply::Array(Some(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn master_name(&self) -> &str {
        &self.name
    }

    /// The URL of every Sentinel, to build a Sentinel client
    /// (`redis::sentinel::SentinelClient::build(group.sentinel_urls(), ...)`).
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::start()?;
    /// assert_eq!(group.sentinel_urls()[1], group.sentinel(1)?.url());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// The URL of every data server, in index order.
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::start()?;
    /// assert_eq!(group.urls(), vec![group.server(0)?.url(), group.server(1)?.url(), group.server(2)?.url()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(RedisServer::url).collect()
    }

    /// How many data servers there are: the master and its replicas.
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::start()?;
    /// assert_eq!(group.len(), 3);
    /// assert!(!group.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there are no data servers (never, once started).
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// assert!(!RedisSentinel::start()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Data server `index`, to read its URL or pid or send it a command.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when there is no such server.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisSentinel, Reply, TestkitError};
    ///
    /// let group = RedisSentinel::start()?;
    /// assert_eq!(group.server(1)?.command(&["PING"])?, Reply::Simple("PONG".into()));
    /// assert!(matches!(group.server(3), Err(TestkitError::Topology(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn server(&self, index: usize) -> Result<&RedisServer, TestkitError> {
        self.servers.get(index).ok_or_else(|| {
            TestkitError::Topology(format!(
                "no server {index}: this group has servers 0..{}",
                self.servers.len()
            ))
        })
    }

    /// The [`FaultProxy`] in front of data server `index`, for a group started with
    /// [`fault_proxies(true)`](RedisSentinelBuilder::fault_proxies).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when there is no such server or the group has no proxies.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisSentinel, Reply, TestkitError};
    ///
    /// let group = RedisSentinel::builder().fault_proxies(true).start()?;
    /// assert_eq!(group.proxy(1)?.target().port(), group.server(1)?.port());
    /// assert_eq!(group.proxy(1)?.command(&["PING"])?, Reply::Simple("PONG".into()));
    /// assert!(matches!(RedisSentinel::start()?.proxy(0), Err(TestkitError::Topology(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn proxy(&self, index: usize) -> Result<&FaultProxy, TestkitError> {
        self.server(index)?;
        self.proxies.get(index).ok_or_else(|| {
            TestkitError::Topology("this group was started without fault proxies".into())
        })
    }

    /// Sentinel `index` (0, 1 or 2).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when there is no such Sentinel.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisSentinel, Reply, TestkitError};
    ///
    /// let group = RedisSentinel::start()?;
    /// let port = group.server(group.master()?)?.port().to_string();
    /// let reply = group.sentinel(2)?.command(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "keel"])?;
    /// let Reply::Array(Some(address)) = reply else { return Err("no address".into()) };
    /// assert_eq!(address[1], Reply::Bulk(Some(port.into_bytes())));
    /// assert!(matches!(group.sentinel(3), Err(TestkitError::Topology(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sentinel(&self, index: usize) -> Result<&RedisServer, TestkitError> {
        self.sentinels.get(index).ok_or_else(|| {
            TestkitError::Topology(format!(
                "no sentinel {index}: a group has sentinels 0..{SENTINELS}"
            ))
        })
    }

    /// The index of the master, as the running Sentinels report it (they must agree).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when no Sentinel answers, they disagree, or they name a
    /// server that is not in the group.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let group = RedisSentinel::start()?;
    /// assert_eq!(group.master()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn master(&self) -> Result<usize, TestkitError> {
        self.reported_master().map_err(TestkitError::Topology)
    }

    /// The indexes of the running servers that report `role:slave`, in index order.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for a failed query.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let mut group = RedisSentinel::start()?;
    /// group.kill(2)?;
    /// assert_eq!(group.replicas()?, vec![1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replicas(&self) -> Result<Vec<usize>, TestkitError> {
        Ok(self
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_up() && role_of(s).as_deref() == Ok("slave"))
            .map(|(index, _)| index)
            .collect())
    }

    /// Kills data server `index` with `SIGKILL`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; as [`RedisServer::kill`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let mut group = RedisSentinel::start()?;
    /// group.kill(1)?;
    /// assert!(!group.server(1)?.is_running());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill(&mut self, index: usize) -> Result<(), TestkitError> {
        self.server(index)?;
        self.servers[index].kill()
    }

    /// Freezes data server `index` with `SIGSTOP`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; as [`RedisServer::pause`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let mut group = RedisSentinel::start()?;
    /// group.pause(2)?;
    /// assert!(group.server(2)?.is_paused());
    /// group.resume(2)?;
    /// group.wait_until_healthy()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(&mut self, index: usize) -> Result<(), TestkitError> {
        self.server(index)?;
        self.servers[index].pause()
    }

    /// Lets a paused data server `index` run again.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; as [`RedisServer::resume`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisSentinel, Reply};
    ///
    /// let mut group = RedisSentinel::start()?;
    /// group.pause(1)?;
    /// group.resume(1)?;
    /// assert_eq!(group.server(1)?.command(&["PING"])?, Reply::Simple("PONG".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume(&mut self, index: usize) -> Result<(), TestkitError> {
        self.server(index)?;
        self.servers[index].resume()
    }

    /// Restarts data server `index` on its port, with no data. It starts with its first
    /// role (server 0 as a master, the others as replicas of server 0); the Sentinels then
    /// point it at the current master. [`wait_until_healthy`](RedisSentinel::wait_until_healthy)
    /// waits for that.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; as [`RedisServer::restart`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let mut group = RedisSentinel::start()?;
    /// group.kill(2)?;
    /// group.restart(2)?;
    /// group.wait_until_healthy()?;
    /// assert_eq!(group.replicas()?, vec![1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restart(&mut self, index: usize) -> Result<(), TestkitError> {
        self.server(index)?;
        self.servers[index].restart()
    }

    /// Kills the current master and waits for the Sentinels to promote a replica; returns
    /// the new master's index.
    ///
    /// # Errors
    ///
    /// As [`master`](RedisSentinel::master), [`kill`](RedisSentinel::kill) and
    /// [`wait_for_failover`](RedisSentinel::wait_for_failover).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let mut group = RedisSentinel::start()?;
    /// let new = group.kill_master()?;
    /// assert_ne!(new, 0);
    /// assert_eq!(group.master()?, new);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill_master(&mut self) -> Result<usize, TestkitError> {
        let old = self.master()?;
        self.kill(old)?;
        self.wait_for_failover(old)
    }

    /// Pauses the current master and waits for the Sentinels to promote a replica; returns
    /// the new master's index. The old master stays paused until
    /// [`resume`](RedisSentinel::resume).
    ///
    /// # Errors
    ///
    /// As [`master`](RedisSentinel::master), [`pause`](RedisSentinel::pause) and
    /// [`wait_for_failover`](RedisSentinel::wait_for_failover).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let mut group = RedisSentinel::start()?;
    /// let new = group.pause_master()?;
    /// assert!(group.server(0)?.is_paused());
    /// group.resume(0)?; // demoted to a replica of the new master
    /// group.wait_until_healthy()?;
    /// assert_eq!(group.master()?, new);
    /// assert!(group.replicas()?.contains(&0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause_master(&mut self) -> Result<usize, TestkitError> {
        let old = self.master()?;
        self.pause(old)?;
        self.wait_for_failover(old)
    }

    /// Waits until every running Sentinel names a master other than server `old`, they agree,
    /// and that server reports `role:master`. Returns the new master's index.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; [`TestkitError::Timeout`] when no failover
    /// completes within the wait timeout (30 s unless the builder set another).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let mut group = RedisSentinel::start()?;
    /// group.kill(0)?;
    /// let new = group.wait_for_failover(0)?;
    /// assert!(new == 1 || new == 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_failover(&self, old: usize) -> Result<usize, TestkitError> {
        self.server(old)?;
        self.wait_for(
            &format!("the Sentinels to fail over from server {old}"),
            || {
                let new = self.reported_master()?;
                if new == old {
                    return Err(format!("the Sentinels still name server {old}"));
                }
                let role = role_of(&self.servers[new])?;
                if role != "master" {
                    return Err(format!("server {new} is named master but says role:{role}"));
                }
                Ok(new)
            },
        )
    }

    /// Waits until the Sentinels agree on a running master, every other running server
    /// replicates from it with its link up, and every running Sentinel knows the other
    /// running Sentinels and every running replica.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Timeout`] when that does not hold within the wait timeout.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::RedisSentinel;
    ///
    /// let mut group = RedisSentinel::start()?;
    /// group.restart(1)?;
    /// group.wait_until_healthy()?;
    /// assert_eq!(group.replicas()?, vec![1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_until_healthy(&self) -> Result<(), TestkitError> {
        self.wait_for("the Sentinel group to be healthy", || {
            let master = self.reported_master()?;
            if !self.servers[master].is_up() {
                return Err(format!("the Sentinels name server {master}, which is down"));
            }
            self.replication_healthy(master)?;
            let sentinels_up = self.sentinels.iter().filter(|s| s.is_up()).count();
            let replicas_up: Vec<u16> = (0..self.servers.len())
                .filter(|&index| index != master && self.servers[index].is_up())
                .map(|index| self.announced_port(index))
                .collect();
            for (index, sentinel) in self.sentinels.iter().enumerate() {
                if !sentinel.is_up() {
                    continue;
                }
                let state = pairs(sentinel, &["SENTINEL", "MASTER", &self.name])?;
                let others = state.get("num-other-sentinels").map(String::as_str);
                if others != Some(&(sentinels_up - 1).to_string()) {
                    return Err(format!("sentinel {index} knows {others:?} other sentinels"));
                }
                let flags = state.get("flags").map(String::as_str).unwrap_or("");
                if flags != "master" {
                    return Err(format!("sentinel {index} flags the master `{flags}`"));
                }
                let known = known_replicas(sentinel, &self.name)?;
                if let Some(port) = replicas_up.iter().find(|p| !known.contains(p)) {
                    return Err(format!("sentinel {index} does not yet see replica {port}"));
                }
            }
            Ok(())
        })
    }

    /// The master every running Sentinel names, as a server index.
    fn reported_master(&self) -> Result<usize, String> {
        let mut named = None;
        for (index, sentinel) in self.sentinels.iter().enumerate() {
            if !sentinel.is_up() {
                continue;
            }
            let reply = sentinel
                .command_within(
                    &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.name],
                    POLL_TIMEOUT,
                )
                .map_err(|e| format!("sentinel {index}: {e}"))?;
            let port = match reply {
                Reply::Array(Some(address)) => match address.get(1) {
                    Some(Reply::Bulk(Some(port))) => String::from_utf8_lossy(port).parse().ok(),
                    _ => None,
                },
                _ => None,
            };
            let port: u16 = port.ok_or(format!("sentinel {index} names no master"))?;
            match named {
                None => named = Some(port),
                Some(first) if first == port => {}
                Some(first) => {
                    return Err(format!("sentinels disagree: port {first} or {port}"));
                }
            }
        }
        let port = named.ok_or("no running sentinel")?;
        (0..self.servers.len())
            .find(|&index| self.announced_port(index) == port)
            .ok_or(format!("the sentinels name port {port}, not in this group"))
    }

    /// The port the Sentinels know server `index` by: its proxy's, when it has one.
    fn announced_port(&self, index: usize) -> u16 {
        self.proxies
            .get(index)
            .map_or_else(|| self.servers[index].port(), FaultProxy::port)
    }

    /// Every running server but `master` replicates from it, with its link up.
    fn replication_healthy(&self, master: usize) -> Result<(), String> {
        // A replica follows the master directly (as started) or through its proxy (as the
        // Sentinels point it after a failover).
        let master_ports = [
            self.servers[master].port().to_string(),
            self.announced_port(master).to_string(),
        ];
        for (index, server) in self.servers.iter().enumerate() {
            if index == master || !server.is_up() {
                continue;
            }
            let info = text(server, &["INFO", "replication"])?;
            if field(&info, "role") != Some("slave")
                || !field(&info, "master_port").is_some_and(|p| master_ports.iter().any(|m| m == p))
                || field(&info, "master_link_status") != Some("up")
            {
                return Err(format!("server {index} is not yet in sync with {master}"));
            }
        }
        Ok(())
    }

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
}

fn text(server: &RedisServer, args: &[&str]) -> Result<String, String> {
    match server.command_within(args, POLL_TIMEOUT) {
        Ok(Reply::Bulk(Some(bytes))) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(other) => Err(format!(
            "port {}: {args:?} answered {other:?}",
            server.port()
        )),
        Err(error) => Err(format!("port {}: {error}", server.port())),
    }
}

fn role_of(server: &RedisServer) -> Result<String, String> {
    let info = text(server, &["INFO", "replication"])?;
    Ok(field(&info, "role").unwrap_or("?").to_owned())
}

/// A flat `[name, value, ...]` reply as a map.
fn flat_map(items: &[Reply]) -> HashMap<String, String> {
    items
        .chunks(2)
        .filter_map(|pair| match pair {
            [Reply::Bulk(Some(k)), Reply::Bulk(Some(v))] => Some((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

fn pairs(server: &RedisServer, args: &[&str]) -> Result<HashMap<String, String>, String> {
    match server.command_within(args, POLL_TIMEOUT) {
        Ok(Reply::Array(Some(items))) => Ok(flat_map(&items)),
        Ok(other) => Err(format!(
            "port {}: {args:?} answered {other:?}",
            server.port()
        )),
        Err(error) => Err(format!("port {}: {error}", server.port())),
    }
}

/// The ports of the replicas a Sentinel lists for `name` and does not flag down.
fn known_replicas(sentinel: &RedisServer, name: &str) -> Result<Vec<u16>, String> {
    let reply = sentinel
        .command_within(&["SENTINEL", "REPLICAS", name], POLL_TIMEOUT)
        .map_err(|e| format!("port {}: {e}", sentinel.port()))?;
    let Reply::Array(Some(replicas)) = reply else {
        return Err(format!("SENTINEL REPLICAS answered {reply:?}"));
    };
    Ok(replicas
        .iter()
        .filter_map(|replica| match replica {
            Reply::Array(Some(items)) => Some(flat_map(items)),
            _ => None,
        })
        .filter(|r| {
            r.get("flags")
                .is_some_and(|f| !f.contains("s_down") && !f.contains("disconnected"))
        })
        .filter_map(|r| r.get("port")?.parse().ok())
        .collect())
}
