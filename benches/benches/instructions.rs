//! Instruction counts of every block's hot path, keel beside its peers, under valgrind's
//! callgrind. Unlike wall time, a count does not move with the machine's load, so a
//! regression shows as a number that changed.
//!
//! `cargo bench -p keel-benches --bench instructions` runs every case and prints a table;
//! a filter argument keeps the cases whose name contains it
//! (`cargo bench -p keel-benches --bench instructions -- lock`). It needs `valgrind`
//! (Debian package `valgrind`) and says so when it is missing.
//!
//! Each case runs in its own process under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=<measured loop>`: the
//! state is built and warmed up uncounted, then only the loop of `ITERATIONS` calls is
//! counted. A row is the loop's instructions divided by its calls, so it includes the
//! loop's own few instructions per call (the `floor` row).

// A bench binary: its helpers need no docs.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::process::Command;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use keel_benches::hashring::{
    keel_jump, keel_ketama, keel_maglev, keel_multi_probe, keel_rendezvous, keel_ring, keys,
};
use keel_benches::idgen::{bench_policy, wide_layout};
use keel_breaker::{CircuitBreaker, Window};
use keel_hashring::ConsistentHash;
use keel_idgen::{
    LocalUlidGenerator, LocalUuidV7Generator, Snowflake, UlidGenerator, UuidV7Generator,
};
use keel_lock::{InMemoryLockService, LockService};
use keel_rate_limit::{CompactKeyedLimiter, Gcra, KeyedLimiter, Limiter, Quota, RateLimit};

/// Calls counted per case.
const ITERATIONS: u64 = 20_000;
/// Uncounted calls before them, so caches, tables and thread-locals are warm.
const WARM_UP: u64 = 2_000;
/// The name callgrind's `--toggle-collect` matches.
const MEASURED: &str = "*keel_icount_measured*";

/// One operation under test: builds its state and returns the call to count.
struct Case {
    block: &'static str,
    operation: &'static str,
    implementation: &'static str,
    setup: fn() -> Box<dyn FnMut()>,
}

impl Case {
    fn name(&self) -> String {
        format!(
            "{} / {} / {}",
            self.block, self.operation, self.implementation
        )
    }
}

/// Polls a future that completes without waiting (an uncontended lock) once.
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

/// Cycles through `count` keys, a power of two.
fn key_cycle(count: usize) -> impl FnMut() -> u64 {
    let keys = keys(count);
    let mut i = 0usize;
    move || {
        i = (i + 1) & (count - 1);
        keys[i]
    }
}

fn ring_nodes() -> Vec<u32> {
    (0..100).collect()
}

const TTL: Duration = Duration::from_secs(30);

