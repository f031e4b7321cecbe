//! A counter split over cache lines by thread, so counting every read does not make all
//! readers write one shared line.

#[cfg(not(keel_loom))]
use std::sync::atomic::AtomicUsize as StdAtomicUsize;

use crossbeam_utils::CachePadded;
use keel_core::sync::atomic::{AtomicU64, Ordering};

/// Sum of per-stripe counts; each thread adds to its own stripe.
#[derive(Debug)]
pub(crate) struct Striped {
    cells: Box<[CachePadded<AtomicU64>]>,
}

#[cfg(not(keel_loom))]
static NEXT_THREAD: StdAtomicUsize = StdAtomicUsize::new(0);

#[cfg(not(keel_loom))]
std::thread_local! {
    static STRIPE: usize = NEXT_THREAD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

impl Striped {
    pub(crate) fn new() -> Striped {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        let n = (cpus * 2).next_power_of_two().min(256);
        Striped {
            cells: (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        #[cfg(not(keel_loom))]
        let i = STRIPE.with(|s| *s) & (self.cells.len() - 1);
        // Loom runs a model's threads on one OS thread: one stripe keeps runs identical.
        #[cfg(keel_loom)]
        let i = 0;
        self.cells[i].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}
