//! Worker-id leases against a real redis-server (keel-testkit): distinct ids under
//! contention, a generator that stops when its lease cannot be renewed, and leases that
//! survive a server restart.
#![cfg(feature = "redis")]

use std::collections::HashSet;
use std::time::Duration;

use keel_core::{Clock, ManualClock};
use keel_idgen::{
    GenerateError, Layout, RedisWorkerLease, Snowflake, WorkerIdError, WorkerIdProvider,
};
use keel_testkit::{Persistence, RedisServer, Reply};

fn client(server: &RedisServer) -> redis::Client {
    redis::Client::open(server.url()).expect("valid url")
}

async fn lease(
    server: &RedisServer,
    clock: &ManualClock,
    ids: u64,
) -> Result<RedisWorkerLease, WorkerIdError> {
    lease_for(server, clock, ids, Duration::from_secs(30)).await
}

async fn lease_for(
    server: &RedisServer,
    clock: &ManualClock,
    ids: u64,
    ttl: Duration,
) -> Result<RedisWorkerLease, WorkerIdError> {
    RedisWorkerLease::builder(client(server))
        .ids(ids)
        .ttl(ttl)
        .clock(clock.clone())
        .acquire()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimants_get_distinct_ids_until_none_is_left() {
    let server = RedisServer::start().expect("redis-server");
    let clock = ManualClock::new();
    let claims: Vec<_> = (0..40)
        .map(|_| {
            let client = client(&server);
            let clock = clock.clone();
            tokio::spawn(async move {
                RedisWorkerLease::builder(client)
                    .ids(32)
                    .ttl(Duration::from_secs(30))
                    .clock(clock)
                    .acquire()
                    .await
            })
        })
        .collect();
    let mut held = Vec::new();
    let mut refused = 0;
    for claim in claims {
        match claim.await.expect("task") {
            Ok(lease) => held.push(lease),
            Err(WorkerIdError::NoFreeId { ids: 32 }) => refused += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    let ids: HashSet<u64> = held.iter().map(RedisWorkerLease::id).collect();
    assert_eq!(ids.len(), 32, "every id handed out once");
    assert_eq!(held.len(), 32);
    assert_eq!(refused, 8);
    assert!(ids.iter().all(|id| *id < 32));
    // Releasing one frees exactly that id for the next claimant.
    let freed = held.pop().expect("a lease");
    let freed_id = freed.id();
    freed.release().await.expect("release");
    let next = lease(&server, &clock, 32).await.expect("a free id");
    assert_eq!(next.id(), freed_id);
}

#[tokio::test]
async fn a_generator_stops_when_renewal_fails_before_the_lease_can_expire() {
    let mut server = RedisServer::start().expect("redis-server");
    let clock = ManualClock::new();
    // A 2 s TTL: the generator must stop at 1.8 s (TTL minus the 10% safety margin), and a
    // renewal gives up after a quarter of the TTL.
    let held = lease_for(&server, &clock, 16, Duration::from_secs(2))
        .await
        .expect("lease");
    let generator = Snowflake::builder(Layout::twitter(), held.worker_id().expect("id"))
        .clock(clock.clone())
        .build()
        .expect("valid");
    assert!(generator.next_id().is_ok());

    // Redis stops answering: renewals fail and the deadline is not moved.
    server.pause().expect("pause");
    assert!(matches!(
        held.renew().await,
        Err(WorkerIdError::Store { .. })
    ));
    // Still inside ttl - margin: IDs flow.
    clock.advance(Duration::from_millis(1_700));
    assert!(generator.next_id().is_ok());
    // Past it, and before Redis could expire the key at 2 s: the generator has stopped.
    clock.advance(Duration::from_millis(150));
    assert_eq!(generator.next_id(), Err(GenerateError::LeaseExpired));
    assert!(held.lease().deadline() < clock.now());

    // Redis comes back and the key is still ours: a renewal restores the lease.
    server.resume().expect("resume");
    held.renew().await.expect("renewed");
    assert!(generator.next_id().is_ok());
}

#[tokio::test]
async fn a_lease_taken_away_is_revoked_at_the_next_renewal() {
    let server = RedisServer::start().expect("redis-server");
    let clock = ManualClock::new();
    let held = lease(&server, &clock, 16).await.expect("lease");
    let generator = Snowflake::builder(Layout::twitter(), held.worker_id().expect("id"))
        .clock(clock.clone())
        .build()
        .expect("valid");
    assert!(generator.next_id().is_ok());
    // Another process now owns the key (as after an expiry and a new claim).
    let key = format!("keel:idgen:worker:{}", held.id());
    server.command(&["SET", &key, "someone-else"]).expect("set");
    assert_eq!(
        held.renew().await,
        Err(WorkerIdError::Lost { id: held.id() })
    );
    // Revoked at once, without waiting for the deadline.
    assert_eq!(generator.next_id(), Err(GenerateError::LeaseExpired));
    assert!(held.worker_id().is_err());
}

#[tokio::test]
async fn a_restarted_server_does_not_hand_out_an_id_still_in_use() {
    let mut server = RedisServer::builder()
        .persistence(Persistence::AppendOnlyAlways)
        .start()
        .expect("redis-server");
    let clock = ManualClock::new();
    let first = lease(&server, &clock, 4).await.expect("lease");
    // The server crashes (SIGKILL, no shutdown save) and comes back from its append-only file.
    server.kill().expect("kill");
    server.restart().expect("restart");
    let second = lease(&server, &clock, 4).await.expect("lease");
    assert_ne!(second.id(), first.id());
    // The first holder's lease is intact: its renewal still succeeds.
    first.renew().await.expect("renewal after restart");
    assert!(first.lease().is_valid());
}

#[tokio::test]
async fn invalid_configurations_are_refused_with_a_reason() {
    let server = RedisServer::start().expect("redis-server");
    let error = RedisWorkerLease::builder(client(&server))
        .ttl(Duration::from_secs(3))
        .renew_every(Duration::from_secs(3))
        .acquire()
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "renew_every must be at least 1 ms and below the ttl minus the safety margin"
    );
    let error = RedisWorkerLease::builder(client(&server))
        .renew_every(Duration::from_nanos(1))
        .acquire()
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "renew_every must be at least 1 ms and below the ttl minus the safety margin"
    );
    let error = RedisWorkerLease::builder(client(&server))
        .ids(0)
        .acquire()
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "ids must be at least 1");
}

