//! Where keel `Cache` and moka (held to its capacity) differ on one trace: the requests
//! only one of them hits, by the key's reuse distance and by how often it was asked for.
//!
//! `cargo run --release -p keel-benches --example cache_diff -- <trace> <capacity> [seed]`
//!
//! Each cell is moka's hits that keel missed minus keel's hits that moka missed, for
//! requests whose key was last asked for 2^(row-1) to 2^row requests earlier and whose
//! request count so far, this one included, is 2^(column-1) to 2^column (row 0 and
//! column 1: the key's first request).
//! Positive cells are where moka keeps what keel does not.

use std::collections::HashMap;
use std::path::Path;

const DISTANCES: usize = 26;
const COUNTS: usize = 12;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: cache_diff <trace> <capacity> [seed]";
    let path = args.next().ok_or(usage)?;
    let capacity: u64 = args
        .next()
        .ok_or(usage)?
        .parse()
        .map_err(|e| format!("capacity: {e}"))?;
    let seed = match args.next() {
        Some(s) => s.parse().map_err(|e| format!("seed: {e}"))?,
        None => keel_benches::cache::DEFAULT_SEED,
    };
    let keys = keel_benches::cache::read_trace(Path::new(&path))?;
    let hasher = || keel_cache::DefaultHashBuilder::with_seed(seed);
    let keel = keel_cache::Cache::builder()
        .max_capacity(capacity)
        .hasher(hasher())
        .build()
        .map_err(|e| e.to_string())?;
    let moka = moka::sync::Cache::builder()
        .max_capacity(capacity)
        .build_with_hasher(hasher());

    let mut last_seen: HashMap<u64, usize> = HashMap::new();
    let mut asked: HashMap<u64, u32> = HashMap::new();
    let mut net = [[0i64; COUNTS]; DISTANCES];
    let (mut keel_hits, mut moka_hits) = (0i64, 0i64);
    for (i, &k) in keys.iter().enumerate() {
        let keel_hit = keel.get(&k).is_some();
        if !keel_hit {
            keel.insert(k, ());
        }
        let moka_hit = moka.get(&k).is_some();
        if !moka_hit {
            moka.insert(k, ());
            moka.run_pending_tasks();
        }
        keel_hits += i64::from(keel_hit);
        moka_hits += i64::from(moka_hit);
        let distance = last_seen.insert(k, i).map_or(0, |p| i - p);
        let count = asked.entry(k).or_insert(0);
        *count += 1;
        if keel_hit != moka_hit {
            let row = (usize::BITS - distance.leading_zeros()) as usize;
            let column = (u32::BITS - count.leading_zeros()) as usize;
            net[row.min(DISTANCES - 1)][column.min(COUNTS - 1)] += if moka_hit { 1 } else { -1 };
        }
    }
    println!(
        "{} requests, capacity {capacity}, seed {seed}: keel hits {keel_hits}, moka at capacity {moka_hits} (moka - keel = {})",
        keys.len(),
        moka_hits - keel_hits
    );
    print!("| log2 distance \\ log2 count |");
    (0..COUNTS).for_each(|c| print!(" {c} |"));
    println!(" sum |");
    println!("|---|{}", "---:|".repeat(COUNTS + 1));
    for (row, cells) in net.iter().enumerate() {
        if cells.iter().all(|&n| n == 0) {
            continue;
        }
        print!("| {row} |");
        cells.iter().for_each(|n| print!(" {n} |"));
        println!(" {} |", cells.iter().sum::<i64>());
    }
    Ok(())
}
