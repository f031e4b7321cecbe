//! `RedisServer`: one real `redis-server` process owned by a test.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::TestkitError;
use crate::process::Process;
use crate::resp::{self, Reply};

/// How long a server may take to answer its first `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`RedisServer::command`] waits on a connection.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a fresh port is tried when another process takes the one picked.
const PORT_ATTEMPTS: usize = 5;

/// What the server writes to its data directory, and when.
///
/// # Example
///
/// ```
/// use keel_testkit::{Persistence, RedisServer, Reply};
///
/// assert_eq!(Persistence::default(), Persistence::None);
/// let mut server = RedisServer::builder()
///     .persistence(Persistence::SnapshotOnShutdown)
///     .start()?;
/// let v = Reply::Bulk(Some(b"v".to_vec()));
/// server.command(&["SET", "k", "v"])?;
/// server.restart()?; // a graceful stop writes the snapshot
/// assert_eq!(server.command(&["GET", "k"])?, v);
/// server.command(&["SET", "k", "w"])?;
/// server.kill()?; // a crash loses what came after it
/// server.restart()?;
/// assert_eq!(server.command(&["GET", "k"])?, v);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Persistence {
    /// Nothing: a restart starts empty.
    #[default]
    None,
    /// An RDB snapshot on graceful [`stop`](RedisServer::stop) only; a
    /// [`kill`](RedisServer::kill) loses everything since the last one.
    SnapshotOnShutdown,
    /// Append-only file, fsynced once a second: a kill may lose the last second of writes.
    AppendOnlyEverySec,
    /// Append-only file, fsynced before each write is acknowledged: survives a kill.
    AppendOnlyAlways,
}

/// Configures a [`RedisServer`] before it starts.
///
/// ```
/// use keel_testkit::{Persistence, RedisServer};
///
/// let server = RedisServer::builder()
///     .persistence(Persistence::AppendOnlyEverySec)
///     .config("notify-keyspace-events", "Kgx")
///     .start()?;
/// assert!(server.is_running());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct RedisServerBuilder {
    persistence: Persistence,
    config: Vec<(String, String)>,
    binary: Option<PathBuf>,
    /// Sentinel mode: the first `sentinel.conf`, written once (Sentinel rewrites it).
    sentinel_config: Option<String>,
}

impl RedisServerBuilder {
    /// Runs the server in Sentinel mode (`redis-server sentinel.conf --sentinel`, the same
    /// program as Debian's `redis-sentinel`), starting from this configuration.
    pub(crate) fn sentinel(mut self, config: String) -> RedisServerBuilder {
        self.sentinel_config = Some(config);
        self
    }

