//! The in-memory service end to end: waiting, keep-alive, the lost signal, drop, contention.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::task::{Context, Waker};

use keel_core::{Instant, ManualClock, TokioClock};
use keel_lock::{InMemoryLockService, KeepAlive, Lease, LockError, LockService, LostReason};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(30);

fn service() -> InMemoryLockService<TokioClock> {
    InMemoryLockService::with_clock(TokioClock::new())
}

#[tokio::test(start_paused = true)]
async fn acquire_waits_for_a_release() -> Result {
    let locks = service();
    let first = locks.acquire("a", TTL, Duration::ZERO).await?;
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move { locks.acquire("a", TTL, Duration::from_secs(60)).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiter.is_finished());
    let released_at = locks.now();
    locks.release(&first).await?;
    let second = waiter.await??;
    assert!(second.token() > first.token());
    // Woken by the release, not by the holder's expiry 29 s later.
    assert!(locks.now() - released_at < Duration::from_millis(1));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_releasing_holder_cannot_barge_past_a_waiter() -> Result {
    let locks = service();
    let first = locks.acquire("a", TTL, Duration::ZERO).await?;
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move { locks.acquire("a", TTL, Duration::from_secs(60)).await }
    });
    tokio::task::yield_now().await; // the waiter tries once and waits
    locks.release(&first).await?;
    // The old holder comes straight back: the lock is kept for the waiter.
    assert!(locks.try_acquire("a", TTL).await?.is_none());
    let again = tokio::spawn({
        let locks = locks.clone();
        async move { locks.acquire("a", TTL, Duration::from_secs(60)).await }
    });
    let second = waiter.await??;
    assert!(second.token() > first.token());
    locks.release(&second).await?;
    // The one that arrived after the release goes next.
    let third = again.await??;
    assert!(third.token() > second.token());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn waiters_sharing_the_names_timer_each_wake_at_their_own_limit() -> Result {
    let locks = service();
    let held = locks.acquire("a", TTL, Duration::ZERO).await?;
    let start = locks.now();
    let wait = |limit: u64| {
        let locks = locks.clone();
        tokio::spawn(async move {
            let outcome = locks.acquire("a", TTL, Duration::from_secs(limit)).await;
            (outcome, locks.now())
        })
    };
    // The later limit arms the name's timer first; the earlier one must still be kept.
    let late = wait(20);
    tokio::task::yield_now().await;
    let early = wait(5);
    let (outcome, at) = early.await?;
    assert!(
        matches!(outcome, Err(LockError::Busy { .. })),
        "{outcome:?}"
    );
    assert_eq!(at - start, Duration::from_secs(5));
    assert!(!late.is_finished());
    let (outcome, at) = late.await?;
    assert!(
        matches!(outcome, Err(LockError::Busy { .. })),
        "{outcome:?}"
    );
    assert_eq!(at - start, Duration::from_secs(20));
    // And a new wait after those re-arms it for the holder's expiry.
    let lease = locks.acquire("a", TTL, Duration::from_secs(60)).await?;
    assert_eq!(locks.now() - start, TTL);
    assert!(lease.token() > held.token());
    Ok(())
}

