//! `EtcdCluster`: a real etcd cluster of three members on loopback ports, owned by a test.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::TestkitError;
use crate::process::Process;

const POLL_TIMEOUT: Duration = Duration::from_millis(500);
const POLL_EVERY: Duration = Duration::from_millis(50);
/// Fresh sets of ports tried when a member cannot bind the ones picked.
const START_ATTEMPTS: usize = 3;

/// Configures an [`EtcdCluster`] before it starts.
///
/// ```
/// use std::time::Duration;
/// use keel_testkit::EtcdCluster;
///
/// let cluster = EtcdCluster::builder()
///     .members(1)?
///     .election_timeout(Duration::from_millis(1000))
///     .start()?;
/// assert_eq!(cluster.leader()?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct EtcdClusterBuilder {
    members: usize,
    election_timeout: Duration,
    wait_timeout: Duration,
    binary: Option<PathBuf>,
}

impl Default for EtcdClusterBuilder {
    fn default() -> EtcdClusterBuilder {
        EtcdClusterBuilder {
            members: 3,
            election_timeout: Duration::from_millis(500),
            wait_timeout: Duration::from_secs(30),
            binary: None,
        }
    }
}

impl EtcdClusterBuilder {
    /// How many members: 1, 3 (the default) or 5.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for any other count (an even count tolerates no more
    /// failures than the odd count below it).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{EtcdCluster, TestkitError};
    ///
    /// assert!(matches!(EtcdCluster::builder().members(2), Err(TestkitError::Topology(_))));
    /// let cluster = EtcdCluster::builder().members(1)?.start()?;
    /// assert_eq!(cluster.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn members(mut self, members: usize) -> Result<EtcdClusterBuilder, TestkitError> {
        if ![1, 3, 5].contains(&members) {
            return Err(TestkitError::Topology(format!(
                "an etcd cluster here has 1, 3 or 5 members, not {members}"
            )));
        }
        self.members = members;
        Ok(self)
    }

    /// Sets `--election-timeout` (and `--heartbeat-interval` to a tenth of it): how long
    /// followers wait for a silent leader before electing another. The default is 500 ms
    /// (etcd's is 1 s), so a leader's failure is repaired within about a second. It is
    /// clamped to 100 ms..=50 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use keel_testkit::EtcdCluster;
    ///
    /// let cluster = EtcdCluster::builder().election_timeout(Duration::from_secs(1)).start()?;
    /// cluster.wait_until_healthy()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn election_timeout(mut self, timeout: Duration) -> EtcdClusterBuilder {
        self.election_timeout = timeout.clamp(Duration::from_millis(100), Duration::from_secs(50));
        self
    }

    /// Sets how long the bounded waits (starting, [`EtcdCluster::wait_for_leader`],
    /// [`EtcdCluster::wait_until_healthy`]) may take. The default is 30 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use keel_testkit::EtcdCluster;
    ///
    /// let cluster = EtcdCluster::builder().wait_timeout(Duration::from_secs(60)).start()?;
    /// assert_eq!(cluster.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(mut self, timeout: Duration) -> EtcdClusterBuilder {
        self.wait_timeout = timeout;
        self
    }

    /// Runs this `etcd` instead of `$KEEL_ETCD` or the one on `PATH` (Debian package
    /// `etcd-server`).
    ///
    /// ```
    /// use keel_testkit::{EtcdCluster, TestkitError};
    ///
    /// let missing = EtcdCluster::builder().binary("/no/such/etcd").start();
    /// assert!(matches!(missing, Err(TestkitError::NotInstalled { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn binary(mut self, path: impl Into<PathBuf>) -> EtcdClusterBuilder {
        self.binary = Some(path.into());
        self
    }

    /// Starts every member on free loopback ports (a client and a peer port each) in one
    /// temporary directory, and waits until all are healthy and agree on a leader.
    ///
    /// # Errors
    ///
    /// [`TestkitError::NotInstalled`] when `etcd` is missing, [`TestkitError::NotReady`] when
    /// a member exits while starting on each of 3 fresh sets of ports, and
    /// [`TestkitError::Timeout`] when the cluster is not healthy within the wait timeout.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let cluster = EtcdCluster::builder().start()?;
    /// let leader = cluster.leader()?;
    /// assert_eq!(cluster.followers()?.len(), 2);
    /// assert!(!cluster.followers()?.contains(&leader));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(self) -> Result<EtcdCluster, TestkitError> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match self.try_start() {
                Ok(cluster) => return Ok(cluster),
                // Another process may have taken a port between our probe and etcd's bind.
                Err(error @ TestkitError::NotReady { .. }) => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(TestkitError::NotRunning))
    }

    fn try_start(&self) -> Result<EtcdCluster, TestkitError> {
        let binary = self
            .binary
            .clone()
            .or_else(|| std::env::var_os("KEEL_ETCD").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("etcd"));
        let dir = tempfile::Builder::new()
            .prefix("keel-etcd-")
            .tempdir()
            .map_err(|e| TestkitError::io("creating the data directory", e))?;
        let ports = free_ports(self.members * 2)?;
        let peers: Vec<String> = (0..self.members)
            .map(|i| format!("m{i}=http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect();
        let token = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "keel".to_owned());
        let election = self.election_timeout.as_millis();
        let heartbeat = (election / 10).max(10);
        let mut members = Vec::with_capacity(self.members);
        for i in 0..self.members {
            let (client, peer) = (ports[2 * i], ports[2 * i + 1]);
            let args = vec![
                format!("--name=m{i}"),
                format!(
                    "--data-dir={}",
                    dir.path().join(format!("m{i}.etcd")).display()
                ),
                format!("--listen-client-urls=http://127.0.0.1:{client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster={}", peers.join(",")),
                "--initial-cluster-state=new".to_owned(),
                format!("--initial-cluster-token={token}"),
                format!("--heartbeat-interval={heartbeat}"),
                format!("--election-timeout={election}"),
                "--logger=zap".to_owned(),
                "--log-outputs=stderr".to_owned(),
                "--log-level=warn".to_owned(),
            ];
            members.push(EtcdMember {
                name: format!("m{i}"),
                client_port: client,
                log: dir.path().join(format!("m{i}.log")),
                data_dir: dir.path().join(format!("m{i}.etcd")),
                binary: binary.clone(),
                args,
                process: Process::default(),
            });
        }
        for member in &mut members {
            member.spawn()?;
        }
        let mut cluster = EtcdCluster {
            members,
            ids: Vec::new(),
            wait_timeout: self.wait_timeout,
            _dir: dir,
        };
        cluster.wait_until_healthy()?;
        cluster.ids = cluster
            .members
            .iter()
            .map(|m| {
                m.status()
                    .map(|s| s.member_id)
                    .map_err(TestkitError::Topology)
            })
            .collect::<Result<_, _>>()?;
        Ok(cluster)
    }
}

