//! A real Redis Cluster: it starts healthy, a cluster client reaches every slot, and a
//! client keeps working across a master's failover.

use std::time::{Duration, Instant};

use keel_testkit::{RedisCluster, Reply, TestkitError};
use redis::AsyncCommands;
use redis::cluster::ClusterClient;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

#[test]
fn starts_three_masters_each_with_a_replica() -> Result {
    let started = Instant::now();
    let cluster = RedisCluster::start()?;
    eprintln!("cluster up in {:?}", started.elapsed());
    let masters = cluster.masters()?;
    let replicas = cluster.replicas()?;
    assert_eq!(masters.len(), 3);
    assert_eq!(replicas.len(), 3);
    let mut all: Vec<usize> = masters.iter().chain(&replicas).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..6).collect::<Vec<_>>());
    // Each master has exactly one replica that follows it.
    for &master in &masters {
        let Reply::Bulk(Some(info)) = cluster.node(master)?.command(&["INFO", "replication"])?
        else {
            return Err("INFO answered no bulk string".into());
        };
        assert!(String::from_utf8(info)?.contains("connected_slaves:1"));
    }
    // The three masters split the slots: 0 on the first, 16383 on the last.
    assert_eq!(cluster.master_for_slot(0)?, masters[0]);
    assert_eq!(cluster.master_for_slot(16383)?, masters[2]);
    Ok(())
}

#[test]
fn bad_indexes_and_non_masters_are_errors() -> Result {
    let mut cluster = RedisCluster::start()?;
    assert!(matches!(cluster.kill(6), Err(TestkitError::Topology(_))));
    assert!(matches!(cluster.pause(99), Err(TestkitError::Topology(_))));
    let replica = cluster.replicas()?[0];
    assert!(matches!(
        cluster.kill_master(replica),
        Err(TestkitError::Topology(_))
    ));
    // Nothing was faulted: waiting for a failover of a node never faulted is an error too.
    let master = cluster.masters()?[0];
    assert!(matches!(
        cluster.wait_for_failover(master),
        Err(TestkitError::Topology(_))
    ));
    Ok(())
}

#[test]
fn cluster_client_follows_a_killed_master() -> Result {
    let mut cluster = RedisCluster::start()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = ClusterClient::builder(cluster.urls())
        .connection_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .build()?;
    let mut connection = runtime.block_on(client.get_async_connection())?;

    // Keys on every master, written through the cluster client and replicated.
    let keys: Vec<String> = (0..30).map(|i| format!("key-{i}")).collect();
    runtime.block_on(async {
        for key in &keys {
            let () = connection.set(key, key).await?;
        }
        Ok::<_, redis::RedisError>(())
    })?;
    let old = cluster.master_for_key("key-0")?;
    // `WAIT` counts only its own connection's writes, so wait for the replica's offset to
    // reach the master's instead: then every key above is on the replica before the kill.
    cluster.wait_until_replicated(old)?;

    let started = Instant::now();
    let new = cluster.kill_master(old)?;
    eprintln!("failover in {:?}", started.elapsed());
    assert_ne!(new, old);
    assert_eq!(cluster.master_for_key("key-0")?, new);
    assert_eq!(cluster.masters()?.len(), 3);
    assert!(!cluster.masters()?.contains(&old));

    // The same client connection now reaches the promoted replica: every key is still there
    // (each was replicated before the kill), and new writes land. The client learns the new
    // topology on its first MOVED or connection error, so allow it a few bounded tries.
    let mut last_error = None;
    let mut followed = false;
    for _ in 0..20 {
        let attempt = runtime.block_on(async {
            for key in &keys {
                let value: Option<String> = connection.get(key).await?;
                assert_eq!(value.as_deref(), Some(key.as_str()));
            }
            let () = connection.set("after", 1).await?;
            Ok::<_, redis::RedisError>(())
        });
        match attempt {
            Ok(()) => {
                followed = true;
                break;
            }
            Err(error) => {
                last_error = Some(error);
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
    assert!(
        followed,
        "the client did not follow the failover: {last_error:?}"
    );

    // The old master comes back as a replica of the new one.
    cluster.restart(old)?;
    cluster.wait_until_healthy()?;
    assert!(cluster.replicas()?.contains(&old));
    Ok(())
}

#[test]
fn paused_master_is_failed_over_and_rejoins_as_replica() -> Result {
    let mut cluster = RedisCluster::start()?;
    let old = cluster.masters()?[2];
    let slot_owner_before = cluster.master_for_slot(16383)?;
    assert_eq!(slot_owner_before, old);
    let new = cluster.pause_master(old)?;
    assert_eq!(cluster.master_for_slot(16383)?, new);
    assert!(cluster.node(old)?.is_paused());
    cluster.resume(old)?;
    cluster.wait_until_healthy()?;
    assert!(cluster.replicas()?.contains(&old));
    assert_eq!(cluster.master_for_slot(16383)?, new);
    Ok(())
}
