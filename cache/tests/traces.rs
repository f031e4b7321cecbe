//! Replays the real traces named by `KEEL_TRACES_DIR` (see its README.md): `Lru` must match
//! the reference LRU miss ratios exactly, and the concurrent cache must stay above the floors
//! measured for it. Skipped, with a message, when the variable is unset.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use keel_cache::{Cache, DefaultHashBuilder, Lru};

fn traces_dir() -> Option<PathBuf> {
    match std::env::var_os("KEEL_TRACES_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            println!("KEEL_TRACES_DIR is not set: skipping the trace replay");
            None
        }
    }
}

/// One integer key per line, gzip or plain; lines holding only `*` are markers.
fn read_trace(path: &Path) -> Vec<u64> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut keys = Vec::new();
    for line in BufReader::new(reader).lines() {
        let line = line.unwrap();
        let line = line.trim();
        if line.is_empty() || line == "*" {
            continue;
        }
        keys.push(line.parse().unwrap_or_else(|e| panic!("{line:?}: {e}")));
    }
    keys
}

/// (trace, cache size, reference LRU miss ratio, best reference miss ratio) from the
/// traces README, and the ceiling set for [`Cache`]: its measured miss ratio (with the
/// fixed seed of `cache_misses`) plus half a point, rounded up, and never raised, with these
/// exceptions:
/// - promoting from the small queue on a second read (not the first) took lirs-cs at 70
///   and 140 entries from 1.3-1.5 points over the best reference to within it and lowered
///   every arc-oltp row, at the cost of 0.6 point on lirs-gli at 252 entries, whose
///   ceiling was raised to 0.849 (still within a point of the best reference, 0.8384);
/// - the adaptive small queue (see `shard.rs`) took the recency probe from 0.81 to LRU's
///   0.50 and arc-oltp down by 0.2-0.4 point, at the cost of 1.5 points on lirs-multi1 at
///   26 entries (0.8185 to 0.8340, still 7 points under the best reference; ceiling 0.827
///   to 0.836) and 0.9 point on lirs-sprite at 353 (0.3257 to 0.3346, within a point of
///   the best reference; ceiling 0.330 to 0.340);
/// - checking a key back from the ghost against main's oldest entry until the small queue
///   has grown past a fifth of the shard (see `shard.rs`) took a loop 10% longer than the
///   cache from 0.48 to 0.11 miss ratio, at the cost of 0.7 point on cloudphysics-io at
///   4,897 entries (0.7577 to 0.7646, 1.3 points over the best reference; ceiling 0.761 to
///   0.770);
/// - asking a newcomer to lead main's victim by two counts once the sketch has been halved
///   (see `shard.rs`) stopped a loop from churning after each halving (a 33-key loop
///   through 30 entries missed 26% at 25 of 64 hash seeds) and lowered cloudphysics-io at
///   4,897 entries by 0.6 point, at the cost of 0.9 point on arc-oltp at 1% (0.5332 to
///   0.5426, within a point of the best reference, 0.5354; ceiling 0.539 to 0.548);
/// - letting main's victim go around again when it outcounts a frequent newcomer (see
///   `shard.rs`) lowered cloudphysics-io and arc-p6-2m at 10%, at the cost of 0.2 point on
///   arc-oltp at 2,000 entries (0.5315 to 0.5336, 0.4 over the best reference, 0.5297;
///   ceiling 0.533 to 0.539);
/// - tripling the small queue's votes while many inserts are keys back from its ghost (see
///   `RETURN_VOTE_STEP` in `shard.rs`, eighth round) took the 1,000-key shifting working set
///   at 1,000 entries 0.52 point and the 50-key set at 25 entries 1.3 points closer to LRU,
///   at the cost of 0.4 point on lirs-sprite at 70 entries (0.7554 to 0.7595, 2.8 points
///   under the best reference and 0.03 over moka held to capacity; ceiling 0.759 to 0.765);
/// - main's demotion of entries it has seen read, with big shards' sketch hearing one read
///   between two looks of the policy (twelfth round, `main_victim` and `SKETCH_READS` in
///   `shard.rs`), took arc-p6-2m at 10% 0.4 point and arc-p12-2m at 5% 0.6 point lower in
///   `compare cache`'s 32 shards, at the cost of 0.4 point on arc-p12-2m at 10% in this
///   test's 8 shards (0.6497 to 0.6534, 1.2 points over the best reference, which the note
///   below explains; ceiling 0.652 to 0.659).
///
/// The ARC prefixes (arc-p12-2m, arc-p6-2m) replay here with at most 8 shards; at 5% and
/// 10% they sit 2.3-2.5 points over the best reference (W-TinyLFU), more than the 0.7-1.7
/// points `compare cache` measures with the default 32 shards on 2 CPUs: their ceilings
/// record that gap rather than hide it.
const REFERENCE: &[(&str, usize, f64, f64, f64)] = &[
    ("lirs-loop.trace.gz", 10, 1.0000, 0.9911, 0.996),
    ("lirs-loop.trace.gz", 50, 1.0000, 0.9516, 0.957),
    ("lirs-loop.trace.gz", 101, 1.0000, 0.9013, 0.907),
    ("lirs-multi1.trace.gz", 26, 0.9897, 0.9055, 0.836),
    ("lirs-multi1.trace.gz", 130, 0.7616, 0.5433, 0.544),
    ("lirs-multi1.trace.gz", 260, 0.5658, 0.5020, 0.503),
    ("lirs-sprite.trace.gz", 70, 0.8367, 0.7873, 0.765),
    ("lirs-sprite.trace.gz", 353, 0.3437, 0.3294, 0.340),
    ("lirs-sprite.trace.gz", 707, 0.1352, 0.1352, 0.147),
    ("lirs-2_pools.trace.gz", 99, 0.7823, 0.5303, 0.521),
    ("lirs-2_pools.trace.gz", 496, 0.4899, 0.4808, 0.486),
    ("lirs-2_pools.trace.gz", 993, 0.4562, 0.4562, 0.462),
    ("lirs-gli.trace.gz", 25, 0.9910, 0.9864, 0.991),
    ("lirs-gli.trace.gz", 126, 0.9909, 0.9210, 0.923),
    ("lirs-gli.trace.gz", 252, 0.9909, 0.8384, 0.845),
    ("lirs-cs.trace.gz", 14, 0.9819, 0.9819, 0.986),
    ("lirs-cs.trace.gz", 70, 0.9817, 0.9512, 0.957),
    ("lirs-cs.trace.gz", 140, 0.9817, 0.9140, 0.919),
    ("cloudphysics-io.txt.gz", 489, 0.8380, 0.8275, 0.834),
    ("cloudphysics-io.txt.gz", 2448, 0.8246, 0.8114, 0.804),
    ("cloudphysics-io.txt.gz", 4897, 0.8049, 0.7518, 0.770),
    ("arc-oltp.trace.gz", 1868, 0.5837, 0.5354, 0.548),
    ("arc-oltp.trace.gz", 9344, 0.3992, 0.3791, 0.381),
    ("arc-oltp.trace.gz", 18688, 0.3348, 0.3234, 0.327),
    ("arc-oltp.trace.gz", 2000, 0.5753, 0.5297, 0.539),
    ("arc-oltp.trace.gz", 10000, 0.3930, 0.3731, 0.375),
    ("corda-vaultservice.trace.gz", 904, 0.6667, 0.6667, 0.672),
    ("corda-vaultservice.trace.gz", 4523, 0.6667, 0.6667, 0.672),
    ("corda-vaultservice.trace.gz", 9046, 0.6667, 0.6667, 0.672),
    ("lirs-scan.trace.gz", 20, 1.0000, 0.9909, 0.996),
    ("lirs-scan.trace.gz", 100, 1.0000, 0.9525, 0.958),
    ("lirs-scan.trace.gz", 200, 1.0000, 0.9050, 0.913),
    ("address-gcc.trace.gz", 350, 0.0825, 0.0816, 0.086),
    ("address-gcc.trace.gz", 1753, 0.0725, 0.0725, 0.078),
    ("address-gcc.trace.gz", 3507, 0.0706, 0.0706, 0.077),
    ("arc-p12-2m.trace.gz", 6391, 0.9320, 0.9179, 0.919),
    ("arc-p12-2m.trace.gz", 31959, 0.8900, 0.7732, 0.803),
    ("arc-p12-2m.trace.gz", 63918, 0.8141, 0.6419, 0.659),
    ("arc-p6-2m.trace.gz", 3260, 0.9833, 0.9651, 0.969),
    ("arc-p6-2m.trace.gz", 16304, 0.9720, 0.8722, 0.871),
    ("arc-p6-2m.trace.gz", 32608, 0.9302, 0.7484, 0.777),
];

