//! Loom models: mutual exclusion and token order of the in-memory service (its per-name
//! state word: the lock-free grant and release, and the slow paths that mark it busy), and
//! the fence.
//!
//! `RUSTFLAGS="--cfg keel_loom" CARGO_TARGET_DIR=target/loom cargo test --release -p keel-lock --test loom`

#![cfg(keel_loom)]

use std::time::Duration;

use keel_core::ManualClock;
use keel_core::sync::atomic::{AtomicUsize, Ordering};
use keel_core::sync::{Arc, Mutex};
use keel_lock::{Fence, FencingToken, InMemoryLockService, LockHandle};
use loom::thread;

const TTL: Duration = Duration::from_secs(10);

/// A model's preemption bound: `short` in `scripts/check`, `full` with `KEEL_LOOM_FULL` set.
/// The two models that use it took 106 s and 220 s at their full bounds on the 2-core machine,
/// most of CI's loom step; at the short ones, 11 s and 2 s, and each still fails on the seeded
/// bugs named beside it.
fn bound(short: usize, full: Option<usize>) -> Option<usize> {
    if std::env::var_os("KEEL_LOOM_FULL").is_some() {
        full
    } else {
        Some(short)
    }
}

/// Two threads race for one name; whoever wins is alone inside until it releases.
#[test]
fn at_most_one_holder() {
    loom::model(|| {
        let service = InMemoryLockService::with_clock(ManualClock::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let service = service.clone();
                let inside = inside.clone();
                thread::spawn(move || {
                    let mut wins = 0;
                    for _ in 0..2 {
                        if let Some(lease) = service.try_acquire_now("x", TTL).expect("valid") {
                            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                            inside.fetch_sub(1, Ordering::SeqCst);
                            service.release_now(&lease).expect("still held");
                            wins += 1;
                        }
                    }
                    wins
                })
            })
            .collect();
        let wins: usize = handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .sum();
        assert!(wins >= 1, "someone always gets a free lock");
    });
}

