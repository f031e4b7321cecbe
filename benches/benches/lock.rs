//! Locks: what a lease costs beside a plain mutex (in memory) and beside rslock's Redlock and
//! a bare SET/DEL pair (Redis), and what the fence check costs.
//!
//! `cargo bench -p keel-benches --bench lock`
//!
//! The Redis groups start their own `redis-server` through keel-testkit (Debian package
//! `redis-server`); they are skipped with a message when it is missing. The engine group
//! puts in-memory, one Redis and a 3-member etcd cluster (Debian package `etcd-server`) side
//! by side, in one run:
//!
//! `cargo bench -p keel-benches --bench lock -- "by engine"`

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keel_lock::{
    DynLockService, EtcdLockService, Fence, FencingToken, InMemoryLockService, KeepAlive,
    LockService, RedisLockService,
};
use keel_testkit::{EtcdCluster, RedisServer};

const TTL: Duration = Duration::from_secs(30);

/// Polls a future that completes without waiting (an uncontended lock) once, with no runtime.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an uncontended lock had to wait"),
    }
}

/// Runs `iters` rounds of `op` inside one task of a current-thread tokio runtime, as users
/// run the async API, and times them.
fn in_runtime<F, Fut>(runtime: &tokio::runtime::Runtime, iters: u64, op: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            op().await;
        }
        start.elapsed()
    })
}

