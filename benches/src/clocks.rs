//! The clock sources measured by the clock bench and `compare clock`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// `clock_gettime(CLOCK_MONOTONIC_COARSE)`: the kernel's last tick, 1 to 4 ms coarse.
pub fn monotonic_coarse_nanos() -> u64 {
    let mut spec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `spec` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut spec) };
    (spec.tv_sec as u64) * 1_000_000_000 + spec.tv_nsec as u64
}

/// A coarse ticker: a background thread stores the time into an atomic every `period`, and
/// readers load it. The cheapest possible read, paid for by a thread and by `period` of error.
#[derive(Debug)]
pub struct CoarseTicker {
    nanos: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CoarseTicker {
    /// Starts the ticker thread.
    pub fn start(period: Duration) -> CoarseTicker {
        let origin = std::time::Instant::now();
        let nanos = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let nanos = nanos.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    nanos.store(origin.elapsed().as_nanos() as u64, Ordering::Release);
                    std::thread::sleep(period);
                }
            })
        };
        CoarseTicker {
            nanos,
            stop,
            thread: Some(thread),
        }
    }

    /// The last stored time.
    #[inline]
    pub fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }
}

impl Drop for CoarseTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
