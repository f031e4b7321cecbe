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

/// This thread's stripe number: threads are numbered as they first ask, so the first
/// threads of a process get distinct stripes under any power-of-two stripe count.
#[cfg(not(keel_loom))]
#[inline]
pub(crate) fn thread_stripe() -> usize {
    STRIPE.with(|s| *s)
}

/// Under loom: the model thread's number, the same in every run of the model (a global
/// counter would differ between runs and break loom's replay).
#[cfg(keel_loom)]
pub(crate) fn thread_stripe() -> usize {
    let id = format!("{:?}", loom::thread::current().id());
    id.chars()
        .filter(char::is_ascii_digit)
        .fold(0, |n, c| n * 10 + c as usize - '0' as usize)
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
        let i = thread_stripe() & (self.cells.len() - 1);
        self.cells[i].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}
