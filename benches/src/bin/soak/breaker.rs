//! Retry around a bulkhead around a circuit breaker, under cancellation storms (requests
//! dropped by timeouts and aborted wherever they are parked), an inner service that
//! panics, fails, or is slower than the slow-call threshold.
//!
//! Anomalies:
//! - leaked permits: once every request has ended (answered, failed, unwound or dropped),
//!   a bulkhead slot still in use or a half-open probe still in flight; and, sampled during
//!   the run, more slots or probes in use than configured;
//! - late returns: a bulkhead refusal that came after its maximum wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_breaker::{Bulkhead, CallError, CircuitBreaker, OpenWait, Retry, Window};
use keel_testkit::anomalies::{beyond, late_returns};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{Anomaly, Row, SLACK, runtime};

const SLOTS: usize = 4;
const MAX_WAIT: Duration = Duration::from_millis(20);
const PROBES: u32 = 2;
const SLOW: Duration = Duration::from_millis(40);
const IN_FLIGHT: usize = 24;
const PANIC_MESSAGE: &str = "soak: the inner service panics";
/// Panics the inner service raised (a planted one may be cancelled before it runs).
static PANICS: AtomicU64 = AtomicU64::new(0);
/// Attempts made, for `--plant`'s one-in-500 leak.
static ATTEMPTS: AtomicU64 = AtomicU64::new(0);

#[derive(Copy, Clone, Debug)]
enum Answer {
    Ok(Duration),
    Err(Duration),
    Slow,
    Panic,
}

async fn inner(answer: Answer) -> Result<u64, &'static str> {
    match answer {
        Answer::Ok(after) => {
            tokio::time::sleep(after).await;
            Ok(1)
        }
        Answer::Err(after) => {
            tokio::time::sleep(after).await;
            Err("refused")
        }
        Answer::Slow => {
            tokio::time::sleep(SLOW * 2).await;
            Ok(2)
        }
        Answer::Panic => {
            tokio::task::yield_now().await;
            PANICS.fetch_add(1, Ordering::Relaxed);
            panic!("{PANIC_MESSAGE}")
        }
    }
}

fn quiet_planted_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let planted = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m == PANIC_MESSAGE);
        if !planted {
            default(info);
        }
    }));
}

struct Layers {
    retry: Retry,
    bulkhead: Bulkhead,
    breaker: CircuitBreaker,
}

/// One request; returns how long each bulkhead refusal took.
async fn request(layers: Arc<Layers>, answers: Vec<Answer>) -> Vec<Duration> {
    let refusals = std::sync::Mutex::new(Vec::new());
    let _ = layers
        .retry
        .run(
            |attempt| {
                let answer = answers[attempt as usize % answers.len()];
                let layers = Arc::clone(&layers);
                let refusals = &refusals;
                async move {
                    if crate::planted()
                        && ATTEMPTS.fetch_add(1, Ordering::Relaxed) % 500 == 499
                        && let Ok(permit) = layers.bulkhead.try_acquire()
                    {
                        std::mem::forget(permit); // planted: a request that keeps its slot
                    }
                    let start = Instant::now();
                    match layers
                        .bulkhead
                        .call_async(layers.breaker.call_async(inner(answer)))
                        .await
                    {
                        Ok(Ok(v)) => Ok(v),
                        Ok(Err(CallError::Rejected(_))) => Err("rejected by the breaker"),
                        Ok(Err(_)) => Err("failed"),
                        Err(_full) => {
                            refusals
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(start.elapsed());
                            Err("bulkhead full")
                        }
                    }
                }
            },
            |_| true,
        )
        .await;
    refusals.into_inner().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn run(time: Duration, seed: u64) -> Result<Row, String> {
    quiet_planted_panics();
    let layers = Arc::new(Layers {
        retry: Retry::builder()
            .max_attempts(3)
            .build()
            .map_err(|e| e.to_string())?,
        bulkhead: Bulkhead::with_max_wait(SLOTS, MAX_WAIT).map_err(|e| e.to_string())?,
        breaker: CircuitBreaker::builder()
            .consecutive_failures(4)
            .failure_rate(50.0)
            .slow_calls(50.0, SLOW)
            .window(Window::Count(10))
            .minimum_calls(10)
            .open_wait(OpenWait::Fixed(Duration::from_millis(30)))
            .half_open_probes(PROBES)
            .probe_timeout(Duration::from_millis(100))
            .build()
            .map_err(|e| e.to_string())?,
    });
    let mut rng = SmallRng::seed_from_u64(seed);
    runtime()?.block_on(async move {
        let deadline = Instant::now() + time;
        let (mut requests, mut cancelled, mut aborted, mut over) = (0_u64, 0, 0, 0);
        let mut refusals = Vec::new();
        let mut running: Vec<tokio::task::JoinHandle<Option<Vec<Duration>>>> = Vec::new();
        while Instant::now() < deadline {
            while running.len() < IN_FLIGHT {
                let answers: Vec<Answer> = (0..3)
                    .map(|_| match rng.random_range(0..10) {
                        0..=3 => Answer::Ok(Duration::from_millis(rng.random_range(0..10))),
                        4..=5 => Answer::Err(Duration::from_millis(rng.random_range(0..10))),
                        6..=7 => Answer::Slow,
                        _ => Answer::Panic,
                    })
                    .collect();
                // A timeout drops the request wherever it is parked: a cancellation.
                let cancel_after = Duration::from_millis(rng.random_range(1..150));
                let request = request(Arc::clone(&layers), answers);
                running.push(tokio::spawn(async move {
                    tokio::time::timeout(cancel_after, request).await.ok()
                }));
                requests += 1;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..5))).await;
            // The storm: abort a few requests wherever they are.
            for task in &running {
                if rng.random_bool(0.05) {
                    task.abort();
                    aborted += 1;
                }
            }
            let metrics = layers.breaker.metrics();
            over += beyond(layers.bulkhead.in_use() as u64, SLOTS as u64)
                + beyond(u64::from(metrics.probes_in_flight), u64::from(PROBES));
            let mut still = Vec::new();
            for task in running {
                if task.is_finished() {
                    match task.await {
                        Ok(Some(durations)) => refusals.extend(durations),
                        Ok(None) => cancelled += 1,
                        Err(_) => {} // aborted or unwound: counted above
                    }
                } else {
                    still.push(task);
                }
            }
            running = still;
        }
        for task in running {
            if let Ok(Some(durations)) = task.await {
                refusals.extend(durations);
            }
        }
        let panics = PANICS.load(Ordering::Relaxed);
        // Every request has ended: nothing may be held.
        let leaked =
            layers.bulkhead.in_use() as u64 + u64::from(layers.breaker.metrics().probes_in_flight);
        eprintln!(
            "soak: breaker: {requests} requests, {cancelled} timed out, {aborted} aborted, \
             {panics} inner panics, {} bulkhead refusals; state {:?}",
            refusals.len(),
            layers.breaker.state()
        );
        let mut row = Row::new("breaker-bulkhead-retry");
        row.faults = vec![
            ("timeouts", cancelled),
            ("aborts", aborted),
            ("panics", panics),
        ];
        row.operations = requests;
        row.add(Anomaly::LeakedPermits, leaked + over);
        row.add(
            Anomaly::LateReturns,
            late_returns(&refusals, MAX_WAIT + SLACK) as u64,
        );
        Ok(row)
    })
}
