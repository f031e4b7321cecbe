//! The in-memory service against a simple reference model, on random operation sequences:
//! each operation goes by name or through a `LockHandle` (the two paths share one state per
//! name: the atomic word on the fast path, the mutex on the slow one).

use std::collections::HashMap;
use std::time::Duration;

use keel_core::{Clock, Instant, ManualClock};
use keel_lock::{InMemoryLockService, Lease};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Acquire {
        name: usize,
        ttl_ms: u64,
        handle: bool,
    },
    Extend {
        lease: usize,
        ttl_ms: u64,
        handle: bool,
    },
    Release {
        lease: usize,
        handle: bool,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 1..3_000u64, any::<bool>()).prop_map(|(name, ttl_ms, handle)| Op::Acquire {
            name,
            ttl_ms,
            handle
        }),
        (0..16usize, 1..3_000u64, any::<bool>()).prop_map(|(lease, ttl_ms, handle)| Op::Extend {
            lease,
            ttl_ms,
            handle
        }),
        (0..16usize, any::<bool>()).prop_map(|(lease, handle)| Op::Release { lease, handle }),
        (0..2_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// Per name: which issued lease holds it, until when.
#[derive(Default)]
struct Model {
    holders: HashMap<usize, (usize, Instant)>,
}

const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let clock = ManualClock::new();
        let service = InMemoryLockService::with_clock(clock.clone());
        let mut model = Model::default();
        let mut leases: Vec<(usize, Lease)> = Vec::new();
        let mut last_token: HashMap<usize, u64> = HashMap::new();
        let handles: Vec<_> = NAMES
            .iter()
            .map(|name| service.handle(name).expect("a valid name"))
            .collect();
        for op in ops {
            let now = clock.now();
            match op {
                Op::Acquire { name, ttl_ms, handle } => {
                    let ttl = Duration::from_millis(ttl_ms);
                    let free = model.holders.get(&name).is_none_or(|&(_, until)| now >= until);
                    let granted = if handle {
                        handles[name].try_acquire_now(ttl)
                    } else {
                        service.try_acquire_now(NAMES[name], ttl)
                    }
                    .expect("valid input");
                    prop_assert_eq!(granted.is_some(), free);
                    if let Some(lease) = granted {
                        let token = lease.token().get();
                        if let Some(&last) = last_token.get(&name) {
                            prop_assert!(token > last, "token {} after {}", token, last);
                        }
                        last_token.insert(name, token);
                        prop_assert_eq!(lease.expires_at(), now + ttl);
                        model.holders.insert(name, (leases.len(), now + ttl));
                        leases.push((name, lease));
                    }
                }
                Op::Extend { lease, ttl_ms, handle } => {
                    let Some((name, held)) = leases.get(lease).cloned() else { continue };
                    let ttl = Duration::from_millis(ttl_ms);
                    let live = model
                        .holders
                        .get(&name)
                        .is_some_and(|&(i, until)| i == lease && now < until);
                    let result = if handle {
                        handles[name].extend_now(&held, ttl)
                    } else {
                        service.extend_now(&held, ttl)
                    };
                    prop_assert_eq!(result.is_ok(), live);
                    if let Ok(extended) = result {
                        prop_assert_eq!(extended.token(), held.token());
                        model.holders.insert(name, (lease, now + ttl));
                        leases[lease].1 = extended;
                    }
                }
                Op::Release { lease, handle } => {
                    let Some((name, held)) = leases.get(lease).cloned() else { continue };
                    let holder = model.holders.get(&name).copied();
                    let live = holder.is_some_and(|(i, until)| i == lease && now < until);
                    // Through another name's handle it is never released.
                    let other = (name + 1) % NAMES.len();
                    prop_assert!(handles[other].release_now(&held).is_err());
                    let result = if handle {
                        handles[name].release_now(&held)
                    } else {
                        service.release_now(&held)
                    };
                    prop_assert_eq!(result.is_ok(), live);
                    if holder.is_some_and(|(i, _)| i == lease) {
                        model.holders.remove(&name);
                    }
                }
                Op::Advance { ms } => clock.advance(Duration::from_millis(ms)),
            }
            let now = clock.now();
            for (name, text) in NAMES.iter().enumerate() {
                let expected = model
                    .holders
                    .get(&name)
                    .filter(|&&(_, until)| now < until)
                    .map(|&(i, _)| leases[i].1.token());
                prop_assert_eq!(service.holder(text), expected);
                prop_assert_eq!(handles[name].holder(), expected);
            }
        }
    }
}