/// One member of an [`EtcdCluster`]: where it listens, and whether it runs.
///
/// ```
/// use keel_testkit::EtcdCluster;
///
/// let cluster = EtcdCluster::start()?;
/// let member = cluster.member(1)?;
/// assert_eq!(member.name(), "m1");
/// assert_eq!(member.endpoint(), format!("http://127.0.0.1:{}", member.client_port()));
/// assert!(member.is_running() && !member.is_paused());
/// assert!(member.data_dir().exists());
/// assert!(member.pid().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct EtcdMember {
    name: String,
    client_port: u16,
    log: PathBuf,
    data_dir: PathBuf,
    binary: PathBuf,
    args: Vec<String>,
    process: Process,
}

/// What `maintenance/status` says, as far as the testkit needs it.
struct Status {
    member_id: String,
    leader: String,
    raft_term: Option<u64>,
}

impl EtcdMember {
    /// Its name in the cluster: `m0`, `m1`, ...
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client URL, `http://127.0.0.1:<port>`, for `etcd_client::Client::connect`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The loopback port clients connect to; it keeps it across restarts.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// Its data directory, which survives [`EtcdCluster::restart`].
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether the process runs (it may be paused).
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Whether the process runs but is frozen by [`EtcdCluster::pause`].
    pub fn is_paused(&self) -> bool {
        self.process.is_paused()
    }