/// The hash seed of the replays.
const SEED: u64 = 0x6b65_656c;

fn lru_misses(keys: &[u64], cap: usize) -> usize {
    let mut lru = Lru::new(cap).unwrap();
    let mut misses = 0;
    for &k in keys {
        if lru.get(&k).is_none() {
            misses += 1;
            lru.put(k, ());
        }
    }
    misses
}

#[test]
fn lru_matches_the_reference_column() {
    let Some(dir) = traces_dir() else { return };
    let mut loaded: Option<(&str, Vec<u64>)> = None;
    for &(name, cap, want, _, _) in REFERENCE {
        if loaded.as_ref().is_none_or(|(n, _)| *n != name) {
            loaded = Some((name, read_trace(&dir.join(name))));
        }
        let keys = &loaded.as_ref().unwrap().1;
        let ratio = lru_misses(keys, cap) as f64 / keys.len() as f64;
        assert_eq!(
            format!("{ratio:.4}"),
            format!("{want:.4}"),
            "{name} at {cap} entries"
        );
    }
}

/// Shards as the default would pick on a 2-core machine, and a fixed hash seed, so the
/// result depends neither on the machine nor on the run (with random seeds the small
/// traces move by up to 0.3 point between runs).
fn cache_misses(keys: &[u64], cap: usize) -> usize {
    let shards = (cap / 256).clamp(1, 8);
    let shards = 1 << (usize::BITS - 1 - shards.leading_zeros());
    let cache = Cache::builder()
        .max_capacity(cap as u64)
        .shards(shards)
        .hasher(DefaultHashBuilder::with_seed(SEED))
        .build()
        .unwrap();
    let mut misses = 0;
    for &k in keys {
        if cache.get(&k).is_none() {
            misses += 1;
            cache.insert(k, ());
        }
    }
    misses
}

