//! Grants read `Clock::recent`, which may trail the exact reading (about a millisecond on
//! `SystemClock`); holders check their leases with the exact one. On a manual clock whose
//! `recent` lags by a set amount: a lease granted on a lagging reading is never still valid,
//! by its holder's exact check, once a contender has been granted the lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_core::{Clock, Instant, ManualClock};
use keel_lock::{InMemoryLockService, KeepAlive, Lease, LockError, LockService};
use proptest::prelude::*;

/// A manual clock whose `recent` trails `now` by `lag` (and, as the trait asks, never goes
/// back itself).
#[derive(Clone, Debug, Default)]
struct LaggingClock {
    exact: ManualClock,
    lag_nanos: Arc<AtomicU64>,
    last_recent: Arc<AtomicU64>,
}

impl LaggingClock {
    fn lag(&self, lag: Duration) {
        let nanos = u64::try_from(lag.as_nanos()).expect("a short lag");
        self.lag_nanos.store(nanos, Ordering::SeqCst);
    }
}

impl Clock for LaggingClock {
    fn now(&self) -> Instant {
        self.exact.now()
    }
    fn unix_millis(&self) -> u64 {
        self.exact.unix_millis()
    }
    fn recent(&self) -> Instant {
        let trailing = self
            .exact
            .now()
            .as_nanos()
            .saturating_sub(self.lag_nanos.load(Ordering::SeqCst));
        let before = self.last_recent.fetch_max(trailing, Ordering::SeqCst);
        Instant::from_nanos(before.max(trailing))
    }
}

const TTL: Duration = Duration::from_secs(10);
const LAG: Duration = Duration::from_millis(3);

#[test]
fn a_lagging_grant_ends_early_for_its_holder_and_late_for_contenders() -> Result<(), LockError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let clock = LaggingClock::default();
    clock.exact.advance(Duration::from_secs(1));
    clock.lag(LAG);
    let service = InMemoryLockService::with_clock(clock.clone());
    let jobs = service.handle("jobs")?;
    let first = jobs.try_acquire_now(TTL)?.expect("free");
    // Granted on the lagging reading: it ends LAG before an exact grant would.
    assert_eq!(first.expires_at(), clock.now() - LAG + TTL);
    runtime.block_on(async {
        let guard = KeepAlive::new().start(service.clone(), first.clone())?;
        tokio::task::yield_now().await;
        // Its holder (exact reading) sees it end at its expiry; a contender (lagging
        // reading) still finds it held then, and for LAG more.
        clock.exact.advance(TTL - LAG - Duration::from_nanos(1));
        assert!(!guard.is_lost() && !first.is_expired(service.now()));
        clock.exact.advance(Duration::from_nanos(1));
        assert!(guard.is_lost() && first.is_expired(service.now()));
        assert!(jobs.try_acquire_now(TTL)?.is_none());
        assert!(service.try_acquire_now("jobs", TTL)?.is_none());
        clock.exact.advance(LAG - Duration::from_nanos(1));
        assert!(jobs.try_acquire_now(TTL)?.is_none());
        clock.exact.advance(Duration::from_nanos(1));
        let second = service.try_acquire_now("jobs", TTL)?.expect("expired");
        assert!(second.token() > first.token());
        assert!(guard.is_lost() && first.is_expired(service.now()));
        assert!(jobs.release_now(&first).unwrap_err().is_not_held());
        jobs.release_now(&second)?;
        Ok(())
    })
}

