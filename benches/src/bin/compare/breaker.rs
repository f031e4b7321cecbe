//! `compare breaker`: a retry storm, simulated. N clients call a dependency that fails for a
//! while and then recovers; each strategy's table row says how many calls the dependency
//! had to absorb and how long it took to serve requests normally again.
//!
//! Simulated time (microseconds), one seeded RNG, no threads: the same output every run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use keel_breaker::{
    Backoff, BackoffJitter, CircuitBreaker, OpenWait, OwnedPermit, RetryBudget, Window,
};
use keel_core::{Clock, ManualClock};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const MS: u64 = 1_000;
const SECOND: u64 = 1_000_000;

/// The scenario, fixed so the table is reproducible.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    clients: u32,
    /// Each client sends one request per period, at a random phase.
    period: u64,
    /// The dependency serves one call per `service` (a single FIFO server).
    service: u64,
    /// A call that would wait longer than this in the queue is shed at once (fails fast).
    queue_limit: u64,
    /// The client gives up on an answer after this long; the server still does the work,
    /// which is what lets retries keep an overloaded server overloaded.
    timeout: u64,
    /// Network round trip added to every response.
    rtt: u64,
    outage_start: u64,
    outage_end: u64,
    duration: u64,
    max_attempts: u32,
    seed: u64,
    /// All clients send at the same instant of each period (within 1 ms), as clients
    /// driven by one timer or restarted together do; otherwise each has a random phase.
    lockstep: bool,
}

const SCENARIO: Scenario = Scenario {
    clients: 200,
    period: 200 * MS, // 200 clients x 5/s = 1,000 requests/s
    service: 800,     // capacity 1,250 calls/s: 25% headroom
    queue_limit: 2 * SECOND,
    timeout: 100 * MS,
    rtt: MS,
    outage_start: 2 * SECOND,
    outage_end: 7 * SECOND,
    duration: 40 * SECOND,
    max_attempts: 5,
    seed: 0x6b65_656c,
    lockstep: false,
};

/// The same load from 100 clients in lockstep, one burst of 100 requests every 100 ms: the
/// server drains a burst in 80 ms, inside the clients' 100 ms timeout, when nobody retries.
const LOCKSTEP: Scenario = Scenario {
    clients: 100,
    period: 100 * MS,
    lockstep: true,
    ..SCENARIO
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    NoRetry,
    NoJitter,
    FullJitter,
    Decorrelated,
    Budget,
    BreakerAndBudget,
}

impl Strategy {
    const ALL: [Strategy; 6] = [
        Strategy::NoRetry,
        Strategy::NoJitter,
        Strategy::FullJitter,
        Strategy::Decorrelated,
        Strategy::Budget,
        Strategy::BreakerAndBudget,
    ];

    fn name(self) -> &'static str {
        match self {
            Strategy::NoRetry => "no retry",
            Strategy::NoJitter => "retry, exponential, no jitter",
            Strategy::FullJitter => "retry, full jitter",
            Strategy::Decorrelated => "retry, decorrelated jitter",
            Strategy::Budget => "retry, full jitter + budget 10%",
            Strategy::BreakerAndBudget => "breaker + retry budget 10%",
        }
    }

    fn backoff(self) -> Option<Backoff> {
        let base = Backoff::exponential(Duration::from_millis(20)).max(Duration::from_secs(2));
        match self {
            Strategy::NoRetry => None,
            Strategy::NoJitter => Some(base.jitter(BackoffJitter::None)),
            Strategy::FullJitter | Strategy::Budget | Strategy::BreakerAndBudget => {
                Some(base.jitter(BackoffJitter::Full))
            }
            Strategy::Decorrelated => Some(base.jitter(BackoffJitter::Decorrelated)),
        }
    }
}

#[derive(Debug)]
enum Event {
    /// A client issues a new logical request.
    Issue { client: u32 },
    /// An attempt of request `request` leaves the client.
    Attempt { request: usize },
    /// The answer to an attempt arrives back at the client.
    Answer { request: usize, ok: bool },
}

struct Request {
    issued: u64,
    attempts: u32,
    previous_wait: Duration,
    permit: Option<OwnedPermit<ManualClock>>,
    done: Option<bool>,
}

/// What one strategy did.
struct Outcome {
    requests: u64,
    calls: u64,
    shed: u64,
    timed_out: u64,
    rejected_locally: u64,
    failed_requests: u64,
    peak_calls_per_second: u64,
    recovered_after: Option<u64>,
}

struct Simulation {
    scenario: Scenario,
    backoff: Option<Backoff>,
    clock: ManualClock,
    budget: Option<RetryBudget<ManualClock>>,
    breaker: Option<Arc<CircuitBreaker<ManualClock>>>,
    rng: SmallRng,
    events: BinaryHeap<Reverse<(u64, u64, usize)>>,
    payloads: Vec<Option<Event>>,
    sequence: u64,
    requests: Vec<Request>,
    server_free_at: u64,
    calls: u64,
    shed: u64,
    timed_out: u64,
    rejected_locally: u64,
    calls_per_second: Vec<u64>,
}

