//! `WorkerLease` on keel-lock's in-memory service, driven by `ManualClock` (or paused tokio
//! time): distinct ids, the wait of one TTL, and a generator that stops as soon as the lease
//! is in doubt, also when its renewal task cannot run.
#![cfg(feature = "lease")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};

use keel_core::{Clock, Instant, TokioClock};
use keel_idgen::{GenerateError, Layout, Snowflake, WorkerIdError, WorkerIdProvider, WorkerLease};
use keel_lock::{DynLockService, InMemoryLockService, LockService};

const TTL: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimants_get_distinct_ids_until_none_is_left() {
    let locks = InMemoryLockService::new();
    let claims: Vec<_> = (0..40)
        .map(|_| {
            let locks = locks.clone();
            tokio::spawn(async move { WorkerLease::builder(locks).ids(32).acquire().await })
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
    assert!(ids.iter().all(|id| *id < 32));
    // Releasing one frees exactly that id for the next claimant.
    let freed = held.pop().expect("a lease");
    let freed_id = freed.id();
    freed.release().await.expect("release");
    let next = WorkerLease::builder(locks)
        .ids(32)
        .acquire()
        .await
        .expect("free id");
    assert_eq!(next.id(), freed_id);
}

/// Paused tokio time plus jumps made without awaiting: a jump is a stall the runtime cannot
/// see, so the renewal task gets no turn to notice it.
#[derive(Clone, Debug, Default)]
struct StallClock {
    tokio: TokioClock,
    stalled: Arc<AtomicU64>,
}

impl StallClock {
    fn stall(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).expect("short");
        self.stalled.fetch_add(nanos, Ordering::SeqCst);
    }
    fn stalled(&self) -> Duration {
        Duration::from_nanos(self.stalled.load(Ordering::SeqCst))
    }
}

impl Clock for StallClock {
    fn now(&self) -> Instant {
        self.tokio.now() + self.stalled()
    }
    fn unix_millis(&self) -> u64 {
        self.tokio.unix_millis() + u64::try_from(self.stalled().as_millis()).expect("short")
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_id_waits_one_ttl_and_a_stalled_holder_stops_a_margin_before_expiry() {
    let clock = StallClock::default();
    let locks = InMemoryLockService::with_clock(clock.clone());
    let lease = WorkerLease::builder(locks.clone())
        .ttl(TTL)
        .acquire()
        .await
        .expect("lease");
    let generator = Snowflake::builder(Layout::twitter(), lease.worker_id().expect("id"))
        .clock(clock.clone())
        .build()
        .expect("valid");
    assert_eq!(lease.ready_at(), clock.now() + TTL);
    assert_eq!(
        generator.next_id(),
        Err(GenerateError::LeaseNotYetValid { retry_after: TTL })
    );
    lease.ready().await.expect("ready"); // paused time: keel-lock's keep-alive renews meanwhile
    assert!(generator.next_id().is_ok());

    // The stall: no await from here on. The generator stops a tenth of the TTL before the
    // lease's expiry, reading only the clock.
    let margin = TTL / 10;
    let left = lease.lost().remaining();
    assert!(left > margin, "renewed: {left:?} left");
    clock.stall(left - margin - Duration::from_nanos(1));
    assert!(generator.next_id().is_ok());
    clock.stall(Duration::from_nanos(1));
    assert_eq!(generator.next_id(), Err(GenerateError::LeaseExpired));
    clock.stall(margin);
    assert!(lease.lost().is_lost());
    assert!(matches!(
        lease.worker_id(),
        Err(WorkerIdError::Lost { id: 0 })
    ));
    // Another process is granted the id at once, and must wait a TTL itself.
    let next = WorkerLease::builder(locks)
        .ttl(TTL)
        .acquire()
        .await
        .expect("lease");
    assert_eq!(next.id(), 0);
    assert!(!next.validity().is_valid());
}

#[tokio::test(start_paused = true)]
async fn renewals_keep_the_id_and_a_lease_taken_away_stops_the_generator() {
    let clock = TokioClock::new();
    let locks = InMemoryLockService::with_clock(clock);
    let lease = WorkerLease::builder(locks.clone())
        .ttl(TTL)
        .acquire()
        .await
        .expect("lease");
    lease.ready().await.expect("ready");
    let generator = Snowflake::builder(Layout::twitter(), lease.worker_id().expect("id"))
        .clock(clock)
        .build()
        .expect("valid");
    // Paused time: many renewals by keel-lock's keep-alive, the id stays valid.
    tokio::time::sleep(TTL * 5).await;
    assert!(generator.next_id().is_ok());
    // Someone takes it away (as a store that lost the key would let happen).
    locks
        .release(&lease.lost().lease())
        .await
        .expect("released behind its back");
    assert!(generator.next_id().is_ok(), "not known yet");
    let reason = lease.lost().wait().await; // the next renewal finds out
    assert!(matches!(reason, keel_lock::LostReason::NotHeld), "{reason}");
    assert_eq!(generator.next_id(), Err(GenerateError::LeaseExpired));
    assert!(lease.validity().is_revoked());
}

#[tokio::test(start_paused = true)]
async fn the_next_holder_starts_after_the_previous_one_stopped() {
    // The store forgets A's lease while A is issuing; B is granted the same id at once. A
    // learns at its next renewal (at most a third of the TTL later); B may start only a TTL
    // after its grant. Without that wait both would issue with one worker id meanwhile.
    let clock = TokioClock::new();
    let locks = InMemoryLockService::with_clock(clock);
    let a = WorkerLease::builder(locks.clone())
        .ttl(TTL)
        .acquire()
        .await
        .expect("lease");
    a.ready().await.expect("ready");
    let a_validity = a.validity().clone();
    // The store forgets A's lease (a restart without persistence would).
    locks.release(&a.lost().lease()).await.expect("forget");
    let b = WorkerLease::builder(locks.clone())
        .ttl(TTL)
        .acquire()
        .await
        .expect("lease");
    assert_eq!(b.id(), a.id(), "the store handed out the same id");
    // Until B may start, A is either stopped or B is not ready: never both issuing.
    let step = Duration::from_millis(50);
    while !b.validity().is_valid() {
        assert!(
            !(a_validity.is_valid() && b.validity().is_valid()),
            "both valid at {:?}",
            clock.now()
        );
        tokio::time::sleep(step).await;
    }
    assert!(!a_validity.is_valid(), "A stopped before B started");
}

#[tokio::test]
async fn a_runtime_chosen_lock_service_works_too() {
    let locks: Arc<dyn DynLockService> = Arc::new(InMemoryLockService::new());
    let first = WorkerLease::builder(locks.clone())
        .acquire()
        .await
        .expect("lease");
    let second = WorkerLease::builder(locks).acquire().await.expect("lease");
    assert_eq!((first.id(), second.id()), (0, 1));
}

#[tokio::test]
async fn invalid_configurations_are_refused_with_a_reason() {
    let locks = InMemoryLockService::new();
    let refuse = |builder: keel_idgen::WorkerLeaseBuilder<InMemoryLockService>| async move {
        builder.acquire().await.expect_err("refused").to_string()
    };
    assert_eq!(
        refuse(WorkerLease::builder(locks.clone()).ids(0)).await,
        "ids must be at least 1"
    );
    assert_eq!(
        refuse(WorkerLease::builder(locks.clone()).ttl(Duration::ZERO)).await,
        "ttl must be above zero"
    );
    assert_eq!(
        refuse(WorkerLease::builder(locks.clone()).safety_margin(TTL)).await,
        "safety margin must be above zero and below the ttl"
    );
    assert!(
        refuse(
            WorkerLease::builder(locks.clone()).safety_margin(Duration::from_secs(7)) // stop at 3 s, renew at 3.3 s
        )
        .await
        .contains("renew before the generator stops")
    );
    // Nothing was claimed by the refused builders.
    assert_eq!(locks.holder("keel:idgen:worker:0"), None);
}

#[test]
fn outside_a_runtime_acquiring_is_an_error_not_a_panic() {
    let locks = InMemoryLockService::new();
    let acquire = WorkerLease::builder(locks.clone()).acquire();
    // Polled by a bare executor with no tokio runtime.
    let outcome = futures_lite_block_on(acquire);
    let error = outcome.expect_err("no runtime");
    assert!(matches!(error, WorkerIdError::Store { .. }), "{error}");
    assert!(
        std::error::Error::source(&error).is_some(),
        "the cause is kept"
    );
    assert_eq!(locks.holder("keel:idgen:worker:0"), None);
}

/// Polls a future to completion on this thread, outside any tokio runtime.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}
