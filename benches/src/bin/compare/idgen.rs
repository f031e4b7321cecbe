//! `compare idgen`: IDs per second on 1 and 2 threads, size and sortability of each ID, and
//! what each generator does when the clock steps back.

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keel_benches::idgen::{bench_policy, wide_layout};
use keel_core::ManualClock;
use keel_idgen::{
    ClockBackwards, GenerateError, Layout, Snowflake, UlidGenerator, UlidOverflow, UuidV7Generator,
};

const RUN_FOR: Duration = Duration::from_millis(250);

/// One call of a generator, shareable across threads.
type Next<'a> = Box<dyn Fn() + Sync + 'a>;

/// Calls `next` on `threads` threads for `RUN_FOR` and returns IDs per second.
fn rate(threads: usize, next: &(dyn Fn() + Sync)) -> f64 {
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut count = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        next();
                    }
                    count += 64;
                }
                total.fetch_add(count, Ordering::Relaxed);
            });
        }
        std::thread::sleep(RUN_FOR);
        stop.store(true, Ordering::Relaxed);
    });
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn millions(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else {
        format!("{:.1} k", rate / 1e3)
    }
}

fn throughput() -> Result<(), String> {
    let twitter = Snowflake::builder(Layout::twitter(), 1)
        .on_clock_backwards(bench_policy())
        .build()
        .map_err(|e| e.to_string())?;
    let wide = Snowflake::builder(wide_layout(), 0)
        .on_clock_backwards(bench_policy())
        .build()
        .map_err(|e| e.to_string())?;
    let sony_layout = Snowflake::builder(Layout::sonyflake(), 1)
        .on_clock_backwards(bench_policy())
        .build()
        .map_err(|e| e.to_string())?;
    let ulids = UlidGenerator::new();
    let uuids = UuidV7Generator::new();
    let rs_snowflake = Mutex::new(snowflake::SnowflakeIdGenerator::new(1, 1));
    let sonyflake = sonyflake::Sonyflake::builder()
        .machine_id(&|| Ok(1))
        .finalize()
        .map_err(|e| e.to_string())?;
    let ulid_peer = Mutex::new(ulid::Generator::new());

    let rows: Vec<(&str, &str, Next<'_>)> = vec![
        (
            "keel Snowflake, twitter layout",
            "4.10 M",
            Box::new(|| {
                black_box(twitter.next_id().ok());
            }),
        ),
        (
            "rs-snowflake real_time_generate (Mutex)",
            "4.10 M",
            Box::new(|| {
                black_box(rs_snowflake.lock().map(|mut g| g.real_time_generate()).ok());
            }),
        ),
        (
            "keel Snowflake, wide layout (22-bit sequence)",
            "4.19 G",
            Box::new(|| {
                black_box(wide.next_id().ok());
            }),
        ),
        (
            "keel Snowflake, sonyflake layout",
            "25.6 k",
            Box::new(|| {
                black_box(sony_layout.next_id().ok());
            }),
        ),
        (
            "sonyflake",
            "25.6 k",
            Box::new(|| {
                black_box(sonyflake.next_id().ok());
            }),
        ),
        (
            "keel UlidGenerator",
            "65.5 M",
            Box::new(|| {
                black_box(ulids.next_id().ok());
            }),
        ),
        (
            "ulid Generator (Mutex)",
            "-",
            Box::new(|| {
                black_box(ulid_peer.lock().map(|mut g| g.generate().ok()).ok());
            }),
        ),
        (
            "keel UuidV7Generator",
            "65.5 M",
            Box::new(|| {
                black_box(uuids.next_id().ok());
            }),
        ),
        (
            "uuid now_v7",
            "-",
            Box::new(|| {
                black_box(uuid::Uuid::now_v7());
            }),
        ),
    ];
    println!("### IDs per second (one generator shared by the threads; {RUN_FOR:?} each)\n");
    println!("| generator | layout cap per s | 1 thread | 2 threads |");
    println!("|---|---:|---:|---:|");
    for (name, cap, next) in rows {
        let one = rate(1, next.as_ref());
        let two = rate(2, next.as_ref());
        println!("| {name} | {cap} | {} | {} |", millions(one), millions(two));
    }
    println!();
    Ok(())
}

