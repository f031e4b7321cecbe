//! Lease validity reads the clock: a holder that stalls past its TTL sees the lease lost the
//! moment it wakes, before the renewal task has run.

use std::time::Duration;

use keel_core::ManualClock;
use keel_lock::{InMemoryLockService, KeepAlive, LockError, LockService, LostReason};

const TTL: Duration = Duration::from_secs(30);

/// A current-thread runtime is blocked while this thread runs without awaiting: the renewal
/// task cannot run, just as in a stalled process.
#[test]
fn a_stalled_holder_sees_its_lease_lost_before_any_renewal_runs() -> Result<(), LockError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let clock = ManualClock::new();
    let service = InMemoryLockService::with_clock(clock.clone());
    runtime.block_on(async {
        let lease = service.acquire("ledger", TTL, Duration::ZERO).await?;
        let guard = KeepAlive::new().start(service.clone(), lease.clone())?;
        let lost = guard.lost();
        // Let the renewal task start and park on its timer.
        tokio::task::yield_now().await;
        assert!(!guard.is_lost());

        // The stall: no await from here on, so the renewal task gets no turn.
        clock.advance(TTL - Duration::from_nanos(1));
        assert!(!lost.is_lost(), "still inside the TTL");
        assert_eq!(lost.remaining(), Duration::from_nanos(1));
        clock.advance(Duration::from_nanos(1));
        assert!(guard.is_lost());
        assert!(lost.is_lost());
        assert_eq!(lost.remaining(), Duration::ZERO);
        assert!(matches!(lost.reason(), Some(LostReason::Expired)));
        // It really is gone: another holder is granted at once, with a newer token.
        let next = service
            .try_acquire_now("ledger", TTL)?
            .expect("expired lease");
        assert!(next.token() > lease.token());

        // Once the runtime runs again, waiting returns at once with the same verdict.
        assert!(matches!(lost.wait().await, LostReason::Expired));
        assert!(lost.is_lost());
        Ok(())
    })
}

/// A renewal that does run moves the expiry the clock is compared with.
#[tokio::test(start_paused = true)]
async fn renewals_move_the_expiry_the_clock_is_compared_with() -> Result<(), LockError> {
    let service = InMemoryLockService::with_clock(keel_core::TokioClock::new());
    let lease = service.acquire("ledger", TTL, Duration::ZERO).await?;
    let guard = KeepAlive::new().start(service.clone(), lease)?;
    let lost = guard.lost();
    // Paused time: renewals at 10 s, 20 s, ... keep it alive past several TTLs.
    tokio::time::sleep(TTL * 3).await;
    assert!(!lost.is_lost());
    assert!(lost.remaining() > TTL / 2);
    guard.release().await?;
    assert!(lost.is_lost());
    assert!(matches!(lost.reason(), Some(LostReason::Released)));
    Ok(())
}
