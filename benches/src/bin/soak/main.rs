//! `soak`: every fault scenario of every block against real servers for a given time, with
//! fault timing drawn from a printed seed, and one table of the anomalies found.
//!
//! `scripts/soak [MINUTES] [--seed N] [--only BLOCK]`, or
//! `cargo run --release -p keel-benches --bin soak -- [MINUTES] [--seed N]`.
//! `KEEL_SOAK_SEED` sets the seed too. Each block runs at least 5 s (idgen-etcd 10 s). The
//! exit status is 1 when any anomaly is counted or a block did no operations.
//!
//! The checkers are `keel_testkit::anomalies`, shared with the fault tests and tested there
//! with planted anomalies.

mod breaker;
mod cache;
mod faults;
mod idgen;
mod lock;
mod rate_limit;

use std::process::ExitCode;
use std::time::Duration;

/// What a call may take beyond its timeout before it counts as a late return: scheduling
/// on a loaded, shared 2-core machine, not I/O (the fault tests allow 100 ms on an
/// otherwise idle one).
pub(crate) const SLACK: Duration = Duration::from_millis(250);

/// The least time a block runs, whatever its share: a shorter run can fall wholly inside
/// faults and check nothing (a 2.3 s etcd leg once issued 0 IDs: a pause and a partition
/// longer than its 1 s TTL covered it).
const MIN_SHARE: Duration = Duration::from_secs(5);
/// The etcd generators' least time: their TTL is 1 s and each new lease waits up to a TTL
/// before its first ID, so 5 s is a few server faults from issuing none.
const MIN_SHARE_IDGEN_ETCD: Duration = Duration::from_secs(10);

/// `--plant`: each block plants a bug of its own kind (a holder that outlives its lease, a
/// writer around the fence, a generator that ignores its lease, a retrying limiter caller,
/// a store that drops batches, a request that keeps its slot, stalled calls), to show the
/// table counts them. Off in every real run.
static PLANT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn planted() -> bool {
    PLANT.load(std::sync::atomic::Ordering::Relaxed)
}

/// The anomaly columns, in table order.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Anomaly {
    DoubleGrants,
    StaleWritesAccepted,
    DuplicateIds,
    OverAdmissions,
    CountedTwice,
    LostWrites,
    LeakedPermits,
    LateReturns,
}

const ANOMALIES: [(&str, Anomaly); 8] = [
    ("double grants", Anomaly::DoubleGrants),
    ("stale writes accepted", Anomaly::StaleWritesAccepted),
    ("duplicate IDs", Anomaly::DuplicateIds),
    ("over-admissions beyond bound", Anomaly::OverAdmissions),
    ("counted twice", Anomaly::CountedTwice),
    ("lost writes", Anomaly::LostWrites),
    ("leaked permits", Anomaly::LeakedPermits),
    ("late returns", Anomaly::LateReturns),
];

/// One row of the table: a block in one setup.
#[derive(Debug, Default)]
pub(crate) struct Row {
    pub(crate) name: String,
    /// Faults injected, by kind.
    pub(crate) faults: Vec<(&'static str, u64)>,
    pub(crate) operations: u64,
    /// `None` where the block does not check that kind.
    anomalies: [Option<u64>; 8],
}

impl Row {
    pub(crate) fn new(name: impl Into<String>) -> Row {
        Row {
            name: name.into(),
            ..Row::default()
        }
    }

    pub(crate) fn add(&mut self, anomaly: Anomaly, count: u64) {
        let cell = &mut self.anomalies[anomaly as usize];
        *cell = Some(cell.unwrap_or(0) + count);
    }