/// The share of consecutive IDs from one thread that increase, and (for text IDs) whether
/// text order matched numeric order.
fn in_order<T: Ord>(ids: &[T]) -> f64 {
    let increasing = ids.windows(2).filter(|pair| pair[0] < pair[1]).count();
    increasing as f64 * 100.0 / (ids.len() - 1) as f64
}

fn text_sorts_like_numbers<T: Ord + ToString>(ids: &[T]) -> bool {
    ids.windows(2)
        .all(|pair| pair[0].cmp(&pair[1]) == pair[0].to_string().cmp(&pair[1].to_string()))
}

fn formats() -> Result<(), String> {
    const N: usize = 100_000;
    let snowflakes: Vec<u64> = {
        let generator = Snowflake::builder(Layout::twitter(), 1)
            .build()
            .map_err(|e| e.to_string())?;
        (0..N).filter_map(|_| generator.next_id().ok()).collect()
    };
    let js: Vec<u64> = {
        let generator = Snowflake::builder(Layout::js_safe(), 1)
            .build()
            .map_err(|e| e.to_string())?;
        (0..N).filter_map(|_| generator.next_id().ok()).collect()
    };
    let rs: Vec<i64> = {
        let mut generator = snowflake::SnowflakeIdGenerator::new(1, 1);
        (0..N).map(|_| generator.real_time_generate()).collect()
    };
    let ulids: Vec<keel_idgen::Ulid> = {
        let generator = UlidGenerator::new();
        (0..N).filter_map(|_| generator.next_id().ok()).collect()
    };
    let peer_ulids: Vec<ulid::Ulid> = {
        let mut generator = ulid::Generator::new();
        (0..N).filter_map(|_| generator.generate().ok()).collect()
    };
    let uuids: Vec<keel_idgen::UuidV7> = {
        let generator = UuidV7Generator::new();
        (0..N).filter_map(|_| generator.next_id().ok()).collect()
    };
    let peer_uuids: Vec<uuid::Uuid> = (0..N).map(|_| uuid::Uuid::now_v7()).collect();
    let max_len = |ids: &[String]| ids.iter().map(String::len).max().unwrap_or(0);
    let text = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>();

    println!("### Size and order ({N} IDs from one thread)\n");
    println!("| generator | bits | text length | in order (1 thread) | text sorts like numbers |");
    println!("|---|---:|---:|---:|---|");
    println!(
        "| keel Snowflake, twitter layout | 63 | {} (decimal) | {:.2}% | {} |",
        max_len(&text(&snowflakes)),
        in_order(&snowflakes),
        text_sorts_like_numbers(&snowflakes)
    );
    println!(
        "| keel Snowflake, js_safe layout | 53 | {} (decimal) | {:.2}% | {} |",
        max_len(&text(&js)),
        in_order(&js),
        text_sorts_like_numbers(&js)
    );
    println!(
        "| rs-snowflake | 64 (i64) | {} (decimal) | {:.2}% | {} |",
        rs.iter().map(|id| id.to_string().len()).max().unwrap_or(0),
        in_order(&rs),
        text_sorts_like_numbers(&rs)
    );
    println!(
        "| keel UlidGenerator | 128 | 26 | {:.2}% | {} |",
        in_order(&ulids),
        text_sorts_like_numbers(&ulids)
    );
    println!(
        "| ulid Generator | 128 | 26 | {:.2}% | {} |",
        in_order(&peer_ulids),
        text_sorts_like_numbers(&peer_ulids)
    );
    println!(
        "| keel UuidV7Generator | 128 | 36 | {:.2}% | {} |",
        in_order(&uuids),
        text_sorts_like_numbers(&uuids)
    );
    println!(
        "| uuid now_v7 | 128 | 36 | {:.2}% | {} |",
        in_order(&peer_uuids),
        text_sorts_like_numbers(&peer_uuids)
    );
    println!(
        "| sonyflake | 63 | 18-19 (decimal) | limited to 256 per 10 ms; see the throughput table | - |"
    );
    println!();
    Ok(())
}

