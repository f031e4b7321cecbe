//! `FaultProxy`: a TCP relay between a client and a real server that injects network faults.
//!
//! Why a proxy and not network namespaces with `tc netem`: a proxy needs no root and no
//! `CAP_NET_ADMIN`, runs the same on a laptop and in CI, touches only the connections a test
//! sends through it (netem on a shared loopback would slow every test on the machine), and
//! can act on one connection at an exact moment (reset it in the middle of a script, cut one
//! direction of it). What it cannot do is drop single packets below TCP: it works on the
//! byte stream, so "loss" is a blackhole (bytes swallowed, the connection left open), which
//! is how a partition looks to a client anyway.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::TestkitError;

/// How often a relay thread wakes to look at the fault settings.
const TICK: Duration = Duration::from_millis(20);

/// One direction of a proxied connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: requests.
    Upstream,
    /// Server to client: replies.
    Downstream,
}

#[derive(Debug, Default)]
struct Faults {
    latency_nanos: AtomicU64,
    cut_upstream: AtomicBool,
    cut_downstream: AtomicBool,
    refuse: AtomicBool,
    stop: AtomicBool,
}

impl Faults {
    fn cut(&self, direction: Direction) -> &AtomicBool {
        match direction {
            Direction::Upstream => &self.cut_upstream,
            Direction::Downstream => &self.cut_downstream,
        }
    }
}

/// Both ends of one proxied connection; closed when the last relay thread lets go.
#[derive(Debug)]
struct Connection {
    client: TcpStream,
    server: TcpStream,
    reset: AtomicBool,
}

/// A TCP relay on a free loopback port in front of `target`, with faults a test switches on
/// and off while traffic flows: added latency, a blackhole (both directions swallowed, the
/// connections left open: a partition), one direction cut (a half-open connection), refused
/// new connections, and a reset (RST) of every open connection. Stops on drop.
///
/// # Example
///
/// ```
/// use keel_testkit::{FaultProxy, RedisServer, Reply, TestkitError};
///
/// let server = RedisServer::start()?;
/// let proxy = FaultProxy::start(server.port())?;
/// let ping = || Reply::Simple("PONG".into());
/// assert_eq!(proxy.command(&["PING"])?, ping());
///
/// proxy.blackhole(); // a partition: the request goes nowhere, nothing comes back
/// assert!(matches!(proxy.command(&["PING"]), Err(TestkitError::Io { .. })));
/// proxy.heal();
/// assert_eq!(proxy.command(&["PING"])?, ping());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    faults: Arc<Faults>,
    connections: Arc<Mutex<Vec<Weak<Connection>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port that relays to `127.0.0.1:target_port`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Io`] when no port can be bound.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_testkit::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start()?;
    /// let proxy = FaultProxy::start(server.port())?;
    /// assert_ne!(proxy.port(), server.port());
    /// assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}/", proxy.port()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(target_port: u16) -> Result<FaultProxy, TestkitError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| TestkitError::io("binding the fault proxy", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestkitError::io("binding the fault proxy", e))?
            .port();
        let faults = Arc::new(Faults::default());
        let connections = Arc::new(Mutex::new(Vec::new()));
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, target_port));
        let acceptor = {
            let (faults, connections) = (faults.clone(), connections.clone());
            std::thread::Builder::new()
                .name(format!("fault-proxy-{port}"))
                .spawn(move || accept(listener, target, faults, connections))
                .map_err(|e| TestkitError::io("starting the fault proxy", e))?
        };
        Ok(FaultProxy {
            port,
            faults,
            connections,
            acceptor: Some(acceptor),
        })
    }

    /// The port clients connect to instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`, for a Redis client.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `http://127.0.0.1:<port>`, for an etcd client.
    ///
    /// ```
    /// use keel_testkit::{EtcdCluster, FaultProxy};
    ///
    /// let cluster = EtcdCluster::builder().members(1)?.start()?;
    /// let proxy = FaultProxy::start(cluster.member(0)?.client_port())?;
    /// assert_eq!(proxy.endpoint(), format!("http://127.0.0.1:{}", proxy.port()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends one Redis command through the proxy (2 s timeouts), as
    /// [`RedisServer::command`](crate::RedisServer::command) does directly.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Io`] on a connection error or timeout (a fault at work).
    pub fn command(&self, args: &[&str]) -> Result<crate::Reply, TestkitError> {
        crate::resp::command(self.port, args, Duration::from_secs(2))
    }

    /// Delays every chunk of bytes, in both directions, by `latency` (zero: none).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use keel_testkit::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start()?;
    /// let proxy = FaultProxy::start(server.port())?;
    /// proxy.set_latency(Duration::from_millis(200));
    /// let sent = Instant::now();
    /// proxy.command(&["PING"])?;
    /// assert!(sent.elapsed() >= Duration::from_millis(400)); // there and back
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.faults.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Swallows every byte in both directions and leaves connections open: a partition.
    /// New connections are still accepted (as a peer behind a dead route would not answer).
    pub fn blackhole(&self) {
        self.cut(Direction::Upstream);
        self.cut(Direction::Downstream);
    }

    /// Swallows the bytes of one direction only: a half-open connection.
    ///
    /// ```
    /// use keel_testkit::{Direction, FaultProxy, RedisServer, Reply, TestkitError};
    ///
    /// let server = RedisServer::start()?;
    /// let proxy = FaultProxy::start(server.port())?;
    /// proxy.cut(Direction::Downstream); // requests arrive, replies do not
    /// assert!(matches!(proxy.command(&["INCR", "n"]), Err(TestkitError::Io { .. })));
    /// assert_eq!(server.command(&["GET", "n"])?, Reply::Bulk(Some(b"1".to_vec()))); // it ran
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cut(&self, direction: Direction) {
        self.faults.cut(direction).store(true, Ordering::Relaxed);
    }

    /// Closes every new connection at once, before it reaches the server.
    ///
    /// ```
    /// use keel_testkit::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start()?;
    /// let proxy = FaultProxy::start(server.port())?;
    /// proxy.refuse(true);
    /// assert!(proxy.command(&["PING"]).is_err());
    /// proxy.refuse(false);
    /// assert!(proxy.command(&["PING"]).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refuse(&self, refuse: bool) {
        self.faults.refuse.store(refuse, Ordering::Relaxed);
    }

    /// Resets (RST) every open connection, both sides; returns how many there were.
    /// New connections are relayed as before.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use keel_testkit::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start()?;
    /// let proxy = FaultProxy::start(server.port())?;
    /// let mut client = TcpStream::connect(("127.0.0.1", proxy.port()))?;
    /// client.write_all(b"PING\r\n")?;
    /// let mut pong = [0; 7];
    /// client.read_exact(&mut pong)?;
    /// assert_eq!(proxy.reset_connections(), 1);
    /// let mut rest = Vec::new();
    /// assert!(client.read_to_end(&mut rest).is_err()); // connection reset by peer
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset_connections(&self) -> usize {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let mut reset = 0;
        for connection in connections.drain(..).filter_map(|weak| weak.upgrade()) {
            set_linger_zero(&connection.client);
            set_linger_zero(&connection.server);
            connection.reset.store(true, Ordering::Relaxed);
            reset += 1;
        }
        reset
    }

    /// How many proxied connections are open.
    pub fn connections(&self) -> usize {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        connections.retain(|weak| weak.strong_count() > 0);
        connections.len()
    }

    /// Turns every fault off: no latency, nothing cut, new connections accepted.
    pub fn heal(&self) {
        self.set_latency(Duration::ZERO);
        self.faults.cut_upstream.store(false, Ordering::Relaxed);
        self.faults.cut_downstream.store(false, Ordering::Relaxed);
        self.refuse(false);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.faults.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept so the thread sees `stop`.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            Duration::from_millis(200),
        );
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.reset_connections();
    }
}

