//! keel-cache beside moka, quick_cache and lru.
//!
//! `cargo bench -p keel-benches --bench cache` runs the throughput groups;
//! `KEEL_CACHE_MEMORY=1 cargo bench -p keel-benches --bench cache` prints bytes per entry
//! instead (measured with keel-testkit's counting allocator). The `machine:` group measures
//! what moving a cache line between two cores costs, which the 2-thread ratios depend on.

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use keel_benches::cache::Zipf;
use keel_testkit::CountingAllocator;

/// Counts live heap bytes, for the bytes-per-entry table.
#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

const KEYS: usize = 1 << 16;
const THREADS: usize = 2;

/// Runs `op` on `THREADS` threads, `iters` times each over its own key stream; returns the
/// wall time of the slowest.
fn parallel(iters: u64, keys: &[Vec<u64>], op: &(dyn Fn(usize, u64) + Sync)) -> Duration {
    let start = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (start, keys) = (&start, &keys[t]);
                s.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    for i in 0..iters as usize {
                        op(i, keys[i & (keys.len() - 1)]);
                    }
                    began.elapsed()
                })
            })
            .collect();
        start.wait();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn key_streams() -> Vec<Vec<u64>> {
    (0..THREADS)
        .map(|t| Zipf::new(KEYS, 1.0, 10 + t as u64).keys(1 << 20))
        .collect()
}

fn reads(c: &mut Criterion) {
    let keys = key_streams();
    let mut group = c.benchmark_group("get, 2 threads, zipf 1.0, read-only");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group.throughput(Throughput::Elements(THREADS as u64));

    let keel = keel_cache::Cache::new(KEYS as u64).expect("capacity");
    let moka = moka::sync::Cache::new(KEYS as u64);
    let quick = quick_cache::sync::Cache::new(KEYS);
    for r in 0..KEYS as u64 {
        let k = keel_benches::cache::scramble(r);
        keel.insert(k, k);
        moka.insert(k, k);
        quick.insert(k, k);
    }
    moka.run_pending_tasks();
    group.bench_function(BenchmarkId::new("get", "keel Cache"), |b| {
        b.iter_custom(|iters| {
            parallel(iters, &keys, &|_, k| {
                black_box(keel.get(&k));
            })
        })
    });
    group.bench_function(BenchmarkId::new("get", "quick_cache"), |b| {
        b.iter_custom(|iters| {
            parallel(iters, &keys, &|_, k| {
                black_box(quick.get(&k));
            })
        })
    });
    group.bench_function(BenchmarkId::new("get", "moka"), |b| {
        b.iter_custom(|iters| {
            parallel(iters, &keys, &|_, k| {
                black_box(moka.get(&k));
            })
        })
    });
    group.finish();
}