impl Simulation {
    fn new(scenario: Scenario, strategy: Strategy) -> Result<Simulation, String> {
        let clock = ManualClock::new();
        let budget = match strategy {
            Strategy::Budget | Strategy::BreakerAndBudget => Some(
                RetryBudget::builder()
                    .percent(10.0)
                    .min_per_second(5)
                    .ttl(Duration::from_secs(10))
                    .clock(clock.clone())
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
            _ => None,
        };
        let breaker = match strategy {
            Strategy::BreakerAndBudget => Some(Arc::new(
                CircuitBreaker::builder()
                    .failure_rate(50.0)
                    .window(Window::Count(100))
                    .minimum_calls(20)
                    .open_wait(OpenWait::Exponential {
                        initial: Duration::from_millis(250),
                        multiplier: 2.0,
                        max: Duration::from_secs(2),
                    })
                    .half_open_probes(5)
                    .probe_timeout(Duration::from_secs(1))
                    .clock(clock.clone())
                    .build()
                    .map_err(|e| e.to_string())?,
            )),
            _ => None,
        };
        Ok(Simulation {
            scenario,
            backoff: strategy.backoff(),
            clock,
            budget,
            breaker,
            rng: SmallRng::seed_from_u64(scenario.seed),
            events: BinaryHeap::new(),
            payloads: Vec::new(),
            sequence: 0,
            requests: Vec::new(),
            server_free_at: 0,
            calls: 0,
            shed: 0,
            timed_out: 0,
            rejected_locally: 0,
            calls_per_second: vec![0; ((scenario.duration + 12 * SECOND) / SECOND) as usize],
        })
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.payloads.push(Some(event));
        self.sequence += 1;
        self.events
            .push(Reverse((at, self.sequence, self.payloads.len() - 1)));
    }

    fn run(mut self) -> Outcome {
        let scenario = self.scenario;
        for client in 0..scenario.clients {
            let spread = if scenario.lockstep {
                MS
            } else {
                scenario.period
            };
            let phase = self.rng.random_range(0..spread);
            self.schedule(phase, Event::Issue { client });
        }
        while let Some(Reverse((now, _, index))) = self.events.pop() {
            let Some(event) = self.payloads[index].take() else {
                continue;
            };
            let since = Duration::from_micros(now) - self.clock.now().as_duration();
            self.clock.advance(since);
            match event {
                Event::Issue { client } => {
                    if now + scenario.period < scenario.duration {
                        self.schedule(now + scenario.period, Event::Issue { client });
                    }
                    if let Some(budget) = &self.budget {
                        budget.deposit();
                    }
                    self.requests.push(Request {
                        issued: now,
                        attempts: 0,
                        previous_wait: Duration::ZERO,
                        permit: None,
                        done: None,
                    });
                    let request = self.requests.len() - 1;
                    self.attempt(now, request);
                }
                Event::Attempt { request } => self.attempt(now, request),
                Event::Answer { request, ok } => self.answer(now, request, ok),
            }
        }
        self.outcome()
    }

    fn attempt(&mut self, now: u64, request: usize) {
        self.requests[request].attempts += 1;
        if let Some(breaker) = &self.breaker {
            match breaker.try_acquire_owned() {
                Ok(permit) => self.requests[request].permit = Some(permit),
                Err(_) => {
                    // Rejected without a call; a rejection is not worth retrying.
                    self.rejected_locally += 1;
                    self.requests[request].done = Some(false);
                    return;
                }
            }
        }
        self.calls += 1;
        self.calls_per_second[(now / SECOND) as usize] += 1;
        let scenario = self.scenario;
        let down = (scenario.outage_start..scenario.outage_end).contains(&now);
        let start = self.server_free_at.max(now);
        let (ok, answered) = if down {
            (false, now + scenario.rtt)
        } else if start - now > scenario.queue_limit {
            self.shed += 1;
            (false, now + scenario.rtt)
        } else {
            self.server_free_at = start + scenario.service;
            let answered = self.server_free_at + scenario.rtt;
            if answered - now > scenario.timeout {
                self.timed_out += 1;
                (false, now + scenario.timeout)
            } else {
                (true, answered)
            }
        };
        self.schedule(answered, Event::Answer { request, ok });
    }

    fn answer(&mut self, now: u64, request: usize, ok: bool) {
        if let Some(permit) = self.requests[request].permit.take() {
            permit.record(!ok);
        }
        if ok {
            self.requests[request].done = Some(true);
            return;
        }
        let attempts = self.requests[request].attempts;
        let Some(backoff) = self.backoff else {
            self.requests[request].done = Some(false);
            return;
        };
        if attempts >= self.scenario.max_attempts {
            self.requests[request].done = Some(false);
            return;
        }
        if let Some(budget) = &self.budget
            && !budget.try_withdraw()
        {
            self.requests[request].done = Some(false);
            return;
        }
        let previous = self.requests[request].previous_wait;
        let rng = &mut self.rng;
        let wait = backoff.delay(attempts - 1, previous, &mut || rng.random::<u64>());
        self.requests[request].previous_wait = wait;
        let at = now + wait.as_micros() as u64;
        if at < self.scenario.duration + 10 * SECOND {
            self.schedule(at, Event::Attempt { request });
        } else {
            self.requests[request].done = Some(false);
        }
    }

    fn outcome(&self) -> Outcome {
        let scenario = self.scenario;
        // Per 100 ms of issue time: did the requests issued then succeed?
        let bin = 100 * MS;
        let bins = (scenario.duration / bin) as usize + 1;
        let mut issued = vec![0u64; bins];
        let mut succeeded = vec![0u64; bins];
        for request in &self.requests {
            let b = (request.issued / bin) as usize;
            issued[b] += 1;
            if request.done == Some(true) {
                succeeded[b] += 1;
            }
        }
        // Recovered: from this bin on, every bin served at least 99% of its requests.
        let healthy = |b: usize| issued[b] == 0 || succeeded[b] * 100 >= issued[b] * 99;
        let first_after_outage = (scenario.outage_end / bin) as usize;
        let last_bad = (first_after_outage..bins).rev().find(|&b| !healthy(b));
        let recovered_after = match last_bad {
            None => Some(0),
            Some(b) if b + 1 < bins - 10 => Some((b as u64 + 1) * bin - scenario.outage_end),
            Some(_) => None,
        };
        Outcome {
            requests: self.requests.len() as u64,
            calls: self.calls,
            shed: self.shed,
            timed_out: self.timed_out,
            rejected_locally: self.rejected_locally,
            failed_requests: self
                .requests
                .iter()
                .filter(|r| r.done != Some(true))
                .count() as u64,
            peak_calls_per_second: self.calls_per_second.iter().copied().max().unwrap_or(0),
            recovered_after,
        }
    }
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("takes no options, got `{extra}`"));
    }
    let s = SCENARIO;
    println!(
        "{} clients send {} requests/s in all to a dependency that serves {} calls/s \
         (one FIFO server; a client gives up after {} ms, but the server still serves the call; \
         calls that would queue over {} s are shed); it refuses every call from t = {} s to \
         t = {} s. Retries: up to {} attempts, exponential from 20 ms, \
         capped at 2 s. Simulated time, seed {:#x}.\n",
        s.clients,
        u64::from(s.clients) * SECOND / s.period,
        SECOND / s.service,
        s.timeout / MS,
        s.queue_limit / SECOND,
        s.outage_start / SECOND,
        s.outage_end / SECOND,
        s.max_attempts,
        s.seed,
    );
    main_table(s)?;
    println!(
        "\nThe same load from {} clients in lockstep: each sends at the same instant (within \
         1 ms) every {} ms.\n",
        LOCKSTEP.clients,
        LOCKSTEP.period / MS
    );
    main_table(LOCKSTEP)?;
    println!(
        "\nAmplification = calls sent / requests. Time to recover = from the end of the outage \
         until every later 100 ms of requests succeeds at 99% or better.\n"
    );

    // The same storm against more or less spare capacity, over five seeds each.
    let capacities = [1_100u64, 1_250, 1_500, 2_000];
    let seeds = 5;
    print!(
        "Time to recover (median of {seeds} seeds; recovered runs in brackets) by dependency capacity:\n\n| strategy |"
    );
    for capacity in capacities {
        print!(" {capacity} calls/s |");
    }
    println!();
    println!("|---|{}", "---:|".repeat(capacities.len()));
    for strategy in Strategy::ALL {
        print!("| {} |", strategy.name());
        for capacity in capacities {
            let mut times = Vec::new();
            for seed in 0..seeds {
                let scenario = Scenario {
                    service: SECOND / capacity,
                    seed: s.seed + seed,
                    ..s
                };
                let outcome = Simulation::new(scenario, strategy)?.run();
                times.push(outcome.recovered_after.unwrap_or(u64::MAX));
            }
            times.sort_unstable();
            let recovered = times.iter().filter(|&&t| t != u64::MAX).count();
            let median = times[times.len() / 2];
            if median == u64::MAX {
                print!(" never ({recovered}/{seeds}) |");
            } else {
                print!(
                    " {:.1} s ({recovered}/{seeds}) |",
                    median as f64 / SECOND as f64
                );
            }
        }
        println!();
    }
    Ok(())
}

/// One row per strategy for `scenario`.
fn main_table(scenario: Scenario) -> Result<(), String> {
    println!(
        "| strategy | requests | calls sent | amplification | peak calls/s | timed out | shed | rejected by breaker | failed requests | time to recover |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for strategy in Strategy::ALL {
        let outcome = Simulation::new(scenario, strategy)?.run();
        let recovered = match outcome.recovered_after {
            Some(us) => format!("{:.1} s", us as f64 / SECOND as f64),
            None => "not within the run".to_string(),
        };
        println!(
            "| {} | {} | {} | {:.2}x | {} | {} | {} | {} | {} | {} |",
            strategy.name(),
            outcome.requests,
            outcome.calls,
            outcome.calls as f64 / outcome.requests as f64,
            outcome.peak_calls_per_second,
            outcome.timed_out,
            outcome.shed,
            outcome.rejected_locally,
            outcome.failed_requests,
            recovered,
        );
    }
    Ok(())
}