    /// The Raft term this member is in, as its `maintenance/status` reports it. Every
    /// election raises it, so a member that led in term `t` and later reports a higher term
    /// has stepped down from `t`, even if it was elected again since.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when the member does not answer (stopped or paused) or
    /// its answer has no term.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let cluster = EtcdCluster::start()?;
    /// let leader = cluster.leader()?;
    /// assert!(cluster.member(leader)?.raft_term()? >= 2); // term 1 had no leader yet
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn raft_term(&self) -> Result<u64, TestkitError> {
        let status = self.status().map_err(TestkitError::Topology)?;
        status.raft_term.ok_or_else(|| {
            TestkitError::Topology(format!("{}: no raft term in its status", self.name))
        })
    }

    fn is_up(&self) -> bool {
        self.is_running() && !self.is_paused()
    }

    fn spawn(&mut self) -> Result<(), TestkitError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| TestkitError::io("opening the etcd log", e))?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TestkitError::NotInstalled {
                    binary: self.binary.clone(),
                },
                _ => TestkitError::io(format!("starting {}", self.binary.display()), e),
            })?;
        self.process = Process::new(child);
        Ok(())
    }

    fn status(&self) -> Result<Status, String> {
        let body = http(self.client_port, "POST", "/v3/maintenance/status", "{}")
            .map_err(|e| format!("{}: {e}", self.name))?;
        let member_id = json_field(&body, "member_id")
            .ok_or_else(|| format!("{}: no member_id in {body}", self.name))?;
        let leader = json_field(&body, "leader").unwrap_or_default();
        let raft_term = json_field(&body, "raftTerm").and_then(|term| term.parse().ok());
        Ok(Status {
            member_id,
            leader,
            raft_term,
        })
    }

    fn healthy(&self) -> Result<(), String> {
        let body = http(self.client_port, "GET", "/health", "")
            .map_err(|e| format!("{}: {e}", self.name))?;
        if body.contains("\"health\":\"true\"") {
            Ok(())
        } else {
            Err(format!("{}: {body}", self.name))
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(3).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

/// The members a leader change went between: from
/// [`kill_leader`](EtcdCluster::kill_leader) and [`pause_leader`](EtcdCluster::pause_leader).
///
/// ```
/// use keel_testkit::{EtcdCluster, LeaderChange};
///
/// let mut cluster = EtcdCluster::start()?;
/// let LeaderChange { old, new } = cluster.pause_leader()?;
/// assert!(cluster.member(old)?.is_paused());
/// assert_ne!(new, old);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderChange {
    /// The member that led, now killed or paused.
    pub old: usize,
    /// The member the others elected in its place.
    pub new: usize,
}

/// A real etcd cluster on `127.0.0.1`, each member in its own data directory, all killed on
/// drop.
///
/// Members keep their index across faults; which one leads changes, so ask
/// [`leader`](EtcdCluster::leader). Faults: [`kill`](EtcdCluster::kill),
/// [`stop`](EtcdCluster::stop), [`pause`](EtcdCluster::pause),
/// [`resume`](EtcdCluster::resume) and [`restart`](EtcdCluster::restart) any member, or
/// [`kill_leader`](EtcdCluster::kill_leader) and [`pause_leader`](EtcdCluster::pause_leader),
/// which wait for the next leader.
///
/// # Example
///
/// ```
/// use keel_testkit::{EtcdCluster, LeaderChange};
///
/// let mut cluster = EtcdCluster::start()?;
/// assert_eq!(cluster.endpoints().len(), 3);
/// let LeaderChange { old, new } = cluster.kill_leader()?; // the two others elect one
/// assert_ne!(new, old);
/// cluster.restart(old)?; // rejoins from its data directory
/// cluster.wait_until_healthy()?;
/// // Some member leads: usually still `new`, but on a loaded machine a missed heartbeat
/// // can start another election, so which one is not certain.
/// assert!(cluster.leader()? < 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<EtcdMember>,
    /// Each member's id, as etcd reports it, to name the leader.
    ids: Vec<String>,
    wait_timeout: Duration,
    _dir: TempDir,
}

