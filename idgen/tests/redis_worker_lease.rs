//! `WorkerLease` on keel-lock's `RedisLockService` against a real redis-server
//! (keel-testkit): distinct ids under contention, a generator that stops when renewals
//! cannot reach the server, and no duplicate IDs across a restart that loses every lease.
#![cfg(feature = "redis")]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel_core::{Clock, ManualClock, SystemClock};
use keel_idgen::{GenerateError, Layout, Snowflake, WorkerIdError, WorkerIdProvider, WorkerLease};
use keel_lock::{LockService, RedisLockService};
use keel_testkit::{Persistence, RedisServer};

async fn locks<C: Clock + Clone>(server: &RedisServer, clock: C) -> RedisLockService<C> {
    RedisLockService::builder()
        .clock(clock)
        .call_timeout(Duration::from_millis(250))
        .connect(&server.url())
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimants_get_distinct_ids_until_none_is_left() {
    let server = RedisServer::start().expect("redis-server");
    let clock = ManualClock::new();
    let claims: Vec<_> = (0..40)
        .map(|_| {
            let url = server.url();
            let clock = clock.clone();
            tokio::spawn(async move {
                let locks = RedisLockService::builder()
                    .clock(clock)
                    .connect(&url)
                    .await
                    .expect("connect");
                WorkerLease::builder(locks)
                    .ids(32)
                    .ttl(Duration::from_secs(30))
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
    let ids: HashSet<u64> = held.iter().map(WorkerLease::id).collect();
    assert_eq!((ids.len(), held.len(), refused), (32, 32, 8));
    let freed = held.pop().expect("a lease");
    let freed_id = freed.id();
    freed.release().await.expect("release");
    let next = WorkerLease::builder(locks(&server, clock.clone()).await)
        .ids(32)
        .acquire()
        .await
        .expect("a free id");
    assert_eq!(next.id(), freed_id);
}

#[tokio::test]
async fn a_generator_stops_when_the_server_stops_answering() {
    let mut server = RedisServer::start().expect("redis-server");
    // Real Redis counts the TTL on its own wall clock: short, bounded.
    let ttl = Duration::from_millis(600);
    let lease = WorkerLease::builder(locks(&server, SystemClock).await)
        .ttl(ttl)
        .acquire()
        .await
        .expect("lease");
    lease.ready().await.expect("ready"); // one TTL, renewed twice meanwhile
    let generator = Snowflake::builder(Layout::twitter(), lease.worker_id().expect("id"))
        .build()
        .expect("valid");
    assert!(generator.next_id().is_ok());

    // The server stops answering: the next renewal times out (or the clock passes the
    // expiry first) and the generator stops, before the server could expire the key.
    server.pause().expect("pause");
    let reason = lease.lost().wait().await;
    assert!(
        matches!(
            reason,
            keel_lock::LostReason::RenewFailed(_) | keel_lock::LostReason::Expired
        ),
        "{reason}"
    );
    assert_eq!(generator.next_id(), Err(GenerateError::LeaseExpired));
    server.resume().expect("resume");
}

/// Two generators, a Redis restart without persistence, 1M IDs, no duplicates.
///
/// A holds worker id 0 and issues IDs. The server restarts empty, so it has forgotten A's
/// lease, and grants id 0 to B at once. A learns at its next renewal (a third of the TTL
/// later at most) and stops; B waits one TTL after its grant before its first ID. Without
/// that wait both would issue IDs with worker id 0 for up to a third of a TTL.
#[test]
fn a_restart_without_persistence_issues_no_duplicate_ids() {
    const TOTAL: usize = 1_000_000;
    // Real Redis counts the TTL on its own wall clock: short, bounded.
    let ttl = Duration::from_millis(600);
    let mut server = RedisServer::builder()
        .persistence(Persistence::None)
        .start()
        .expect("redis-server");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let layout = Layout::twitter();

    let a = runtime.block_on(async {
        let lease = WorkerLease::builder(locks(&server, SystemClock).await)
            .ttl(ttl)
            .acquire()
            .await
            .expect("lease");
        lease.ready().await.expect("ready");
        lease
    });
    let a_generator = Snowflake::builder(layout, a.worker_id().expect("id"))
        .build()
        .expect("valid");
    // A issues at about a quarter of the layout's rate until its lease stops it.
    let issued_by_a = Arc::new(AtomicUsize::new(0));
    let a_thread = std::thread::spawn({
        let issued = issued_by_a.clone();
        move || {
            let mut ids = Vec::new();
            loop {
                for _ in 0..1_000 {
                    match a_generator.next_id() {
                        Ok(id) => ids.push(id),
                        Err(GenerateError::LeaseExpired) => return ids,
                        Err(other) => panic!("A: {other}"),
                    }
                }
                issued.store(ids.len(), Ordering::Release);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    // Restart once A is issuing (polling a counter, not waiting for a TTL).
    while issued_by_a.load(Ordering::Acquire) < 20_000 {
        std::thread::sleep(Duration::from_millis(1));
    }
    server.restart().expect("restart");

    let b = runtime.block_on(async {
        WorkerLease::builder(locks(&server, SystemClock).await)
            .ttl(ttl)
            .acquire()
            .await
            .expect("lease")
    });
    assert_eq!(
        b.id(),
        a.id(),
        "the restarted server handed out A's id again"
    );
    let b_generator = Snowflake::builder(layout, b.worker_id().expect("id"))
        .build()
        .expect("valid");
    assert!(matches!(
        b_generator.next_id(),
        Err(GenerateError::LeaseNotYetValid { .. })
    ));
    runtime.block_on(b.ready()).expect("ready");
    // B issues at full rate at once, side by side with A if A were still issuing.
    let needed = Arc::new(AtomicUsize::new(usize::MAX));
    let b_thread = std::thread::spawn({
        let needed = needed.clone();
        move || {
            let mut ids = Vec::with_capacity(TOTAL);
            while ids.len() < needed.load(Ordering::Acquire) {
                ids.push(b_generator.next_id().expect("B"));
            }
            ids
        }
    });

    let a_ids = a_thread.join().expect("A");
    assert!(a.lost().is_lost(), "A's lease is lost");
    needed.store(TOTAL - a_ids.len(), Ordering::Release);
    let b_ids = b_thread.join().expect("B");
    let b_ids = &b_ids[..TOTAL - a_ids.len()];
    let mut all = HashSet::with_capacity(TOTAL);
    let duplicates = a_ids
        .iter()
        .chain(b_ids)
        .filter(|id| !all.insert(**id))
        .count();
    let last_a = a_ids.iter().map(|id| layout.decode(*id).unix_millis).max();
    let first_b = b_ids.iter().map(|id| layout.decode(*id).unix_millis).min();
    println!(
        "A issued {}, B issued {}, duplicates {duplicates}, A's last ms {last_a:?}, B's first ms {first_b:?}",
        a_ids.len(),
        b_ids.len()
    );
    assert_eq!(duplicates, 0);
    assert_eq!(all.len(), TOTAL);
    assert!(last_a < first_b, "A stopped before B started");
    drop(runtime);
}

#[tokio::test]
async fn a_restart_from_an_append_only_file_keeps_ids_in_use() {
    let mut server = RedisServer::builder()
        .persistence(Persistence::AppendOnlyAlways)
        .start()
        .expect("redis-server");
    let clock = ManualClock::new();
    let first = WorkerLease::builder(locks(&server, clock.clone()).await)
        .ids(4)
        .ttl(Duration::from_secs(30))
        .acquire()
        .await
        .expect("lease");
    server.kill().expect("kill");
    server.restart().expect("restart");
    let second = WorkerLease::builder(locks(&server, clock.clone()).await)
        .ids(4)
        .ttl(Duration::from_secs(30))
        .acquire()
        .await
        .expect("lease");
    assert_ne!(second.id(), first.id());
    // The first holder's lease is intact on the server.
    let service = locks(&server, clock).await;
    assert!(
        service
            .extend(&first.lost().lease(), Duration::from_secs(30))
            .await
            .is_ok()
    );
}
