//! keel-idgen beside ulid, uuid (now_v7), rs-snowflake and sonyflake.
//!
//! `cargo bench -p keel-benches --bench idgen`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keel_benches::idgen::{bench_policy, on_threads, wide_layout};
use keel_idgen::{
    Layout, LocalUlidGenerator, LocalUuidV7Generator, Snowflake, Ulid, UlidGenerator,
    UuidV7Generator,
};

/// Twitter's layout allows 4,096 IDs per millisecond: 244.1 ns per ID is the ceiling.
fn twitter_layout_one_thread(c: &mut Criterion) {
    let mut group =
        c.benchmark_group("snowflake, twitter layout, 1 thread (cap 4096/ms = 244 ns/id)");
    group.throughput(Throughput::Elements(1));
    let keel = Snowflake::builder(Layout::twitter(), 1)
        .on_clock_backwards(bench_policy())
        .build()
        .expect("valid");
    group.bench_function(BenchmarkId::new("next_id", "keel Snowflake"), |b| {
        b.iter(|| black_box(keel.next_id()))
    });
    let mut peer = snowflake::SnowflakeIdGenerator::new(1, 1);
    group.bench_function(
        BenchmarkId::new("next_id", "rs-snowflake real_time_generate"),
        |b| b.iter(|| black_box(peer.real_time_generate())),
    );
    group.finish();
}

/// Sonyflake's layout allows 256 IDs per 10 ms: 39 µs per ID is the ceiling.
fn sonyflake_layout_one_thread(c: &mut Criterion) {
    let mut group =
        c.benchmark_group("snowflake, sonyflake layout, 1 thread (cap 256/10ms = 39 us/id)");
    group.throughput(Throughput::Elements(1));
    let keel = Snowflake::builder(Layout::sonyflake(), 1)
        .on_clock_backwards(bench_policy())
        .build()
        .expect("valid");
    group.bench_function(BenchmarkId::new("next_id", "keel Snowflake"), |b| {
        b.iter(|| black_box(keel.next_id()))
    });
    let peer = sonyflake::Sonyflake::builder()
        .machine_id(&|| Ok(1))
        .finalize()
        .expect("sonyflake");
    group.bench_function(BenchmarkId::new("next_id", "sonyflake"), |b| {
        b.iter(|| black_box(peer.next_id()))
    });
    group.finish();
}

/// The generator's own cost, with a layout whose sequence (22 bits) never runs out.
fn generator_cost_wide_layout(c: &mut Criterion) {
    let mut group = c.benchmark_group("snowflake, wide layout (22 sequence bits), 1 thread");
    group.throughput(Throughput::Elements(1));
    let keel = Snowflake::builder(wide_layout(), 0)
        .on_clock_backwards(bench_policy())
        .build()
        .expect("valid");
    group.bench_function(BenchmarkId::new("next_id", "keel Snowflake"), |b| {
        b.iter(|| black_box(keel.next_id()))
    });
    group.bench_function(
        BenchmarkId::new("clock read only", "keel SystemClock::unix_millis"),
        |b| {
            use keel_core::Clock;
            b.iter(|| black_box(keel_core::SystemClock.unix_millis()))
        },
    );
    group.finish();
}

fn ulid_monotonic(c: &mut Criterion) {
    let mut group = c.benchmark_group("ulid, monotonic, 1 thread");
    group.throughput(Throughput::Elements(1));
    let keel = UlidGenerator::new();
    group.bench_function(BenchmarkId::new("generate", "keel UlidGenerator"), |b| {
        b.iter(|| black_box(keel.next_id()))
    });
    let mut peer = ulid::Generator::new();
    group.bench_function(BenchmarkId::new("generate", "ulid Generator (&mut)"), |b| {
        b.iter(|| black_box(peer.generate()))
    });
    let shared = Mutex::new(ulid::Generator::new());
    group.bench_function(
        BenchmarkId::new("generate", "ulid Generator in a Mutex"),
        |b| b.iter(|| black_box(shared.lock().map(|mut g| g.generate()))),
    );
    group.finish();
}

/// One generator per thread, beside ferroid's thread-local generators. keel's default reads
/// `SystemClock::recent_unix_millis`, a ticker's copy (as ferroid's reads its own ticker); the
/// `StdClock` row, which has no ticker, shows what a full wall-clock read per ID costs.
fn per_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("per-thread generator, 1 thread");
    group.throughput(Throughput::Elements(1));
    let mut keel = LocalUlidGenerator::new();
    group.bench_function(
        BenchmarkId::new("ulid", "keel LocalUlidGenerator (SystemClock, ticker)"),
        |b| b.iter(|| black_box(keel.next_id())),
    );
    let mut keel_system = LocalUlidGenerator::with_clock(keel_core::StdClock);
    group.bench_function(
        BenchmarkId::new(
            "ulid",
            "keel LocalUlidGenerator (StdClock, a wall-clock read per ID)",
        ),
        |b| b.iter(|| black_box(keel_system.next_id())),
    );
    group.bench_function(
        BenchmarkId::new("ulid", "ferroid thread_local new_ulid_mono"),
        |b| {
            b.iter(|| {
                black_box(ferroid::generator::thread_local::Ulid::new_ulid_mono(
                    |_| std::thread::yield_now(),
                ))
            })
        },
    );
    group.bench_function(
        BenchmarkId::new("ulid", "ferroid thread_local new_ulid"),
        |b| b.iter(|| black_box(ferroid::generator::thread_local::Ulid::new_ulid())),
    );
    let mut peer = ulid::Generator::new();
    group.bench_function(BenchmarkId::new("ulid", "ulid Generator (&mut)"), |b| {
        b.iter(|| black_box(peer.generate()))
    });
    let mut keel_uuid = LocalUuidV7Generator::new();
    group.bench_function(
        BenchmarkId::new("uuid v7", "keel LocalUuidV7Generator (SystemClock, ticker)"),
        |b| b.iter(|| black_box(keel_uuid.next_id())),
    );
    group.bench_function(BenchmarkId::new("uuid v7", "uuid now_v7"), |b| {
        b.iter(|| black_box(uuid::Uuid::now_v7()))
    });
    group.finish();
}

