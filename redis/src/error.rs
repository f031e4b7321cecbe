//! `Error`: one Redis call that failed, with its cause kept as the source.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use redis::{ErrorKind as RedisKind, RedisError, ServerErrorKind};

/// What kind of failure an [`Error`] is, for deciding what to do about it.
///
/// ```
/// use keel_redis::{Error, ErrorKind};
///
/// let err = Error::unexpected_reply("acquire", "expected [0|1, token]");
/// assert_eq!(err.kind(), ErrorKind::Response);
/// assert!(!err.kind().is_transient());
/// assert!(ErrorKind::Timeout.is_transient());
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server did not answer within the call timeout. The call may still have run.
    Timeout,
    /// The connection could not be made, broke, or has no node to send to.
    Connection,
    /// A script failed on the server (a Lua error, or a script that could not be loaded).
    Script,
    /// The keys of one call hash to different cluster slots (`CROSSSLOT`).
    CrossSlot,
    /// The server answered with something of a type or shape the caller did not expect.
    Response,
    /// Any other error reply from the server (`READONLY`, `CLUSTERDOWN`, `LOADING`, ...).
    Server,
}

impl ErrorKind {
    /// Whether the same call may succeed if tried again later: timeouts, connection
    /// failures, and server states that pass (loading, failover, cluster reconfiguring).
    ///
    /// ```
    /// use keel_redis::ErrorKind;
    ///
    /// assert!(ErrorKind::Connection.is_transient());
    /// assert!(!ErrorKind::CrossSlot.is_transient()); // the keys are wrong, not the moment
    /// ```
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::Server
        )
    }
}

/// A Redis call that failed: which operation, what kind of failure, and the `redis` crate's
/// error as [`source`](std::error::Error::source) when there was one.
///
/// ```
/// use keel_redis::{ErrorKind, Redis};
/// use std::time::Duration;
///
/// # let mut server = keel_testkit::RedisServer::start()?;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let client = redis::Client::open(server.url())?;
/// let redis = Redis::new(client.get_multiplexed_async_connection().await?, Duration::from_secs(1))?;
/// server.stop()?;
/// let err = redis.query::<String>("get", &redis::cmd("GET").arg("k")).await.unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout));
/// assert_eq!(err.operation(), "get");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    operation: &'static str,
    cause: Cause,
}

#[derive(Debug)]
enum Cause {
    /// The deadline ran out: the seam's own, or the connection's (then with its error).
    Timeout(Duration, Option<RedisError>),
    Redis(RedisError),
    Reply(String),
}

impl Error {
    /// A timeout after `after`.
    pub(crate) fn timed_out(operation: &'static str, after: Duration) -> Error {
        Error {
            kind: ErrorKind::Timeout,
            operation,
            cause: Cause::Timeout(after, None),
        }
    }

    /// Classifies a `redis` crate error from a call with deadline `after`; `script` says
    /// whether it came from a script call, where a generic server error is the script's own.
    pub(crate) fn from_redis(
        operation: &'static str,
        error: RedisError,
        script: bool,
        after: Duration,
    ) -> Error {
        if error.is_timeout() {
            // The connection's own response timeout ran out first: still a timeout.
            return Error {
                kind: ErrorKind::Timeout,
                operation,
                cause: Cause::Timeout(after, Some(error)),
            };
        }
        let kind = if error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
        {
            ErrorKind::Connection
        } else {
            match error.kind() {
                RedisKind::Server(ServerErrorKind::CrossSlot) => ErrorKind::CrossSlot,
                RedisKind::Server(
                    ServerErrorKind::ResponseError
                    | ServerErrorKind::ExecAbort
                    | ServerErrorKind::NoScript,
                )
                | RedisKind::Extension
                    if script =>
                {
                    ErrorKind::Script
                }
                RedisKind::Server(_) | RedisKind::Extension => ErrorKind::Server,
                RedisKind::Parse | RedisKind::UnexpectedReturnType => ErrorKind::Response,
                _ => ErrorKind::Connection,
            }
        };
        Error {
            kind,
            operation,
            cause: Cause::Redis(error),
        }
    }

