//! A counter split over cache lines by thread, so counting every read does not make all
//! readers write one shared line.

use crossbeam_utils::CachePadded;
use keel_core::sync::atomic::{AtomicU64, Ordering};

use crate::thread_slot::{SLOTS, thread_slot};

/// Sum of per-stripe counts; each thread adds to its own stripe.
#[derive(Debug)]
pub(crate) struct Striped {
    cells: Box<[CachePadded<AtomicU64>]>,
}

impl Striped {
    pub(crate) fn new() -> Striped {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        let n = (cpus * 2).next_power_of_two().min(SLOTS);
        Striped {
            cells: (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // Live threads hold distinct slots, so the first ones get distinct stripes.
        let i = thread_slot().unwrap_or(0) & (self.cells.len() - 1);
        self.cells[i].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}
