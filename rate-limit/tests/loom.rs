//! Loom model checks of the GCRA cell: under every interleaving, concurrent checks never
//! admit more than the quota allows, and a denial takes nothing.
#![cfg(keel_loom)]

use keel_core::ManualClock;
use keel_core::sync::Arc;
use keel_rate_limit::{Gcra, Limiter, Quota, RateLimit};
use loom::thread;

/// The quota cell's readers and writers spin while a writer holds the odd stamp, and loom
/// lets a spinning relaxed load read the stale stamp again and again; two preemptions and a
/// larger branch budget keep these models finite (they leave out schedules that preempt a
/// thread more than twice).
fn bounded() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.max_branches = 20_000;
    builder
}

fn admitted(limiter: &Limiter<Gcra, ManualClock>, n: u32) -> u32 {
    match limiter.check_n(n) {
        Ok(decision) if decision.is_allowed() => n,
        _ => 0,
    }
}

#[test]
fn concurrent_checks_never_exceed_the_burst() {
    loom::model(|| {
        let quota = Quota::per_second(10).unwrap().with_burst(2).unwrap();
        let limiter = Arc::new(Limiter::<Gcra, _>::with_clock(quota, ManualClock::new()));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let limiter = limiter.clone();
                thread::spawn(move || admitted(&limiter, 1))
            })
            .collect();
        let mut total = admitted(&limiter, 1);
        for handle in handles {
            total += handle.join().unwrap();
        }
        // Three callers at one instant, burst 2: exactly two get through.
        assert_eq!(total, 2);
        assert!(limiter.check().is_denied());
    });
}

#[test]
fn check_n_is_all_or_nothing_under_races() {
    loom::model(|| {
        let quota = Quota::per_second(10).unwrap().with_burst(3).unwrap();
        let limiter = Arc::new(Limiter::<Gcra, _>::with_clock(quota, ManualClock::new()));
        let other = limiter.clone();
        let handle = thread::spawn(move || admitted(&other, 2));
        let mine = admitted(&limiter, 2);
        let theirs = handle.join().unwrap();
        // Only one of the two pairs fits; the loser took nothing, so one cell is left.
        assert_eq!(mine + theirs, 2);
        assert!(limiter.check().is_allowed());
        assert!(limiter.check().is_denied());
    });
}

#[test]
fn a_check_racing_set_quota_sees_one_whole_quota() {
    loom::model(|| {
        let a = Quota::per_second(10).unwrap().with_burst(2).unwrap();
        let b = Quota::per_hour(7).unwrap();
        let limiter = Arc::new(Limiter::<Gcra, _>::with_clock(a, ManualClock::new()));
        let other = limiter.clone();
        let handle = thread::spawn(move || other.set_quota(b));
        let seen = limiter.quota();
        let decision = limiter.check();
        handle.join().unwrap();
        assert!(seen == a || seen == b, "{seen:?}");
        let policy = (decision.limit(), decision.window());
        assert!(
            policy == (a.limit(), a.period()) || policy == (b.limit(), b.period()),
            "{policy:?}"
        );
        assert_eq!(limiter.quota(), b);
    });
}

/// Two operators change the quota at once while a check runs: the writers take turns on the
/// quota cell, so whatever order they land in, the limiter ends with one of the two whole
/// quotas, and the check saw one whole quota (never limit of one, burst of the other).
#[test]
fn two_quota_changes_racing_a_check_never_tear() {
    bounded().check(|| {
        let a = Quota::per_second(10).unwrap().with_burst(2).unwrap();
        let b = Quota::per_hour(7).unwrap();
        let c = Quota::per_minute(3).unwrap().with_burst(1).unwrap();
        let limiter = Arc::new(Limiter::<Gcra, _>::with_clock(a, ManualClock::new()));
        let writers: Vec<_> = [b, c]
            .into_iter()
            .map(|quota| {
                let limiter = limiter.clone();
                thread::spawn(move || limiter.set_quota(quota))
            })
            .collect();
        let decision = limiter.check();
        for writer in writers {
            writer.join().unwrap();
        }
        let policy = (decision.limit(), decision.window());
        assert!(
            [a, b, c].iter().any(|q| policy == (q.limit(), q.period())),
            "{policy:?}"
        );
        let last = limiter.quota();
        assert!(last == b || last == c, "torn quota {last:?}");
    });
}

/// Checks race a change that lowers the burst from 2 to 1: at one instant no more than the
/// larger burst is admitted, at least one caller always is, and afterwards the cell is full
/// under the new quota.
#[test]
fn checks_racing_a_lower_burst_never_over_admit() {
    bounded().check(|| {
        let a = Quota::per_second(10).unwrap().with_burst(2).unwrap();
        let b = Quota::per_second(10).unwrap().with_burst(1).unwrap();
        let limiter = Arc::new(Limiter::<Gcra, _>::with_clock(a, ManualClock::new()));
        let changer = {
            let limiter = limiter.clone();
            thread::spawn(move || limiter.set_quota(b))
        };
        let checker = {
            let limiter = limiter.clone();
            thread::spawn(move || admitted(&limiter, 1))
        };
        let mine = admitted(&limiter, 1);
        let total = mine + checker.join().unwrap();
        changer.join().unwrap();
        assert!((1..=2).contains(&total), "{total} admitted");
        assert_eq!(limiter.quota(), b);
        assert!(limiter.check().is_denied());
    });
}
