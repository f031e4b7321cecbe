//! The blocking acquire: threads parked in a name's queue, woken by releases, by the
//! holder's expiry on the service's clock, or at their own limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use keel_core::{Clock, ManualClock};
use keel_lock::{InMemoryLockService, LockError, LockService};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TTL: Duration = Duration::from_secs(30);
/// Long enough never to run out in these tests: a wait that ends does so for its reason.
const FOREVER: Duration = Duration::from_secs(600);

#[test]
fn threads_take_turns_with_exclusion_and_rising_tokens() -> Result {
    let service = InMemoryLockService::new();
    let handle = service.handle("hot")?;
    let inside = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (service, handle) = (service.clone(), handle.clone());
            let (inside, last) = (inside.clone(), last.clone());
            std::thread::spawn(move || -> std::result::Result<u64, LockError> {
                let mut grants = 0;
                for round in 0..2_000 {
                    // Half the threads by name, half through the handle: one queue.
                    let lease = if i % 2 == 0 {
                        handle.acquire_blocking(TTL, FOREVER)?
                    } else {
                        service.acquire_blocking("hot", TTL, FOREVER)?
                    };
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    let token = lease.token().get();
                    assert!(
                        token > last.swap(token, Ordering::SeqCst),
                        "token went back"
                    );
                    if round % 64 == 0 {
                        std::thread::yield_now(); // now and then, hold while others park
                    }
                    inside.fetch_sub(1, Ordering::SeqCst);
                    handle.release_now(&lease)?;
                    grants += 1;
                }
                Ok(grants)
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().map_err(|_| "panicked")??, 2_000);
    }
    assert_eq!(service.holder("hot"), None);
    Ok(())
}

#[test]
fn a_parked_waiter_gives_up_at_its_limit_on_the_clock() -> Result {
    let clock = ManualClock::new();
    let service = InMemoryLockService::with_clock(clock.clone());
    // A lease no loop below outlasts, however late the waiter's thread starts.
    let years = Duration::from_secs(10 * 365 * 24 * 3600);
    let held = service.acquire_blocking("a", years, Duration::ZERO)?;
    let waiter = std::thread::spawn({
        let service = service.clone();
        move || service.acquire_blocking("a", TTL, Duration::from_secs(5))
    });
    // The limit passes on the service's clock, long before the holder's lease runs out
    // (moved a second at a time, as the waiter's start is not known here).
    while !waiter.is_finished() {
        clock.advance(Duration::from_secs(1));
        std::thread::yield_now();
    }
    let outcome = waiter.join().map_err(|_| "panicked")?;
    assert!(
        matches!(outcome, Err(LockError::Busy { waited, .. }) if waited >= Duration::from_secs(5)),
        "{outcome:?}"
    );
    assert_eq!(service.holder("a"), Some(held.token()));
    // It left the queue: a release frees the lock for anyone.
    service.release_now(&held)?;
    assert!(service.try_acquire_now("a", TTL)?.is_some());
    Ok(())
}

#[test]
fn a_parked_waiter_takes_the_lock_when_the_holders_lease_runs_out() -> Result {
    let clock = ManualClock::new();
    let service = InMemoryLockService::with_clock(clock.clone());
    let held = service.acquire_blocking("a", TTL, Duration::ZERO)?;
    let waiter = std::thread::spawn({
        let service = service.clone();
        move || service.acquire_blocking("a", TTL, FOREVER)
    });
    clock.advance(TTL);
    let lease = waiter.join().map_err(|_| "panicked")??;
    assert!(lease.token() > held.token());
    assert_eq!(lease.expires_at(), clock.now() + TTL);
    assert!(service.release_now(&held).unwrap_err().is_not_held());
    Ok(())
}

#[test]
fn blocking_and_async_waiters_share_one_queue() -> Result {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let service = InMemoryLockService::new();
    let held = service.acquire_blocking("a", TTL, Duration::ZERO)?;
    let task = runtime.spawn({
        let service = service.clone();
        async move {
            let lease = service.acquire("a", TTL, FOREVER).await?;
            service.release(&lease).await?;
            Ok::<_, LockError>(lease.token())
        }
    });
    let thread = std::thread::spawn({
        let service = service.clone();
        move || -> std::result::Result<_, LockError> {
            let lease = service.acquire_blocking("a", TTL, FOREVER)?;
            service.release_now(&lease)?;
            Ok(lease.token())
        }
    });
    service.release_now(&held)?;
    let from_thread = thread.join().map_err(|_| "panicked")??;
    let from_task = runtime.block_on(task)??;
    assert_ne!(from_thread, from_task);
    assert!(from_thread > held.token() && from_task > held.token());
    assert_eq!(service.holder("a"), None);
    Ok(())
}

#[test]
fn bad_input_is_an_error_not_a_wait() -> Result {
    let service = InMemoryLockService::new();
    assert!(matches!(
        service.acquire_blocking("", TTL, FOREVER),
        Err(LockError::EmptyName)
    ));
    assert!(matches!(
        service.acquire_blocking("a", Duration::ZERO, FOREVER),
        Err(LockError::InvalidTtl { .. })
    ));
    let held = service.acquire_blocking("a", TTL, Duration::ZERO)?;
    let busy = service.acquire_blocking("a", TTL, Duration::ZERO);
    assert!(matches!(busy, Err(LockError::Busy { .. })), "{busy:?}");
    service.release_now(&held)?;
    Ok(())
}