#[test]
fn cache_stays_under_its_measured_ceilings() {
    let Some(dir) = traces_dir() else { return };
    let mut loaded: Option<(&str, Vec<u64>)> = None;
    let mut report = String::new();
    let mut failed = false;
    for &(name, cap, lru, best, ceiling) in REFERENCE {
        // Debug builds replay arc-oltp only at the 2,000 and 10,000 entries published
        // comparisons use (and 1%), and skip the 2M-request ARC prefixes, to stay well
        // under a minute.
        if cfg!(debug_assertions) && (cap == 9344 || cap == 18688 || name.starts_with("arc-p")) {
            continue;
        }
        if loaded.as_ref().is_none_or(|(n, _)| *n != name) {
            loaded = Some((name, read_trace(&dir.join(name))));
        }
        let keys = &loaded.as_ref().unwrap().1;
        let ratio = cache_misses(keys, cap) as f64 / keys.len() as f64;
        let over = ratio > ceiling;
        failed |= over;
        report.push_str(&format!(
            "{name:24} {cap:6} keel {ratio:.4} ceiling {ceiling:.3} best {best:.4} lru {lru:.4}{}\n",
            if over { "  <-- over the ceiling" } else { "" }
        ));
    }
    println!("{report}");
    assert!(!failed, "miss ratios above their ceilings:\n{report}");
}
