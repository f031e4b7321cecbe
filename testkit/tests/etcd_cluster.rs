//! A real etcd cluster: it starts with one leader, survives a killed or paused leader and a
//! restarted member, and an etcd client reads its writes across those faults.

use std::time::{Duration, Instant};

use etcd_client::Client;
use keel_testkit::{EtcdCluster, LeaderChange, TestkitError};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

#[test]
fn starts_with_one_leader_and_two_followers() -> Result {
    let started = Instant::now();
    let cluster = EtcdCluster::start()?;
    eprintln!("etcd cluster up in {:?}", started.elapsed());
    let leader = cluster.leader()?;
    let mut all = cluster.followers()?;
    assert_eq!(all.len(), 2);
    all.push(leader);
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2]);
    assert!(matches!(cluster.member(3), Err(TestkitError::Topology(_))));
    Ok(())
}

#[test]
fn writes_survive_a_killed_leader_and_a_restarted_member() -> Result {
    let mut cluster = EtcdCluster::start()?;
    let runtime = runtime()?;
    let mut client = runtime.block_on(Client::connect(cluster.endpoints(), None))?;
    let first = runtime.block_on(client.put("fence", "1", None))?;
    let first_revision = first.header().map(|h| h.revision()).unwrap_or_default();

    let started = Instant::now();
    let LeaderChange { old, new } = cluster.kill_leader()?;
    eprintln!("etcd leader change in {:?}", started.elapsed());
    assert_ne!(old, new);

    // The client fails over to a live member; the write is there and revisions go on. A call
    // that the client still routes to the dead member fails ("transport error"): etcd-client
    // balances over every endpoint, so allow a few bounded tries.
    let mut outcome = Err(None);
    for _ in 0..20 {
        let attempt = runtime.block_on(async {
            let got = client.get("fence", None).await?;
            let value = got
                .kvs()
                .first()
                .map(|kv| kv.value_str().map(str::to_owned));
            let put = client.put("fence", "2", None).await?;
            Ok::<_, etcd_client::Error>((value, put.header().map(|h| h.revision())))
        });
        match attempt {
            Ok(done) => {
                outcome = Ok(done);
                break;
            }
            Err(error) => {
                outcome = Err(Some(error));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let (value, revision) = outcome.map_err(|e| format!("the client did not fail over: {e:?}"))?;
    assert_eq!(value.transpose()?.as_deref(), Some("1"));
    assert!(revision.unwrap_or_default() > first_revision);

    // The killed leader comes back from its data directory and catches up. Healthy means
    // it names the same leader as the others (which one may change again under load).
    cluster.restart(old)?;
    cluster.wait_until_healthy()?;
    let mut only_old =
        runtime.block_on(Client::connect([cluster.member(old)?.endpoint()], None))?;
    let got = runtime.block_on(only_old.get("fence", None))?;
    assert_eq!(got.kvs().first().map(|kv| kv.value()), Some(&b"2"[..]));
    Ok(())
}

/// What a resume guarantees: the old leader leaves the term it led in and agrees on the
/// cluster's leader. Not which member leads: on a loaded machine a missed heartbeat after
/// the resume can start another election, which any member, `old` included, may win.
#[test]
fn a_paused_leader_is_replaced_and_steps_down_on_resume() -> Result {
    let mut cluster = EtcdCluster::start()?;
    let led_in = cluster.member(cluster.leader()?)?.raft_term()?;
    let LeaderChange { old, new } = cluster.pause_leader()?;
    assert_ne!(old, new);
    assert!(cluster.member(old)?.is_paused());
    // The new leader was elected in a later term, while `old` was frozen.
    let replaced_in = cluster.member(new)?.raft_term()?;
    assert!(replaced_in > led_in, "{replaced_in} > {led_in}");
    cluster.resume(old)?;
    // Healthy means every member, `old` included, names the same running leader.
    cluster.wait_until_healthy()?;
    let leader = cluster.leader()?;
    assert!(cluster.member(old)?.raft_term()? >= replaced_in);
    assert!(cluster.member(leader)?.raft_term()? >= replaced_in);
    Ok(())
}

#[test]
fn a_paused_follower_leaves_a_quorum_that_serves_writes() -> Result {
    let mut cluster = EtcdCluster::start()?;
    let runtime = runtime()?;
    let follower = cluster.followers()?[0];
    cluster.pause(follower)?;
    let leader = cluster.leader()?;
    let mut client =
        runtime.block_on(Client::connect([cluster.member(leader)?.endpoint()], None))?;
    runtime.block_on(client.put("k", "v", None))?;
    cluster.resume(follower)?;
    cluster.wait_until_healthy()?;
    Ok(())
}
