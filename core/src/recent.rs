//! The ticker behind `SystemClock::recent` and `SystemClock::recent_unix_millis`: one thread
//! per process stores both readings every millisecond, so a reading is one atomic load; it
//! stops after a second in which nobody read it, and the next reading starts it again.
//!
//! Process-wide statics of std atomics: loom does not model this (it has no loom clock).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::{Clock, SystemClock};

/// The ticker's last monotonic reading in nanoseconds, plus one; 0 while no ticker runs.
static LAST_NANOS: AtomicU64 = AtomicU64::new(0);
/// The ticker's last wall-clock reading in Unix milliseconds, plus one; 0 while none runs.
static LAST_UNIX_MILLIS: AtomicU64 = AtomicU64::new(0);
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
const TICK: Duration = Duration::from_millis(1);
/// Ticks between the ticker's looks at `READ`; a look that finds it clear stops the ticker.
const TICKS_PER_LOOK: u32 = 1_000;

/// The ticker's last `SystemClock::now` in nanoseconds, or `now` itself while none runs.
#[inline]
pub(crate) fn recent_nanos() -> u64 {
    match LAST_NANOS.load(Ordering::Relaxed) {
        0 => started(&LAST_NANOS, || SystemClock.now().as_nanos()),
        last => {
            mark_read();
            last - 1
        }
    }
}

/// The ticker's last `SystemClock::unix_millis`, or the wall clock itself while none runs.
#[inline]
pub(crate) fn recent_unix_millis() -> u64 {
    match LAST_UNIX_MILLIS.load(Ordering::Relaxed) {
        0 => started(&LAST_UNIX_MILLIS, || SystemClock.unix_millis()),
        last => {
            mark_read();
            last - 1
        }
    }
}

/// Starts the ticker, then answers from what it stored, so a later reading on this thread
/// is never behind this one; the clock itself only when no ticker can run.
#[cold]
fn started(last: &AtomicU64, read_clock: impl Fn() -> u64) -> u64 {
    start();
    match last.load(Ordering::Relaxed) {
        0 => read_clock(),
        last => last - 1,
    }
}

#[inline]
fn mark_read() {
    // A store only once per look of the ticker, so the line stays shared between readers.
    if !READ.load(Ordering::Relaxed) {
        READ.store(true, Ordering::Relaxed);
    }
}

fn store_readings() {
    // `fetch_max` keeps the monotonic reading from going back when a start races the ticker.
    // The wall clock may step back; the ticker follows it, as `unix_millis` does.
    LAST_NANOS.fetch_max(
        SystemClock.now().as_nanos().saturating_add(1),
        Ordering::Relaxed,
    );
    LAST_UNIX_MILLIS.store(
        SystemClock.unix_millis().saturating_add(1),
        Ordering::Relaxed,
    );
}

#[cold]
fn start() {
    let mut ticker = TICKER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *ticker != Ticker::Stopped {
        return;
    }
    READ.store(true, Ordering::Relaxed);
    store_readings();
    let spawned = std::thread::Builder::new()
        .name("keel-clock-ticker".into())
        .spawn(tick);
    *ticker = if spawned.is_ok() {
        Ticker::Running
    } else {
        // Readers keep calling `start`, which returns at once, and read the clock itself.
        LAST_NANOS.store(0, Ordering::Relaxed);
        LAST_UNIX_MILLIS.store(0, Ordering::Relaxed);
        Ticker::Unavailable
    };
}

fn tick() {
    let mut ticks = 0u32;
    loop {
        std::thread::sleep(TICK);
        store_readings();
        ticks += 1;
        if ticks < TICKS_PER_LOOK {
            continue;
        }
        ticks = 0;
        let mut ticker = TICKER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !READ.swap(false, Ordering::Relaxed) {
            // Nobody read for a whole look: stop waking up. Readers fall back to the clock,
            // which is never behind what they were given, until one starts a new ticker.
            LAST_NANOS.store(0, Ordering::Relaxed);
            LAST_UNIX_MILLIS.store(0, Ordering::Relaxed);
            *ticker = Ticker::Stopped;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_trails_now_and_never_goes_back() {
        let mut last = 0;
        for _ in 0..200 {
            let before = SystemClock.now().as_nanos();
            let reading = recent_nanos();
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

    #[test]
    fn recent_unix_millis_trails_the_wall_clock() {
        for _ in 0..200 {
            let before = SystemClock.unix_millis();
            let reading = recent_unix_millis();
            let after = SystemClock.unix_millis();
            assert!(
                reading <= after,
                "ahead of the wall clock: {reading} > {after}"
            );
            // Behind by about a tick; a generous bound for a loaded machine.
            assert!(
                before.saturating_sub(reading) < 2_000,
                "{before} vs {reading}"
            );
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}
