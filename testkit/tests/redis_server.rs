//! The testkit's own tests: a real server starts, restarts, pauses and dies with its owner.

use std::time::{Duration, Instant};

use keel_testkit::{Persistence, RedisServer, Reply, TestkitError};

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Some(text.as_bytes().to_vec()))
}

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn starts_and_answers() -> Result<(), TestkitError> {
    let server = RedisServer::start()?;
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert_eq!(server.command(&["PING"])?, Reply::Simple("PONG".into()));
    assert_eq!(
        server.command(&["SET", "k", "v"])?,
        Reply::Simple("OK".into())
    );
    assert_eq!(server.command(&["GET", "k"])?, bulk("v"));
    assert!(matches!(
        server.command(&["NOSUCHCOMMAND"])?,
        Reply::Error(_)
    ));
    Ok(())
}

#[test]
fn two_servers_get_two_ports() -> Result<(), TestkitError> {
    let a = RedisServer::start()?;
    let b = RedisServer::start()?;
    assert_ne!(a.port(), b.port());
    a.command(&["SET", "only-in-a", "1"])?;
    assert_eq!(b.command(&["GET", "only-in-a"])?, Reply::Bulk(None));
    Ok(())
}

#[test]
fn restart_keeps_port_and_appendonly_data() -> Result<(), TestkitError> {
    let mut server = RedisServer::builder()
        .persistence(Persistence::AppendOnlyAlways)
        .start()?;
    let port = server.port();
    server.command(&["INCR", "token"])?;
    server.command(&["INCR", "token"])?;
    // A crash: SIGKILL, nothing flushed beyond what fsync already wrote.
    server.kill()?;
    assert!(!server.is_running());
    assert!(matches!(
        server.command(&["PING"]),
        Err(TestkitError::NotRunning)
    ));
    server.restart()?;
    assert_eq!(server.port(), port);
    assert_eq!(server.command(&["GET", "token"])?, bulk("2"));
    Ok(())
}

#[test]
fn restart_without_persistence_starts_empty() -> Result<(), TestkitError> {
    let mut server = RedisServer::start()?;
    server.command(&["SET", "k", "v"])?;
    server.restart()?;
    assert_eq!(server.command(&["GET", "k"])?, Reply::Bulk(None));
    Ok(())
}

#[test]
fn snapshot_survives_a_graceful_stop_only() -> Result<(), TestkitError> {
    let mut server = RedisServer::builder()
        .persistence(Persistence::SnapshotOnShutdown)
        .start()?;
    server.command(&["SET", "k", "v"])?;
    server.stop()?;
    server.restart()?;
    assert_eq!(server.command(&["GET", "k"])?, bulk("v"));
    Ok(())
}

#[test]
fn pause_blocks_replies_until_resume() -> Result<(), TestkitError> {
    let mut server = RedisServer::start()?;
    server.pause()?;
    let started = Instant::now();
    let paused_reply = server.command(&["PING"]);
    assert!(
        matches!(paused_reply, Err(TestkitError::Io { .. })),
        "a paused server must not answer: {paused_reply:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    server.resume()?;
    assert_eq!(server.command(&["PING"])?, Reply::Simple("PONG".into()));
    Ok(())
}

#[test]
fn dropping_kills_the_process_even_when_paused() -> Result<(), TestkitError> {
    let mut server = RedisServer::start()?;
    let pid = server.pid().expect("running");
    let dir = server.data_dir().to_path_buf();
    assert!(process_exists(pid));
    server.pause()?;
    drop(server);
    assert!(
        !process_exists(pid),
        "redis-server {pid} outlived its owner"
    );
    assert!(
        !dir.exists(),
        "data directory {} was left behind",
        dir.display()
    );
    Ok(())
}

#[test]
fn a_panicking_test_still_kills_its_server() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let server = RedisServer::start().expect("start");
        sender.send(server.pid().expect("running")).expect("send");
        panic!("the test fails while holding the server");
    })
    .join();
    assert!(result.is_err());
    let pid = receiver.recv().expect("pid");
    assert!(!process_exists(pid), "redis-server {pid} outlived a panic");
}

#[test]
fn missing_binary_names_the_package() {
    let error = RedisServer::builder()
        .binary("/nonexistent/redis-server")
        .start()
        .expect_err("no such binary");
    assert!(matches!(error, TestkitError::NotInstalled { .. }));
    let message = error.to_string();
    assert!(
        message.contains("apt-get install redis-server"),
        "{message}"
    );
}

#[test]
fn stop_is_idempotent_and_pause_needs_a_process() -> Result<(), TestkitError> {
    let mut server = RedisServer::start()?;
    server.stop()?;
    server.stop()?;
    assert!(matches!(server.pause(), Err(TestkitError::NotRunning)));
    Ok(())
}
