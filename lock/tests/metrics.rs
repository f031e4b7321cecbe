//! The `metrics` feature: `Metered` counts grants, waits and lost leases, labelled with its
//! name, checked with metrics-util's debugging recorder.
#![cfg(feature = "metrics")]

use std::time::Duration;

use keel_core::TokioClock;
use keel_lock::{InMemoryLockService, LockError, LockService, Metered};
use keel_testkit::recorded::counters;
use metrics_util::debugging::DebuggingRecorder;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn grants_waits_and_lost_leases_are_counted() -> Result<(), LockError> {
    let recorder = DebuggingRecorder::new();
    let (jobs, idle) = metrics::with_local_recorder(&recorder, || {
        (
            Metered::new(InMemoryLockService::with_clock(TokioClock::new()), "jobs"),
            Metered::new(InMemoryLockService::new(), "idle"),
        )
    });
    let ttl = Duration::from_secs(10);
    let first = jobs.acquire("a", ttl, Duration::ZERO).await?; // free: a grant, no wait
    assert!(jobs.try_acquire("a", ttl).await?.is_none()); // held: nothing counted
    let busy = jobs.acquire("a", ttl, Duration::from_secs(3)).await; // waits, gives up
    assert!(matches!(busy, Err(LockError::Busy { .. })));
    let second = jobs.acquire("a", ttl, Duration::from_secs(30)).await?; // waits, granted
    assert!(second.token() > first.token());
    // The first holder's lease ran out and was taken over: both calls find it lost.
    assert!(jobs.extend(&first, ttl).await.unwrap_err().is_not_held());
    assert!(jobs.release(&first).await.unwrap_err().is_not_held());
    jobs.release(&second).await?; // still held: not lost
    assert!(jobs.try_acquire("b", ttl).await?.is_some()); // a grant
    drop(idle);

    let row = |metric: &str, name: &str, n| {
        (
            metric.to_owned(),
            vec![("name".to_owned(), name.to_owned())],
            n,
        )
    };
    assert_eq!(
        counters(&recorder),
        vec![
            row("keel_lock_grants_total", "idle", 0),
            row("keel_lock_grants_total", "jobs", 3),
            row("keel_lock_lost_leases_total", "idle", 0),
            row("keel_lock_lost_leases_total", "jobs", 2),
            row("keel_lock_waits_total", "idle", 0),
            row("keel_lock_waits_total", "jobs", 2),
        ]
    );
    Ok(())
}