fn in_memory(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock acquire+release, one name, uncontended, in memory");
    let op = "acquire+release";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let locks = InMemoryLockService::new();
    group.bench_function(
        BenchmarkId::new(op, "keel InMemoryLockService (in a runtime)"),
        |b| {
            b.iter_custom(|iters| {
                in_runtime(&runtime, iters, || async {
                    let lease = locks
                        .acquire(black_box("orders"), TTL, Duration::ZERO)
                        .await
                        .expect("free");
                    locks.release(&lease).await.expect("held");
                })
            })
        },
    );
    let handle = locks.handle("orders").expect("a name");
    group.bench_function(
        BenchmarkId::new(op, "keel LockHandle (in a runtime)"),
        |b| {
            b.iter_custom(|iters| {
                in_runtime(&runtime, iters, || async {
                    let lease = black_box(&handle)
                        .acquire(TTL, Duration::ZERO)
                        .await
                        .expect("free");
                    handle.release_now(&lease).expect("held");
                })
            })
        },
    );
    let mutex = tokio::sync::Mutex::new(0u64);
    group.bench_function(
        BenchmarkId::new(op, "tokio::sync::Mutex (in a runtime)"),
        |b| {
            b.iter_custom(|iters| {
                in_runtime(&runtime, iters, || async {
                    *black_box(&mutex).lock().await += 1;
                })
            })
        },
    );
    group.bench_function(
        BenchmarkId::new(op, "keel InMemoryLockService (sync twins)"),
        |b| {
            b.iter(|| {
                let lease = locks
                    .try_acquire_now(black_box("orders"), TTL)
                    .expect("valid")
                    .expect("free");
                locks.release_now(&lease).expect("held");
            })
        },
    );
    group.bench_function(BenchmarkId::new(op, "keel LockHandle (sync)"), |b| {
        b.iter(|| {
            let lease = black_box(&handle)
                .try_acquire_now(TTL)
                .expect("valid")
                .expect("free");
            handle.release_now(&lease).expect("held");
        })
    });
    group.bench_function(
        BenchmarkId::new(op, "keel LockHandle acquire_blocking (sync)"),
        |b| {
            b.iter(|| {
                let lease = black_box(&handle)
                    .acquire_blocking(TTL, Duration::from_secs(60))
                    .expect("free");
                handle.release_now(&lease).expect("held");
            })
        },
    );
    let mutex = parking_lot::Mutex::new(0u64);
    group.bench_function(BenchmarkId::new(op, "parking_lot::Mutex"), |b| {
        b.iter(|| *black_box(&mutex).lock() += 1)
    });
    // What a lease adds to a mutex at the least: a clock reading to set the expiry and one to
    // check it at release (the coarse `recent` readings the in-memory service takes).
    let clock = keel_core::SystemClock;
    group.bench_function(
        BenchmarkId::new(op, "floor: parking_lot::Mutex + 2 recent clock readings"),
        |b| {
            b.iter(|| {
                let expires_at = keel_core::Clock::recent(black_box(&clock)) + TTL;
                *black_box(&mutex).lock() += 1;
                black_box(keel_core::Clock::recent(black_box(&clock)) < expires_at);
            })
        },
    );
    let mutex = std::sync::Mutex::new(0u64);
    group.bench_function(BenchmarkId::new(op, "std::sync::Mutex"), |b| {
        b.iter(|| *black_box(&mutex).lock().expect("not poisoned") += 1)
    });
    // Polled once with no runtime: what the lock's own code costs, without tokio's.
    group.bench_function(
        BenchmarkId::new(op, "keel InMemoryLockService (polled, no runtime)"),
        |b| {
            b.iter(|| {
                let lease = ready(locks.try_acquire(black_box("orders"), TTL))
                    .expect("valid")
                    .expect("free");
                ready(locks.release(&lease)).expect("held");
            })
        },
    );
    group.finish();

    // Two threads taking and releasing one name as fast as they can: elements/s is the pair's
    // throughput of grants (a failed try counts nothing).
    let mut group = c.benchmark_group("lock, one name, 2 threads, sync");
    group.throughput(Throughput::Elements(2));
    let locks = Arc::new(InMemoryLockService::new());
    group.bench_function(
        BenchmarkId::new("acquire+release", "keel InMemoryLockService (sync twins)"),
        |b| {
            b.iter_custom(|iters| {
                on_two_threads(iters, || {
                    loop {
                        if let Some(lease) = locks.try_acquire_now("orders", TTL).expect("valid") {
                            locks.release_now(&lease).expect("held");
                            break;
                        }
                        std::hint::spin_loop();
                    }
                })
            })
        },
    );
    let handle = locks.handle("orders").expect("a name");
    group.bench_function(
        BenchmarkId::new(
            "acquire+release",
            "keel LockHandle (sync, one clone per thread)",
        ),
        |b| {
            b.iter_custom(|iters| {
                let handles = [handle.clone(), handle.clone()];
                on_two_threads_each(iters, &handles, |handle| {
                    loop {
                        if let Some(lease) = handle.try_acquire_now(TTL).expect("valid") {
                            handle.release_now(&lease).expect("held");
                            break;
                        }
                        std::hint::spin_loop();
                    }
                })
            })
        },
    );
    group.bench_function(
        BenchmarkId::new(
            "acquire+release",
            "keel LockHandle acquire_blocking (one clone per thread)",
        ),
        |b| {
            b.iter_custom(|iters| {
                let handles = [handle.clone(), handle.clone()];
                on_two_threads_each(iters, &handles, |handle| {
                    let lease = handle
                        .acquire_blocking(TTL, Duration::from_secs(60))
                        .expect("granted");
                    handle.release_now(&lease).expect("held");
                })
            })
        },
    );
    group.bench_function(
        BenchmarkId::new(
            "acquire+release",
            "keel InMemoryLockService acquire_blocking (by name)",
        ),
        |b| {
            b.iter_custom(|iters| {
                on_two_threads(iters, || {
                    let lease = locks
                        .acquire_blocking("orders", TTL, Duration::from_secs(60))
                        .expect("granted");
                    locks.release_now(&lease).expect("held");
                })
            })
        },
    );
    let mutex = Arc::new(parking_lot::Mutex::new(0u64));
    group.bench_function(
        BenchmarkId::new("acquire+release", "parking_lot::Mutex"),
        |b| b.iter_custom(|iters| on_two_threads(iters, || *mutex.lock() += 1)),
    );
    // The lease's sync API only tries, so its callers spin as above; the same spin around
    // `try_lock` shows what that loop costs a mutex (`lock` backs off and parks instead).
    group.bench_function(
        BenchmarkId::new(
            "acquire+release",
            "parking_lot::Mutex try_lock, same spin loop",
        ),
        |b| {
            b.iter_custom(|iters| {
                on_two_threads(iters, || {
                    loop {
                        if let Some(mut held) = mutex.try_lock() {
                            *held += 1;
                            break;
                        }
                        std::hint::spin_loop();
                    }
                })
            })
        },
    );
    group.finish();
}

