//! Replays the real traces named by `KEEL_TRACES_DIR` (see its README.md): `Lru` must match
//! the reference LRU miss ratios exactly, and the concurrent cache must stay above the floors
//! measured for it. Skipped, with a message, when the variable is unset.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use keel_cache::Lru;

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

/// (trace, cache size, reference LRU miss ratio) from the traces README.
const LRU_REFERENCE: &[(&str, usize, f64)] = &[
    ("lirs-loop.trace.gz", 10, 1.0000),
    ("lirs-loop.trace.gz", 50, 1.0000),
    ("lirs-loop.trace.gz", 101, 1.0000),
    ("lirs-multi1.trace.gz", 26, 0.9897),
    ("lirs-multi1.trace.gz", 130, 0.7616),
    ("lirs-multi1.trace.gz", 260, 0.5658),
    ("lirs-sprite.trace.gz", 70, 0.8367),
    ("lirs-sprite.trace.gz", 353, 0.3437),
    ("lirs-sprite.trace.gz", 707, 0.1352),
    ("lirs-2_pools.trace.gz", 99, 0.7823),
    ("lirs-2_pools.trace.gz", 496, 0.4899),
    ("lirs-2_pools.trace.gz", 993, 0.4562),
    ("lirs-gli.trace.gz", 25, 0.9910),
    ("lirs-gli.trace.gz", 126, 0.9909),
    ("lirs-gli.trace.gz", 252, 0.9909),
    ("lirs-cs.trace.gz", 14, 0.9819),
    ("lirs-cs.trace.gz", 70, 0.9817),
    ("lirs-cs.trace.gz", 140, 0.9817),
    ("cloudphysics-io.txt.gz", 489, 0.8380),
    ("cloudphysics-io.txt.gz", 2448, 0.8246),
    ("cloudphysics-io.txt.gz", 4897, 0.8049),
    ("arc-oltp.trace.gz", 1868, 0.5837),
    ("arc-oltp.trace.gz", 9344, 0.3992),
    ("arc-oltp.trace.gz", 18688, 0.3348),
    ("arc-oltp.trace.gz", 2000, 0.5753),
    ("arc-oltp.trace.gz", 10000, 0.3930),
];

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
    for &(name, cap, want) in LRU_REFERENCE {
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