fn mixed(c: &mut Criterion) {
    let keys = key_streams();
    let mut group =
        c.benchmark_group("get/insert 90/10, 2 threads, zipf 1.0, capacity 1/4 of keys");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group.throughput(Throughput::Elements(THREADS as u64));
    let cap = KEYS / 4;

    let keel = keel_cache::Cache::new(cap as u64).expect("capacity");
    let moka = moka::sync::Cache::new(cap as u64);
    let quick = quick_cache::sync::Cache::new(cap);
    group.bench_function(BenchmarkId::new("get/insert", "keel Cache"), |b| {
        b.iter_custom(|iters| {
            parallel(iters, &keys, &|i, k| {
                if i % 10 == 9 {
                    keel.insert(k, k);
                } else {
                    black_box(keel.get(&k));
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("get/insert", "quick_cache"), |b| {
        b.iter_custom(|iters| {
            parallel(iters, &keys, &|i, k| {
                if i % 10 == 9 {
                    quick.insert(k, k);
                } else {
                    black_box(quick.get(&k));
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("get/insert", "moka"), |b| {
        b.iter_custom(|iters| {
            parallel(iters, &keys, &|i, k| {
                if i % 10 == 9 {
                    moka.insert(k, k);
                } else {
                    black_box(moka.get(&k));
                }
            })
        })
    });
    group.finish();
}

fn single_thread_lru(c: &mut Criterion) {
    let keys = Zipf::new(KEYS, 1.0, 20).keys(1 << 20);
    let mut group = c.benchmark_group("get, put on miss, 1 thread, zipf 1.0, capacity 1/4 of keys");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group.throughput(Throughput::Elements(1));
    let cap = KEYS / 4;

    let mut keel = keel_cache::Lru::new(cap).expect("capacity");
    let mut i = 0usize;
    group.bench_function(BenchmarkId::new("get/put", "keel Lru"), |b| {
        b.iter(|| {
            let k = keys[i & (keys.len() - 1)];
            i += 1;
            if keel.get(&k).is_none() {
                keel.put(k, k);
            }
        })
    });
    let mut lru = lru::LruCache::new(std::num::NonZeroUsize::new(cap).expect("capacity"));
    let mut i = 0usize;
    group.bench_function(BenchmarkId::new("get/put", "lru"), |b| {
        b.iter(|| {
            let k = keys[i & (keys.len() - 1)];
            i += 1;
            if lru.get(&k).is_none() {
                lru.put(k, k);
            }
        })
    });
    group.finish();
}

/// What moving a cache line between the cores costs on this machine, which decides how much
/// a shared lock word (quick_cache's `RwLock`) loses against counters of one's own (keel's
/// shard lock): one atomic add per operation, 2 threads, each on a line of its own or both
/// on one line.
fn line_moves(c: &mut Criterion) {
    #[repr(align(128))]
    struct Line(AtomicU64);
    let lines: Vec<Line> = (0..THREADS).map(|_| Line(AtomicU64::new(0))).collect();
    let mut group = c.benchmark_group("machine: atomic add, 2 threads");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group.throughput(Throughput::Elements(THREADS as u64));
    let no_keys: Vec<Vec<u64>> = (0..THREADS).map(|t| vec![t as u64]).collect();
    group.bench_function(BenchmarkId::new("fetch_add", "own lines"), |b| {
        b.iter_custom(|iters| {
            parallel(iters, &no_keys, &|_, t| {
                lines[t as usize].0.fetch_add(1, Ordering::SeqCst);
            })
        })
    });
    group.bench_function(BenchmarkId::new("fetch_add", "one shared line"), |b| {
        b.iter_custom(|iters| {
            parallel(iters, &no_keys, &|_, _| {
                lines[0].0.fetch_add(1, Ordering::SeqCst);
            })
        })
    });
    group.finish();
}

/// Live heap bytes per held entry after filling each cache with 1M `u64 → u64` entries.
fn memory() {
    const N: usize = 1_000_000;
    fn measure(name: &str, fill: impl FnOnce() -> (Box<dyn std::any::Any>, usize)) {
        let before = ALLOC.live_bytes();
        let (cache, held) = fill();
        let bytes = ALLOC.live_bytes() - before;
        println!(
            "| {name} | {held} | {:.1} |",
            bytes as f64 / held.max(1) as f64
        );
        drop(cache);
    }
    println!("| cache (u64 → u64, capacity 1M, 1M inserts) | entries held | bytes per entry |");
    println!("|---|---|---|");
    measure("keel Cache", || {
        let c = keel_cache::Cache::new(N as u64).expect("capacity");
        (0..N as u64).for_each(|k| c.insert(k, k));
        let held = c.entry_count() as usize;
        (Box::new(c), held)
    });
    measure("keel Cache, TTL on", || {
        let c = keel_cache::Cache::builder()
            .max_capacity(N as u64)
            .time_to_live(Duration::from_secs(3_600))
            .build()
            .expect("capacity");
        (0..N as u64).for_each(|k| c.insert(k, k));
        let held = c.entry_count() as usize;
        (Box::new(c), held)
    });
    measure("keel Lru", || {
        let mut c = keel_cache::Lru::new(N).expect("capacity");
        (0..N as u64).for_each(|k| {
            c.put(k, k);
        });
        let held = c.len();
        (Box::new(c), held)
    });
    measure("quick_cache", || {
        let c = quick_cache::sync::Cache::new(N);
        (0..N as u64).for_each(|k| c.insert(k, k));
        let held = c.len();
        (Box::new(c), held)
    });
    measure("lru", || {
        let mut c = lru::LruCache::new(std::num::NonZeroUsize::new(N).expect("capacity"));
        (0..N as u64).for_each(|k| {
            c.put(k, k);
        });
        let held = c.len();
        (Box::new(c), held)
    });
    measure("moka", || {
        let c = moka::sync::Cache::new(N as u64);
        (0..N as u64).for_each(|k| c.insert(k, k));
        c.run_pending_tasks();
        let held = c.entry_count() as usize;
        (Box::new(c), held)
    });
}

fn main() {
    if std::env::var_os("KEEL_CACHE_MEMORY").is_some() {
        memory();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    reads(&mut c);
    mixed(&mut c);
    single_thread_lru(&mut c);
    line_moves(&mut c);
    c.final_summary();
}
