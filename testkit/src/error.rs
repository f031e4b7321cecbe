//! What can go wrong starting or driving a test server.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// An error from [`RedisServer`](crate::RedisServer).
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
/// assert_eq!(error.to_string(), "redis-server is not running");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TestkitError {
    /// The `redis-server` binary was not found.
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
            TestkitError::NotInstalled { binary } => write!(
                f,
                "`{}` not found: install Debian's `redis-server` package \
                 (apt-get install redis-server) or set KEEL_REDIS_SERVER to its path",
                binary.display()
            ),
            TestkitError::NotReady { port, detail } => {
                write!(
                    f,
                    "redis-server on port {port} did not become ready: {detail}"
                )
            }
            TestkitError::NotRunning => write!(f, "redis-server is not running"),
            TestkitError::Protocol(message) => write!(f, "redis protocol: {message}"),
            TestkitError::Io { context, source } => write!(f, "{context}: {source}"),
        }
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
