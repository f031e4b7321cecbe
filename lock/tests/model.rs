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

/// Leases judged by name across two services, each lease possibly rebuilt with `Lease::new`,
/// while sweeps drop unused names and add them again: a lease is the service's own only if
/// that service granted it (or nobody did and its name and token match), whatever the state
/// behind its name became meanwhile.
mod across_services {
    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Acquire {
            service: usize,
            name: usize,
            ttl_ms: u64,
        },
        Extend {
            lease: usize,
            service: usize,
            ttl_ms: u64,
        },
        Release {
            lease: usize,
            service: usize,
        },
        /// The lease's parts put together again with `Lease::new`: no granter.
        Rebuild {
            lease: usize,
        },
        Advance {
            ms: u64,
        },
        /// Enough new names, released at once, that the service's shards sweep.
        Churn {
            service: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..2usize, 0..3usize, 1..3_000u64)
                .prop_map(|(service, name, ttl_ms)| Op::Acquire { service, name, ttl_ms }),
            2 => (0..24usize, 0..2usize, 1..3_000u64)
                .prop_map(|(lease, service, ttl_ms)| Op::Extend { lease, service, ttl_ms }),
            4 => (0..24usize, 0..2usize).prop_map(|(lease, service)| Op::Release { lease, service }),
            2 => (0..24usize).prop_map(|lease| Op::Rebuild { lease }),
            2 => (0..2_000u64).prop_map(|ms| Op::Advance { ms }),
            1 => (0..2usize).prop_map(|service| Op::Churn { service }),
        ]
    }

    /// One short name, one of exactly 22 bytes (the longest kept inline), one longer.
    const NAMES: [&str; 3] = [
        "alpha",
        "twenty-two bytes, just",
        "a name too long to be kept inline",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
            let clock = ManualClock::new();
            let services = [
                InMemoryLockService::with_clock(clock.clone()),
                InMemoryLockService::with_clock(clock.clone()),
            ];
            // Per service and name: the live token and until when.
            let mut holders: HashMap<(usize, usize), (u64, Instant)> = HashMap::new();
            let mut last_token: HashMap<(usize, usize), u64> = HashMap::new();
            // Each lease with its name and the service that granted it (none if rebuilt).
            let mut leases: Vec<(Option<usize>, usize, Lease)> = Vec::new();
            let mut churned = 0usize;
            for op in ops {
                let now = clock.now();
                // Whether `service` takes the lease as its live one.
                let live = |holders: &HashMap<(usize, usize), (u64, Instant)>,
                            (granter, name, lease): &(Option<usize>, usize, Lease),
                            service: usize| {
                    granter.is_none_or(|granter| granter == service)
                        && holders.get(&(service, *name)).is_some_and(|&(token, until)| {
                            token == lease.token().get() && now < until
                        })
                };
                match op {
                    Op::Acquire { service, name, ttl_ms } => {
                        let ttl = Duration::from_millis(ttl_ms);
                        let free = holders
                            .get(&(service, name))
                            .is_none_or(|&(_, until)| now >= until);
                        let granted = services[service]
                            .try_acquire_now(NAMES[name], ttl)
                            .expect("valid input");
                        prop_assert_eq!(granted.is_some(), free);
                        if let Some(lease) = granted {
                            let token = lease.token().get();
                            let last = last_token.insert((service, name), token);
                            prop_assert!(last.is_none_or(|last| token > last));
                            holders.insert((service, name), (token, now + ttl));
                            leases.push((Some(service), name, lease));
                        }
                    }
                    Op::Extend { lease, service, ttl_ms } => {
                        let Some(held) = leases.get(lease).cloned() else { continue };
                        let ttl = Duration::from_millis(ttl_ms);
                        let expected = live(&holders, &held, service);
                        let result = services[service].extend_now(&held.2, ttl);
                        prop_assert_eq!(result.is_ok(), expected, "{:?}", held);
                        if let Ok(extended) = result {
                            prop_assert_eq!(extended.token(), held.2.token());
                            holders.insert((service, held.1), (held.2.token().get(), now + ttl));
                            // The extension is the service's own lease, even of a rebuilt one.
                            leases.push((Some(service), held.1, extended));
                        }
                    }
                    Op::Release { lease, service } => {
                        let Some(held) = leases.get(lease).cloned() else { continue };
                        let expected = live(&holders, &held, service);
                        let result = services[service].release_now(&held.2);
                        prop_assert_eq!(result.is_ok(), expected, "{:?}", held);
                        if expected {
                            holders.remove(&(service, held.1));
                        }
                    }
                    Op::Rebuild { lease } => {
                        let Some((_, name, held)) = leases.get(lease).cloned() else { continue };
                        let rebuilt =
                            Lease::new(held.shared_name(), held.token(), held.expires_at(), held.ttl());
                        leases.push((None, name, rebuilt));
                    }
                    Op::Advance { ms } => clock.advance(Duration::from_millis(ms)),
                    Op::Churn { service } => {
                        for _ in 0..2_500 {
                            churned += 1;
                            let name = format!("churn-{churned}");
                            let lease = services[service]
                                .try_acquire_now(&name, Duration::from_secs(1))
                                .expect("valid input")
                                .expect("a new name is free");
                            services[service].release_now(&lease).expect("held");
                        }
                    }
                }
                let now = clock.now();
                for (service, locks) in services.iter().enumerate() {
                    for (name, text) in NAMES.iter().enumerate() {
                        let expected = holders
                            .get(&(service, name))
                            .filter(|&&(_, until)| now < until)
                            .map(|&(token, _)| token);
                        prop_assert_eq!(locks.holder(text).map(|token| token.get()), expected);
                    }
                }
            }
        }
    }
}
