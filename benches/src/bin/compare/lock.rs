//! `compare lock`: how leases behave under contention, and what the fence catches when
//! holders pause.
//!
//! Two tables, both generated here:
//! - contention: N tasks on a 2-worker tokio runtime take turns on one name for a fixed time;
//!   each holds across one `.await`; grants per second, the wait for each grant, fairness,
//!   and a check that no two were
//!   inside at once and tokens only went up (tokio's fair mutex beside it as the reference);
//! - pauses: a simulation on a manual clock where lock holders sometimes stall past their
//!   lease before writing; how many stale writes a store without a fence accepts, and how
//!   many the `Fence` lets through (always none).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keel_core::{Clock, ManualClock};
use keel_lock::{Fence, InMemoryLockService, Lease, LockService};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const RUN_FOR: Duration = Duration::from_millis(400);
const TTL: Duration = Duration::from_secs(30);

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("`compare lock` takes no options, got `{extra}`"));
    }
    contention()?;
    println!();
    pauses();
    Ok(())
}

/// What one contention run measured.
struct Outcome {
    grants: Vec<u64>,
    waits: Vec<Duration>,
    safe: bool,
}

/// A few hundred nanoseconds of work inside the critical section.
fn work() {
    let mut x = 0u64;
    for i in 0..200 {
        x = black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    black_box(x);
}

fn contention() -> Result<(), String> {
    println!(
        "### One name, N contenders holding it across one `.await`, {RUN_FOR:?} each (tokio, 2 worker threads)\n"
    );
    println!(
        "| contenders | lock | grants/s | wait p50 (µs) | wait p99 (µs) | wait max (µs) | grants per contender (min–max) | exclusion and token order |"
    );
    println!("|---:|---|---:|---:|---:|---:|---|---|");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    for contenders in [1usize, 2, 4, 8] {
        let keel = runtime.block_on(keel_contention(contenders, false))?;
        print_row(contenders, "keel InMemoryLockService (by name)", &keel);
        let keel = runtime.block_on(keel_contention(contenders, true))?;
        print_row(contenders, "keel LockHandle", &keel);
        let tokio_mutex = runtime.block_on(tokio_contention(contenders))?;
        print_row(contenders, "tokio::sync::Mutex (no tokens)", &tokio_mutex);
    }
    Ok(())
}

fn print_row(contenders: usize, name: &str, outcome: &Outcome) {
    let total: u64 = outcome.grants.iter().sum();
    let mut waits = outcome.waits.clone();
    waits.sort_unstable();
    let at = |q: f64| {
        waits
            .get(((waits.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    let min = outcome.grants.iter().min().copied().unwrap_or(0);
    let max = outcome.grants.iter().max().copied().unwrap_or(0);
    println!(
        "| {contenders} | {name} | {:.0} | {:.1} | {:.1} | {:.0} | {min}–{max} | {} |",
        total as f64 / RUN_FOR.as_secs_f64(),
        at(0.5),
        at(0.99),
        at(1.0),
        if outcome.safe { "held" } else { "BROKEN" }
    );
}

/// Contenders on one name, asking by name or each through its own `LockHandle`.
async fn keel_contention(contenders: usize, by_handle: bool) -> Result<Outcome, String> {
    let locks = InMemoryLockService::new();
    let inside = Arc::new(AtomicUsize::new(0));
    let last_token = Arc::new(AtomicU64::new(0));
    let safe = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..contenders {
        let (locks, inside, last_token, safe, stop) = (
            locks.clone(),
            inside.clone(),
            last_token.clone(),
            safe.clone(),
            stop.clone(),
        );
        let handle = locks.handle("hot").map_err(|e| e.to_string())?;
        tasks.push(tokio::spawn(async move {
            let mut grants = 0u64;
            let mut waits = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let lease = if by_handle {
                    handle.acquire(TTL, Duration::from_secs(10)).await
                } else {
                    locks.acquire("hot", TTL, Duration::from_secs(10)).await
                }
                .map_err(|e| e.to_string())?;
                waits.push(asked.elapsed());
                if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    safe.store(false, Ordering::SeqCst);
                }
                // Recorded while held, so these are in grant order.
                if lease.token().get() <= last_token.swap(lease.token().get(), Ordering::SeqCst) {
                    safe.store(false, Ordering::SeqCst);
                }
                work();
                // An await while holding, as a holder doing I/O would: others queue up.
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                if by_handle {
                    handle.release_now(&lease)
                } else {
                    locks.release(&lease).await
                }
                .map_err(|e| e.to_string())?;
                grants += 1;
            }
            Ok::<_, String>((grants, waits))
        }));
    }
    collect(tasks, stop, safe).await
}

async fn tokio_contention(contenders: usize) -> Result<Outcome, String> {
    let mutex = Arc::new(tokio::sync::Mutex::new(0u64));
    let inside = Arc::new(AtomicUsize::new(0));
    let safe = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..contenders {
        let (mutex, inside, safe, stop) =
            (mutex.clone(), inside.clone(), safe.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut grants = 0u64;
            let mut waits = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let mut guard = mutex.lock().await;
                waits.push(asked.elapsed());
                if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    safe.store(false, Ordering::SeqCst);
                }
                *guard += 1;
                work();
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
                grants += 1;
            }
            Ok::<_, String>((grants, waits))
        }));
    }
    collect(tasks, stop, safe).await
}