fn uuid_v7(c: &mut Criterion) {
    let mut group = c.benchmark_group("uuid v7, 1 thread");
    group.throughput(Throughput::Elements(1));
    let keel = UuidV7Generator::new();
    group.bench_function(BenchmarkId::new("generate", "keel UuidV7Generator"), |b| {
        b.iter(|| black_box(keel.next_id()))
    });
    group.bench_function(BenchmarkId::new("generate", "uuid now_v7"), |b| {
        b.iter(|| black_box(uuid::Uuid::now_v7()))
    });
    group.finish();
}

fn ulid_text(c: &mut Criterion) {
    let text = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let keel: Ulid = text.parse().expect("valid");
    let peer = ulid::Ulid::from_string(text).expect("valid");

    let mut group = c.benchmark_group("ulid encode");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("encode into a buffer", "keel Ulid"), |b| {
        let mut buffer = [0; 26];
        b.iter(|| black_box(black_box(keel).encode(&mut buffer).len()))
    });
    group.bench_function(BenchmarkId::new("encode into a buffer", "ulid"), |b| {
        let mut buffer = [0; 26];
        b.iter(|| black_box(black_box(peer).array_to_str(&mut buffer).len()))
    });
    group.bench_function(BenchmarkId::new("to_string", "keel Ulid"), |b| {
        b.iter(|| black_box(black_box(keel).to_string()))
    });
    group.bench_function(BenchmarkId::new("to_string", "ulid"), |b| {
        b.iter(|| black_box(black_box(peer).to_string()))
    });
    group.finish();

    let mut group = c.benchmark_group("ulid decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("from_string", "keel Ulid"), |b| {
        b.iter(|| black_box(Ulid::from_string(black_box(text))))
    });
    group.bench_function(BenchmarkId::new("from_string", "ulid"), |b| {
        b.iter(|| black_box(ulid::Ulid::from_string(black_box(text))))
    });
    group.finish();
}

/// Two threads sharing one generator: the time per ID of the pair (lower is better). Layouts
/// capped at a rate (Twitter's 4,096/ms) are left to `compare idgen`, which measures them over
/// whole seconds; short criterion samples would start each in a fresh millisecond.
fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("2 threads sharing one generator");
    group.throughput(Throughput::Elements(1));
    let keel = Snowflake::builder(wide_layout(), 0)
        .on_clock_backwards(bench_policy())
        .build()
        .expect("valid");
    group.bench_function(
        BenchmarkId::new("generate", "keel Snowflake (wide layout)"),
        |b| {
            b.iter_custom(|iters| {
                on_threads(2, iters.div_ceil(2), |n| {
                    for _ in 0..n {
                        black_box(keel.next_id().ok());
                    }
                })
            })
        },
    );
    let ulids = UlidGenerator::new();
    group.bench_function(BenchmarkId::new("generate", "keel UlidGenerator"), |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters.div_ceil(2), |n| {
                for _ in 0..n {
                    black_box(ulids.next_id().ok());
                }
            })
        })
    });
    let peer_ulids = Mutex::new(ulid::Generator::new());
    group.bench_function(
        BenchmarkId::new("generate", "ulid Generator in a Mutex"),
        |b| {
            b.iter_custom(|iters| {
                on_threads(2, iters.div_ceil(2), |n| {
                    for _ in 0..n {
                        black_box(peer_ulids.lock().map(|mut g| g.generate().ok()).ok());
                    }
                })
            })
        },
    );
    let uuids = UuidV7Generator::new();
    group.bench_function(BenchmarkId::new("generate", "keel UuidV7Generator"), |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters.div_ceil(2), |n| {
                for _ in 0..n {
                    black_box(uuids.next_id().ok());
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("generate", "uuid now_v7"), |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters.div_ceil(2), |n| {
                for _ in 0..n {
                    black_box(uuid::Uuid::now_v7());
                }
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30);
    targets = twitter_layout_one_thread, generator_cost_wide_layout, ulid_monotonic, per_thread, uuid_v7,
        ulid_text, two_threads, sonyflake_layout_one_thread
}
criterion_main!(benches);