fn accept(
    listener: TcpListener,
    target: SocketAddr,
    faults: Arc<Faults>,
    connections: Arc<Mutex<Vec<Weak<Connection>>>>,
) {
    for client in listener.incoming() {
        if faults.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = client else { continue };
        if faults.refuse.load(Ordering::Relaxed) {
            set_linger_zero(&client);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            set_linger_zero(&client);
            continue;
        };
        let ready = [&client, &server]
            .iter()
            .all(|s| s.set_read_timeout(Some(TICK)).is_ok() && s.set_nodelay(true).is_ok());
        if !ready {
            continue;
        }
        let connection = Arc::new(Connection {
            client,
            server,
            reset: AtomicBool::new(false),
        });
        connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&connection));
        for direction in [Direction::Upstream, Direction::Downstream] {
            let (connection, faults) = (connection.clone(), faults.clone());
            let _ = std::thread::Builder::new()
                .name("fault-proxy-relay".into())
                .spawn(move || relay(&connection, direction, &faults));
        }
    }
}

/// Copies one direction until end of stream, an error, a reset or the proxy's stop.
fn relay(connection: &Connection, direction: Direction, faults: &Faults) {
    let (mut from, mut to) = match direction {
        Direction::Upstream => (&connection.client, &connection.server),
        Direction::Downstream => (&connection.server, &connection.client),
    };
    let mut buffer = [0; 16 * 1024];
    loop {
        if connection.reset.load(Ordering::Relaxed) || faults.stop.load(Ordering::Relaxed) {
            return;
        }
        let read = match from.read(&mut buffer) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(read) => read,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        };
        let latency = faults.latency_nanos.load(Ordering::Relaxed);
        if latency > 0 {
            std::thread::sleep(Duration::from_nanos(latency));
        }
        if faults.cut(direction).load(Ordering::Relaxed) {
            continue; // swallowed
        }
        if to.write_all(&buffer[..read]).is_err() {
            let _ = from.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Makes the socket's close send RST instead of FIN.
fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let size = libc::socklen_t::try_from(std::mem::size_of::<libc::linger>()).unwrap_or(8);
    // SAFETY: setsockopt reads `size` bytes from a valid `linger` on a socket we own.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size,
        );
    }
}