/// Runs `op` `iters` times on each of two threads and times the pair.
fn on_two_threads(iters: u64, op: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..iters {
                    op();
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // The scope joins both threads before it returns.
        start
    })
    .elapsed()
}

/// Runs `op` `iters` times on each of two threads, each with its own state, and times the pair.
fn on_two_threads_each<T: Sync>(iters: u64, states: &[T; 2], op: impl Fn(&T) + Sync) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|scope| {
        for state in states {
            let (barrier, op) = (&barrier, &op);
            scope.spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    op(state);
                }
            });
        }
        barrier.wait();
        Instant::now()
    })
    .elapsed()
}

fn fence(c: &mut Criterion) {
    let mut group = c.benchmark_group("fence check-and-advance, one thread");
    let fence = Fence::new();
    let mut token = 0u64;
    group.bench_function(
        BenchmarkId::new("advance, newer token", "keel Fence"),
        |b| {
            b.iter(|| {
                token += 1;
                fence.advance(FencingToken::new(black_box(token)))
            })
        },
    );
    let current = fence.highest();
    group.bench_function(BenchmarkId::new("advance, same token", "keel Fence"), |b| {
        b.iter(|| fence.advance(black_box(current)))
    });
    group.bench_function(
        BenchmarkId::new("advance, stale token", "keel Fence"),
        |b| b.iter(|| fence.advance(black_box(FencingToken::new(1)))),
    );
    let atomic = AtomicU64::new(0);
    let mut value = 0u64;
    group.bench_function(
        BenchmarkId::new("advance, newer token", "AtomicU64::fetch_max (floor)"),
        |b| {
            b.iter(|| {
                value += 1;
                atomic.fetch_max(black_box(value), Ordering::AcqRel)
            })
        },
    );
    group.finish();
}

fn redis(c: &mut Criterion) {
    let server = match RedisServer::start() {
        Ok(server) => server,
        Err(error) => {
            eprintln!("skipping the Redis lock benches: {error}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let url = server.url();
    let keel = runtime
        .block_on(RedisLockService::connect(&url))
        .expect("connect keel");
    let mut plain = runtime
        .block_on(async {
            let client = redis::Client::open(url.as_str())?;
            redis::aio::ConnectionManager::new(client).await
        })
        .expect("connect redis");
    let rslock = rslock::LockManager::new(vec![url.clone()]);

    let mut group = c.benchmark_group("lock acquire+release, one name, uncontended, one Redis");
    let op = "acquire+release";
    group.bench_function(BenchmarkId::new(op, "keel RedisLockService"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let lease = keel
                    .try_acquire("orders", TTL)
                    .await
                    .expect("redis up")
                    .expect("free");
                keel.release(&lease).await.expect("held");
            })
        })
    });
    group.bench_function(BenchmarkId::new(op, "rslock LockManager (1 server)"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let lock = rslock.lock("orders-rslock", TTL).await.expect("free");
                rslock.unlock(&lock).await;
            })
        })
    });
    group.bench_function(BenchmarkId::new(op, "SET NX PX + DEL (floor)"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let set: Option<String> = redis::cmd("SET")
                    .arg("orders-plain")
                    .arg("1")
                    .arg("NX")
                    .arg("PX")
                    .arg(30_000)
                    .query_async(&mut plain)
                    .await
                    .expect("redis up");
                assert!(set.is_some(), "free");
                let _: i64 = redis::cmd("DEL")
                    .arg("orders-plain")
                    .query_async(&mut plain)
                    .await
                    .expect("redis up");
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("fenced write, one Redis");
    let fence = keel.fence("{doc}:fence");
    let mut token = 0u64;
    group.bench_function(BenchmarkId::new("write", "keel RedisFence::set"), |b| {
        b.iter(|| {
            token += 1;
            runtime
                .block_on(fence.set(FencingToken::new(token), "{doc}:body", "v"))
                .expect("newer token")
        })
    });
    group.bench_function(BenchmarkId::new("write", "SET (floor)"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let _: () = redis::cmd("SET")
                    .arg("{doc}:plain")
                    .arg("v")
                    .query_async(&mut plain)
                    .await
                    .expect("redis up");
            })
        })
    });
    group.finish();
    drop(server);
}