fn cases() -> Vec<Case> {
    vec![
        Case {
            block: "floor",
            operation: "empty call",
            implementation: "loop only",
            setup: || Box::new(|| black_box(())),
        },
        // rate-limit
        Case {
            block: "rate-limit",
            operation: "check",
            implementation: "keel Gcra",
            setup: || {
                let limiter = Limiter::<Gcra>::new(Quota::per_second(1_000_000_000).expect("q"));
                Box::new(move || {
                    black_box(limiter.check().is_allowed());
                })
            },
        },
        Case {
            block: "rate-limit",
            operation: "check",
            implementation: "governor",
            setup: || {
                let limiter = governor::RateLimiter::direct(governor::Quota::per_second(
                    NonZeroU32::new(1_000_000_000).expect("non-zero"),
                ));
                Box::new(move || {
                    black_box(limiter.check().is_ok());
                })
            },
        },
        Case {
            block: "rate-limit",
            operation: "check_key, one key",
            implementation: "keel KeyedLimiter<u64, Gcra>",
            setup: || {
                let limiter =
                    KeyedLimiter::<u64, Gcra>::new(Quota::per_second(1_000_000_000).expect("q"));
                Box::new(move || {
                    black_box(limiter.check_key(black_box(&42)).is_allowed());
                })
            },
        },
        Case {
            block: "rate-limit",
            operation: "check_key, one key",
            implementation: "keel CompactKeyedLimiter",
            setup: || {
                let limiter =
                    CompactKeyedLimiter::new(Quota::per_second(1_000_000_000).expect("q"))
                        .expect("limiter");
                Box::new(move || {
                    black_box(limiter.check_key(black_box(42)).is_allowed());
                })
            },
        },
        Case {
            block: "rate-limit",
            operation: "check_key, one key",
            implementation: "governor keyed",
            setup: || {
                let limiter = governor::RateLimiter::<u64, _, _>::keyed(
                    governor::Quota::per_second(NonZeroU32::new(1_000_000_000).expect("non-zero")),
                );
                Box::new(move || {
                    black_box(limiter.check_key(black_box(&42)).is_ok());
                })
            },
        },
        // cache
        Case {
            block: "cache",
            operation: "get, hit, 4,096 keys",
            implementation: "keel Cache",
            setup: || keel_cache_gets(0),
        },
        // The row above reads each key about five times, so a third of its counted reads are a
        // key's first two, which count into the sketch; here every key was read twice before.
        Case {
            block: "cache",
            operation: "get, hit, 4,096 keys, each read twice before",
            implementation: "keel Cache",
            setup: || keel_cache_gets(2),
        },
        Case {
            block: "cache",
            operation: "get, hit, 4,096 keys",
            implementation: "quick_cache",
            setup: || {
                let cache = seeded_quick_cache(8192);
                for k in 0..4096u64 {
                    cache.insert(k, k);
                }
                let mut k = 0u64;
                Box::new(move || {
                    k = (k + 1) & 4095;
                    black_box(cache.get(&k));
                })
            },
        },
        Case {
            block: "cache",
            operation: "insert, new keys, full (evicts)",
            implementation: "keel Cache",
            setup: || {
                let cache = seeded_keel_cache(4096);
                let mut k = 0u64;
                Box::new(move || {
                    k += 1;
                    cache.insert(k, k);
                })
            },
        },
        Case {
            block: "cache",
            operation: "insert, new keys, full (evicts)",
            implementation: "quick_cache",
            setup: || {
                let cache = seeded_quick_cache(4096);
                let mut k = 0u64;
                Box::new(move || {
                    k += 1;
                    cache.insert(k, k);
                })
            },
        },
        // hashring
        Case {
            block: "hashring",
            operation: "lookup, 100 nodes",
            implementation: "keel Ring (160 vnodes)",
            setup: || {
                let ring = keel_ring(&ring_nodes());
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    black_box(ring.node(&key()).copied());
                })
            },
        },
        // The same lookup through a shared handle: what a reader pays for the snapshot.
        // keel's `Shared` loads through arc-swap; a `RwLock<Arc<_>>` is the safe swap loom
        // could check (see hashring/tests/loom.rs for why keel does not use it).
        Case {
            block: "hashring",
            operation: "load + lookup, 100 nodes",
            implementation: "keel Shared<Ring> (arc-swap)",
            setup: || {
                let ring = keel_hashring::Shared::new(keel_ring(&ring_nodes()));
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    black_box(ring.load().node(&key()).copied());
                })
            },
        },
        Case {
            block: "hashring",
            operation: "load + lookup, 100 nodes",
            implementation: "RwLock<Arc<Ring>>",
            setup: || {
                let ring = std::sync::RwLock::new(std::sync::Arc::new(keel_ring(&ring_nodes())));
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    let snapshot = std::sync::Arc::clone(&ring.read().expect("not poisoned"));
                    black_box(snapshot.node(&key()).copied());
                })
            },
        },
        Case {
            block: "hashring",
            operation: "lookup, 100 nodes",
            implementation: "hashring (160 vnodes)",
            setup: || {
                let ring = keel_benches::hashring::peer_hashring(&ring_nodes());
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    black_box(ring.get(&key()).map(|v| v.node));
                })
            },
        },
        Case {
            block: "hashring",
            operation: "lookup, 100 nodes",
            implementation: "keel JumpHash",
            setup: || {
                let ring = keel_jump(&ring_nodes());
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    black_box(ring.node(&key()).copied());
                })
            },
        },
        Case {
            block: "hashring",
            operation: "lookup, 100 nodes",
            implementation: "keel Maglev",
            setup: || {
                let ring = keel_maglev(&ring_nodes());
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    black_box(ring.node(&key()).copied());
                })
            },
        },
        Case {
            block: "hashring",
            operation: "lookup, 100 nodes",
            implementation: "keel MultiProbe (21 probes)",
            setup: || {
                let ring = keel_multi_probe(&ring_nodes());
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    black_box(ring.node(&key()).copied());
                })
            },
        },
        Case {
            block: "hashring",
            operation: "lookup, 100 nodes",
            implementation: "keel Rendezvous",
            setup: || {
                let ring = keel_rendezvous(&ring_nodes());
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    black_box(ring.node(&key()).copied());
                })
            },
        },
        Case {
            block: "hashring",
            operation: "lookup, 100 nodes",
            implementation: "keel Ketama",
            setup: || {
                let ring = keel_ketama(&ring_nodes());
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    black_box(ring.node(&key()).map(|server| server.id));
                })
            },
        },
        Case {
            block: "hashring",
            operation: "3 replicas, 100 nodes",
            implementation: "keel Rendezvous",
            setup: || {
                let ring = keel_rendezvous(&ring_nodes());
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    let mut out = [None; 3];
                    black_box(ring.replicas(&key(), &mut out));
                })
            },
        },
        Case {
            block: "hashring",
            operation: "3 replicas, 100 nodes",
            implementation: "keel JumpHash",
            setup: || {
                let ring = keel_jump(&ring_nodes());
                let mut key = key_cycle(1 << 12);
                Box::new(move || {
                    let mut out = [None; 3];
                    black_box(ring.replicas(&key(), &mut out));
                })
            },
        },
        // idgen
        Case {
            block: "idgen",
            operation: "next, 1 thread",
            implementation: "keel Snowflake (wide layout)",
            setup: || {
                let generator = Snowflake::builder(wide_layout(), 0)
                    .on_clock_backwards(bench_policy())
                    .build()
                    .expect("valid");
                Box::new(move || {
                    black_box(generator.next_id().ok());
                })
            },
        },
        Case {
            block: "idgen",
            operation: "next, 1 thread",
            implementation: "keel UlidGenerator",
            setup: || {
                let generator = UlidGenerator::new();
                Box::new(move || {
                    black_box(generator.next_id().ok());
                })
            },
        },
        Case {
            block: "idgen",
            operation: "next, 1 thread",
            implementation: "keel UuidV7Generator",
            setup: || {
                let generator = UuidV7Generator::new();
                Box::new(move || {
                    black_box(generator.next_id().ok());
                })
            },
        },
        Case {
            block: "idgen",
            operation: "next, 1 thread",
            implementation: "keel LocalUlidGenerator",
            setup: || {
                let mut generator = LocalUlidGenerator::new();
                Box::new(move || {
                    black_box(generator.next_id().ok());
                })
            },
        },
        Case {
            block: "idgen",
            operation: "next, 1 thread",
            implementation: "keel LocalUuidV7Generator",
            setup: || {
                let mut generator = LocalUuidV7Generator::new();
                Box::new(move || {
                    black_box(generator.next_id().ok());
                })
            },
        },
        Case {
            block: "idgen",
            operation: "next, 1 thread",
            implementation: "ferroid thread_local new_ulid_mono",
            setup: || {
                Box::new(move || {
                    black_box(ferroid::generator::thread_local::Ulid::new_ulid_mono(
                        |_| std::thread::yield_now(),
                    ));
                })
            },
        },
        Case {
            block: "idgen",
            operation: "next, 1 thread",
            implementation: "ulid Generator (&mut)",
            setup: || {
                let mut generator = ulid::Generator::new();
                Box::new(move || {
                    black_box(generator.generate().ok());
                })
            },
        },
        // breaker
        Case {
            block: "breaker",
            operation: "call, closed",
            implementation: "keel count window",
            setup: || {
                let breaker = CircuitBreaker::builder()
                    .failure_rate(50.0)
                    .window(Window::Count(100))
                    .minimum_calls(100)
                    .build()
                    .expect("valid breaker");
                Box::new(move || {
                    black_box(breaker.call(|| Ok::<_, ()>(black_box(1u64))).ok());
                })
            },
        },
        Case {
            block: "breaker",
            operation: "call, closed",
            implementation: "keel time window",
            setup: || {
                let breaker = CircuitBreaker::builder()
                    .failure_rate(50.0)
                    .window(Window::Time {
                        length: Duration::from_secs(10),
                        buckets: 10,
                    })
                    .build()
                    .expect("valid breaker");
                Box::new(move || {
                    black_box(breaker.call(|| Ok::<_, ()>(black_box(1u64))).ok());
                })
            },
        },
        Case {
            block: "breaker",
            operation: "call, closed",
            implementation: "recloser",
            setup: || {
                let breaker = recloser::Recloser::custom()
                    .error_rate(0.5)
                    .closed_len(100)
                    .build();
                Box::new(move || {
                    black_box(breaker.call(|| Ok::<_, ()>(black_box(1u64))).ok());
                })
            },
        },
        // lock
        Case {
            block: "lock",
            operation: "acquire+release, uncontended",
            implementation: "keel InMemoryLockService (async)",
            setup: || {
                let locks = InMemoryLockService::new();
                Box::new(move || {
                    let lease = ready(locks.try_acquire(black_box("orders"), TTL))
                        .expect("valid")
                        .expect("free");
                    ready(locks.release(&lease)).expect("held");
                })
            },
        },
        Case {
            block: "lock",
            operation: "acquire+release, uncontended",
            implementation: "keel InMemoryLockService (sync twins)",
            setup: || {
                let locks = InMemoryLockService::new();
                Box::new(move || {
                    let lease = locks
                        .try_acquire_now(black_box("orders"), TTL)
                        .expect("valid")
                        .expect("free");
                    locks.release_now(&lease).expect("held");
                })
            },
        },
        Case {
            block: "lock",
            operation: "acquire+release, uncontended",
            implementation: "keel LockHandle (async)",
            setup: || {
                let handle = InMemoryLockService::new().handle("orders").expect("a name");
                Box::new(move || {
                    let lease =
                        ready(black_box(&handle).acquire(TTL, Duration::ZERO)).expect("free");
                    handle.release_now(&lease).expect("held");
                })
            },
        },
        Case {
            block: "lock",
            operation: "acquire+release, uncontended",
            implementation: "keel LockHandle (sync)",
            setup: || {
                let handle = InMemoryLockService::new().handle("orders").expect("a name");
                Box::new(move || {
                    let lease = black_box(&handle)
                        .try_acquire_now(TTL)
                        .expect("valid")
                        .expect("free");
                    handle.release_now(&lease).expect("held");
                })
            },
        },
        Case {
            block: "lock",
            operation: "acquire+release, uncontended",
            implementation: "keel LockHandle (acquire_blocking)",
            setup: || {
                let handle = InMemoryLockService::new().handle("orders").expect("a name");
                Box::new(move || {
                    let lease = black_box(&handle)
                        .acquire_blocking(TTL, Duration::ZERO)
                        .expect("free");
                    handle.release_now(&lease).expect("held");
                })
            },
        },
        Case {
            block: "lock",
            operation: "acquire+release, uncontended",
            implementation: "tokio::sync::Mutex",
            setup: || {
                let mutex = tokio::sync::Mutex::new(0u64);
                Box::new(move || {
                    *ready(black_box(&mutex).lock()) += 1;
                })
            },
        },
        Case {
            block: "lock",
            operation: "acquire+release, uncontended",
            implementation: "parking_lot::Mutex",
            setup: || {
                let mutex = parking_lot::Mutex::new(0u64);
                Box::new(move || {
                    *black_box(&mutex).lock() += 1;
                })
            },
        },
        Case {
            block: "lock",
            operation: "acquire+release, uncontended",
            implementation: "std::sync::Mutex",
            setup: || {
                let mutex = Mutex::new(0u64);
                Box::new(move || {
                    *black_box(&mutex).lock().expect("not poisoned") += 1;
                })
            },
        },
    ]
}

