//! The fault proxy relays faithfully when healed and injects each fault it promises.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use keel_testkit::{Direction, FaultProxy, RedisServer, Reply, TestkitError};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn relays_until_faulted_and_again_once_healed() -> Result {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.port())?;
    for i in 1..=20 {
        assert_eq!(proxy.command(&["INCR", "n"])?, Reply::Integer(i));
    }
    // Half-open the other way: requests are swallowed, so nothing runs.
    proxy.cut(Direction::Upstream);
    assert!(matches!(
        proxy.command(&["INCR", "n"]),
        Err(TestkitError::Io { .. })
    ));
    assert_eq!(
        server.command(&["GET", "n"])?,
        Reply::Bulk(Some(b"20".to_vec()))
    );
    proxy.heal();
    assert_eq!(proxy.command(&["INCR", "n"])?, Reply::Integer(21));
    Ok(())
}

#[test]
fn latency_applies_each_way_and_heals() -> Result {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.port())?;
    proxy.set_latency(Duration::from_millis(300));
    let sent = Instant::now();
    proxy.command(&["PING"])?;
    assert!(sent.elapsed() >= Duration::from_millis(600));
    proxy.heal();
    let sent = Instant::now();
    proxy.command(&["PING"])?;
    assert!(sent.elapsed() < Duration::from_millis(600));
    Ok(())
}

#[test]
fn reset_breaks_an_open_connection_mid_reply() -> Result {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.port())?;
    let mut client = TcpStream::connect(("127.0.0.1", proxy.port()))?;
    client.set_read_timeout(Some(Duration::from_secs(5)))?;
    // The reply is held back, then the connection is reset before it arrives.
    proxy.cut(Direction::Downstream);
    client.write_all(b"PING\r\n")?;
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(proxy.connections(), 1);
    assert_eq!(proxy.reset_connections(), 1);
    let mut rest = Vec::new();
    let error = client.read_to_end(&mut rest).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(rest.is_empty());
    // New connections work once healed.
    proxy.heal();
    assert_eq!(proxy.command(&["PING"])?, Reply::Simple("PONG".into()));
    Ok(())
}