    /// Sets what the server persists. The default is [`Persistence::None`].
    ///
    /// ```
    /// use keel_testkit::{Persistence, RedisServer, Reply};
    ///
    /// let mut server = RedisServer::builder()
    ///     .persistence(Persistence::AppendOnlyAlways)
    ///     .start()?;
    /// server.command(&["SET", "fence", "7"])?;
    /// server.kill()?; // every write was fsynced before it was acknowledged
    /// server.restart()?;
    /// assert_eq!(server.command(&["GET", "fence"])?, Reply::Bulk(Some(b"7".to_vec())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn persistence(mut self, persistence: Persistence) -> RedisServerBuilder {
        self.persistence = persistence;
        self
    }

    /// Passes `--name value` to the server, after keel's own options (so it overrides them).
    ///
    /// ```
    /// use keel_testkit::{RedisServer, Reply};
    ///
    /// let server = RedisServer::builder().config("databases", "2").start()?; // keel's is 16
    /// assert_eq!(server.command(&["SELECT", "1"])?, Reply::Simple("OK".into()));
    /// assert!(matches!(server.command(&["SELECT", "5"])?, Reply::Error(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> RedisServerBuilder {
        self.config.push((name.into(), value.into()));
        self
    }

    /// Runs this binary instead of `$KEEL_REDIS_SERVER` or `redis-server` on `PATH`.
    ///
    /// It must become the server process itself (a wrapper script must `exec` it): a server
    /// counts as started only when `INFO server` reports the spawned process's id.
    ///
    /// ```
    /// use keel_testkit::{RedisServer, TestkitError};
    ///
    /// let server = RedisServer::builder().binary("redis-server").start()?; // looked up on PATH
    /// assert!(server.is_running());
    /// let missing = RedisServer::builder().binary("/no/such/redis-server").start();
    /// assert!(matches!(missing, Err(TestkitError::NotInstalled { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn binary(mut self, path: impl Into<PathBuf>) -> RedisServerBuilder {
        self.binary = Some(path.into());
        self
    }

    /// Starts the server on a free loopback port and waits until it answers `PING`, and
    /// `INFO server` shows that the answer came from the process it started (not from
    /// another server that took the port first; then it tries another port).
    ///
    /// # Errors
    ///
    /// [`TestkitError::NotInstalled`] when the binary is missing, [`TestkitError::NotReady`]
    /// when it exits, does not answer within 15 s, or another server answers on its port, on
    /// each of 5 fresh ports in turn, and
    /// [`TestkitError::Io`] when the temporary directory cannot be made or no free port found.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisServer, Reply};
    ///
    /// let server = RedisServer::builder().start()?;
    /// // It answered PING before `start` returned, so the first command is served.
    /// assert_eq!(server.command(&["DBSIZE"])?, Reply::Integer(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(self) -> Result<RedisServer, TestkitError> {
        self.start_on(free_port)
    }

    /// [`start`](Self::start), taking each port to try from `next_port`.
    fn start_on(
        self,
        mut next_port: impl FnMut() -> Result<u16, TestkitError>,
    ) -> Result<RedisServer, TestkitError> {
        let binary = self
            .binary
            .clone()
            .or_else(|| std::env::var_os("KEEL_REDIS_SERVER").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let dir = tempfile::Builder::new()
            .prefix("keel-redis-")
            .tempdir()
            .map_err(|e| TestkitError::io("creating the data directory", e))?;
        let mut server = RedisServer {
            builder: self,
            binary,
            dir,
            port: 0,
            process: Process::default(),
        };
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = next_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                // Another process may have taken the port between our probe and the bind.
                Err(error @ TestkitError::NotReady { .. }) => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(TestkitError::NotRunning))
    }
}

/// A `redis-server` process on `127.0.0.1`, in its own temporary data directory, killed on drop.
///
/// The [crate docs](crate) show faults injected into a running server; here, dropping it
/// ends the process.
///
/// ```
/// use std::path::Path;
/// use keel_testkit::RedisServer;
///
/// let server = RedisServer::start()?;
/// let pid = server.pid().ok_or("not running")?;
/// assert!(Path::new(&format!("/proc/{pid}")).exists());
/// drop(server); // killed and reaped
/// assert!(!Path::new(&format!("/proc/{pid}")).exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RedisServer {
    builder: RedisServerBuilder,
    binary: PathBuf,
    dir: TempDir,
    port: u16,
    process: Process,
}

impl RedisServer {
    /// Starts a server with no persistence.
    ///
    /// ```
    /// use keel_testkit::{RedisServer, Reply};
    ///
    /// let server = RedisServer::start()?;
    /// assert_eq!(server.command(&["PING"])?, Reply::Simple("PONG".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`RedisServerBuilder::start`].
    pub fn start() -> Result<RedisServer, TestkitError> {
        RedisServer::builder().start()
    }