/// What the run-time backend and the clock-read lost signal cost.
fn dyn_and_lost(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock acquire+release, one name, in memory, static or dyn");
    let op = "acquire+release";
    let locks = InMemoryLockService::new();
    group.bench_function(BenchmarkId::new(op, "keel InMemoryLockService"), |b| {
        b.iter(|| {
            let lease = ready(locks.try_acquire(black_box("orders"), TTL))
                .expect("valid")
                .expect("free");
            ready(locks.release(&lease)).expect("held");
        })
    });
    let boxed: std::sync::Arc<dyn DynLockService> = std::sync::Arc::new(locks.clone());
    group.bench_function(BenchmarkId::new(op, "keel Arc<dyn DynLockService>"), |b| {
        b.iter(|| {
            let lease = ready(boxed.try_acquire(black_box("orders"), TTL))
                .expect("valid")
                .expect("free");
            ready(boxed.release(&lease)).expect("held");
        })
    });
    group.finish();

    let mut group = c.benchmark_group("lease still valid?, one thread");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    let lease = locks
        .try_acquire_now("held", TTL)
        .expect("valid")
        .expect("free");
    let guard = KeepAlive::new()
        .start(locks.clone(), lease)
        .expect("runtime");
    let lost = guard.lost();
    group.bench_function(BenchmarkId::new("check", "keel LostLease::is_lost"), |b| {
        b.iter(|| black_box(&lost).is_lost())
    });
    let clock = keel_core::SystemClock;
    group.bench_function(
        BenchmarkId::new("check", "SystemClock::now alone (floor)"),
        |b| b.iter(|| keel_core::Clock::now(black_box(&clock))),
    );
    group.finish();
}

/// What strength costs: the same acquire+release on each engine, through the same trait, on
/// one tokio runtime. etcd's runs four Raft writes (grant, create, delete, revoke).
fn engines(c: &mut Criterion) {
    let (server, cluster) = match (RedisServer::start(), EtcdCluster::start()) {
        (Ok(server), Ok(cluster)) => (server, cluster),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("skipping the lock engine benches: {error}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let memory = InMemoryLockService::new();
    let redis = runtime
        .block_on(RedisLockService::connect(&server.url()))
        .expect("connect redis");
    let etcd = runtime
        .block_on(EtcdLockService::connect(&cluster.endpoints()))
        .expect("connect etcd");

    async fn cycle<S: LockService>(locks: &S) {
        let lease = locks
            .try_acquire("orders", TTL)
            .await
            .expect("server up")
            .expect("free");
        locks.release(&lease).await.expect("held");
    }

    let mut group = c.benchmark_group("lock acquire+release, one name, uncontended, by engine");
    let op = "acquire+release";
    group.bench_function(BenchmarkId::new(op, "in memory"), |b| {
        b.iter(|| runtime.block_on(cycle(&memory)))
    });
    group.bench_function(BenchmarkId::new(op, "Redis, one server"), |b| {
        b.iter(|| runtime.block_on(cycle(&redis)))
    });
    group.bench_function(BenchmarkId::new(op, "etcd, 3 members"), |b| {
        b.iter(|| runtime.block_on(cycle(&etcd)))
    });
    group.finish();
    drop((server, cluster));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500));
    targets = in_memory, fence, redis, dyn_and_lost, engines
}
criterion_main!(benches);