/// What a keel Snowflake with `policy` does after the clock steps back by `step`: 2,000 IDs
/// are requested with `try_next_id` (never waiting), counting issued IDs and duplicates.
fn after_step_back(policy: ClockBackwards, step: Duration) -> Result<String, String> {
    let clock = ManualClock::new();
    let generator = Snowflake::builder(Layout::twitter(), 1)
        .clock(clock.clone())
        .on_clock_backwards(policy)
        .build()
        .map_err(|e| e.to_string())?;
    let mut seen = HashSet::new();
    for _ in 0..1_000 {
        seen.insert(generator.next_id().map_err(|e| e.to_string())?);
    }
    clock.step_wall_back(step);
    let (mut issued, mut duplicates, mut first_error) = (0, 0, None);
    for _ in 0..2_000 {
        match generator.try_next_id() {
            Ok(id) => {
                issued += 1;
                if !seen.insert(id) {
                    duplicates += 1;
                }
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    let outcome = match first_error {
        None => format!("issued {issued}"),
        Some(GenerateError::WouldBlock { retry_after }) if issued == 0 => {
            format!("waits {retry_after:?}")
        }
        Some(GenerateError::ClockMovedBack { .. }) if issued == 0 => "error".to_string(),
        Some(error) => format!("issued {issued}, then: {error}"),
    };
    Ok(format!("{outcome}, {duplicates} dup"))
}

fn step_back() -> Result<(), String> {
    let steps = [
        Duration::from_millis(1),
        Duration::from_millis(5),
        Duration::from_secs(1),
        Duration::from_secs(3600),
    ];
    let policies = [
        (
            "keel Snowflake, Wait { max: 1 s } (default)",
            ClockBackwards::default(),
        ),
        (
            "keel Snowflake, Borrow { max: 1 s }",
            ClockBackwards::Borrow {
                max: Duration::from_secs(1),
            },
        ),
        ("keel Snowflake, Error", ClockBackwards::Error),
    ];
    println!(
        "### After a clock step back (keel measured with ManualClock; 2,000 IDs asked without waiting)\n"
    );
    println!("| generator | 1 ms | 5 ms | 1 s | 1 h |");
    println!("|---|---|---|---|---|");
    for (name, policy) in policies {
        let cells: Result<Vec<String>, String> = steps
            .iter()
            .map(|step| after_step_back(policy, *step))
            .collect();
        println!("| {name} | {} |", cells?.join(" | "));
    }
    // ULID and UUIDv7 keep the last millisecond: count duplicates across an hour's step.
    let clock = ManualClock::new();
    let ulids = UlidGenerator::with_clock(clock.clone()).on_overflow(UlidOverflow::NextMillisecond);
    let uuids = UuidV7Generator::with_clock(clock.clone());
    let mut seen_ulids = HashSet::new();
    let mut seen_uuids = HashSet::new();
    let mut duplicates = 0;
    for round in 0..4 {
        if round > 0 {
            clock.step_wall_back(Duration::from_secs(3600));
        }
        for _ in 0..2_000 {
            let ulid = ulids.next_id().map_err(|e| e.to_string())?;
            let uuid = uuids.next_id().map_err(|e| e.to_string())?;
            duplicates +=
                usize::from(!seen_ulids.insert(ulid)) + usize::from(!seen_uuids.insert(uuid));
        }
    }
    println!(
        "| keel UlidGenerator / UuidV7Generator | keep the last ms, +1 | same | same | same ({duplicates} dup over 3 steps of 1 h) |"
    );
    println!(
        "| rs-snowflake (from its source) | restamps with the earlier time: duplicates possible | same | same | same |"
    );
    println!(
        "| sonyflake (from its source) | keeps its last time; every 256 IDs sleeps until the clock catches up | same | same | sleeps up to 1 h |"
    );
    println!("| ulid Generator (from its source) | keeps the last ms, +1 | same | same | same |");
    println!(
        "| uuid now_v7 (from its source) | keeps the last timestamp, counter +1 | same | same | same |"
    );
    println!();
    Ok(())
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("takes no options, got `{extra}`"));
    }
    throughput()?;
    formats()?;
    step_back()
}