/// The counted loop; callgrind counts only inside this function.
#[inline(never)]
fn keel_icount_measured(call: &mut dyn FnMut(), iterations: u64) {
    for _ in 0..iterations {
        call();
    }
}

/// Runs one case (in the child process, under valgrind).
fn run_case(case: &Case) {
    let mut call = (case.setup)();
    for _ in 0..WARM_UP {
        call();
    }
    keel_icount_measured(&mut *call, black_box(ITERATIONS));
}

/// Counts one case's instructions per call by running this binary under callgrind.
fn count(exe: &std::path::Path, index: usize) -> Result<f64, String> {
    let out = std::env::temp_dir().join(format!(
        "keel-icount-{}-{index}.callgrind",
        std::process::id()
    ));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg(format!("--toggle-collect={MEASURED}"))
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .arg("--run-case")
        .arg(index.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|error| format!("cannot start valgrind: {error}"))?;
    if !status.success() {
        return Err(format!("valgrind exited with {status}"));
    }
    let text = std::fs::read_to_string(&out).map_err(|error| error.to_string())?;
    let _ = std::fs::remove_file(&out);
    let total = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("totals:")
                .or_else(|| line.strip_prefix("summary:"))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or("no totals line in callgrind's output")?;
    Ok(total as f64 / ITERATIONS as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases = cases();
    if let Some(position) = args.iter().position(|arg| arg == "--run-case") {
        let index: usize = args
            .get(position + 1)
            .and_then(|i| i.parse().ok())
            .expect("--run-case takes a case index");
        run_case(&cases[index]);
        return;
    }
    // cargo passes `--bench`; any other argument is a filter.
    let filters: Vec<&String> = args.iter().filter(|arg| !arg.starts_with("--")).collect();
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!(
            "skipping the instruction counts: valgrind is not installed (Debian package valgrind)"
        );
        return;
    }
    let exe = std::env::current_exe().expect("the bench binary's path");
    println!("| block | operation | implementation | instructions per call |");
    println!("|---|---|---|---:|");
    for (index, case) in cases.iter().enumerate() {
        let name = case.name();
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let cell = match count(&exe, index) {
            Ok(per_call) => format!("{per_call:.1}"),
            Err(error) => format!("failed: {error}"),
        };
        println!(
            "| {} | {} | {} | {cell} |",
            case.block, case.operation, case.implementation
        );
    }
}

