//! `ProxiedRedis`: one Redis deployment (single server, Sentinel group or Cluster) with a
//! `FaultProxy` in front of every data server, so one network-fault test runs on all three.

use std::fmt;
use std::time::Duration;

use crate::{FaultProxy, RedisCluster, RedisSentinel, RedisServer, TestkitError};

/// How long a Sentinel group's master may be silent before a failover: longer than any
/// client-side fault a test holds, so the fault tests the client's path, not a failover.
const SENTINEL_DOWN_AFTER: Duration = Duration::from_secs(10);

/// Which Redis deployment a [`ProxiedRedis`] runs.
///
/// ```
/// use keel_testkit::Deployment;
///
/// assert_eq!(Deployment::ALL.len(), 3);
/// assert_eq!(Deployment::Cluster.to_string(), "cluster");
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Deployment {
    /// One `redis-server`.
    Single,
    /// A master, two replicas and three Sentinels ([`RedisSentinel`]).
    Sentinel,
    /// Three masters and three replicas ([`RedisCluster`]).
    Cluster,
}

impl Deployment {
    /// Every deployment, for a test that runs on each.
    pub const ALL: [Deployment; 3] = [
        Deployment::Single,
        Deployment::Sentinel,
        Deployment::Cluster,
    ];
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deployment::Single => "single",
            Deployment::Sentinel => "sentinel",
            Deployment::Cluster => "cluster",
        })
    }
}

enum Inner {
    Single {
        server: RedisServer,
        proxy: FaultProxy,
    },
    Sentinel(RedisSentinel),
    Cluster(RedisCluster),
}

/// A Redis deployment whose clients reach every data server through a [`FaultProxy`]: a
/// single server, a Sentinel group ([`RedisSentinelBuilder::fault_proxies`]) or a Cluster
/// ([`RedisClusterBuilder::fault_proxies`]). Sentinel answers and Cluster redirects name the
/// proxies, so a client built from [`client_urls`](ProxiedRedis::client_urls) goes through
/// them, while [`master_for_key`](ProxiedRedis::master_for_key) gives a test the healthy,
/// direct path to the same data.
///
/// The Sentinels call a master down only after 10 s of silence, longer than a fault test
/// holds a fault, so a fault on a proxy cuts the client off without failing the master over
/// (on a Cluster the nodes' bus does not go through the proxies at all).
///
/// [`RedisSentinelBuilder::fault_proxies`]: crate::RedisSentinelBuilder::fault_proxies
/// [`RedisClusterBuilder::fault_proxies`]: crate::RedisClusterBuilder::fault_proxies
///
/// # Example
///
/// ```
/// use keel_testkit::{Deployment, ProxiedRedis, Reply};
///
/// for deployment in Deployment::ALL {
///     let redis = ProxiedRedis::start(deployment)?;
///     let proxy = redis.proxy_for_key("k")?;
///     assert_eq!(proxy.target().port(), redis.master_for_key("k")?.port());
///     // Cut the client's path to the key's master; the direct path still works.
///     proxy.blackhole();
///     assert_eq!(redis.master_for_key("k")?.command(&["SET", "k", "v"])?, Reply::Simple("OK".into()));
///     redis.heal();
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ProxiedRedis {
    inner: Inner,
}

