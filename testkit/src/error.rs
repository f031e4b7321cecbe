//! What can go wrong starting or driving a test server.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// An error from a test server: [`RedisServer`](crate::RedisServer),
/// [`RedisCluster`](crate::RedisCluster), [`RedisSentinel`](crate::RedisSentinel) or
/// [`EtcdCluster`](crate::EtcdCluster).
///
/// # Example
///
/// ```
/// use keel_testkit::{RedisServer, TestkitError};
///
/// let missing = RedisServer::builder().binary("/no/such/redis-server").start();
/// assert!(matches!(missing, Err(TestkitError::NotInstalled { .. })));
///
/// let mut server = RedisServer::start()?;
/// server.stop()?;
/// let error = server.command(&["PING"]).unwrap_err();
/// assert!(matches!(error, TestkitError::NotRunning));
/// assert_eq!(error.to_string(), "the server is not running");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TestkitError {
    /// A server binary (`redis-server`, `redis-cli`, `etcd`) was not found.
    NotInstalled {
        /// The binary that was looked for.
        binary: PathBuf,
    },
    /// The server did not answer `PING` in time, or exited while starting.
    NotReady {
        /// The port it was started on.
        port: u16,
        /// What went wrong, with the end of the server's log.
        detail: String,
    },
    /// The server is not running (stopped or killed), so it cannot take this call.
    NotRunning,
    /// The server answered with bytes that are not RESP, or closed the connection mid-reply.
    /// (Error replies are not errors here: they come back as [`Reply::Error`](crate::Reply::Error).)
    Protocol(String),
    /// A cluster was not in the shape a call needs: no node with that index, or a node that
    /// is not a master where a master was asked for.
    Topology(String),
    /// A bounded wait ended first: for a failover, or for a cluster to become healthy.
    Timeout {
        /// What was waited for.
        waited_for: String,
        /// How long.
        after: std::time::Duration,
        /// What was seen last, to tell why.
        last_seen: String,
    },
    /// An I/O error, with what was being done.
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> TestkitError {
        TestkitError::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for TestkitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestkitError::NotInstalled { binary } => {
                let (package, variable) = package_of(binary);
                write!(
                    f,
                    "`{}` not found: install Debian's `{package}` package \
                     (apt-get install {package}) or set {variable} to its path",
                    binary.display()
                )
            }
            TestkitError::NotReady { port, detail } => {
                write!(
                    f,
                    "the server on port {port} did not become ready: {detail}"
                )
            }
            TestkitError::NotRunning => write!(f, "the server is not running"),
            TestkitError::Topology(message) => write!(f, "cluster topology: {message}"),
            TestkitError::Timeout {
                waited_for,
                after,
                last_seen,
            } => write!(
                f,
                "timed out after {after:?} waiting for {waited_for}; last seen: {last_seen}"
            ),
            TestkitError::Protocol(message) => write!(f, "redis protocol: {message}"),
            TestkitError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

/// The Debian package and the environment variable that provide `binary`.
fn package_of(binary: &std::path::Path) -> (&'static str, &'static str) {
    let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.starts_with("redis-cli") {
        ("redis-tools", "KEEL_REDIS_CLI")
    } else if name.starts_with("etcd") {
        ("etcd-server", "KEEL_ETCD")
    } else {
        ("redis-server", "KEEL_REDIS_SERVER")
    }
}

impl std::error::Error for TestkitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TestkitError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
