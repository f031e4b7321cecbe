//! The ticker behind `SystemClock::recent`: one thread per process stores the time every
//! millisecond, so a reading is one atomic load; it stops after a second in which nobody
//! read it, and the next reading starts it again.
//!
//! Process-wide statics of std atomics: loom does not model this (it has no loom clock).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The ticker's last reading in nanoseconds, plus one; 0 while no ticker runs.
static LAST: AtomicU64 = AtomicU64::new(0);
/// Set by readers, cleared by the ticker: whether anyone read since the ticker last looked.
static READ: AtomicBool = AtomicBool::new(false);
/// Starts and stops, serialized.
static TICKER: Mutex<Ticker> = Mutex::new(Ticker::Stopped);

#[derive(Copy, Clone, PartialEq, Eq)]
enum Ticker {
    Stopped,
    Running,
    /// The thread could not be spawned: readings fall back to the clock itself.
    Unavailable,
}

/// How often the ticker stores the time.
pub(crate) const TICK: Duration = Duration::from_millis(1);
/// Ticks between the ticker's looks at `READ`; a look that finds it clear stops the ticker.
const TICKS_PER_LOOK: u32 = 1_000;

/// The ticker's last reading of `now`, or `now()` itself while no ticker runs.
#[inline]
pub(crate) fn recent(now: fn() -> u64) -> u64 {
    let last = LAST.load(Ordering::Relaxed);
    if last == 0 {
        return start(now);
    }
    // A store only once per look of the ticker, so the line stays shared between readers.
    if !READ.load(Ordering::Relaxed) {
        READ.store(true, Ordering::Relaxed);
    }
    last - 1
}

#[cold]
fn start(now: fn() -> u64) -> u64 {
    let mut ticker = TICKER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *ticker == Ticker::Stopped {
        let spawned = std::thread::Builder::new()
            .name("keel-clock-ticker".into())
            .spawn(move || tick(now));
        *ticker = if spawned.is_ok() {
            Ticker::Running
        } else {
            Ticker::Unavailable
        };
    }
    if *ticker == Ticker::Unavailable {
        return now();
    }
    // Published before any reader can see the ticker running, and kept monotonic with
    // `fetch_max`: every value `recent` returns while it runs went through `LAST`.
    READ.store(true, Ordering::Relaxed);
    let reading = now().saturating_add(1);
    LAST.fetch_max(reading, Ordering::Relaxed).max(reading) - 1
}

fn tick(now: fn() -> u64) {
    let mut ticks = 0u32;
    loop {
        std::thread::sleep(TICK);
        LAST.fetch_max(now().saturating_add(1), Ordering::Relaxed);
        ticks += 1;
        if ticks < TICKS_PER_LOOK {
            continue;
        }
        ticks = 0;
        let mut ticker = TICKER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !READ.swap(false, Ordering::Relaxed) {
            // Nobody read for a whole look: stop waking up. Readers fall back to `now`, which
            // is never behind what they were given, until one starts a new ticker.
            LAST.store(0, Ordering::Relaxed);
            *ticker = Ticker::Stopped;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Clock, SystemClock};

    #[test]
    fn recent_trails_now_and_never_goes_back() {
        let mut last = 0;
        for _ in 0..200 {
            let before = SystemClock.now().as_nanos();
            let reading = recent(|| SystemClock.now().as_nanos());
            assert!(reading >= last, "went back: {last} then {reading}");
            assert!(
                reading <= SystemClock.now().as_nanos(),
                "ahead of the clock"
            );
            // Behind by about a tick; a generous bound for a loaded machine.
            assert!(before.saturating_sub(reading) < Duration::from_secs(2).as_nanos() as u64);
            last = reading;
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}