impl EtcdCluster {
    /// Starts a three-member cluster with the default options.
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let cluster = EtcdCluster::start()?;
    /// assert!(cluster.leader()? < 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`EtcdClusterBuilder::start`].
    pub fn start() -> Result<EtcdCluster, TestkitError> {
        EtcdCluster::builder().start()
    }

    /// A builder for a cluster with options: members, election timeout, wait timeout.
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let cluster = EtcdCluster::builder().members(1)?.start()?;
    /// assert_eq!(cluster.endpoints().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> EtcdClusterBuilder {
        EtcdClusterBuilder::default()
    }

    /// Every member's client URL, in index order, for `etcd_client::Client::connect`.
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let cluster = EtcdCluster::start()?;
    /// assert_eq!(cluster.endpoints()[2], cluster.member(2)?.endpoint());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdMember::endpoint).collect()
    }

    /// How many members the cluster has.
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let cluster = EtcdCluster::start()?;
    /// assert_eq!(cluster.len(), 3);
    /// assert!(!cluster.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members (never, once started).
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// assert!(!EtcdCluster::start()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `index`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when there is no such member.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{EtcdCluster, TestkitError};
    ///
    /// let cluster = EtcdCluster::start()?;
    /// assert_eq!(cluster.member(0)?.name(), "m0");
    /// assert!(matches!(cluster.member(3), Err(TestkitError::Topology(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn member(&self, index: usize) -> Result<&EtcdMember, TestkitError> {
        self.members.get(index).ok_or_else(|| {
            TestkitError::Topology(format!(
                "no member {index}: this cluster has members 0..{}",
                self.members.len()
            ))
        })
    }

    /// The index of the leader that every running, unpaused member names (they must agree).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] when no member answers, they name no leader or disagree.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let cluster = EtcdCluster::start()?;
    /// let leader = cluster.leader()?;
    /// assert!(cluster.member(leader)?.is_running());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn leader(&self) -> Result<usize, TestkitError> {
        self.agreed_leader().map_err(TestkitError::Topology)
    }

    /// The indexes of the running members that are not the leader.
    ///
    /// # Errors
    ///
    /// As [`leader`](EtcdCluster::leader).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let cluster = EtcdCluster::start()?;
    /// let mut all = cluster.followers()?;
    /// all.push(cluster.leader()?);
    /// all.sort();
    /// assert_eq!(all, vec![0, 1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn followers(&self) -> Result<Vec<usize>, TestkitError> {
        let leader = self.leader()?;
        Ok((0..self.members.len())
            .filter(|&i| i != leader && self.members[i].is_running())
            .collect())
    }

    /// Kills member `index` with `SIGKILL`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; [`TestkitError::Io`] if the signal fails.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let mut cluster = EtcdCluster::start()?;
    /// let follower = cluster.followers()?[0];
    /// cluster.kill(follower)?;
    /// assert!(!cluster.member(follower)?.is_running());
    /// cluster.wait_until_healthy()?; // two of three still make a quorum
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill(&mut self, index: usize) -> Result<(), TestkitError> {
        self.member(index)?;
        self.members[index].process.end(libc::SIGKILL)
    }

    /// Stops member `index` gracefully (`SIGTERM`).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; [`TestkitError::Io`] if the signal fails.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let mut cluster = EtcdCluster::start()?;
    /// cluster.stop(0)?;
    /// assert!(!cluster.member(0)?.is_running());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&mut self, index: usize) -> Result<(), TestkitError> {
        self.member(index)?;
        self.members[index].process.end(libc::SIGTERM)
    }

    /// Freezes member `index` with `SIGSTOP`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; [`TestkitError::NotRunning`] when it is
    /// stopped.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let mut cluster = EtcdCluster::start()?;
    /// cluster.pause(2)?;
    /// assert!(cluster.member(2)?.is_paused());
    /// cluster.resume(2)?;
    /// cluster.wait_until_healthy()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(&mut self, index: usize) -> Result<(), TestkitError> {
        self.member(index)?;
        self.members[index].process.pause()
    }

    /// Lets a paused member `index` run again.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; [`TestkitError::NotRunning`] when it is
    /// stopped.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let mut cluster = EtcdCluster::start()?;
    /// cluster.pause(1)?;
    /// cluster.resume(1)?;
    /// assert!(!cluster.member(1)?.is_paused());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume(&mut self, index: usize) -> Result<(), TestkitError> {
        self.member(index)?;
        self.members[index].process.resume()
    }

    /// Stops member `index` if it runs (gracefully), then starts it again with the same
    /// ports and data directory, so it rejoins with what it had. Returns once it is spawned;
    /// [`wait_until_healthy`](EtcdCluster::wait_until_healthy) waits until it has caught up.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Topology`] for a bad index; [`TestkitError::NotInstalled`] or
    /// [`TestkitError::Io`] when it cannot be started.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let mut cluster = EtcdCluster::start()?;
    /// let leader = cluster.leader()?;
    /// cluster.restart(leader)?;
    /// cluster.wait_until_healthy()?;
    /// assert!(cluster.member(leader)?.is_running());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restart(&mut self, index: usize) -> Result<(), TestkitError> {
        self.stop(index)?;
        self.members[index].spawn()
    }

    /// Kills the leader and waits until the others elect a new one; returns both indexes
    /// (read the killed one from here, not from an earlier [`leader`](EtcdCluster::leader):
    /// leadership may move between the two calls).
    ///
    /// # Errors
    ///
    /// As [`leader`](EtcdCluster::leader), [`kill`](EtcdCluster::kill) and
    /// [`wait_for_leader`](EtcdCluster::wait_for_leader).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let mut cluster = EtcdCluster::start()?;
    /// let change = cluster.kill_leader()?;
    /// assert_ne!(change.old, change.new);
    /// assert!(!cluster.member(change.old)?.is_running());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill_leader(&mut self) -> Result<LeaderChange, TestkitError> {
        let old = self.leader()?;
        self.kill(old)?;
        let new = self.wait_for_new_leader(old)?;
        Ok(LeaderChange { old, new })
    }

    /// Pauses the leader and waits until the others elect a new one; returns both indexes.
    /// The old leader stays paused until [`resume`](EtcdCluster::resume).
    ///
    /// # Errors
    ///
    /// As [`leader`](EtcdCluster::leader), [`pause`](EtcdCluster::pause) and
    /// [`wait_for_leader`](EtcdCluster::wait_for_leader).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{EtcdCluster, LeaderChange};
    ///
    /// let mut cluster = EtcdCluster::start()?;
    /// let LeaderChange { old, new } = cluster.pause_leader()?;
    /// assert_ne!(old, new);
    /// // The new leader was elected in a later term than any `old` saw while it led.
    /// let replaced_in = cluster.member(new)?.raft_term()?;
    /// cluster.resume(old)?; // steps down: it sees a higher term
    /// cluster.wait_until_healthy()?;
    /// // Which member leads now is not certain (a loaded machine can start another
    /// // election), but `old` has left the term it led in.
    /// assert!(cluster.member(old)?.raft_term()? >= replaced_in);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause_leader(&mut self) -> Result<LeaderChange, TestkitError> {
        let old = self.leader()?;
        self.pause(old)?;
        let new = self.wait_for_new_leader(old)?;
        Ok(LeaderChange { old, new })
    }

    /// Waits until every running, unpaused member names the same leader, which is itself
    /// running and unpaused; returns its index.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Timeout`] when no such leader appears within the wait timeout.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let mut cluster = EtcdCluster::start()?;
    /// let old = cluster.leader()?;
    /// cluster.kill(old)?;
    /// let new = cluster.wait_for_leader()?;
    /// assert_ne!(new, old);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_leader(&self) -> Result<usize, TestkitError> {
        self.wait_for("the members to agree on a leader", || self.agreed_leader())
    }

    /// Waits until every running, unpaused member answers `/health` with `true` and all
    /// name the same, running leader.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Timeout`] when that does not hold within the wait timeout.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::EtcdCluster;
    ///
    /// let mut cluster = EtcdCluster::start()?;
    /// cluster.kill(0)?;
    /// cluster.restart(0)?;
    /// cluster.wait_until_healthy()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_until_healthy(&self) -> Result<(), TestkitError> {
        self.wait_for("every running etcd member to be healthy", || {
            for member in self.members.iter().filter(|m| m.is_up()) {
                member.healthy()?;
            }
            self.agreed_leader().map(|_| ())
        })
    }

    fn wait_for_new_leader(&self, old: usize) -> Result<usize, TestkitError> {
        self.wait_for(&format!("a leader other than member {old}"), || {
            let leader = self.agreed_leader()?;
            if leader == old {
                return Err(format!("member {old} still leads"));
            }
            Ok(leader)
        })
    }

    fn agreed_leader(&self) -> Result<usize, String> {
        let mut named: Option<String> = None;
        for member in self.members.iter().filter(|m| m.is_up()) {
            let status = member.status()?;
            if status.leader.is_empty() || status.leader == "0" {
                return Err(format!("{} has no leader", member.name));
            }
            match &named {
                None => named = Some(status.leader),
                Some(first) if *first == status.leader => {}
                Some(first) => {
                    return Err(format!("leaders disagree: {first} or {}", status.leader));
                }
            }
        }
        let leader = named.ok_or("no running member")?;
        let index = match self.ids.iter().position(|id| *id == leader) {
            Some(index) => index,
            // While starting, ids are not known yet: ask each member its own id.
            None => self
                .members
                .iter()
                .position(|m| m.is_up() && m.status().is_ok_and(|s| s.member_id == leader))
                .ok_or(format!("leader {leader} is not a running member"))?,
        };
        if !self.members[index].is_up() {
            return Err(format!("member {index} is named leader but is down"));
        }
        Ok(index)
    }

    fn wait_for<T>(
        &self,
        what: &str,
        mut check: impl FnMut() -> Result<T, String>,
    ) -> Result<T, TestkitError> {
        let start = Instant::now();
        loop {
            if let Some(member) = self.members.iter().find(|m| m.log_shows_bind_error()) {
                return Err(TestkitError::NotReady {
                    port: member.client_port,
                    detail: format!("{} could not bind: {}", member.name, member.log_tail()),
                });
            }
            match check() {
                Ok(value) => return Ok(value),
                Err(last_seen) if start.elapsed() >= self.wait_timeout => {
                    let logs: Vec<String> = self
                        .members
                        .iter()
                        .map(|m| format!("{}: {}", m.name, m.log_tail()))
                        .collect();
                    return Err(TestkitError::Timeout {
                        waited_for: what.to_owned(),
                        after: start.elapsed(),
                        last_seen: format!("{last_seen}; logs: {}", logs.join(" || ")),
                    });
                }
                Err(_) => std::thread::sleep(POLL_EVERY),
            }
        }
    }
}

