//! `compare rate-limit`: how each of keel's limiters treats the same arrivals.
//!
//! For a quota of 100 per second, 60 simulated seconds on a manual clock, under steady,
//! bursty and boundary-straddling arrivals (all offered at twice the quota), it prints:
//! requests admitted against the quota over the run (the ideal for arrivals spread evenly), the worst count admitted in
//! any one-second window, and how accurate retry-after is: whether retrying after exactly
//! that long, with nothing else arriving, is admitted (never early, never late), and how
//! often it is admitted when the other traffic keeps arriving.

use std::time::Duration;

use keel_core::{Clock, ManualClock};
use keel_rate_limit::{
    Algorithm, FixedWindow, Gcra, LeakyBucket, Limiter, Quota, RateLimit, SlidingCounter,
    SlidingLog,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const LIMIT: u32 = 100;
const WINDOW: u64 = 1_000_000_000;
const RUN: u64 = 60 * WINDOW;
const PROBES: usize = 150;

fn quota() -> Quota {
    Quota::with_period(LIMIT, Duration::from_nanos(WINDOW)).expect("valid quota")
}

/// Arrival times in nanoseconds, sorted, offered at twice the quota.
fn steady() -> Vec<u64> {
    let gap = WINDOW / u64::from(2 * LIMIT);
    (0..RUN / gap).map(|i| i * gap + 1).collect()
}

/// Bursts of 1..=3·limit requests (within 10 ms) at random times, twice the quota on average.
fn bursty() -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut out = Vec::new();
    let mut t = 0;
    let offered = RUN / WINDOW * u64::from(2 * LIMIT);
    while (out.len() as u64) < offered {
        let size = rng.random_range(1..=3 * LIMIT);
        // Mean burst 1.5·limit every 0.75 s gives 2·limit per second.
        t += rng.random_range(0..=WINDOW * 3 / 2);
        for _ in 0..size {
            out.push(t + rng.random_range(0..10_000_000));
        }
    }
    out.sort_unstable();
    out.retain(|&at| at < RUN);
    out
}

/// `limit` requests in the last millisecond of every window and `limit` in the first
/// millisecond of the next: the fixed window's worst case.
fn boundary() -> Vec<u64> {
    let mut out = Vec::new();
    let step = 1_000_000 / u64::from(LIMIT);
    for k in 1..RUN / WINDOW {
        let edge = k * WINDOW;
        for i in 0..u64::from(LIMIT) {
            out.push(edge - 1_000_000 + i * step);
        }
        for i in 0..u64::from(LIMIT) {
            out.push(edge + i * step);
        }
    }
    out
}

struct Row {
    admitted: u64,
    worst: u64,
    early: usize,
    exact: usize,
    late: usize,
    probes: usize,
    under_load: usize,
    header_slack: f64,
}

/// Replays `arrivals` into a fresh limiter; returns it, its clock, and each arrival's outcome
/// (`None` if admitted, `Some(retry_after)` if denied).
fn replay<A: Algorithm>(
    arrivals: &[u64],
) -> (Limiter<A, ManualClock>, ManualClock, Vec<Option<u64>>) {
    let clock = ManualClock::new();
    let limiter = Limiter::<A, _>::with_clock(quota(), clock.clone());
    let mut outcomes = Vec::with_capacity(arrivals.len());
    for &at in arrivals {
        advance_to(&clock, at);
        let decision = limiter.check();
        outcomes.push(decision.retry_after().map(|r| r.as_nanos() as u64));
    }
    (limiter, clock, outcomes)
}

fn advance_to(clock: &ManualClock, at: u64) {
    let now = clock.now().as_nanos();
    if at > now {
        clock.advance(Duration::from_nanos(at - now));
    }
}

/// Replays the first `upto` arrivals, then asks once at `probe_at`.
fn probe<A: Algorithm>(arrivals: &[u64], upto: usize, probe_at: u64) -> bool {
    let (limiter, clock, _) = replay::<A>(&arrivals[..upto]);
    advance_to(&clock, probe_at);
    limiter.check().is_allowed()
}

