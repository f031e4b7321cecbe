//! A real Sentinel group: it starts healthy, and a redis-rs Sentinel client follows a
//! failover of a killed or paused master.

use std::time::{Duration, Instant};

use keel_testkit::{RedisSentinel, Reply, TestkitError};
use redis::AsyncCommands;
use redis::sentinel::{SentinelClient, SentinelServerType};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[test]
fn starts_with_a_master_two_replicas_and_three_sentinels() -> Result {
    let started = Instant::now();
    let mut group = RedisSentinel::start()?;
    eprintln!("sentinel group up in {:?}", started.elapsed());
    assert_eq!(group.master()?, 0);
    assert_eq!(group.replicas()?, vec![1, 2]);
    assert_eq!(group.sentinel_urls().len(), 3);
    for index in 0..3 {
        let reply =
            group
                .sentinel(index)?
                .command(&["SENTINEL", "CKQUORUM", group.master_name()])?;
        assert!(matches!(reply, Reply::Simple(ok) if ok.starts_with("OK")));
    }
    assert!(matches!(group.kill(3), Err(TestkitError::Topology(_))));
    Ok(())
}

#[test]
fn sentinel_client_follows_a_killed_master() -> Result {
    let mut group = RedisSentinel::start()?;
    let runtime = runtime()?;
    // An owned name fits both signatures of `build` (`String`, or `AsRef<str>` when
    // another crate turns on redis's TLS feature).
    let master_name: String = group.master_name().into();
    let mut client = SentinelClient::build(
        group.sentinel_urls(),
        master_name,
        None,
        SentinelServerType::Master,
    )?;
    runtime.block_on(async {
        let mut connection = client.get_async_connection().await?;
        let () = connection.set("fence", 7).await?;
        Ok::<_, redis::RedisError>(())
    })?;
    let old = group.master()?;
    // `WAIT` counts only its own connection's writes, so read the write back from every
    // replica instead (bounded): then the promoted one has it.
    let deadline = Instant::now() + Duration::from_secs(10);
    for replica in group.replicas()? {
        while group.server(replica)?.command(&["GET", "fence"])? != Reply::Bulk(Some(b"7".to_vec()))
        {
            assert!(
                Instant::now() < deadline,
                "replica {replica} never got the write"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    let started = Instant::now();
    let new = group.kill_master()?;
    eprintln!("sentinel failover in {:?}", started.elapsed());
    assert_ne!(new, old);

    // The same client asks the Sentinels again and reaches the promoted replica, which has
    // the replicated write and takes new ones.
    let port = runtime.block_on(async {
        let mut connection = client.get_async_connection().await?;
        let fence: Option<i64> = connection.get("fence").await?;
        assert_eq!(fence, Some(7));
        let next: i64 = connection.incr("fence", 1).await?;
        assert_eq!(next, 8);
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut connection)
            .await?;
        Ok::<_, redis::RedisError>(
            info.lines()
                .find_map(|l| l.strip_prefix("tcp_port:"))
                .map(|p| p.trim().to_owned()),
        )
    })?;
    assert_eq!(port, Some(group.server(new)?.port().to_string()));
    Ok(())
}

#[test]
fn paused_master_is_failed_over_and_demoted_on_resume() -> Result {
    let mut group = RedisSentinel::builder().replicas(1)?.start()?;
    let started = Instant::now();
    let new = group.pause_master()?;
    eprintln!("sentinel failover (pause) in {:?}", started.elapsed());
    assert_eq!(new, 1);
    group.resume(0)?;
    group.wait_until_healthy()?;
    assert_eq!(group.master()?, 1);
    assert_eq!(group.replicas()?, vec![0]);
    Ok(())
}