    /// A reply of the wrong shape, found by the caller while reading it.
    ///
    /// ```
    /// use keel_redis::{Error, ErrorKind};
    ///
    /// let err = Error::unexpected_reply("release", "expected 0 or 1, got \"OK\"");
    /// assert_eq!(err.kind(), ErrorKind::Response);
    /// assert_eq!(err.to_string(), "redis release: unexpected reply: expected 0 or 1, got \"OK\"");
    /// ```
    pub fn unexpected_reply(operation: &'static str, detail: impl fmt::Display) -> Error {
        Error {
            kind: ErrorKind::Response,
            operation,
            cause: Cause::Reply(detail.to_string()),
        }
    }

    /// What kind of failure this is.
    ///
    /// ```
    /// use keel_redis::{Error, ErrorKind};
    ///
    /// assert_eq!(Error::unexpected_reply("get", "nil").kind(), ErrorKind::Response);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed: the script's name, or the name given to
    /// [`Redis::query`](crate::Redis::query).
    ///
    /// ```
    /// use keel_redis::Error;
    ///
    /// assert_eq!(Error::unexpected_reply("gcra", "[]").operation(), "gcra");
    /// ```
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The `redis` crate's error, when the failure came from it.
    ///
    /// ```
    /// use keel_redis::Error;
    ///
    /// assert!(Error::unexpected_reply("gcra", "[]").redis_error().is_none());
    /// ```
    pub fn redis_error(&self) -> Option<&RedisError> {
        match &self.cause {
            Cause::Redis(error) | Cause::Timeout(_, Some(error)) => Some(error),
            _ => None,
        }
    }

    /// The call timeout that ran out, for an error of kind [`ErrorKind::Timeout`].
    ///
    /// ```
    /// use keel_redis::{ErrorKind, Redis};
    /// use std::time::Duration;
    ///
    /// # let mut server = keel_testkit::RedisServer::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// # let client = redis::Client::open(server.url())?;
    /// let redis = Redis::new(client.get_multiplexed_async_connection().await?, Duration::from_millis(100))?;
    /// server.pause()?; // connected, but never answers
    /// let err = redis.query::<String>("ping", &redis::cmd("PING")).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Timeout);
    /// assert_eq!(err.timeout(), Some(Duration::from_millis(100)));
    /// # server.resume()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        match &self.cause {
            Cause::Timeout(after, _) => Some(*after),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operation = self.operation;
        match &self.cause {
            Cause::Timeout(after, _) => {
                write!(f, "redis {operation}: no answer within {after:?}")
            }
            Cause::Redis(error) => {
                let what = match self.kind {
                    ErrorKind::Timeout => "timed out",
                    ErrorKind::Connection => "connection failed",
                    ErrorKind::Script => "script failed",
                    ErrorKind::CrossSlot => "keys in different cluster slots",
                    ErrorKind::Response => "unexpected reply",
                    ErrorKind::Server => "server error",
                };
                write!(f, "redis {operation}: {what}: {error}")
            }
            Cause::Reply(detail) => write!(f, "redis {operation}: unexpected reply: {detail}"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.cause {
            Cause::Redis(error) | Cause::Timeout(_, Some(error)) => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn classifies_server_errors() {
        let cross = RedisError::from((RedisKind::Server(ServerErrorKind::CrossSlot), "CROSSSLOT"));
        let err = Error::from_redis("gcra", cross, true, SECOND);
        assert_eq!(err.kind(), ErrorKind::CrossSlot);
        assert!(err.source().is_some());

        let lua = || RedisError::from((RedisKind::Server(ServerErrorKind::ResponseError), "ERR"));
        assert_eq!(
            Error::from_redis("s", lua(), true, SECOND).kind(),
            ErrorKind::Script
        );
        assert_eq!(
            Error::from_redis("s", lua(), false, SECOND).kind(),
            ErrorKind::Server
        );

        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(
            Error::from_redis("s", io, true, SECOND).kind(),
            ErrorKind::Connection
        );

        let timeout = Error::timed_out("s", Duration::from_millis(5));
        assert_eq!(timeout.kind(), ErrorKind::Timeout);
        assert!(timeout.source().is_none());
        assert_eq!(timeout.to_string(), "redis s: no answer within 5ms");
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: StdError + Send + Sync + 'static>() {}
        check::<Error>();
    }
}