    fn faults_text(&self) -> String {
        let total: u64 = self.faults.iter().map(|(_, n)| n).sum();
        let kinds: Vec<String> = self
            .faults
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        format!("{total} ({})", kinds.join(", "))
    }
}

/// A block of the soak: its name and how it runs for a share of the time.
struct Block {
    name: &'static str,
    /// Its share of the run: its parts over the sum of the parts of the blocks run.
    parts: u32,
    /// It runs at least this long, whatever its share.
    min: Duration,
    run: fn(Duration, u64) -> Result<Row, String>,
}

const BLOCKS: &[Block] = &[
    Block {
        name: "lock-redis",
        parts: 3,
        min: MIN_SHARE,
        run: lock::redis,
    },
    Block {
        name: "lock-etcd",
        parts: 2,
        min: MIN_SHARE,
        run: lock::etcd,
    },
    Block {
        name: "rate-limit-redis",
        parts: 2,
        min: MIN_SHARE,
        run: rate_limit::run,
    },
    Block {
        name: "rate-limit-redis-cluster",
        parts: 1,
        min: MIN_SHARE,
        run: rate_limit::cluster,
    },
    Block {
        name: "idgen-redis",
        parts: 2,
        min: MIN_SHARE,
        run: idgen::redis,
    },
    Block {
        name: "idgen-etcd",
        parts: 1,
        min: MIN_SHARE_IDGEN_ETCD,
        run: idgen::etcd,
    },
    Block {
        name: "cache-write-back",
        parts: 1,
        min: MIN_SHARE,
        run: cache::run,
    },
    Block {
        name: "breaker-bulkhead-retry",
        parts: 1,
        min: MIN_SHARE,
        run: breaker::run,
    },
    // Last, so the blocks before them keep the seed streams of earlier runs' seeds.
    Block {
        name: "lock-redis-cluster",
        parts: 1,
        min: MIN_SHARE,
        run: lock::cluster,
    },
    Block {
        name: "idgen-redis-cluster",
        parts: 1,
        min: MIN_SHARE,
        run: idgen::cluster,
    },
];

struct Args {
    plant: bool,
    minutes: f64,
    seed: u64,
    only: Option<String>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut minutes = 1.0;
    let mut seed = None;
    let mut only = None;
    let mut plant = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--seed" => {
                let value = rest.next().ok_or("--seed needs a number")?;
                seed = Some(value.parse().map_err(|e| format!("--seed {value}: {e}"))?);
            }
            "--only" => only = Some(rest.next().ok_or("--only needs a block name")?.clone()),
            "--plant" => plant = true,
            "-h" | "--help" => return Err(usage()),
            minutes_arg => {
                minutes = minutes_arg
                    .parse::<f64>()
                    .ok()
                    .filter(|m| m.is_finite() && *m > 0.0 && *m <= 24.0 * 60.0)
                    .ok_or_else(|| {
                        format!("MINUTES must be a number in (0, 1440]: {minutes_arg}")
                    })?;
            }
        }
    }
    if let Some(name) = &only
        && !BLOCKS.iter().any(|b| b.name == name)
    {
        return Err(format!("no block {name}; {}", usage()));
    }
    let seed = match seed {
        Some(seed) => seed,
        None => match std::env::var("KEEL_SOAK_SEED") {
            Ok(value) => value
                .parse()
                .map_err(|e| format!("KEEL_SOAK_SEED={value}: {e}"))?,
            Err(_) => rand::random(),
        },
    };
    Ok(Args {
        plant,
        minutes,
        seed,
        only,
    })
}

fn usage() -> String {
    let names: Vec<&str> = BLOCKS.iter().map(|b| b.name).collect();
    format!(
        "usage: soak [MINUTES] [--seed N] [--only BLOCK] [--plant]  (MINUTES defaults to 1; KEEL_SOAK_SEED \
         also sets the seed; blocks: {})",
        names.join(", ")
    )
}

fn print_table(rows: &[Row]) {
    let mut header = vec!["block", "faults injected", "operations"];
    header.extend(ANOMALIES.iter().map(|(name, _)| *name));
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    for row in rows {
        let mut cells = vec![
            row.name.clone(),
            row.faults_text(),
            row.operations.to_string(),
        ];
        cells.extend(
            row.anomalies
                .iter()
                .map(|a| a.map_or_else(|| "-".to_string(), |n| n.to_string())),
        );
        println!("| {} |", cells.join(" | "));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let command = format!(
        "scripts/soak {} --seed {}{}",
        args.minutes,
        args.seed,
        args.only
            .as_ref()
            .map(|b| format!(" --only {b}"))
            .unwrap_or_default()
    ) + if args.plant { " --plant" } else { "" };
    PLANT.store(args.plant, std::sync::atomic::Ordering::Relaxed);
    println!("soak seed {} (reproduce: {command})", args.seed);
    let blocks: Vec<&Block> = BLOCKS
        .iter()
        .filter(|b| args.only.as_ref().is_none_or(|o| o == b.name))
        .collect();
    let parts: u32 = blocks.iter().map(|b| b.parts).sum();
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let mut rows = Vec::new();
    let mut failed = false;
    for (i, block) in blocks.iter().enumerate() {
        let share = total
            .mul_f64(f64::from(block.parts) / f64::from(parts))
            .max(block.min);
        // Each block draws from its own stream of the seed.
        let seed = args
            .seed
            .wrapping_add(0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1));
        eprintln!("soak: {} for {share:.1?}", block.name);
        match (block.run)(share, seed) {
            Ok(row) => {
                eprintln!("soak: {} done: {row:?}", block.name);
                rows.push(row);
            }
            Err(error) => {
                eprintln!("soak: {} could not run: {error}", block.name);
                failed = true;
            }
        }
    }
    println!(
        "soak seed {}, {} min, command: {command}",
        args.seed, args.minutes
    );
    print_table(&rows);
    let anomalies: u64 = rows.iter().flat_map(|r| r.anomalies).flatten().sum();
    // A block that did nothing checked nothing: that fails the run like an anomaly.
    let idle: Vec<&str> = rows
        .iter()
        .filter(|r| r.operations == 0)
        .map(|r| r.name.as_str())
        .collect();
    if failed || anomalies > 0 || !idle.is_empty() {
        println!(
            "soak: {anomalies} anomalies{}{}",
            if failed {
                ", and a block failed to run"
            } else {
                ""
            },
            if idle.is_empty() {
                String::new()
            } else {
                format!(", and no operations in {}", idle.join(", "))
            }
        );
        ExitCode::FAILURE
    } else {
        println!("soak: no anomalies");
        ExitCode::SUCCESS
    }
}

/// A multi-threaded tokio runtime of two workers, the machine's cores.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}