    /// A builder for a server with options: persistence, extra config, another binary.
    ///
    /// ```
    /// use keel_testkit::{Persistence, RedisServer};
    ///
    /// let server = RedisServer::builder()
    ///     .persistence(Persistence::AppendOnlyEverySec)
    ///     .start()?;
    /// assert!(server.data_dir().exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The URL to give a client: `redis://127.0.0.1:<port>/`.
    ///
    /// ```
    /// use keel_testkit::RedisServer;
    ///
    /// let server = RedisServer::start()?;
    /// assert_eq!(server.url(), format!("redis://127.0.0.1:{}/", server.port()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The loopback port the server listens on; it keeps it across restarts.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use keel_testkit::RedisServer;
    ///
    /// let mut server = RedisServer::start()?;
    /// let mut stream = TcpStream::connect(("127.0.0.1", server.port()))?;
    /// stream.write_all(b"PING\r\n")?;
    /// let mut reply = [0; 7];
    /// stream.read_exact(&mut reply)?;
    /// assert_eq!(&reply, b"+PONG\r\n");
    ///
    /// let port = server.port();
    /// server.restart()?;
    /// assert_eq!(server.port(), port);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data directory (its RDB and append-only files).
    ///
    /// ```
    /// use keel_testkit::{Persistence, RedisServer};
    ///
    /// let mut server = RedisServer::builder()
    ///     .persistence(Persistence::SnapshotOnShutdown)
    ///     .start()?;
    /// server.command(&["SET", "k", "v"])?;
    /// server.stop()?;
    /// assert!(server.data_dir().join("dump.rdb").exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, while running.
    ///
    /// ```
    /// use keel_testkit::{RedisServer, Reply};
    ///
    /// let mut server = RedisServer::start()?;
    /// let pid = server.pid().ok_or("not running")?;
    /// let Reply::Bulk(Some(info)) = server.command(&["INFO", "server"])? else {
    ///     return Err("INFO did not answer a bulk string".into());
    /// };
    /// assert!(String::from_utf8(info)?.contains(&format!("process_id:{pid}\r\n")));
    /// server.stop()?;
    /// assert_eq!(server.pid(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether the process is running (it may be paused).
    ///
    /// ```
    /// use keel_testkit::RedisServer;
    ///
    /// let mut server = RedisServer::start()?;
    /// assert!(server.is_running());
    /// server.pause()?;
    /// assert!(server.is_running()); // paused still counts
    /// server.kill()?;
    /// assert!(!server.is_running());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Whether the process is running but frozen by [`pause`](RedisServer::pause).
    ///
    /// ```
    /// use keel_testkit::RedisServer;
    ///
    /// let mut server = RedisServer::start()?;
    /// assert!(!server.is_paused());
    /// server.pause()?;
    /// assert!(server.is_paused());
    /// server.resume()?;
    /// assert!(!server.is_paused());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_paused(&self) -> bool {
        self.process.is_paused()
    }

    /// Whether the process runs and is not paused, so it can answer.
    pub(crate) fn is_up(&self) -> bool {
        self.process.is_running() && !self.process.is_paused()
    }

    /// [`command`](RedisServer::command) with a timeout of the caller's choice, for polls.
    pub(crate) fn command_within(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Reply, TestkitError> {
        if !self.process.is_running() {
            return Err(TestkitError::NotRunning);
        }
        resp::command(self.port, args, timeout)
    }

    /// Sends one command on a fresh connection and returns the reply. Error replies come back
    /// as [`Reply::Error`]; every step times out after 2 s.
    ///
    /// # Errors
    ///
    /// [`TestkitError::NotRunning`] after a stop; [`TestkitError::Io`] on a connection error or
    /// timeout (as when the server is paused).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisServer, Reply};
    ///
    /// let server = RedisServer::start()?;
    /// assert_eq!(server.command(&["INCRBY", "n", "5"])?, Reply::Integer(5));
    /// assert_eq!(server.command(&["GET", "missing"])?, Reply::Bulk(None));
    /// assert!(matches!(
    ///     server.command(&["NOSUCHCOMMAND"])?,
    ///     Reply::Error(message) if message.starts_with("ERR")
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn command(&self, args: &[&str]) -> Result<Reply, TestkitError> {
        if !self.process.is_running() {
            return Err(TestkitError::NotRunning);
        }
        resp::command(self.port, args, COMMAND_TIMEOUT)
    }

    /// Stops the server gracefully (`SIGTERM`, which lets it write its snapshot) and waits for
    /// it to exit. Stopping a stopped server does nothing.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Io`] if the process cannot be signalled or waited for.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisServer, TestkitError};
    ///
    /// let mut server = RedisServer::start()?;
    /// server.stop()?;
    /// assert!(!server.is_running());
    /// assert!(matches!(server.command(&["PING"]), Err(TestkitError::NotRunning)));
    /// server.stop()?; // stopping again does nothing
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        self.process.end(libc::SIGTERM)
    }

    /// Kills the server at once (`SIGKILL`), as a crash would: nothing is flushed.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Io`] if the process cannot be signalled or waited for.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{Persistence, RedisServer, Reply};
    ///
    /// let mut server = RedisServer::builder()
    ///     .persistence(Persistence::SnapshotOnShutdown)
    ///     .start()?;
    /// server.command(&["SET", "k", "v"])?;
    /// server.kill()?; // no snapshot is written
    /// assert!(!server.data_dir().join("dump.rdb").exists());
    /// server.restart()?;
    /// assert_eq!(server.command(&["GET", "k"])?, Reply::Bulk(None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill(&mut self) -> Result<(), TestkitError> {
        self.process.end(libc::SIGKILL)
    }

    /// Stops the server if it runs, then starts it again on the same port with the same data
    /// directory and options, and waits for `PING`.
    ///
    /// # Errors
    ///
    /// As [`stop`](RedisServer::stop) and [`RedisServerBuilder::start`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisServer, Reply};
    ///
    /// let mut server = RedisServer::start()?; // no persistence
    /// server.command(&["SET", "k", "v"])?;
    /// let old = server.pid();
    /// server.restart()?;
    /// assert_ne!(server.pid(), old); // a new process
    /// assert_eq!(server.command(&["GET", "k"])?, Reply::Bulk(None)); // which starts empty
    /// server.stop()?;
    /// server.restart()?; // also brings a stopped server back
    /// assert_eq!(server.command(&["PING"])?, Reply::Simple("PONG".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.stop()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        // The port may linger briefly after the old process exits; retry until the deadline.
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(TestkitError::NotReady { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Freezes the process with `SIGSTOP`: connections stay open but nothing is answered, as
    /// with a long GC pause or a stalled VM.
    ///
    /// # Errors
    ///
    /// [`TestkitError::NotRunning`] when stopped; [`TestkitError::Io`] if the signal fails.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisServer, TestkitError};
    ///
    /// let mut server = RedisServer::start()?;
    /// server.pause()?;
    /// // The connection is accepted but nothing answers: the command times out after 2 s.
    /// assert!(matches!(server.command(&["PING"]), Err(TestkitError::Io { .. })));
    /// server.stop()?;
    /// assert!(matches!(server.pause(), Err(TestkitError::NotRunning)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(&mut self) -> Result<(), TestkitError> {
        self.process.pause()
    }

    /// Lets a paused process run again with `SIGCONT`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::NotRunning`] when stopped; [`TestkitError::Io`] if the signal fails.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{RedisServer, Reply, TestkitError};
    ///
    /// let mut server = RedisServer::start()?;
    /// server.pause()?;
    /// server.resume()?;
    /// assert_eq!(server.command(&["PING"])?, Reply::Simple("PONG".into()));
    /// server.stop()?;
    /// assert!(matches!(server.resume(), Err(TestkitError::NotRunning)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume(&mut self) -> Result<(), TestkitError> {
        self.process.resume()
    }

    /// Sets `name` on the running server (`CONFIG SET`) and passes it again on every restart.
    pub(crate) fn set_config(&mut self, name: &str, value: &str) -> Result<(), TestkitError> {
        match self.command(&["CONFIG", "SET", name, value])? {
            Reply::Simple(ok) if ok == "OK" => {}
            other => {
                return Err(TestkitError::Protocol(format!(
                    "CONFIG SET {name} {value} answered {other:?}"
                )));
            }
        }
        self.keep_config(name, value);
        Ok(())
    }

    /// Passes `--name value` on every restart from now on, without touching the running server.
    pub(crate) fn keep_config(&mut self, name: &str, value: &str) {
        self.builder
            .config
            .push((name.to_owned(), value.to_owned()));
    }

    fn arguments(&self) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        // Sentinel mode takes its (rewritable) config file first, then `--sentinel`.
        let mut args: Vec<String> = match self.builder.sentinel_config {
            Some(_) => vec![
                self.sentinel_path().display().to_string(),
                "--sentinel".into(),
            ],
            None => Vec::new(),
        };
        args.extend(
            [
                ("port", self.port.to_string()),
                ("bind", "127.0.0.1".to_owned()),
                ("dir", dir),
                ("daemonize", "no".to_owned()),
                ("logfile", "redis.log".to_owned()),
                ("protected-mode", "no".to_owned()),
                ("databases", "16".to_owned()),
            ]
            .into_iter()
            .flat_map(|(name, value)| [format!("--{name}"), value]),
        );
        let persistence: &[(&str, &str)] = match self.builder.persistence {
            Persistence::None => &[("save", ""), ("appendonly", "no")],
            Persistence::SnapshotOnShutdown => &[("save", "3600 1"), ("appendonly", "no")],
            Persistence::AppendOnlyEverySec => &[
                ("save", ""),
                ("appendonly", "yes"),
                ("appendfsync", "everysec"),
            ],
            Persistence::AppendOnlyAlways => &[
                ("save", ""),
                ("appendonly", "yes"),
                ("appendfsync", "always"),
            ],
        };
        for (name, value) in persistence {
            args.push(format!("--{name}"));
            args.push((*value).to_owned());
        }
        for (name, value) in &self.builder.config {
            args.push(format!("--{name}"));
            args.push(value.clone());
        }
        args
    }

    fn sentinel_path(&self) -> PathBuf {
        self.dir.path().join("sentinel.conf")
    }

    fn spawn(&mut self) -> Result<(), TestkitError> {
        if let Some(config) = &self.builder.sentinel_config {
            // Written once: on a restart Sentinel reads back what it rewrote (epochs, peers).
            let path = self.sentinel_path();
            if !path.exists() {
                std::fs::write(&path, config)
                    .map_err(|e| TestkitError::io("writing sentinel.conf", e))?;
            }
        }
        let mut child = Command::new(&self.binary)
            .args(self.arguments())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => TestkitError::NotInstalled {
                    binary: self.binary.clone(),
                },
                _ => TestkitError::io(format!("starting {}", self.binary.display()), e),
            })?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(self.not_ready(format!("exited with {status}")));
            }
            // Another server (another test's) may hold the port: ours then fails to bind,
            // but the other one answers PING, so check whose process answered.
            let answered = match resp::command(self.port, &["PING"], Duration::from_millis(500)) {
                Ok(Reply::Simple(pong)) if pong == "PONG" => server_pid(self.port),
                _ => None,
            };
            match answered {
                Some(pid) if pid == child.id() => break,
                Some(other) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.not_ready(format!(
                        "the port is held by another redis-server (pid {other})"
                    )));
                }
                // Not listening yet, or `-LOADING` while it replays its data.
                None if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.not_ready(format!("no PONG within {READY_TIMEOUT:?}")));
                }
            }
        }
        self.process = Process::new(child);
        Ok(())
    }

    fn not_ready(&self, what: String) -> TestkitError {
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        TestkitError::NotReady {
            port: self.port,
            detail: format!("{what}; log: {}", tail.join(" | ")),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL works on a paused process too; errors here have nowhere to go.
        let _ = self.kill();
    }
}