/// Tokens, recorded while held, come out strictly increasing in the order of the grants.
#[test]
fn tokens_increase_in_grant_order() {
    loom::model(|| {
        let service = InMemoryLockService::with_clock(ManualClock::new());
        let order = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let service = service.clone();
                let order = order.clone();
                thread::spawn(move || {
                    let lease = loop {
                        match service.try_acquire_now("x", TTL).expect("valid") {
                            Some(lease) => break lease,
                            None => keel_core::sync::spin_loop(),
                        }
                    };
                    order.lock().expect("no panic").push(lease.token().get());
                    service.release_now(&lease).expect("still held");
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("no panic");
        }
        let tokens = order.lock().expect("no panic").clone();
        assert_eq!(tokens.len(), 2);
        assert!(tokens[0] < tokens[1], "{tokens:?}");
    });
}

/// A stale holder's release and extend race a new grant: they never touch the new lease.
#[test]
fn stale_holder_cannot_touch_the_new_lease() {
    loom::model(|| {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        let old = service
            .try_acquire_now("x", TTL)
            .expect("valid")
            .expect("free");
        clock.advance(TTL);
        let stale = {
            let service = service.clone();
            let old = old.clone();
            thread::spawn(move || {
                assert!(service.extend_now(&old, TTL).is_err());
                assert!(service.release_now(&old).is_err());
            })
        };
        let fresh = service
            .try_acquire_now("x", TTL)
            .expect("valid")
            .expect("expired lease is free");
        stale.join().expect("no panic");
        assert!(fresh.token() > old.token());
        assert_eq!(service.holder("x"), Some(fresh.token()));
    });
}

/// A handle's release of an expired lease that nobody took over races a new grant. The
/// release frees the word before it reads the clock, so it must judge the old lease by the
/// expiry it read while it still held the word, never by the new holder's. (Reading the
/// expiry after the compare-and-swap fails here.)
#[test]
fn an_expired_release_racing_a_grant_is_judged_by_its_own_expiry() {
    loom::model(|| {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        let handle = service.handle("x").expect("a name");
        let old = handle.try_acquire_now(TTL).expect("valid").expect("free");
        clock.advance(TTL);
        let releaser = {
            let handle = handle.clone();
            let old = old.clone();
            thread::spawn(move || handle.release_now(&old).is_ok())
        };
        let fresh = handle
            .try_acquire_now(TTL)
            .expect("valid")
            .expect("expired lease is free");
        let released = releaser.join().expect("no panic");
        assert!(!released, "an expired lease was released as live");
        assert!(fresh.token() > old.token());
        assert_eq!(service.holder("x"), Some(fresh.token()));
    });
}

/// Two handles race on the lock-free paths (one compare-and-swap to grant, one to release)
/// while a third thread asks by name: one holder at a time, tokens in grant order. Fails at
/// either bound on a grant that publishes the word before its expiry, or that leaves out the
/// busy mark while it writes the expiry.
#[test]
fn handles_and_names_exclude_each_other() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = bound(2, Some(3));
    model.check(|| {
        let service = InMemoryLockService::with_clock(ManualClock::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let service = service.clone();
                let handle = service.handle("x").expect("a name");
                let (inside, order) = (inside.clone(), order.clone());
                thread::spawn(move || {
                    let lease = if i < 2 {
                        handle.try_acquire_now(TTL).expect("valid")
                    } else {
                        service.try_acquire_now("x", TTL).expect("valid")
                    };
                    if let Some(lease) = lease {
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        order.lock().expect("no panic").push(lease.token().get());
                        inside.fetch_sub(1, Ordering::SeqCst);
                        handle.release_now(&lease).expect("still held");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("no panic");
        }
        let tokens = order.lock().expect("no panic").clone();
        assert!(!tokens.is_empty(), "someone always gets a free lock");
        assert!(
            tokens.windows(2).all(|pair| pair[0] < pair[1]),
            "{tokens:?}"
        );
        assert_eq!(service.holder("x"), None);
    });
}

/// A holder's extend and a clone's release race a new grant through the lock-free path:
/// the extend's write of the expiry never lands on the next holder's lease. (Each party runs
/// on a thread of its own; with the grant on the model's main thread loom explored only 15
/// runs. An extend that reads the word without marking it busy fails here, at either bound.)
#[test]
fn extend_racing_release_never_moves_the_next_lease() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = bound(3, None);
    model.check(|| {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        let handle = service.handle("x").expect("a name");
        let old = handle.try_acquire_now(TTL).expect("valid").expect("free");
        let extender = {
            let handle = handle.clone();
            let old = old.clone();
            thread::spawn(move || handle.extend_now(&old, TTL * 100).is_ok())
        };
        let releaser = {
            let handle = handle.clone();
            let old = old.clone();
            thread::spawn(move || handle.release_now(&old).is_ok())
        };
        let short = Duration::from_secs(1);
        let next = {
            let handle = handle.clone();
            thread::spawn(move || handle.try_acquire_now(short).expect("valid"))
        }
        .join()
        .expect("no panic");
        let extended = extender.join().expect("no panic");
        let released = releaser.join().expect("no panic");
        match next {
            Some(next) => {
                assert!(released, "granted only after the release");
                assert!(next.token() > old.token());
                // The next lease ends when it was granted to end, however the extend ran.
                clock.advance(short);
                assert_eq!(service.holder("x"), None, "extend {extended} moved it");
            }
            None => {
                // Asked before the release: the old lease, maybe extended, or nothing.
                let holder = service.holder("x");
                assert!(holder.is_none() || holder == Some(old.token()));
                assert_eq!(holder.is_some(), !released);
            }
        }
    });
}

/// Three writers race on a fence: the highest always wins, and a token is rejected only when
/// a higher one was accepted first. Bounded to 3 preemptions so it runs in seconds.
#[test]
fn fence_accepts_nothing_older_than_what_it_accepted() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let fence = Arc::new(Fence::new());
        let handles: Vec<_> = [3u64, 1, 2]
            .into_iter()
            .map(|token| {
                let fence = fence.clone();
                thread::spawn(move || {
                    let result = fence.advance(FencingToken::new(token));
                    // Whatever was accepted before, the mark is now at least this high,
                    // or this token was rejected by a higher one.
                    match result {
                        Ok(previous) => assert!(previous.get() <= token),
                        Err(stale) => assert!(stale.highest().get() > token),
                    }
                    assert!(fence.highest().get() >= token || result.is_err());
                    (token, result.is_ok())
                })
            })
            .collect();
        let outcomes: Vec<(u64, bool)> = handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect();
        assert_eq!(fence.highest(), FencingToken::new(3));
        assert!(
            outcomes.contains(&(3, true)),
            "the highest token is always accepted"
        );
        assert!(fence.advance(FencingToken::new(2)).is_err());
    });
}