#[test]
fn a_release_inside_the_lag_after_expiry_is_accepted_only_if_nobody_took_over()
-> Result<(), LockError> {
    let clock = LaggingClock::default();
    clock.exact.advance(Duration::from_secs(1));
    let service = InMemoryLockService::with_clock(clock.clone());
    let jobs = service.handle("jobs")?;
    let lease = jobs.try_acquire_now(TTL)?.expect("free");
    clock.lag(LAG);
    clock.exact.advance(TTL + Duration::from_millis(1));
    // Expired by the exact clock, not yet by the lagging one, and nobody was granted since:
    // the release goes through (the lock was never anyone else's).
    assert!(lease.is_expired(service.now()));
    jobs.release_now(&lease)?;
    // Past the lag it is refused.
    let lease = jobs.try_acquire_now(TTL)?.expect("free");
    clock.exact.advance(TTL + LAG);
    assert!(jobs.release_now(&lease).unwrap_err().is_not_held());
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Acquire { handle: bool, ttl_ms: u64 },
    Release { lease: usize, handle: bool },
    Extend { lease: usize, ttl_ms: u64 },
    Advance { ms: u64 },
    Lag { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), 1..300u64).prop_map(|(handle, ttl_ms)| Op::Acquire { handle, ttl_ms }),
        (0..8usize, any::<bool>()).prop_map(|(lease, handle)| Op::Release { lease, handle }),
        (0..8usize, 1..300u64).prop_map(|(lease, ttl_ms)| Op::Extend { lease, ttl_ms }),
        (0..200u64).prop_map(|ms| Op::Advance { ms }),
        (0..50u64).prop_map(|ms| Op::Lag { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the lag: when the lock is granted, every lease its holder still counts as
    /// held (not released, by its latest extension) has ended by the exact clock; at most one
    /// lease is valid by the exact clock at any time; and no grant ends later than an exact
    /// grant would.
    #[test]
    fn no_holder_sees_its_lease_valid_after_a_contender_was_granted(
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let clock = LaggingClock::default();
        clock.exact.advance(Duration::from_secs(1));
        let service = InMemoryLockService::with_clock(clock.clone());
        let handle = service.handle("x").expect("a name");
        // The leases holders believe they hold, each at its latest extension.
        let mut held: Vec<Lease> = Vec::new();
        let mut last_token = 0;
        for op in ops {
            match op {
                Op::Acquire { handle: by_handle, ttl_ms } => {
                    let ttl = Duration::from_millis(ttl_ms);
                    let latest_exact = clock.now();
                    let granted = if by_handle {
                        handle.try_acquire_now(ttl)
                    } else {
                        service.try_acquire_now("x", ttl)
                    }
                    .expect("valid");
                    if let Some(lease) = granted {
                        let now = service.now();
                        for other in &held {
                            prop_assert!(
                                other.is_expired(now),
                                "{other:?} still valid at {now:?} beside {lease:?}"
                            );
                        }
                        prop_assert!(lease.expires_at() <= latest_exact + ttl);
                        prop_assert!(lease.token().get() > last_token);
                        last_token = lease.token().get();
                        held.push(lease);
                    }
                }
                Op::Release { lease, handle: by_handle } => {
                    if !held.is_empty() {
                        let lease = held.remove(lease % held.len());
                        let released = if by_handle {
                            handle.release_now(&lease)
                        } else {
                            service.release_now(&lease)
                        };
                        if released.is_ok() {
                            // Only a lease nobody took over can be released.
                            prop_assert_eq!(service.holder("x"), None);
                        }
                    }
                }
                Op::Extend { lease, ttl_ms } => {
                    if !held.is_empty() {
                        let at = lease % held.len();
                        let ttl = Duration::from_millis(ttl_ms);
                        if let Ok(extended) = handle.extend_now(&held[at], ttl) {
                            prop_assert!(!held[at].is_expired(service.now()));
                            held[at] = extended;
                        }
                    }
                }
                Op::Advance { ms } => clock.exact.advance(Duration::from_millis(ms)),
                Op::Lag { ms } => clock.lag(Duration::from_millis(ms)),
            }
            let now = service.now();
            let valid = held.iter().filter(|lease| !lease.is_expired(now)).count();
            prop_assert!(valid <= 1, "{valid} leases valid at {now:?}: {held:?}");
        }
    }
}
