//! `FaultProxy`: a TCP relay between a client and a server that injects network faults.
//!
//! # Why a proxy and not network namespaces with `tc netem`
//!
//! - **No root.** netem needs `CAP_NET_ADMIN` and a namespace per side; the proxy is a
//!   loopback listener, so the fault tests run as any user on a laptop and in CI.
//! - **Per connection and deterministic.** A fault applies to the bytes of the connections
//!   through this proxy only, from the moment it is set, and the proxy counts what it held
//!   and dropped, so a test waits for "the reply reached the proxy" instead of guessing
//!   with a sleep; netem drops by probability on a whole interface (on a shared loopback it
//!   would slow every other test on the machine).
//! - **Reset mid-script.** The proxy can hold a server's reply and then reset both sides
//!   with an RST (`SO_LINGER` 0), the fault a script retried after a reset needs; netem
//!   drops or delays packets but cannot make a TCP stack send an RST.
//!
//! What it does not model: packet loss inside a stream (TCP hides it as latency, which the
//! proxy adds directly) and faults between servers (a Redis Cluster's gossip, etcd's Raft).

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::TestkitError;

/// Which way bytes travel through a [`FaultProxy`].
///
/// ```
/// use keel_testkit::Direction;
///
/// assert!(Direction::Both.includes(Direction::Upstream));
/// assert!(!Direction::Downstream.includes(Direction::Upstream));
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the server: requests.
    Upstream,
    /// From the server to the client: replies.
    Downstream,
    /// Both ways.
    Both,
}

impl Direction {
    /// Whether a fault set on `self` applies to bytes travelling `way`.
    ///
    /// ```
    /// use keel_testkit::Direction;
    ///
    /// assert!(Direction::Downstream.includes(Direction::Downstream));
    /// assert!(Direction::Both.includes(Direction::Downstream));
    /// ```
    pub fn includes(self, way: Direction) -> bool {
        self == Direction::Both || self == way
    }

    fn index(self) -> usize {
        match self {
            Direction::Upstream => 0,
            _ => 1,
        }
    }
}

/// The faults in force; read by every pump before it forwards a chunk.
#[derive(Clone, Debug, Default)]
struct Faults {
    latency: Duration,
    /// Per way: bytes are read and held, forwarded when healed.
    blackhole: [bool; 2],
    /// Per way: bytes are read and dropped for good (half-open).
    cut: [bool; 2],
    /// New connections are reset at once.
    refuse: bool,
}

struct Shared {
    faults: Mutex<Faults>,
    /// Wakes held writers when faults change or connections die.
    changed: Condvar,
    connections: Mutex<Vec<Weak<Connection>>>,
    stopping: AtomicBool,
    accepted: AtomicUsize,
    forwarded: [AtomicU64; 2],
    held: [AtomicU64; 2],
    dropped: [AtomicU64; 2],
    resets: AtomicUsize,
}

impl Shared {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn live(&self) -> Vec<Arc<Connection>> {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        connections.retain(|weak| weak.strong_count() > 0);
        connections.iter().filter_map(Weak::upgrade).collect()
    }
}

/// One relayed connection: the client's socket and the one to the server.
struct Connection {
    client: TcpStream,
    server: TcpStream,
    killed: AtomicBool,
    /// Bytes were dropped, so the stream has a hole: healing resets it.
    holed: AtomicBool,
}

impl Connection {
    /// Resets both sides: `SO_LINGER` 0 makes the last close send an RST, and shutting the
    /// read halves wakes the pumps so they drop their handles now.
    fn kill(&self, shared: &Shared) {
        if self.killed.swap(true, Ordering::AcqRel) {
            return;
        }
        for stream in [&self.client, &self.server] {
            let _ = set_linger_zero(stream);
            let _ = stream.shutdown(Shutdown::Read);
        }
        let _guard = shared.faults();
        shared.changed.notify_all();
    }
}