/// A store that checks the fence under its own lock, as `Fence` documents: a paused holder
/// (token 1) and the new holder (token 2) write at once while a reader watches. The value
/// never goes back to an older token, and the newer write always survives.
#[test]
fn fenced_writes_under_the_store_lock_never_go_back() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let store = Arc::new((Fence::new(), Mutex::new(0u64)));
        let write = |store: &(Fence, Mutex<u64>), token: u64| {
            let mut value = store.1.lock().unwrap();
            let accepted = store.0.advance(FencingToken::new(token)).is_ok();
            if accepted {
                *value = token;
            }
            accepted
        };
        let writers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|token| {
                let store = store.clone();
                thread::spawn(move || (token, write(&store, token)))
            })
            .collect();
        let first = *store.1.lock().unwrap();
        let second = *store.1.lock().unwrap();
        assert!(
            second >= first,
            "the value went back from {first} to {second}"
        );
        let outcomes: Vec<(u64, bool)> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(
            outcomes.contains(&(2, true)),
            "the newest holder was refused"
        );
        assert_eq!(*store.1.lock().unwrap(), 2);
        assert_eq!(store.0.highest(), FencingToken::new(2));
        // A retry with the current token is accepted again; the old one never is.
        assert!(write(&store, 2));
        assert!(!write(&store, 1));
    });
}

/// Why the check must sit inside the store's critical section: checked first and written
/// after, outside it, a paused old holder's write lands over the new holder's. Loom must find
/// that interleaving (this model proves the documented rule is needed, and that loom sees
/// these atomics).
#[test]
fn a_check_outside_the_store_lock_lets_a_stale_write_land() {
    let outcomes = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let seen = outcomes.clone();
    loom::model(move || {
        let store = Arc::new((Fence::new(), AtomicUsize::new(0)));
        let old = {
            let store = store.clone();
            thread::spawn(move || {
                if store.0.advance(FencingToken::new(1)).is_ok() {
                    store.1.store(1, Ordering::SeqCst);
                }
            })
        };
        if store.0.advance(FencingToken::new(2)).is_ok() {
            store.1.store(2, Ordering::SeqCst);
        }
        old.join().unwrap();
        seen.lock().unwrap().insert(store.1.load(Ordering::SeqCst));
    });
    let outcomes = outcomes.lock().unwrap();
    assert!(
        outcomes.contains(&1),
        "loom must find the stale write: {outcomes:?}"
    );
    assert!(outcomes.contains(&2));
}

/// A thread parks in the queue while the holder releases and at once tries again (the
/// release may wake it to compete, or the holder may win): the parked thread is never left
/// asleep (loom reports a lost wake-up as a deadlock), one holder at a time, tokens rising.
#[test]
fn a_blocking_waiter_is_never_left_asleep() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let service = InMemoryLockService::with_clock(ManualClock::new());
        let handle = service.handle("x").expect("a name");
        let first = handle.try_acquire_now(TTL).expect("valid").expect("free");
        let inside = Arc::new(AtomicUsize::new(0));
        let waiter = spawn_blocking_acquirer(&handle, &inside);
        handle.release_now(&first).expect("still held");
        let again = handle.try_acquire_now(TTL).expect("valid");
        if let Some(lease) = &again {
            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
            inside.fetch_sub(1, Ordering::SeqCst);
            handle.release_now(lease).expect("still held");
        }
        let waited = waiter.join().expect("no panic");
        assert!(waited > first.token());
        assert!(again.is_none_or(|lease| lease.token() != waited));
        assert_eq!(service.holder("x"), None);
    });
}

/// Two blocking acquirers queue behind a holder that releases: their tries (which look
/// again at a change in flight rather than waiting it out under the slot's mutex) and
/// their places in the queue still give one holder at a time, rising tokens, and nobody
/// left asleep (loom reports a lost wake-up as a deadlock).
#[test]
fn two_blocking_waiters_take_turns() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let service = InMemoryLockService::with_clock(ManualClock::new());
        let handle = service.handle("x").expect("a name");
        let first = handle.try_acquire_now(TTL).expect("valid").expect("free");
        let inside = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..2)
            .map(|_| spawn_blocking_acquirer(&handle, &inside))
            .collect();
        handle.release_now(&first).expect("still held");
        let mut tokens: Vec<_> = waiters
            .into_iter()
            .map(|waiter| waiter.join().expect("no panic"))
            .collect();
        tokens.sort_unstable();
        assert!(first.token() < tokens[0] && tokens[0] < tokens[1]);
        assert_eq!(service.holder("x"), None);
    });
}

/// A thread that waits in `acquire_blocking`, checks it is the only holder (`inside` counts
/// the holders), releases, and returns its token.
fn spawn_blocking_acquirer(
    handle: &LockHandle<ManualClock>,
    inside: &Arc<AtomicUsize>,
) -> thread::JoinHandle<FencingToken> {
    let (handle, inside) = (handle.clone(), inside.clone());
    thread::spawn(move || {
        let lease = handle
            .acquire_blocking(TTL, Duration::from_secs(3600))
            .expect("granted");
        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
        inside.fetch_sub(1, Ordering::SeqCst);
        handle.release_now(&lease).expect("still held");
        lease.token()
    })
}
