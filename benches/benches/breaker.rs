//! Circuit breaker, retry and bulkhead: the cost of guarding a call when nothing fails,
//! keel beside failsafe and recloser.
//!
//! `cargo bench -p keel-benches --bench breaker`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use keel_breaker::{Backoff, Bulkhead, CircuitBreaker, Retry, RetryBudget, Window};

fn keel_count_window() -> CircuitBreaker {
    CircuitBreaker::builder()
        .failure_rate(50.0)
        .window(Window::Count(100))
        .minimum_calls(100)
        .build()
        .expect("valid breaker")
}

fn keel_consecutive() -> CircuitBreaker {
    CircuitBreaker::builder()
        .no_failure_rate()
        .consecutive_failures(5)
        .build()
        .expect("valid breaker")
}

fn keel_time_window() -> CircuitBreaker {
    CircuitBreaker::builder()
        .failure_rate(50.0)
        .window(Window::Time {
            length: Duration::from_secs(10),
            buckets: 10,
        })
        .build()
        .expect("valid breaker")
}

fn keel_slow_calls() -> CircuitBreaker {
    CircuitBreaker::builder()
        .failure_rate(50.0)
        .slow_calls(50.0, Duration::from_secs(1))
        .window(Window::Count(100))
        .build()
        .expect("valid breaker")
}

fn recloser() -> recloser::Recloser {
    recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(100)
        .build()
}

/// failsafe's default: a success-rate time window or consecutive failures, behind a mutex.
fn failsafe() -> impl failsafe::CircuitBreaker + Send + Sync + 'static {
    failsafe::Config::new().build()
}

/// A guarded call of one implementation, as a closure the benches can share across threads.
type Guarded = Arc<dyn Fn() -> u64 + Send + Sync>;

fn implementations() -> Vec<(&'static str, Guarded)> {
    let count = Arc::new(keel_count_window());
    let permit = Arc::new(keel_count_window());
    let consecutive = Arc::new(keel_consecutive());
    let time = Arc::new(keel_time_window());
    let slow = Arc::new(keel_slow_calls());
    let recloser = Arc::new(recloser());
    let failsafe = Arc::new(failsafe());
    vec![
        (
            "keel count window",
            Arc::new(move || count.call(|| Ok::<_, ()>(black_box(1u64))).unwrap_or(0)),
        ),
        (
            "keel permit API",
            Arc::new(move || match permit.try_acquire() {
                Ok(p) => {
                    let value = black_box(1u64);
                    p.success();
                    value
                }
                Err(_) => 0,
            }),
        ),
        (
            "keel consecutive failures",
            Arc::new(move || {
                consecutive
                    .call(|| Ok::<_, ()>(black_box(1u64)))
                    .unwrap_or(0)
            }),
        ),
        (
            "keel time window",
            Arc::new(move || time.call(|| Ok::<_, ()>(black_box(1u64))).unwrap_or(0)),
        ),
        (
            "keel slow-call timing",
            Arc::new(move || slow.call(|| Ok::<_, ()>(black_box(1u64))).unwrap_or(0)),
        ),
        (
            "recloser",
            Arc::new(move || recloser.call(|| Ok::<_, ()>(black_box(1u64))).unwrap_or(0)),
        ),
        (
            "failsafe",
            Arc::new(move || failsafe.call(|| Ok::<_, ()>(black_box(1u64))).unwrap_or(0)),
        ),
    ]
}

fn closed_one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("guarded call, closed, 1 thread");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group.bench_function(BenchmarkId::new("call", "unguarded"), |b| {
        b.iter(|| black_box(Ok::<_, ()>(black_box(1u64))).unwrap_or(0))
    });
    for (name, guarded) in implementations() {
        group.bench_function(BenchmarkId::new("call", name), |b| b.iter(|| guarded()));
    }
    group.finish();
}

fn closed_two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("guarded call, closed, 2 threads, one breaker");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    // Each iteration is one call on each thread: elements/s is the aggregate throughput.
    group.throughput(Throughput::Elements(2));
    for (name, guarded) in implementations() {
        group.bench_function(BenchmarkId::new("call", name), |b| {
            b.iter_custom(|iters| {
                let barrier = Arc::new(Barrier::new(3));
                let workers: Vec<_> = (0..2)
                    .map(|_| {
                        let (guarded, barrier) = (guarded.clone(), barrier.clone());
                        std::thread::spawn(move || {
                            barrier.wait();
                            for _ in 0..iters {
                                black_box(guarded());
                            }
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                for worker in workers {
                    worker.join().expect("worker");
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// Polls a future that never waits, once, without a runtime.
fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the benched futures never wait"),
    }
}

fn retry_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry, nothing fails");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    let plain = Retry::builder()
        .max_attempts(3)
        .backoff(Backoff::exponential(Duration::from_millis(10)))
        .build()
        .expect("valid retry");
    let budget = Arc::new(RetryBudget::builder().build().expect("valid budget"));
    let budgeted = Retry::builder()
        .max_attempts(3)
        .budget(budget)
        .build()
        .expect("valid retry");
    group.bench_function(BenchmarkId::new("call", "no retry"), |b| {
        b.iter(|| run_ready(async { Ok::<_, ()>(black_box(1u64)) }))
    });
    group.bench_function(BenchmarkId::new("call", "keel Retry::run"), |b| {
        b.iter(|| run_ready(plain.run(|_| async { Ok::<_, ()>(black_box(1u64)) }, |_| true)))
    });
    group.bench_function(BenchmarkId::new("call", "keel Retry::run + budget"), |b| {
        b.iter(|| run_ready(budgeted.run(|_| async { Ok::<_, ()>(black_box(1u64)) }, |_| true)))
    });
    group.finish();
}

fn bulkhead_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulkhead, never full");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    let bulkhead = Bulkhead::new(64).expect("valid bulkhead");
    let semaphore = tokio::sync::Semaphore::new(64);
    group.bench_function(BenchmarkId::new("acquire+release", "keel Bulkhead"), |b| {
        b.iter(|| bulkhead.call(|| black_box(1u64)))
    });
    group.bench_function(
        BenchmarkId::new("acquire+release", "tokio Semaphore"),
        |b| {
            b.iter(|| {
                let permit = semaphore.try_acquire();
                black_box(1u64);
                drop(permit)
            })
        },
    );
    group.finish();
}

criterion_group!(
    benches,
    closed_one_thread,
    closed_two_threads,
    retry_overhead,
    bulkhead_overhead
);
criterion_main!(benches);
