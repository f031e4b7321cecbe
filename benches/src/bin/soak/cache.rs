//! `WriteBack` over a store that fails, is slow, or panics, flushed by its thread, by
//! callers, and ended by `close` or by being dropped (the flusher's last attempt), in
//! rounds until the time is up.
//!
//! Anomaly: lost writes. A model keeps each key's last acknowledged version (versions of a
//! key rise); at the end of a round that version, or a later one, must be in the store or
//! handed back (by `close`, or to the `on_unflushed` hook when dropped).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_cache::{Cache, Store, WriteBack};
use keel_testkit::anomalies::lost_writes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{Anomaly, Row};

const KEYS: u32 = 256;
const CAPACITY: u64 = 64;
const WRITERS: u32 = 2;
const PANIC_MESSAGE: &str = "soak: the store panics";

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the store is down")
    }
}

impl std::error::Error for Down {}

/// A map that refuses writes while `failing`, sleeps while `slow`, panics while `panicking`.
#[derive(Default)]
struct FlakyStore {
    data: Mutex<HashMap<u32, u64>>,
    failing: AtomicBool,
    slow_micros: AtomicU64,
    panicking: AtomicBool,
    batches: AtomicU64,
}

impl Store<u32, u64> for FlakyStore {
    type Error = Down;

    fn write(&self, key: &u32, value: &u64) -> Result<(), Down> {
        self.write_batch(&[(*key, *value)])
    }

    fn write_batch(&self, batch: &[(u32, u64)]) -> Result<(), Down> {
        let slow = self.slow_micros.load(Ordering::Relaxed);
        if slow > 0 {
            std::thread::sleep(Duration::from_micros(slow));
        }
        if self.panicking.load(Ordering::Relaxed) {
            panic!("{PANIC_MESSAGE}");
        }
        if self.failing.load(Ordering::Relaxed) {
            return Err(Down);
        }
        if crate::planted() && self.batches.fetch_add(1, Ordering::Relaxed) % 50 == 49 {
            return Ok(()); // planted: a store that acknowledges a batch and drops it
        }
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in batch {
            data.insert(*k, *v);
        }
        Ok(())
    }
}

/// Keeps the planted panics of the store out of the output.
fn quiet_planted_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let planted = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m == PANIC_MESSAGE);
        if !planted {
            default(info);
        }
    }));
}

#[derive(Default)]
struct Counts {
    down: u64,
    slow: u64,
    panics: u64,
    dropped: u64,
    inserts: u64,
    lost: u64,
}

fn round(rng: &mut SmallRng, length: Duration, counts: &mut Counts) -> Result<(), String> {
    let store = Arc::new(FlakyStore::default());
    let spilled = Arc::new(Mutex::new(Vec::new()));
    let spill = Arc::clone(&spilled);
    let wb = Arc::new(
        WriteBack::builder(
            Cache::new(CAPACITY).map_err(|e| e.to_string())?,
            Arc::clone(&store),
        )
        .batch_size(rng.random_range(1..32))
        .flush_interval(Duration::from_millis(rng.random_range(1..50)))
        .flusher_tick(Duration::from_millis(1))
        .on_unflushed(move |rows| spill.lock().unwrap_or_else(|e| e.into_inner()).extend(rows))
        .build()
        .map_err(|e| e.to_string())?,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (wb, stop) = (Arc::clone(&wb), Arc::clone(&stop));
            let mut rng = SmallRng::seed_from_u64(rng.random());
            std::thread::spawn(move || {
                // This writer's keys, their last acknowledged versions, and its inserts.
                let mut acked = HashMap::new();
                let mut version = 0_u64;
                let mut inserts = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = rng.random_range(0..KEYS / WRITERS) * WRITERS + w;
                    version += 1;
                    wb.insert(key, version);
                    acked.insert(key, version);
                    inserts += 1;
                    if rng.random_bool(0.01) {
                        std::thread::sleep(Duration::from_micros(rng.random_range(0..500)));
                    }
                }
                (acked, inserts)
            })
        })
        .collect();
    let end = Instant::now() + length;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(rng.random_range(1..40)));
        match rng.random_range(0..6) {
            0 => {
                let down = !store.failing.load(Ordering::Relaxed);
                counts.down += u64::from(down);
                store.failing.store(down, Ordering::Relaxed);
            }
            1 => {
                let slow = if rng.random_bool(0.5) {
                    rng.random_range(100..20_000)
                } else {
                    0
                };
                counts.slow += u64::from(slow > 0);
                store.slow_micros.store(slow, Ordering::Relaxed);
            }
            2 => {
                let panicking = !store.panicking.load(Ordering::Relaxed);
                counts.panics += u64::from(panicking);
                store.panicking.store(panicking, Ordering::Relaxed);
            }
            _ => {
                // A caller's flush, which a panicking store unwinds through.
                let wb = Arc::clone(&wb);
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || wb.flush()));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked = HashMap::new();
    for writer in writers {
        let (mine, inserts) = writer.join().map_err(|_| "a writer panicked")?;
        acked.extend(mine);
        counts.inserts += inserts;
    }
    // The round ends with the store up or down (never panicking: `close` reports a store
    // that refuses, and a panic in the caller's own `close` is the caller's to handle).
    store.panicking.store(false, Ordering::Relaxed);
    store.failing.store(rng.random_bool(0.5), Ordering::Relaxed);
    let wb = Arc::into_inner(wb).ok_or("the write-back is still shared")?;
    let handed_back: Vec<(u32, u64)> = if rng.random_bool(0.5) {
        match wb.close() {
            Ok(_) => Vec::new(),
            Err(unflushed) => unflushed.entries,
        }
    } else {
        counts.dropped += 1;
        drop(wb);
        std::mem::take(&mut *spilled.lock().unwrap_or_else(|e| e.into_inner()))
    };
    let mut back = HashMap::new();
    for (k, v) in handed_back {
        let at = back.entry(k).or_insert(v);
        *at = (*at).max(v);
    }
    let stored = store.data.lock().unwrap_or_else(|e| e.into_inner()).clone();
    counts.lost += lost_writes(&acked, &[&stored, &back]) as u64;
    Ok(())
}

pub(crate) fn run(time: Duration, seed: u64) -> Result<Row, String> {
    quiet_planted_panics();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut counts = Counts::default();
    let deadline = Instant::now() + time;
    let mut rounds = 0;
    while Instant::now() < deadline {
        let length = Duration::from_millis(rng.random_range(100..1_500))
            .min(deadline.saturating_duration_since(Instant::now()));
        round(&mut rng, length, &mut counts)?;
        rounds += 1;
    }
    eprintln!("soak: cache-write-back: {rounds} rounds");
    let mut row = Row::new("cache-write-back");
    row.faults = vec![
        ("store down", counts.down),
        ("slow store", counts.slow),
        ("store panics", counts.panics),
        ("dropped, not closed", counts.dropped),
    ];
    row.operations = counts.inserts;
    row.add(Anomaly::LostWrites, counts.lost);
    Ok(row)
}