fn measure<A: Algorithm>(arrivals: &[u64]) -> Row {
    let (_, _, outcomes) = replay::<A>(arrivals);
    let admitted_at: Vec<u64> = arrivals
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.is_none())
        .map(|(&at, _)| at)
        .collect();
    let mut worst = 0;
    let mut hi = 0;
    for lo in 0..admitted_at.len() {
        while hi < admitted_at.len() && admitted_at[hi] < admitted_at[lo] + WINDOW {
            hi += 1;
        }
        worst = worst.max((hi - lo) as u64);
    }
    let denials: Vec<usize> = (0..arrivals.len())
        .filter(|&i| outcomes[i].is_some())
        .collect();
    let stride = (denials.len() / PROBES).max(1);
    let (mut early, mut exact, mut late, mut under_load, mut probes) = (0, 0, 0, 0, 0);
    let mut header_slack = 0.0;
    for &i in denials.iter().step_by(stride).take(PROBES) {
        let retry = outcomes[i].expect("a denial");
        let at = arrivals[i];
        probes += 1;
        // Alone: nothing arrives after the denial.
        if retry > 1 && probe::<A>(arrivals, i + 1, at + retry - 1) {
            early += 1;
        } else if probe::<A>(arrivals, i + 1, at + retry) {
            exact += 1;
        } else {
            late += 1;
        }
        // Under load: the rest of the traffic up to the retry time arrives first.
        let upto = arrivals.partition_point(|&t| t <= at + retry);
        if probe::<A>(arrivals, upto, at + retry) {
            under_load += 1;
        }
        let secs = retry.div_ceil(1_000_000_000) * 1_000_000_000;
        header_slack += (secs - retry) as f64 / 1e6;
    }
    Row {
        admitted: admitted_at.len() as u64,
        worst,
        early,
        exact,
        late,
        probes,
        under_load,
        header_slack: if probes > 0 {
            header_slack / probes as f64
        } else {
            0.0
        },
    }
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("takes no options, got `{extra}`"));
    }
    let ideal = RUN / WINDOW * u64::from(LIMIT);
    println!(
        "Quota {LIMIT}/s (burst {LIMIT}), 60 s on a manual clock, arrivals offered at 2× the quota. \
         Admitted / quota: admissions over the quota for the whole run ({ideal}); bursty arrivals cannot reach it without exceeding the limit somewhere. Worst window = most admitted in any 1 s window. \
         Retry-after probes ({PROBES} denials per row): retried after exactly retry-after with \
         nothing else arriving, was it early / exact / late; and, when the rest of the traffic keeps arriving first, was the retry still admitted? The header column is the mean extra wait of `Retry-After` in whole seconds.\n"
    );
    let scenarios: [(&str, Vec<u64>); 3] = [
        ("steady", steady()),
        ("bursty", bursty()),
        ("boundary", boundary()),
    ];
    for (name, arrivals) in &scenarios {
        println!("### {name} ({} arrivals)\n", arrivals.len());
        println!(
            "| algorithm | admitted | admitted / quota | worst window | bound | retry early | retry exact | retry late | retry admitted under load | Retry-After header rounding (ms, mean) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        let rows: [(&str, Row, u64); 5] = [
            ("Gcra", measure::<Gcra>(arrivals), u64::from(2 * LIMIT - 1)),
            (
                "LeakyBucket",
                measure::<LeakyBucket>(arrivals),
                u64::from(2 * LIMIT - 1),
            ),
            (
                "FixedWindow",
                measure::<FixedWindow>(arrivals),
                u64::from(2 * LIMIT),
            ),
            (
                "SlidingLog",
                measure::<SlidingLog>(arrivals),
                u64::from(LIMIT),
            ),
            (
                "SlidingCounter",
                measure::<SlidingCounter>(arrivals),
                u64::from(2 * LIMIT - 1),
            ),
        ];
        for (algorithm, row, bound) in rows {
            println!(
                "| {algorithm} | {} | {:.3} | {} ({:.2}×) | {bound} | {} | {} | {} | {:.0}% | {:.0} |",
                row.admitted,
                row.admitted as f64 / ideal as f64,
                row.worst,
                row.worst as f64 / f64::from(LIMIT),
                row.early,
                row.exact,
                row.late,
                100.0 * row.under_load as f64 / row.probes.max(1) as f64,
                row.header_slack,
            );
        }
        println!();
    }
    Ok(())
}