type Task = tokio::task::JoinHandle<Result<(u64, Vec<Duration>), String>>;

async fn collect(
    tasks: Vec<Task>,
    stop: Arc<AtomicBool>,
    safe: Arc<AtomicBool>,
) -> Result<Outcome, String> {
    tokio::time::sleep(RUN_FOR).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcome = Outcome {
        grants: Vec::new(),
        waits: Vec::new(),
        safe: true,
    };
    for task in tasks {
        let (grants, waits) = task.await.map_err(|e| e.to_string())??;
        outcome.grants.push(grants);
        outcome.waits.extend(waits);
    }
    outcome.safe = safe.load(Ordering::SeqCst);
    Ok(outcome)
}

/// A worker in the pause simulation.
enum Worker {
    Idle,
    /// Holds (or held) `lease` and writes at `write_at`.
    Working {
        lease: Lease,
        write_at: keel_core::Instant,
    },
}

fn pauses() {
    const WORKERS: usize = 8;
    const STEP: Duration = Duration::from_millis(10);
    const STEPS: usize = 20_000;
    let ttl = Duration::from_millis(100);
    let work = Duration::from_millis(20);
    println!(
        "### Holders that stall: {WORKERS} workers, lease TTL {ttl:?}, work {work:?}, a stall lasts 0–5 TTLs\n"
    );
    println!("(simulated on a manual clock: {STEPS} steps of {STEP:?}, seed 7)\n");
    println!(
        "| stalls | writes | written after the lease ran out | stale writes accepted, no fence | stale writes accepted, Fence | rejected by the Fence |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for stall_chance in [0.0, 0.01, 0.05, 0.2] {
        let clock = ManualClock::new();
        let locks = InMemoryLockService::with_clock(clock.clone());
        let fence = Fence::new();
        let mut rng = SmallRng::seed_from_u64(7);
        let mut workers: Vec<Worker> = (0..WORKERS).map(|_| Worker::Idle).collect();
        let (mut writes, mut late, mut naive_stale, mut fenced_stale, mut rejected) =
            (0, 0, 0, 0, 0);
        let mut newest_written = 0u64; // what a store without a fence has seen
        for _ in 0..STEPS {
            let now = clock.now();
            for worker in workers.iter_mut() {
                match worker {
                    Worker::Idle => {
                        if let Ok(Some(lease)) = locks.try_acquire_now("ledger", ttl) {
                            let busy = if rng.random_bool(stall_chance) {
                                ttl.mul_f64(rng.random_range(0.0..5.0))
                            } else {
                                work
                            };
                            *worker = Worker::Working {
                                write_at: now + busy,
                                lease,
                            };
                        }
                    }
                    Worker::Working { lease, write_at } if *write_at <= now => {
                        let token = lease.token();
                        writes += 1;
                        if lease.is_expired(now) {
                            late += 1;
                        }
                        if token.get() < newest_written {
                            naive_stale += 1;
                        }
                        newest_written = newest_written.max(token.get());
                        match fence.advance(token) {
                            Ok(_) if token.get() < newest_written => fenced_stale += 1,
                            Ok(_) => {}
                            Err(_) => rejected += 1,
                        }
                        let _ = locks.release_now(lease);
                        *worker = Worker::Idle;
                    }
                    Worker::Working { .. } => {}
                }
            }
            clock.advance(STEP);
        }
        println!(
            "| {:.0}% | {writes} | {late} | {naive_stale} | {fenced_stale} | {rejected} |",
            stall_chance * 100.0
        );
    }
}