#[test]
fn a_name_waited_on_in_one_runtime_then_another_still_times_its_waits() -> Result {
    let locks = InMemoryLockService::new();
    let held = locks.try_acquire_now("a", TTL)?.ok_or("free")?;
    for _ in 0..2 {
        // Each runtime is gone before the next starts: its timer must not be used again.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let busy = runtime.block_on(locks.acquire("a", TTL, Duration::from_millis(20)));
        assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    }
    locks.release_now(&held)?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_after_the_handoff_passes_the_lock_on_at_once() -> Result {
    let locks = service();
    let first = locks.acquire("a", TTL, Duration::ZERO).await?;
    let spawn_waiter = || {
        let locks = locks.clone();
        tokio::spawn(async move { locks.acquire("a", TTL, Duration::from_secs(60)).await })
    };
    let handed = spawn_waiter();
    tokio::task::yield_now().await; // queued first
    let next = spawn_waiter();
    tokio::task::yield_now().await; // queued second
    let released_at = locks.now();
    locks.release(&first).await?; // reserved for the first waiter, which has not run yet
    handed.abort(); // cancelled before it takes the lease it was handed
    assert!(handed.await.is_err_and(|error| error.is_cancelled()));
    let second = next.await??;
    assert!(second.token() > first.token());
    // Passed on by the drop, not after the 10 ms reservation lapsed.
    assert!(locks.now() - released_at < Duration::from_millis(10));
    locks.release(&second).await?;
    assert!(
        locks.try_acquire("a", TTL).await?.is_some(),
        "nobody holds it"
    );
    Ok(())
}

#[tokio::test]
async fn a_handoff_lapses_when_the_waiter_is_slow() -> Result {
    let clock = ManualClock::new();
    let locks = InMemoryLockService::with_clock(clock.clone());
    let first = locks.try_acquire_now("a", TTL)?.ok_or("free")?;
    // A waiter that tries once and then is never polled again, as a starved task would be.
    let mut waiter = Box::pin(locks.acquire("a", TTL, Duration::from_secs(60)));
    let polled = waiter
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
    assert!(polled.is_pending());
    locks.release_now(&first)?;
    assert!(locks.try_acquire_now("a", TTL)?.is_none()); // kept for the waiter
    clock.advance(Duration::from_millis(10));
    let barged = locks.try_acquire_now("a", TTL)?.ok_or("handoff lapsed")?;
    locks.release_now(&barged)?;
    drop(waiter); // a dropped waiter is uncounted: nothing is kept for it
    assert!(locks.try_acquire_now("a", TTL)?.is_some());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn acquire_waits_for_expiry() -> Result {
    let locks = service();
    let first = locks.acquire("a", TTL, Duration::ZERO).await?;
    let start = locks.now();
    let second = locks.acquire("a", TTL, Duration::from_secs(60)).await?;
    assert_eq!(locks.now() - start, TTL);
    assert!(second.token() > first.token());
    assert!(locks.extend(&first, TTL).await.unwrap_err().is_not_held());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn acquire_gives_up_at_its_limit() -> Result {
    let locks = service();
    let _held = locks.acquire("a", TTL, Duration::ZERO).await?;
    let start = locks.now();
    match locks.acquire("a", TTL, Duration::from_secs(5)).await {
        Err(LockError::Busy { name, waited }) => {
            assert_eq!(&*name, "a");
            assert_eq!(waited, Duration::from_secs(5));
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    assert_eq!(locks.now() - start, Duration::from_secs(5));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn keep_alive_holds_the_lock_past_many_ttls() -> Result {
    let locks = service();
    let lease = locks.acquire("a", TTL, Duration::ZERO).await?;
    let guard = KeepAlive::new().start(locks.clone(), lease.clone())?;
    for _ in 0..10 {
        tokio::time::sleep(TTL / 2).await;
        assert!(locks.try_acquire("a", TTL).await?.is_none());
        assert!(!guard.is_lost());
    }
    assert_eq!(guard.token(), lease.token());
    assert!(guard.lease().expires_at() > lease.expires_at() + TTL * 4);
    guard.release().await?;
    assert!(locks.try_acquire("a", TTL).await?.is_some());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn lost_signal_fires_when_the_lease_is_gone() -> Result {
    let locks = service();
    let lease = locks.acquire("a", TTL, Duration::ZERO).await?;
    let guard = KeepAlive::new().start(locks.clone(), lease.clone())?;
    let lost = guard.lost();
    // Someone with the token (an operator, a bug) ends the lease behind the guard's back.
    locks.release(&lease).await?;
    let start = locks.now();
    assert!(matches!(lost.wait().await, LostReason::NotHeld));
    // Noticed at the first renewal, a third of the TTL in.
    assert_eq!(locks.now() - start, TTL / 3);
    assert!(guard.is_lost());
    assert!(guard.release().await.unwrap_err().is_not_held());
    Ok(())
}

/// A service whose extends fail or hang on demand.
#[derive(Clone, Debug)]
struct Faulty {
    inner: InMemoryLockService<TokioClock>,
    fail: Arc<AtomicBool>,
    hang: Arc<AtomicBool>,
}

impl LockService for Faulty {
    fn try_acquire(
        &self,
        name: &str,
        ttl: Duration,
    ) -> impl Future<Output = std::result::Result<Option<Lease>, LockError>> + Send {
        self.inner.try_acquire(name, ttl)
    }
    fn acquire(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> impl Future<Output = std::result::Result<Lease, LockError>> + Send {
        self.inner.acquire(name, ttl, wait)
    }
    async fn extend(&self, lease: &Lease, ttl: Duration) -> std::result::Result<Lease, LockError> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(LockError::Timeout {
                operation: "extend",
                after: Duration::from_secs(1),
            });
        }
        self.inner.extend(lease, ttl).await
    }
    fn release(
        &self,
        lease: &Lease,
    ) -> impl Future<Output = std::result::Result<(), LockError>> + Send {
        self.inner.release(lease)
    }
    fn now(&self) -> Instant {
        self.inner.now()
    }
}

fn faulty() -> Faulty {
    Faulty {
        inner: service(),
        fail: Arc::default(),
        hang: Arc::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn lost_signal_fires_on_the_first_failed_renewal() -> Result {
    let locks = faulty();
    let lease = locks.acquire("a", TTL, Duration::ZERO).await?;
    let guard = KeepAlive::new().start(locks.clone(), lease)?;
    let lost = guard.lost();
    tokio::time::sleep(TTL).await; // three renewals succeed
    assert!(!lost.is_lost());
    locks.fail.store(true, Ordering::SeqCst);
    let start = locks.now();
    match lost.wait().await {
        LostReason::RenewFailed(LockError::Timeout { operation, .. }) => {
            assert_eq!(operation, "extend")
        }
        other => panic!("expected RenewFailed, got {other:?}"),
    }
    // Fired at the next renewal, long before the lease would have run out.
    assert!(locks.now() - start <= TTL / 3);
    assert!(lost.lease().remaining(locks.now()) >= TTL / 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn lost_signal_fires_at_expiry_when_a_renewal_hangs() -> Result {
    let locks = faulty();
    let lease = locks.acquire("a", TTL, Duration::ZERO).await?;
    locks.hang.store(true, Ordering::SeqCst);
    let guard = KeepAlive::new().start(locks.clone(), lease.clone())?;
    assert!(matches!(guard.lost().wait().await, LostReason::Expired));
    assert_eq!(locks.now(), lease.expires_at());
    // By then the next holder can come in, and the old one already knows to stop.
    assert!(locks.try_acquire("a", TTL).await?.is_some());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn dropping_the_guard_releases_at_once() -> Result {
    let locks = service();
    let lease = locks.acquire("a", TTL, Duration::ZERO).await?;
    let guard = KeepAlive::new().start(locks.clone(), lease)?;
    let lost = guard.lost();
    drop(guard);
    assert_eq!(locks.holder("a"), None);
    assert!(matches!(lost.reason(), Some(LostReason::Released)));
    assert!(lost.is_lost());
    Ok(())
}

#[test]
fn lost_signal_fires_when_the_runtime_shuts_down() -> Result {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let locks = InMemoryLockService::new();
    let lease = locks.try_acquire_now("a", TTL)?.ok_or("held")?;
    let guard = runtime.block_on(async { KeepAlive::new().start(locks.clone(), lease) })?;
    let lost = guard.lost();
    assert!(!lost.is_lost());
    drop(runtime); // nothing renews the lease any more
    assert!(matches!(lost.reason(), Some(LostReason::Stopped)));
    assert!(guard.is_lost());
    drop(guard); // outside a runtime: no release, the lease runs out by its TTL
    assert!(locks.holder("a").is_some());
    Ok(())
}

#[test]
fn keep_alive_needs_a_runtime() -> Result {
    let locks = InMemoryLockService::new();
    let lease = locks.try_acquire_now("a", TTL)?.ok_or("held")?;
    assert!(matches!(
        KeepAlive::new().start(locks.clone(), lease),
        Err(LockError::NoRuntime)
    ));
    Ok(())
}

#[test]
fn a_wait_outside_a_runtime_is_an_error_not_a_panic() -> Result {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let locks = InMemoryLockService::new();
    let _held = locks.try_acquire_now("a", TTL)?.ok_or("free")?;
    let mut context = Context::from_waker(Waker::noop());
    // Polled by hand, as another executor would: no tokio context, no timer.
    let mut waiting = std::pin::pin!(locks.acquire("a", TTL, Duration::from_secs(60)));
    match waiting.as_mut().poll(&mut context) {
        Poll::Ready(Err(LockError::NoRuntime)) => {}
        other => return Err(format!("expected NoRuntime, got {other:?}").into()),
    }
    // Without a wait nothing needs the timer: a held lock is just busy.
    let mut busy = std::pin::pin!(locks.acquire("a", TTL, Duration::ZERO));
    assert!(matches!(
        busy.as_mut().poll(&mut context),
        Poll::Ready(Err(LockError::Busy { .. }))
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_keeps_mutual_exclusion_and_token_order() -> Result {
    let locks = InMemoryLockService::new();
    let history = Arc::new(common::History::default());
    let tasks: Vec<_> = (0..8)
        .map(|holder| {
            let locks = locks.clone();
            let history = history.clone();
            tokio::spawn(async move {
                for _ in 0..200 {
                    let lease = locks.acquire("hot", TTL, TTL).await?;
                    history.enter(holder, lease.token().get());
                    tokio::task::yield_now().await;
                    history.exit(holder, lease.token().get());
                    locks.release(&lease).await?;
                }
                Ok::<(), LockError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let events = history.events();
    assert_eq!(events.len(), 8 * 200 * 2);
    common::check(&events)?;
    Ok(())
}
