//! Workloads shared by the idgen bench and `compare idgen`.

use std::time::{Duration, Instant};

use keel_idgen::{ClockBackwards, Layout};

/// A layout whose sequence field (22 bits, 4M IDs per millisecond) never caps the generator,
/// so a bench measures the generator's own cost.
pub fn wide_layout() -> Layout {
    Layout::builder()
        .timestamp_bits(41)
        .worker_bits(0)
        .sequence_bits(22)
        .build()
        .unwrap_or_else(|_| Layout::twitter())
}

/// The clock-backwards policy the benches use: borrow within a second, as a service would.
pub fn bench_policy() -> ClockBackwards {
    ClockBackwards::Borrow {
        max: Duration::from_secs(1),
    }
}

/// Runs `work(count)` on `threads` threads at once, `per_thread` calls each, and returns the
/// wall time from the first start to the last finish.
pub fn on_threads<F>(threads: usize, per_thread: u64, work: F) -> Duration
where
    F: Fn(u64) + Sync,
{
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                barrier.wait();
                work(per_thread);
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins every thread.
        start
    })
    .elapsed()
}
