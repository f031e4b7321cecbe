//! What one clock reading costs: the candidates for keel's default clock.
//!
//! `cargo bench -p keel-benches --bench clock`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use keel_benches::clocks::{CoarseTicker, monotonic_coarse_nanos};
use keel_core::{Clock, ManualClock, StdClock, SystemClock};

fn clock_reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock read");
    group.bench_function("std Instant::now", |b| {
        b.iter(|| black_box(std::time::Instant::now()))
    });
    group.bench_function("std SystemTime::now", |b| {
        b.iter(|| black_box(SystemTime::now().duration_since(UNIX_EPOCH)))
    });
    let quanta_clock = quanta::Clock::new();
    group.bench_function("quanta Clock::now", |b| {
        b.iter(|| black_box(quanta_clock.now()))
    });
    group.bench_function("quanta Clock::raw", |b| {
        b.iter(|| black_box(quanta_clock.raw()))
    });
    group.bench_function("CLOCK_MONOTONIC_COARSE", |b| {
        b.iter(|| black_box(monotonic_coarse_nanos()))
    });
    let ticker = CoarseTicker::start(Duration::from_millis(1));
    group.bench_function("coarse ticker (1 ms thread)", |b| {
        b.iter(|| black_box(ticker.now_nanos()))
    });
    drop(ticker);
    group.bench_function("keel SystemClock::now", |b| {
        b.iter(|| black_box(SystemClock.now()))
    });
    group.bench_function("keel SystemClock::unix_millis", |b| {
        b.iter(|| black_box(SystemClock.unix_millis()))
    });
    group.bench_function("keel StdClock::now", |b| {
        b.iter(|| black_box(StdClock.now()))
    });
    let manual = ManualClock::new();
    group.bench_function("keel ManualClock::now", |b| {
        b.iter(|| black_box(manual.now()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = clock_reads
}
criterion_main!(benches);