impl EtcdMember {
    /// Whether its log says it could not listen (a port taken by another process).
    fn log_shows_bind_error(&self) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|log| log.contains("address already in use"))
    }
}

/// One HTTP/1.0 request (so the reply is not chunked) to etcd's JSON gateway; the body.
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, POLL_TIMEOUT)?;
    stream.set_read_timeout(Some(POLL_TIMEOUT))?;
    stream.set_write_timeout(Some(POLL_TIMEOUT))?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    match reply.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") => Ok(body.to_owned()),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP reply: {reply:?}"),
        )),
    }
}

/// The string value of `"name":"value"` in a flat JSON text (etcd writes 64-bit ids as
/// strings); enough for the few fields the testkit reads.
fn json_field(json: &str, name: &str) -> Option<String> {
    let start = json.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let end = json[start..].find('"')? + start;
    Some(json[start..end].to_owned())
}

fn free_ports(count: usize) -> Result<Vec<u16>, TestkitError> {
    // Hold every listener until all are picked, so no port is picked twice.
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestkitError::io("finding free ports", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| TestkitError::io("finding free ports", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_string_fields() {
        let body = r#"{"header":{"cluster_id":"1","member_id":"42","revision":"3"},"leader":"42"}"#;
        assert_eq!(json_field(body, "member_id").as_deref(), Some("42"));
        assert_eq!(json_field(body, "leader").as_deref(), Some("42"));
        assert_eq!(json_field(body, "raftTerm"), None);
    }
}
