//! `compare clock`: what one reading of each clock source costs, and how coarse it is.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_benches::clocks::{CoarseTicker, monotonic_coarse_nanos};
use keel_core::{Clock, StdClock, SystemClock};

const READS: u32 = 2_000_000;

/// One clock source, read as nanoseconds (or milliseconds for wall clocks).
type Reader = Box<dyn FnMut() -> u64>;

/// Times `READS` calls of `read` and counts how many distinct values they returned.
fn measure(read: &mut dyn FnMut() -> u64) -> (f64, u32) {
    let start = std::time::Instant::now();
    let mut distinct = 0;
    let mut last = u64::MAX;
    for _ in 0..READS {
        let value = black_box(read());
        if value != last {
            distinct += 1;
            last = value;
        }
    }
    let nanos = start.elapsed().as_nanos() as f64 / f64::from(READS);
    (nanos, distinct)
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("takes no options, got `{extra}`"));
    }
    let quanta_clock = quanta::Clock::new();
    let quanta_origin = quanta_clock.now();
    let ticker = CoarseTicker::start(Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(5));
    let std_origin = std::time::Instant::now();
    let mut sources: Vec<(&str, Reader)> = vec![
        (
            "std Instant::now",
            Box::new(move || std_origin.elapsed().as_nanos() as u64),
        ),
        (
            "std SystemTime::now",
            Box::new(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
            }),
        ),
        (
            "quanta Clock::now",
            Box::new(move || quanta_clock.now().duration_since(quanta_origin).as_nanos() as u64),
        ),
        ("CLOCK_MONOTONIC_COARSE", Box::new(monotonic_coarse_nanos)),
        ("coarse ticker (1 ms)", Box::new(move || ticker.now_nanos())),
        (
            "keel SystemClock::now",
            Box::new(|| SystemClock.now().as_nanos()),
        ),
        ("keel StdClock::now", Box::new(|| StdClock.now().as_nanos())),
        (
            "keel SystemClock::unix_millis",
            Box::new(|| SystemClock.unix_millis()),
        ),
    ];
    println!("| clock | ns per reading | distinct values in {READS} reads |");
    println!("|---|---:|---:|");
    for (name, read) in &mut sources {
        let (nanos, distinct) = measure(read.as_mut());
        println!("| {name} | {nanos:.1} | {distinct} |");
    }
    Ok(())
}
