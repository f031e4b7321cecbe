//! `FaultProxy` against a real redis-server, spoken to in raw RESP so each fault is seen
//! byte for byte: what reaches the server, what reaches the client, and when.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use keel_testkit::{Direction, FaultProxy, RedisServer, Reply};

const BOUND: Duration = Duration::from_secs(5);

fn setup() -> (RedisServer, FaultProxy) {
    let server = RedisServer::start().expect("redis-server");
    let proxy = FaultProxy::start(server.port()).expect("proxy");
    (server, proxy)
}

fn client(proxy: &FaultProxy) -> TcpStream {
    let stream = TcpStream::connect(proxy.addr()).expect("connect");
    stream.set_read_timeout(Some(BOUND)).expect("timeout");
    stream
}

fn read_exact(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut reply = vec![0; len];
    stream.read_exact(&mut reply).expect("reply");
    reply
}

/// Nothing arrives within `wait`.
fn silent(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let silent = matches!(
        stream.read(&mut [0; 1]),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
    );
    stream.set_read_timeout(Some(BOUND)).expect("timeout");
    silent
}

fn get(server: &RedisServer, key: &str) -> Reply {
    server.command(&["GET", key]).expect("GET")
}

#[test]
fn relays_both_ways_and_counts_bytes() {
    let (_server, proxy) = setup();
    let mut stream = client(&proxy);
    for _ in 0..3 {
        stream.write_all(b"PING\r\n").expect("write");
        assert_eq!(read_exact(&mut stream, 7), b"+PONG\r\n");
    }
    assert_eq!(proxy.forwarded(Direction::Upstream), 18);
    assert_eq!(proxy.forwarded(Direction::Downstream), 21);
    assert_eq!(proxy.forwarded(Direction::Both), 39);
    assert_eq!((proxy.connections(), proxy.held(Direction::Both)), (1, 0));
}

#[test]
fn latency_delays_each_way() {
    let (_server, proxy) = setup();
    let mut stream = client(&proxy);
    stream.write_all(b"PING\r\n").expect("write");
    read_exact(&mut stream, 7);
    let latency = Duration::from_millis(150);
    proxy.set_latency(latency);
    let start = Instant::now();
    stream.write_all(b"PING\r\n").expect("write");
    read_exact(&mut stream, 7);
    let elapsed = start.elapsed();
    assert!(elapsed >= 2 * latency, "{elapsed:?}");
    assert!(
        elapsed < 2 * latency + Duration::from_secs(1),
        "{elapsed:?}"
    );
    proxy.heal();
    let start = Instant::now();
    stream.write_all(b"PING\r\n").expect("write");
    read_exact(&mut stream, 7);
    assert!(start.elapsed() < latency, "{:?}", start.elapsed());
}

#[test]
fn a_blackhole_to_the_client_lets_the_command_run_and_holds_its_reply() {
    let (server, proxy) = setup();
    let mut stream = client(&proxy);
    proxy.hold(Direction::Downstream);
    stream.write_all(b"INCR n\r\n").expect("write");
    proxy
        .wait_for_held(Direction::Downstream, 4, BOUND)
        .expect("the reply reached the proxy");
    assert_eq!(get(&server, "n"), Reply::Bulk(Some(b"1".to_vec())));
    assert!(silent(&mut stream, Duration::from_millis(200)));
    proxy.heal();
    assert_eq!(read_exact(&mut stream, 4), b":1\r\n");
    assert_eq!(proxy.held(Direction::Both), 0);
}

#[test]
fn a_blackhole_to_the_server_holds_the_command_until_healed() {
    let (server, proxy) = setup();
    let mut stream = client(&proxy);
    proxy.blackhole();
    stream.write_all(b"INCR n\r\n").expect("write");
    proxy
        .wait_for_held(Direction::Upstream, 8, BOUND)
        .expect("held");
    assert_eq!(get(&server, "n"), Reply::Bulk(None));
    // New connections are accepted and held too, as in a partition.
    let mut late = client(&proxy);
    late.write_all(b"PING\r\n").expect("write");
    proxy
        .wait_for_held(Direction::Upstream, 14, BOUND)
        .expect("held");
    assert!(silent(&mut late, Duration::from_millis(100)));
    proxy.heal();
    assert_eq!(read_exact(&mut stream, 4), b":1\r\n");
    assert_eq!(read_exact(&mut late, 7), b"+PONG\r\n");
}