/// The `process_id` that `INFO server` reports on `port`, if a server answers it.
fn server_pid(port: u16) -> Option<u32> {
    let Ok(Reply::Bulk(Some(info))) =
        resp::command(port, &["INFO", "server"], Duration::from_millis(500))
    else {
        return None;
    };
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| TestkitError::io("finding a free port", e))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| TestkitError::io("finding a free port", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port held by another redis-server is not mistaken for ours: the other server
    /// answers PING there, so `start` must see that the answer is not from its process
    /// and move to the next port.
    #[test]
    fn start_skips_a_port_another_server_answers() -> Result<(), TestkitError> {
        let other = RedisServer::start()?;
        let taken = other.port();
        let mut ports = vec![free_port()?, taken];
        let ours =
            RedisServer::builder().start_on(|| ports.pop().ok_or(TestkitError::NotRunning))?;
        assert_ne!(ours.port(), taken);
        let Reply::Bulk(Some(info)) = ours.command(&["INFO", "server"])? else {
            panic!("INFO did not answer with a bulk string");
        };
        let pid = ours.pid().ok_or(TestkitError::NotRunning)?;
        assert!(String::from_utf8_lossy(&info).contains(&format!("process_id:{pid}\r\n")));
        assert_eq!(server_pid(taken), other.pid());
        Ok(())
    }
}