/// `SO_LINGER` on with a zero timeout: closing the socket sends an RST, not a FIN.
fn set_linger_zero(stream: &TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let size = libc::socklen_t::try_from(std::mem::size_of::<libc::linger>())
        .map_err(|_| io::Error::other("linger size"))?;
    // SAFETY: setsockopt reads `size` bytes from `linger`, a live local of exactly that
    // size, on a descriptor `stream` owns for the duration of the call.
    let result = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::from_ref(&linger).cast(),
            size,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A TCP relay on a free loopback port to one target address, with faults a test switches
/// on and off while clients are connected: latency, a blackhole (bytes read and held), a cut
/// direction (half-open: bytes read and dropped), a reset of every connection, and heal.
///
/// Faults apply to connections already open and to new ones. The proxy connects to the
/// target once per accepted client. It stops, resetting every connection, when dropped.
///
/// # Example
///
/// ```
/// use keel_testkit::{Direction, FaultProxy, RedisServer, Reply};
/// use std::io::{Read, Write};
/// use std::time::Duration;
///
/// let server = RedisServer::start()?;
/// let proxy = FaultProxy::start(server.port())?;
/// let mut client = std::net::TcpStream::connect(proxy.addr())?;
/// client.set_read_timeout(Some(Duration::from_secs(5)))?;
/// client.write_all(b"PING\r\n")?;
/// let mut reply = [0; 7];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"+PONG\r\n");
///
/// // Replies are held: the server answers, the client hears nothing.
/// proxy.hold(Direction::Downstream);
/// client.write_all(b"INCR n\r\n")?;
/// proxy.wait_for_held(Direction::Downstream, 4, Duration::from_secs(5))?; // ":1\r\n"
/// assert_eq!(server.command(&["GET", "n"])?, Reply::Bulk(Some(b"1".to_vec())));
/// proxy.heal(); // and now it arrives, as TCP would deliver it after a short partition
/// let mut reply = [0; 4];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b":1\r\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and relays each connection to `target_port` on
    /// loopback, where keel-testkit's servers run.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Io`] if no port can be bound.
    ///
    /// ```
    /// use keel_testkit::{FaultProxy, RedisServer, Reply};
    ///
    /// let server = RedisServer::start()?;
    /// let proxy = FaultProxy::start(server.port())?;
    /// assert_ne!(proxy.port(), server.port());
    /// assert_eq!(proxy.target().port(), server.port());
    /// assert_eq!(proxy.command(&["PING"])?, Reply::Simple("PONG".into()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(target_port: u16) -> Result<FaultProxy, TestkitError> {
        FaultProxy::start_to((Ipv4Addr::LOCALHOST, target_port))
    }

    /// Listens on a free loopback port and relays each connection to `target`, any address.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Io`] if `target` does not resolve or no port can be bound.
    ///
    /// ```
    /// use keel_testkit::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start()?;
    /// let proxy = FaultProxy::start_to(("localhost", server.port()))?;
    /// assert_eq!(proxy.target().port(), server.port());
    /// assert!(FaultProxy::start_to("no-such-host.invalid:1").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_to(target: impl ToSocketAddrs) -> Result<FaultProxy, TestkitError> {
        let target = target
            .to_socket_addrs()
            .map_err(|error| TestkitError::io("resolving the proxy's target", error))?
            .next()
            .ok_or_else(|| {
                TestkitError::io(
                    "resolving the proxy's target",
                    io::Error::new(io::ErrorKind::NotFound, "no address"),
                )
            })?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|error| TestkitError::io("binding the proxy's port", error))?;
        let addr = listener
            .local_addr()
            .map_err(|error| TestkitError::io("reading the proxy's port", error))?;
        let shared = Arc::new(Shared {
            faults: Mutex::new(Faults::default()),
            changed: Condvar::new(),
            connections: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            forwarded: [AtomicU64::new(0), AtomicU64::new(0)],
            held: [AtomicU64::new(0), AtomicU64::new(0)],
            dropped: [AtomicU64::new(0), AtomicU64::new(0)],
            resets: AtomicUsize::new(0),
        });
        let accepting = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept(listener, target, accepting))
            .map_err(|error| TestkitError::io("spawning the proxy's thread", error))?;
        Ok(FaultProxy {
            addr,
            target,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The loopback address clients connect to.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// assert!(proxy.addr().ip().is_loopback());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address each connection is relayed to.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// assert_eq!(proxy.target().port(), server.port());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The proxy's port on loopback.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// assert_eq!(proxy.port(), proxy.addr().port());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A `redis://` URL for the proxy, for a Redis target.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}/", proxy.port()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.addr.port())
    }

    /// An `http://` endpoint for the proxy, for an etcd target.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// assert_eq!(proxy.endpoint(), format!("http://127.0.0.1:{}", proxy.port()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Sends one Redis command through the proxy on a new connection (2 s timeout).
    ///
    /// # Errors
    ///
    /// [`TestkitError::Io`] when the connection fails or the reply does not come in time;
    /// [`TestkitError::Protocol`] for a malformed reply.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// use keel_testkit::{Direction, Reply};
    ///
    /// let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// assert_eq!(proxy.command(&["INCR", "n"])?, Reply::Integer(1));
    /// proxy.cut(Direction::Upstream);
    /// assert!(proxy.command(&["INCR", "n"]).is_err()); // swallowed: it never ran
    /// assert_eq!(server.command(&["GET", "n"])?, Reply::Bulk(Some(b"1".to_vec())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn command(&self, args: &[&str]) -> Result<crate::Reply, TestkitError> {
        crate::resp::command(self.addr.port(), args, Duration::from_secs(2))
    }

    /// Delays every byte read from now on by `latency`, both ways (zero turns it off).
    /// Bytes already read keep the delay they were read with.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// use std::io::{Read, Write};
    /// use std::time::{Duration, Instant};
    ///
    /// proxy.set_latency(Duration::from_millis(100));
    /// let mut client = std::net::TcpStream::connect(proxy.addr())?;
    /// let start = Instant::now();
    /// client.write_all(b"PING\r\n")?;
    /// client.read_exact(&mut [0; 7])?;
    /// assert!(start.elapsed() >= Duration::from_millis(200)); // there and back
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults().latency = latency;
    }

    /// A partition: reads and holds the bytes travelling both ways, forwarding nothing
    /// until [`heal`](FaultProxy::heal). New connections are accepted and held too.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// use keel_testkit::Direction;
    /// use std::io::Write;
    /// use std::time::Duration;
    ///
    /// proxy.blackhole();
    /// let mut client = std::net::TcpStream::connect(proxy.addr())?;
    /// client.write_all(b"SET k v\r\n")?;
    /// proxy.wait_for_held(Direction::Upstream, 9, Duration::from_secs(5))?;
    /// assert_eq!(server.command(&["EXISTS", "k"])?, keel_testkit::Reply::Integer(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn blackhole(&self) {
        self.hold(Direction::Both);
    }

    /// Reads and holds the bytes travelling `way`, forwarding nothing until
    /// [`heal`](FaultProxy::heal), which delivers them as TCP would after a partition
    /// shorter than its retransmission timeout. To model a longer one, call
    /// [`reset_connections`](FaultProxy::reset_connections) before healing. Holding
    /// [`Downstream`](Direction::Downstream) lets a request run on the server while its
    /// reply waits here: the moment to reset a connection mid-script.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// use keel_testkit::{Direction, Reply};
    /// use std::io::Write;
    /// use std::time::Duration;
    ///
    /// proxy.hold(Direction::Downstream);
    /// let mut client = std::net::TcpStream::connect(proxy.addr())?;
    /// client.write_all(b"SET k v\r\n")?;
    /// proxy.wait_for_held(Direction::Downstream, 5, Duration::from_secs(5))?; // "+OK\r\n"
    /// assert_eq!(server.command(&["GET", "k"])?, Reply::Bulk(Some(b"v".to_vec())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hold(&self, way: Direction) {
        let mut faults = self.shared.faults();
        for one in [Direction::Upstream, Direction::Downstream] {
            if way.includes(one) {
                faults.blackhole[one.index()] = true;
            }
        }
    }

    /// Refuses new connections (accepted, then reset at once) while `refuse` is true;
    /// open connections are left alone.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// proxy.refuse(true);
    /// assert!(proxy.command(&["PING"]).is_err());
    /// proxy.refuse(false);
    /// assert!(proxy.command(&["PING"]).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refuse(&self, refuse: bool) {
        self.shared.faults().refuse = refuse;
    }

    /// Half-open: bytes travelling `way` are read and dropped for good, while the other
    /// way still flows. A connection that lost bytes has a hole in its stream, so
    /// [`heal`](FaultProxy::heal) resets it; new connections then work.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// use keel_testkit::{Direction, Reply};
    /// use std::io::Write;
    /// use std::time::Duration;
    ///
    /// proxy.cut(Direction::Downstream); // requests arrive, replies never do
    /// let mut client = std::net::TcpStream::connect(proxy.addr())?;
    /// client.write_all(b"SET k v\r\n")?;
    /// proxy.wait_for_dropped(Direction::Downstream, 5, Duration::from_secs(5))?; // "+OK\r\n"
    /// assert_eq!(server.command(&["GET", "k"])?, Reply::Bulk(Some(b"v".to_vec())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cut(&self, way: Direction) {
        let mut faults = self.shared.faults();
        for one in [Direction::Upstream, Direction::Downstream] {
            if way.includes(one) {
                faults.cut[one.index()] = true;
            }
        }
    }

    /// Resets every open connection: both the client and the server get an RST. Faults in
    /// force stay; new connections are accepted.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// use std::io::{Read, Write};
    ///
    /// let mut client = std::net::TcpStream::connect(proxy.addr())?;
    /// client.write_all(b"PING\r\n")?;
    /// client.read_exact(&mut [0; 7])?;
    /// assert_eq!(proxy.reset_connections(), 1);
    /// let error = client.read(&mut [0; 1]).unwrap_err();
    /// assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset_connections(&self) -> usize {
        let live = self.shared.live();
        for connection in &live {
            connection.kill(&self.shared);
        }
        self.shared.resets.fetch_add(live.len(), Ordering::Relaxed);
        // The RST goes out when the pumps drop their handles; wait for that, briefly.
        let deadline = Instant::now() + Duration::from_secs(2);
        let weak: Vec<_> = live.iter().map(Arc::downgrade).collect();
        drop(live);
        while weak.iter().any(|one| one.strong_count() > 0) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        weak.len()
    }

    /// Clears every fault: no latency, held bytes delivered, and connections that lost
    /// bytes to a [`cut`](FaultProxy::cut) reset.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// use keel_testkit::Direction;
    /// use std::io::{Read, Write};
    ///
    /// proxy.blackhole();
    /// proxy.heal();
    /// let mut client = std::net::TcpStream::connect(proxy.addr())?;
    /// client.write_all(b"PING\r\n")?;
    /// client.read_exact(&mut [0; 7])?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heal(&self) {
        {
            let mut faults = self.shared.faults();
            *faults = Faults::default();
            self.shared.changed.notify_all();
        }
        for connection in self.shared.live() {
            if connection.holed.load(Ordering::Acquire) {
                connection.kill(&self.shared);
                self.shared.resets.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Connections open now.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// let client = std::net::TcpStream::connect(proxy.addr())?;
    /// proxy.wait_for_connections(1, std::time::Duration::from_secs(5))?;
    /// assert_eq!(proxy.connections(), 1);
    /// assert_eq!(proxy.reset_connections(), 1);
    /// assert_eq!((proxy.connections(), proxy.accepted()), (0, 1));
    /// # drop(client);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connections(&self) -> usize {
        self.shared.live().len()
    }

    /// Connections accepted so far, open or not.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// proxy.command(&["PING"])?;
    /// proxy.command(&["PING"])?;
    /// assert_eq!(proxy.accepted(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Acquire)
    }

    /// Connections reset so far, by [`reset_connections`](FaultProxy::reset_connections) or by
    /// [`heal`](FaultProxy::heal) after a cut.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// assert_eq!(proxy.reset_connections(), 0);
    /// assert_eq!(proxy.resets(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resets(&self) -> usize {
        self.shared.resets.load(Ordering::Acquire)
    }

    /// Bytes delivered `way` so far (`Both`: the sum).
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// use keel_testkit::Direction;
    /// use std::io::{Read, Write};
    ///
    /// let mut client = std::net::TcpStream::connect(proxy.addr())?;
    /// client.write_all(b"PING\r\n")?;
    /// client.read_exact(&mut [0; 7])?;
    /// assert_eq!(proxy.forwarded(Direction::Upstream), 6);
    /// assert_eq!(proxy.forwarded(Direction::Downstream), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forwarded(&self, way: Direction) -> u64 {
        sum(&self.shared.forwarded, way)
    }

    /// Bytes read `way` and not yet delivered: blackholed or delayed.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// assert_eq!(proxy.held(keel_testkit::Direction::Both), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn held(&self, way: Direction) -> u64 {
        sum(&self.shared.held, way)
    }

    /// Bytes dropped `way` by a [`cut`](FaultProxy::cut) so far.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// assert_eq!(proxy.dropped(keel_testkit::Direction::Both), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dropped(&self, way: Direction) -> u64 {
        sum(&self.shared.dropped, way)
    }

    /// Waits, at most `timeout`, until at least `bytes` are held `way`: for a test, the
    /// moment a request reached the server or its reply reached the proxy.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Timeout`] if fewer are held when `timeout` ends.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// use keel_testkit::{Direction, TestkitError};
    /// use std::time::Duration;
    ///
    /// let waited = proxy.wait_for_held(Direction::Downstream, 1, Duration::from_millis(20));
    /// assert!(matches!(waited, Err(TestkitError::Timeout { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_held(
        &self,
        way: Direction,
        bytes: u64,
        timeout: Duration,
    ) -> Result<(), TestkitError> {
        self.wait_until(
            &format!("{bytes} bytes held {way:?}"),
            timeout,
            || self.held(way),
            bytes,
        )
    }

    /// Waits, at most `timeout`, until at least `bytes` were dropped `way` by a cut.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Timeout`] if fewer were dropped when `timeout` ends.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// use keel_testkit::Direction;
    /// use std::time::Duration;
    ///
    /// assert!(proxy.wait_for_dropped(Direction::Upstream, 1, Duration::from_millis(20)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_dropped(
        &self,
        way: Direction,
        bytes: u64,
        timeout: Duration,
    ) -> Result<(), TestkitError> {
        self.wait_until(
            &format!("{bytes} bytes dropped {way:?}"),
            timeout,
            || self.dropped(way),
            bytes,
        )
    }

    /// Waits, at most `timeout`, until at least `count` connections were accepted in all.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Timeout`] if fewer were accepted when `timeout` ends.
    ///
    /// ```
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let proxy = keel_testkit::FaultProxy::start(server.port())?;
    /// use std::time::Duration;
    ///
    /// assert!(proxy.wait_for_connections(1, Duration::from_millis(20)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_connections(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<(), TestkitError> {
        self.wait_until(
            &format!("{count} connections"),
            timeout,
            || u64::try_from(self.connections()).unwrap_or(u64::MAX),
            u64::try_from(count).unwrap_or(u64::MAX),
        )
    }

    fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        read: impl Fn() -> u64,
        at_least: u64,
    ) -> Result<(), TestkitError> {
        let start = Instant::now();
        loop {
            let seen = read();
            if seen >= at_least {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(TestkitError::Timeout {
                    waited_for: what.to_string(),
                    after: timeout,
                    last_seen: seen.to_string(),
                });
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

fn sum(counters: &[AtomicU64; 2], way: Direction) -> u64 {
    [Direction::Upstream, Direction::Downstream]
        .into_iter()
        .filter(|one| way.includes(*one))
        .map(|one| counters[one.index()].load(Ordering::Acquire))
        .sum()
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("target", &self.target)
            .field("faults", &*self.shared.faults())
            .field("accepted", &self.accepted())
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for connection in self.shared.live() {
            connection.kill(&self.shared);
        }
    }
}

fn accept(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.faults().refuse {
            let _ = set_linger_zero(&client);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            // Target down: the client sees its connection reset, as a refused one would.
            let _ = set_linger_zero(&client);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let connection = Arc::new(Connection {
            client,
            server,
            killed: AtomicBool::new(false),
            holed: AtomicBool::new(false),
        });
        shared
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Arc::downgrade(&connection));
        for way in [Direction::Upstream, Direction::Downstream] {
            let queue = Arc::new(Queue::default());
            let (reader, writer) = (Arc::clone(&connection), Arc::clone(&connection));
            let (read_shared, write_shared) = (Arc::clone(&shared), Arc::clone(&shared));
            let read_queue = Arc::clone(&queue);
            let _ = thread::Builder::new()
                .name("fault-proxy-read".into())
                .spawn(move || read_side(&reader, way, &read_shared, &read_queue));
            let _ = thread::Builder::new()
                .name("fault-proxy-write".into())
                .spawn(move || write_side(&writer, way, &write_shared, &queue));
        }
        shared.accepted.fetch_add(1, Ordering::AcqRel);
    }
}

/// A chunk read one way, with the instant it may be written.
type Chunk = (Instant, Vec<u8>);

/// Chunks read one way and not yet written, and whether the reading side has ended.
#[derive(Default)]
struct Queue {
    chunks: Mutex<(VecDeque<Chunk>, bool)>,
    ready: Condvar,
}

fn ends(connection: &Connection, way: Direction) -> (&TcpStream, &TcpStream) {
    match way {
        Direction::Upstream => (&connection.client, &connection.server),
        _ => (&connection.server, &connection.client),
    }
}

fn read_side(connection: &Connection, way: Direction, shared: &Shared, queue: &Queue) {
    let (mut from, _) = ends(connection, way);
    let mut buffer = vec![0; 16 * 1024];
    let reset = loop {
        match from.read(&mut buffer) {
            Ok(0) => break false,
            Ok(read) => {
                let faults = shared.faults().clone();
                let bytes = u64::try_from(read).unwrap_or(u64::MAX);
                if faults.cut[way.index()] {
                    connection.holed.store(true, Ordering::Release);
                    shared.dropped[way.index()].fetch_add(bytes, Ordering::AcqRel);
                    continue;
                }
                let mut chunks = queue.chunks.lock().unwrap_or_else(|p| p.into_inner());
                if connection.killed.load(Ordering::Acquire) {
                    break false;
                }
                shared.held[way.index()].fetch_add(bytes, Ordering::AcqRel);
                chunks
                    .0
                    .push_back((Instant::now() + faults.latency, buffer[..read].to_vec()));
                queue.ready.notify_all();
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break true,
        }
    };
    if reset {
        // The peer reset: pass the reset on to the other side.
        connection.kill(shared);
    }
    let mut chunks = queue.chunks.lock().unwrap_or_else(|p| p.into_inner());
    chunks.1 = true;
    queue.ready.notify_all();
}

fn write_side(connection: &Connection, way: Direction, shared: &Shared, queue: &Queue) {
    let (_, mut to) = ends(connection, way);
    loop {
        let (due, chunk) = {
            let mut chunks = queue.chunks.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if connection.killed.load(Ordering::Acquire) {
                    return forget(&mut chunks.0, way, shared);
                }
                if let Some(next) = chunks.0.pop_front() {
                    break next;
                }
                if chunks.1 {
                    // The reading side ended cleanly: pass the FIN on.
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
                chunks = queue
                    .ready
                    .wait_timeout(chunks, Duration::from_millis(50))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        };
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        {
            let mut faults = shared.faults();
            while faults.blackhole[way.index()] && !connection.killed.load(Ordering::Acquire) {
                faults = shared
                    .changed
                    .wait_timeout(faults, Duration::from_millis(50))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        let bytes = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        if connection.killed.load(Ordering::Acquire) {
            shared.held[way.index()].fetch_sub(bytes, Ordering::AcqRel);
            let mut chunks = queue.chunks.lock().unwrap_or_else(|p| p.into_inner());
            return forget(&mut chunks.0, way, shared);
        }
        // Counted before the write, so a peer that has read the bytes sees them counted.
        shared.held[way.index()].fetch_sub(bytes, Ordering::AcqRel);
        shared.forwarded[way.index()].fetch_add(bytes, Ordering::AcqRel);
        if to.write_all(&chunk).is_err() {
            connection.kill(shared);
            let mut chunks = queue.chunks.lock().unwrap_or_else(|p| p.into_inner());
            return forget(&mut chunks.0, way, shared);
        }
    }
}

/// A killed connection's queued bytes will never be delivered: no longer held.
fn forget(chunks: &mut VecDeque<Chunk>, way: Direction, shared: &Shared) {
    let bytes: usize = chunks.drain(..).map(|(_, chunk)| chunk.len()).sum();
    shared.held[way.index()].fetch_sub(u64::try_from(bytes).unwrap_or(0), Ordering::AcqRel);
}