#[test]
fn reset_mid_command_runs_it_once_and_resets_the_client() {
    let (server, proxy) = setup();
    let mut stream = client(&proxy);
    stream
        .write_all(b"CLIENT SETNAME via-proxy\r\n")
        .expect("write");
    assert_eq!(read_exact(&mut stream, 5), b"+OK\r\n");
    proxy.hold(Direction::Downstream);
    stream.write_all(b"INCR n\r\n").expect("write");
    proxy
        .wait_for_held(Direction::Downstream, 4, BOUND)
        .expect("the command ran");
    assert_eq!(proxy.reset_connections(), 1);
    let error = stream.read(&mut [0; 1]).expect_err("reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    assert_eq!(proxy.held(Direction::Both), 0);
    assert_eq!(get(&server, "n"), Reply::Bulk(Some(b"1".to_vec())));
    // The server dropped its side too: the proxy's connection is gone from CLIENT LIST.
    let deadline = Instant::now() + BOUND;
    loop {
        let Reply::Bulk(Some(list)) = server.command(&["CLIENT", "LIST"]).expect("list") else {
            panic!("CLIENT LIST is a bulk string");
        };
        if !String::from_utf8_lossy(&list).contains("via-proxy") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server kept the reset client"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The fault (a blackhole) is still in force for new connections until healed.
    proxy.heal();
    let mut fresh = client(&proxy);
    fresh.write_all(b"INCR n\r\n").expect("write");
    assert_eq!(read_exact(&mut fresh, 4), b":2\r\n");
}

#[test]
fn a_half_open_connection_runs_commands_but_never_answers_and_heal_resets_it() {
    let (server, proxy) = setup();
    let mut stream = client(&proxy);
    proxy.cut(Direction::Downstream);
    stream.write_all(b"INCR n\r\n").expect("write");
    proxy
        .wait_for_dropped(Direction::Downstream, 4, BOUND)
        .expect("reply dropped");
    assert_eq!(get(&server, "n"), Reply::Bulk(Some(b"1".to_vec())));
    assert!(silent(&mut stream, Duration::from_millis(200)));
    proxy.heal();
    // The stream lost bytes, so it cannot go on: it is reset, not resumed.
    let error = stream.read(&mut [0; 1]).expect_err("reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    assert_eq!(proxy.resets(), 1);
    let mut fresh = client(&proxy);
    fresh.write_all(b"INCR n\r\n").expect("write");
    assert_eq!(read_exact(&mut fresh, 4), b":2\r\n");
}

#[test]
fn a_cut_to_the_server_drops_commands() {
    let (server, proxy) = setup();
    let mut stream = client(&proxy);
    proxy.cut(Direction::Upstream);
    stream.write_all(b"INCR n\r\n").expect("write");
    proxy
        .wait_for_dropped(Direction::Upstream, 8, BOUND)
        .expect("dropped");
    assert!(silent(&mut stream, Duration::from_millis(100)));
    assert_eq!(get(&server, "n"), Reply::Bulk(None));
}

#[test]
fn a_closed_client_closes_the_server_side() {
    let (server, proxy) = setup();
    let mut stream = client(&proxy);
    stream
        .write_all(b"CLIENT SETNAME closing\r\n")
        .expect("write");
    assert_eq!(read_exact(&mut stream, 5), b"+OK\r\n");
    drop(stream);
    let deadline = Instant::now() + BOUND;
    loop {
        let Reply::Bulk(Some(list)) = server.command(&["CLIENT", "LIST"]).expect("list") else {
            panic!("CLIENT LIST is a bulk string");
        };
        if !String::from_utf8_lossy(&list).contains("closing") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server kept the closed client"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
