//! `DynLockService`: object safety (checked at compile time) and a backend chosen at run time
//! plugging into code generic over `LockService`.

use std::sync::Arc;
use std::time::Duration;

use keel_core::ManualClock;
use keel_lock::{
    DynLockService, Fence, InMemoryLockService, KeepAlive, LockError, LockService, LostReason,
};

const TTL: Duration = Duration::from_secs(10);

// Compile-time checks: the trait is object safe, and every pointer form is a `LockService`
// that keep-alive accepts.
fn _object_safe(_: &dyn DynLockService) {}
fn _is_lock_service<S: LockService + Clone + 'static>() {}
fn _pointers_are_services() {
    _is_lock_service::<Arc<dyn DynLockService>>();
    _is_lock_service::<Arc<InMemoryLockService>>();
    _is_lock_service::<&'static InMemoryLockService>();
    _is_lock_service::<&'static dyn DynLockService>();
}

/// Code written once against the static trait.
async fn exclusive_write<S: LockService + ?Sized>(
    service: &S,
    fence: &Fence,
) -> Result<u64, LockError> {
    let lease = service.acquire("ledger", TTL, Duration::ZERO).await?;
    fence.advance(lease.token())?;
    service.release(&lease).await?;
    Ok(lease.token().get())
}

#[tokio::test]
async fn every_form_of_one_service_shares_its_leases() -> Result<(), LockError> {
    let service = InMemoryLockService::new();
    let fence = Fence::new();
    let boxed: Box<dyn DynLockService> = Box::new(service.clone());
    let shared: Arc<dyn DynLockService> = Arc::new(service.clone());
    let arc = Arc::new(service.clone());
    let mut tokens = vec![exclusive_write(&service, &fence).await?];
    tokens.push(exclusive_write(&&service, &fence).await?);
    tokens.push(exclusive_write(&boxed, &fence).await?);
    tokens.push(exclusive_write(&shared, &fence).await?);
    tokens.push(exclusive_write(&arc, &fence).await?);
    tokens.push(exclusive_write(&*shared, &fence).await?);
    // One table behind every form: tokens keep increasing.
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "{tokens:?}"
    );

    // A lease taken through one form is held for all of them.
    let lease = boxed.try_acquire("jobs", TTL).await?.expect("free");
    assert!(shared.try_acquire("jobs", TTL).await?.is_none());
    assert!(service.try_acquire_now("jobs", TTL)?.is_none());
    shared.release(&lease).await?;
    assert_eq!(service.holder("jobs"), None);
    Ok(())
}

#[tokio::test]
async fn a_runtime_chosen_backend_keeps_leases_alive_and_reads_its_clock() -> Result<(), LockError>
{
    let clock = ManualClock::new();
    let locks: Arc<dyn DynLockService> = Arc::new(InMemoryLockService::with_clock(clock.clone()));
    assert_eq!(locks.now(), locks.now_dyn());
    let lease = locks.acquire("jobs", TTL, Duration::ZERO).await?;
    let guard = KeepAlive::new().start(locks.clone(), lease)?;
    assert!(!guard.is_lost());
    clock.advance(TTL); // a stall: the clock read through the trait object ends it
    assert!(guard.is_lost());
    assert!(matches!(guard.lost().reason(), Some(LostReason::Expired)));
    Ok(())
}