// The `PX` Redis was given in the claim script's arguments, read back from the slow log.
fn claimed_px(server: &RedisServer) -> u64 {
    let Ok(Reply::Array(Some(entries))) = server.command(&["SLOWLOG", "GET", "100"]) else {
        panic!("SLOWLOG GET failed");
    };
    let text = |reply: &Reply| match reply {
        Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        other => format!("{other:?}"),
    };
    for entry in entries {
        let Reply::Array(Some(fields)) = entry else {
            continue;
        };
        let Some(Reply::Array(Some(args))) = fields.get(3) else {
            continue;
        };
        let args: Vec<String> = args.iter().map(text).collect();
        // EVAL/EVALSHA <script> 0 <prefix> <token> <ttl> <ids>: the claim has no keys.
        if args.len() == 7 && args[0].to_uppercase().starts_with("EVAL") && args[2] == "0" {
            return args[5].parse().expect("a number of milliseconds");
        }
    }
    panic!("no claim script in the slow log");
}

#[tokio::test]
async fn a_ttl_with_a_fraction_of_a_millisecond_never_outlives_the_key() {
    let server = RedisServer::start().expect("redis-server");
    server
        .command(&["CONFIG", "SET", "slowlog-log-slower-than", "0"])
        .expect("log every command");
    let clock = ManualClock::new();
    // Redis counts PX in whole milliseconds; the local deadline must not count the 0.9 ms
    // that Redis may not have been given.
    let held = RedisWorkerLease::builder(client(&server))
        .ttl(Duration::from_micros(10_000_900))
        .safety_margin(Duration::from_micros(1))
        .clock(clock.clone())
        .acquire()
        .await
        .expect("lease");
    let px = Duration::from_millis(claimed_px(&server));
    let held_for = held.lease().deadline() - clock.now();
    assert!(
        held_for < px,
        "the lease runs {held_for:?}, Redis keeps the key {px:?}"
    );
}