/// quick_cache with its default hasher (ahash) at fixed seeds: with random ones its insert
/// count moved by a few instructions between runs.
fn seeded_quick_cache(
    capacity: usize,
) -> quick_cache::sync::Cache<u64, u64, quick_cache::UnitWeighter, ahash::RandomState> {
    quick_cache::sync::Cache::with(
        capacity,
        capacity as u64,
        quick_cache::UnitWeighter,
        ahash::RandomState::with_seeds(1, 2, 3, 4),
        quick_cache::sync::DefaultLifecycle::default(),
    )
}

/// Gets cycling over 4,096 keys of an 8,192-entry keel `Cache`, each key read `reads_before`
/// times first.
fn keel_cache_gets(reads_before: usize) -> Box<dyn FnMut()> {
    let cache = seeded_keel_cache(8192);
    for k in 0..4096u64 {
        cache.insert(k, k);
    }
    for _ in 0..reads_before {
        for k in 0..4096u64 {
            black_box(cache.get(&k));
        }
    }
    let mut k = 0u64;
    Box::new(move || {
        k = (k + 1) & 4095;
        black_box(cache.get(&k));
    })
}

/// The default hasher with a fixed seed: the same keys land in the same shards and sketch
/// counters in every run, so the insert case evicts the same entries and its count is exact.
fn seeded_keel_cache(capacity: u64) -> keel_cache::Cache<u64, u64> {
    keel_cache::Cache::builder()
        .max_capacity(capacity)
        .hasher(keel_cache::DefaultHashBuilder::with_seed(7))
        .build()
        .expect("capacity")
}