impl ProxiedRedis {
    /// Starts `deployment` with a proxy in front of every data server.
    ///
    /// # Errors
    ///
    /// As [`RedisServer::start`], [`FaultProxy::start`], [`RedisSentinelBuilder::start`] and
    /// [`RedisClusterBuilder::start`].
    ///
    /// [`RedisSentinelBuilder::start`]: crate::RedisSentinelBuilder::start
    /// [`RedisClusterBuilder::start`]: crate::RedisClusterBuilder::start
    ///
    /// ```
    /// use keel_testkit::{Deployment, ProxiedRedis};
    ///
    /// let redis = ProxiedRedis::start(Deployment::Sentinel)?;
    /// assert_eq!(redis.deployment(), Deployment::Sentinel);
    /// assert_eq!(redis.proxies().len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(deployment: Deployment) -> Result<ProxiedRedis, TestkitError> {
        let inner = match deployment {
            Deployment::Single => {
                let server = RedisServer::start()?;
                let proxy = FaultProxy::start(server.port())?;
                Inner::Single { server, proxy }
            }
            Deployment::Sentinel => Inner::Sentinel(
                RedisSentinel::builder()
                    .fault_proxies(true)
                    .down_after(SENTINEL_DOWN_AFTER)
                    .start()?,
            ),
            Deployment::Cluster => {
                Inner::Cluster(RedisCluster::builder().fault_proxies(true).start()?)
            }
        };
        Ok(ProxiedRedis { inner })
    }

    /// Which deployment this is.
    ///
    /// ```
    /// use keel_testkit::{Deployment, ProxiedRedis};
    ///
    /// assert_eq!(ProxiedRedis::start(Deployment::Single)?.deployment(), Deployment::Single);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deployment(&self) -> Deployment {
        match self.inner {
            Inner::Single { .. } => Deployment::Single,
            Inner::Sentinel(_) => Deployment::Sentinel,
            Inner::Cluster(_) => Deployment::Cluster,
        }
    }

    /// What a client of this deployment is built from, every address going through the
    /// proxies: the proxy's URL (single server), the Sentinels' URLs (ask them for
    /// [`master_name`](ProxiedRedis::master_name)), or every node's proxy URL (Cluster seeds).
    ///
    /// ```
    /// use keel_testkit::{Deployment, ProxiedRedis};
    ///
    /// let redis = ProxiedRedis::start(Deployment::Single)?;
    /// assert_eq!(redis.client_urls(), vec![redis.proxies()[0].url()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_urls(&self) -> Vec<String> {
        match &self.inner {
            Inner::Single { proxy, .. } => vec![proxy.url()],
            Inner::Sentinel(group) => group.sentinel_urls(),
            Inner::Cluster(cluster) => cluster.proxy_urls(),
        }
    }

    /// The name the Sentinels know the master by, for a Sentinel group.
    ///
    /// ```
    /// use keel_testkit::{Deployment, ProxiedRedis};
    ///
    /// assert_eq!(ProxiedRedis::start(Deployment::Sentinel)?.master_name(), Some("keel"));
    /// assert_eq!(ProxiedRedis::start(Deployment::Single)?.master_name(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn master_name(&self) -> Option<&str> {
        match &self.inner {
            Inner::Sentinel(group) => Some(group.master_name()),
            _ => None,
        }
    }

    /// Every data server's proxy, in server index order.
    ///
    /// ```
    /// use keel_testkit::{Deployment, ProxiedRedis};
    ///
    /// assert_eq!(ProxiedRedis::start(Deployment::Cluster)?.proxies().len(), 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn proxies(&self) -> Vec<&FaultProxy> {
        match &self.inner {
            Inner::Single { proxy, .. } => vec![proxy],
            Inner::Sentinel(group) => (0..group.len())
                .filter_map(|i| group.proxy(i).ok())
                .collect(),
            Inner::Cluster(cluster) => (0..cluster.len())
                .filter_map(|i| cluster.proxy(i).ok())
                .collect(),
        }
    }

    /// The proxy in front of the master that serves `key`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when no master can be found (as [`RedisSentinel::master`]
    /// and [`RedisCluster::master_for_key`]).
    ///
    /// ```
    /// use keel_testkit::{Deployment, ProxiedRedis};
    ///
    /// let redis = ProxiedRedis::start(Deployment::Single)?;
    /// assert_eq!(redis.proxy_for_key("any")?.port(), redis.proxies()[0].port());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn proxy_for_key(&self, key: &str) -> Result<&FaultProxy, TestkitError> {
        match &self.inner {
            Inner::Single { proxy, .. } => Ok(proxy),
            Inner::Sentinel(group) => group.proxy(group.master()?),
            Inner::Cluster(cluster) => cluster.proxy(cluster.master_for_key(key)?),
        }
    }

    /// The master that serves `key`, reached directly (not through its proxy): the healthy
    /// path a test uses to read what the server holds or to act as a second client.
    ///
    /// # Errors
    ///
    /// As [`proxy_for_key`](ProxiedRedis::proxy_for_key).
    ///
    /// ```
    /// use keel_testkit::{Deployment, ProxiedRedis, Reply};
    ///
    /// let redis = ProxiedRedis::start(Deployment::Cluster)?;
    /// let master = redis.master_for_key("k")?;
    /// assert_eq!(master.command(&["SET", "k", "1"])?, Reply::Simple("OK".into())); // no MOVED
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn master_for_key(&self, key: &str) -> Result<&RedisServer, TestkitError> {
        match &self.inner {
            Inner::Single { server, .. } => Ok(server),
            Inner::Sentinel(group) => group.server(group.master()?),
            Inner::Cluster(cluster) => cluster.node(cluster.master_for_key(key)?),
        }
    }

    /// The Sentinel group, for a Sentinel deployment.
    ///
    /// ```
    /// use keel_testkit::{Deployment, ProxiedRedis};
    ///
    /// let redis = ProxiedRedis::start(Deployment::Sentinel)?;
    /// assert_eq!(redis.sentinel().ok_or("sentinel")?.master()?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sentinel(&self) -> Option<&RedisSentinel> {
        match &self.inner {
            Inner::Sentinel(group) => Some(group),
            _ => None,
        }
    }

    /// The cluster, for a Cluster deployment.
    ///
    /// ```
    /// use keel_testkit::{Deployment, ProxiedRedis};
    ///
    /// let redis = ProxiedRedis::start(Deployment::Cluster)?;
    /// assert_eq!(redis.cluster().ok_or("cluster")?.masters()?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cluster(&self) -> Option<&RedisCluster> {
        match &self.inner {
            Inner::Cluster(cluster) => Some(cluster),
            _ => None,
        }
    }

    /// Heals every proxy ([`FaultProxy::heal`]).
    ///
    /// ```
    /// use keel_testkit::{Deployment, ProxiedRedis, Reply};
    ///
    /// let redis = ProxiedRedis::start(Deployment::Single)?;
    /// redis.proxies()[0].refuse(true);
    /// redis.heal();
    /// assert_eq!(redis.proxies()[0].command(&["PING"])?, Reply::Simple("PONG".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heal(&self) {
        for proxy in self.proxies() {
            proxy.heal();
        }
    }
}

impl fmt::Debug for ProxiedRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxiedRedis")
            .field("deployment", &self.deployment())
            .field("client_urls", &self.client_urls())
            .finish()
    }
}
