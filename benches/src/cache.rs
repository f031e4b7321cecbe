//! Workloads and policy adapters shared by the cache bench and `compare cache`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Keys drawn from a Zipf distribution over `0..n` with exponent `s`, by inverse CDF.
#[derive(Debug)]
pub struct Zipf {
    cdf: Vec<f64>,
    rng: SmallRng,
}

impl Zipf {
    /// A generator over `n` keys with exponent `s`, seeded for repeatable runs.
    pub fn new(n: usize, s: f64, seed: u64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 0..n {
            sum += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf {
            cdf,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The next key; rank `r` is scrambled so hot keys are not neighbours.
    pub fn next_key(&mut self) -> u64 {
        let u: f64 = self.rng.random();
        let rank = self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1);
        scramble(rank as u64)
    }

    /// `len` keys.
    pub fn keys(&mut self, len: usize) -> Vec<u64> {
        (0..len).map(|_| self.next_key()).collect()
    }
}

/// A bijection on `u64`, so ranks map to spread-out keys.
pub fn scramble(x: u64) -> u64 {
    let x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 31)
}

/// A named request sequence with its number of distinct keys.
#[derive(Debug)]
pub struct Workload {
    /// What it is.
    pub name: String,
    /// The requests.
    pub keys: Vec<u64>,
    /// Distinct keys among them (cache sizes are given as a share of this).
    pub distinct: usize,
    /// Cache sizes to replay it at instead of 1%, 5% and 10% of `distinct`.
    pub sizes: Option<Vec<usize>>,
}

impl Workload {
    /// Counts the distinct keys of `keys`.
    pub fn new(name: impl Into<String>, keys: Vec<u64>) -> Workload {
        let distinct = keys.iter().collect::<std::collections::HashSet<_>>().len();
        Workload {
            name: name.into(),
            keys,
            distinct,
            sizes: None,
        }
    }

    /// Replayed at these cache sizes only.
    pub fn at_sizes(mut self, sizes: &[usize]) -> Workload {
        self.sizes = Some(sizes.to_vec());
        self
    }
}

/// The recency probe: fresh keys, each requested once more two requests later
/// (`a b a b c d c d …`). Every second request can hit, so LRU misses half; a cache that
/// keeps newcomers only in a tiny window, or admits them only when they look frequent,
/// misses them all.
pub fn recency_probe(requests: usize) -> Vec<u64> {
    (0..requests as u64)
        .map(|i| scramble((1 << 41) + (i / 4) * 2 + i % 2))
        .collect()
}

/// Zigzag: phases of `phase` requests that alternate between frequency (Zipf 1.0 over
/// 100,000 keys) and recency (fresh keys in groups of 200, each group requested once in
/// order and once more shuffled, so every key comes back within 400 requests and never
/// after). A fixed policy suits one phase or the other; an adaptive one must follow.
pub fn zigzag(requests: usize, phase: usize, seed: u64) -> Vec<u64> {
    let mut zipf = Zipf::new(100_000, 1.0, seed);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5a5a);
    let mut keys = Vec::with_capacity(requests + 400);
    let mut fresh = 1u64 << 42;
    let mut frequency = true;
    while keys.len() < requests {
        let end = keys.len() + phase;
        while keys.len() < end {
            if frequency {
                keys.push(zipf.next_key());
            } else {
                let group: Vec<u64> = (0..200)
                    .map(|_| {
                        fresh += 1;
                        scramble(fresh)
                    })
                    .collect();
                keys.extend(&group);
                let mut again = group;
                for i in (1..again.len()).rev() {
                    again.swap(i, rng.random_range(0..=i));
                }
                keys.extend(again);
            }
        }
        frequency = !frequency;
    }
    keys.truncate(requests);
    keys
}

/// A loop over `len` keys, over and over: a cache a little smaller than the loop gets
/// nothing from recency and must keep a stable part of it.
pub fn loop_over(requests: usize, len: usize) -> Vec<u64> {
    (0..requests)
        .map(|i| scramble((3 << 40) + (i % len) as u64))
        .collect()
}

/// Sweeps up and down `len` keys, turning at each end (`0 1 … len-1 len-2 … 1 0 1 …`), the
/// pattern of the LIRS zigzag trace: each turn asks again for the keys just asked for, in
/// reverse, so LRU keeps the most of them, and a key the cache kept from the last turn at
/// the other end waits a whole sweep for its next request.
pub fn sweeps(requests: usize, len: usize) -> Vec<u64> {
    let last = len.saturating_sub(1) as u64;
    let period = 2 * last;
    (0..requests as u64)
        .map(|i| {
            let at = i.checked_rem(period).unwrap_or(0);
            let key = if at <= last { at } else { period - at };
            scramble((6 << 40) + key)
        })
        .collect()
}

/// A hot set of `hot` keys asked for uniformly, broken every 10,000 requests by a scan of
/// 5,000 keys never asked for again: a cache that lets scans in loses the hot set.
pub fn hot_set_with_scans(requests: usize, hot: u64, seed: u64) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut keys = Vec::with_capacity(requests + 5_000);
    let mut fresh = 4u64 << 40;
    while keys.len() < requests {
        keys.extend((0..10_000).map(|_| scramble((5 << 40) + rng.random_range(0..hot))));
        keys.extend((0..5_000).map(|_| {
            fresh += 1;
            scramble(fresh)
        }));
    }
    keys.truncate(requests);
    keys
}

/// A shifting working set: uniform requests over a window of `window` keys that moves on
/// by `step` fresh keys every `every` requests. Recency follows it at once; frequency
/// counts remember keys that have left it.
pub fn shifting_working_set(
    requests: usize,
    window: u64,
    step: u64,
    every: usize,
    seed: u64,
) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..requests)
        .map(|i| {
            let base = (i / every) as u64 * step;
            scramble((6 << 40) + base + rng.random_range(0..window))
        })
        .collect()
}

/// The built-in workloads of `compare cache`: Zipf 0.8, 1.0 and 1.2, Zipf with scans
/// mixed in, loops (one 10% longer than the cache), the [`recency_probe`], [`zigzag`], a
/// hot set with scans and a shifting working set.
pub fn synthetic(requests: usize) -> Vec<Workload> {
    let n = 100_000;
    let mut out = Vec::new();
    for (s, seed) in [(0.8, 1), (1.0, 2), (1.2, 3)] {
        out.push(Workload::new(
            format!("zipf {s:.1}"),
            Zipf::new(n, s, seed).keys(requests),
        ));
    }
    // Zipf 1.0 with a scan of 5,000 never-repeated keys after every 20,000 requests.
    let mut zipf = Zipf::new(n, 1.0, 4);
    let mut keys = Vec::with_capacity(requests);
    let mut fresh = 1u64 << 40;
    while keys.len() < requests {
        keys.extend((0..20_000).map(|_| zipf.next_key()));
        keys.extend((0..5_000).map(|_| {
            fresh += 1;
            scramble(fresh)
        }));
    }
    keys.truncate(requests);
    out.push(Workload::new("zipf 1.0 + scans", keys));
    // A loop over 10,000 keys: recency-only policies get nothing below its length.
    let keys = (0..requests)
        .map(|i| scramble((i % 10_000) as u64))
        .collect();
    out.push(Workload::new("loop 10k", keys));
    out.push(Workload::new("loop 1.1x cache", loop_over(requests, 1_100)).at_sizes(&[1_000]));
    out.push(Workload::new("loop 1.1x cache (small)", loop_over(requests, 33)).at_sizes(&[30]));
    out.push(Workload::new("recency probe", recency_probe(requests)).at_sizes(&[20, 50, 500]));
    out.push(Workload::new(
        "zigzag (Zipf / recency, 25k phases)",
        zigzag(requests, 25_000, 5),
    ));
    out.push(Workload::new(
        "sweeps up and down (2,001 keys)",
        sweeps(requests, 2_001),
    ));
    out.push(
        Workload::new("hot set 500 + scans", hot_set_with_scans(requests, 500, 6))
            .at_sizes(&[250, 500, 1_000]),
    );
    out.push(
        Workload::new(
            "shifting working set (1,000 keys, +100 every 5k)",
            shifting_working_set(requests, 1_000, 100, 5_000, 7),
        )
        .at_sizes(&[500, 1_000, 2_000]),
    );
    out.push(
        Workload::new(
            "shifting working set (50 keys, +10 every 500)",
            shifting_working_set(requests, 50, 10, 500, 8),
        )
        .at_sizes(&[25, 50, 100]),
    );
    out
}

/// Reads a trace: one integer key per line, gzip (`.gz`) or plain; `*` lines are skipped.
///
/// # Errors
///
/// An I/O error or a line that is not an integer.
pub fn read_trace(path: &Path) -> Result<Vec<u64>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut keys = Vec::new();
    for line in BufReader::new(reader).lines() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = line.trim();
        if line.is_empty() || line == "*" {
            continue;
        }
        let key = line
            .parse()
            .map_err(|e| format!("{}: {line:?}: {e}", path.display()))?;
        keys.push(key);
    }
    Ok(keys)
}

/// The caches compared for hit ratio, by name.
///
/// "moka" is moka as it runs by default: it applies evictions in batches, so between
/// batches it holds up to about 64 entries more than its capacity (at 26 entries it held up
/// to 90), which flatters it on small caches. "moka, at capacity" runs its pending tasks
/// after every insert, so it holds no more than its capacity, as keel's caches do.
pub const POLICIES: &[&str] = &[
    "keel Cache",
    "keel Lru",
    "moka",
    "moka, at capacity",
    "quick_cache",
    "lru",
];

/// The hash seed `compare cache` replays with unless told otherwise (the one
/// `keel-cache`'s trace test uses).
pub const DEFAULT_SEED: u64 = 0x6b65_656c;

/// The shard count keel `Cache`'s builder picks by default, without a weigher, for
/// `capacity` on a machine with `cpus` CPUs (the rule `CacheBuilder::shards` documents: 16
/// per CPU, at least 256 entries each, a power of two, and one shard rather than two under
/// 1,024 entries), so a replay can show another machine's table. The test
/// `replays_as_on_this_machine` checks it against the builder's own choice.
pub fn shards_on(cpus: usize, capacity: usize) -> usize {
    // `checked_`: an absurd `--cpus` would otherwise wrap to 0 shards in a release build.
    let by_cpu = cpus
        .max(1)
        .saturating_mul(16)
        .checked_next_power_of_two()
        .unwrap_or(1 << 16);
    let by_size = (capacity / 256).max(1);
    let by_size = if by_size < 4 {
        1
    } else {
        1usize << by_size.ilog2()
    };
    by_cpu.min(by_size).min(1 << 16)
}

/// Replays `keys` through the policy named `policy` with `capacity` entries (get, and
/// insert on a miss); returns the miss ratio. Every cache hashes with a hasher seeded by
/// `seed` (keel's, moka's and quick_cache's hashers are otherwise random per cache), so a
/// replay gives the same ratio every run.
///
/// `cpus`: keel `Cache` takes the shard count its builder picks by default on a machine with
/// that many CPUs ([`shards_on`]); `None` lets it pick for this machine.
pub fn miss_ratio(
    policy: &str,
    keys: &[u64],
    capacity: usize,
    seed: u64,
    cpus: Option<usize>,
) -> f64 {
    let hasher = || keel_cache::DefaultHashBuilder::with_seed(seed);
    let mut misses = 0usize;
    match policy {
        "keel Cache" => {
            let mut builder = keel_cache::Cache::builder()
                .max_capacity(capacity as u64)
                .hasher(hasher());
            if let Some(cpus) = cpus {
                builder = builder.shards(shards_on(cpus, capacity));
            }
            let cache = builder.build().expect("capacity > 0, shards fit");
            for &k in keys {
                if cache.get(&k).is_none() {
                    misses += 1;
                    cache.insert(k, ());
                }
            }
        }
        "keel Lru" => {
            let mut lru = keel_cache::Lru::with_hasher(capacity, hasher()).expect("capacity > 0");
            for &k in keys {
                if lru.get(&k).is_none() {
                    misses += 1;
                    lru.put(k, ());
                }
            }
        }
        "moka" => {
            let cache = moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .build_with_hasher(hasher());
            for &k in keys {
                if cache.get(&k).is_none() {
                    misses += 1;
                    cache.insert(k, ());
                }
            }
        }
        "moka, at capacity" => {
            let cache = moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .build_with_hasher(hasher());
            for &k in keys {
                if cache.get(&k).is_none() {
                    misses += 1;
                    cache.insert(k, ());
                    cache.run_pending_tasks();
                }
            }
        }
        "quick_cache" => {
            let mut cache = quick_cache::unsync::Cache::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                hasher(),
                quick_cache::unsync::DefaultLifecycle::default(),
            );
            for &k in keys {
                if cache.get(&k).is_none() {
                    misses += 1;
                    cache.insert(k, ());
                }
            }
        }
        "lru" => {
            let cap = std::num::NonZeroUsize::new(capacity).expect("capacity > 0");
            let mut lru = lru::LruCache::new(cap);
            for &k in keys {
                if lru.get(&k).is_none() {
                    misses += 1;
                    lru.put(k, ());
                }
            }
        }
        other => panic!("unknown policy {other}"),
    }
    misses as f64 / keys.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `shards_on` mirrors the builder's default: replayed with the shards it gives for this
    /// machine, every size misses exactly as with the builder's own choice. Sizes from one
    /// shard to many, so a changed rule (per CPU or per entry) shows.
    #[test]
    fn replays_as_on_this_machine() {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        let mut zipf = Zipf::new(200_000, 0.8, 7);
        let keys: Vec<u64> = (0..60_000).map(|_| zipf.next_key()).collect();
        for capacity in [100, 700, 1_000, 1_500, 3_000, 9_000, 40_000] {
            let default = miss_ratio("keel Cache", &keys, capacity, DEFAULT_SEED, None);
            let mirrored = miss_ratio("keel Cache", &keys, capacity, DEFAULT_SEED, Some(cpus));
            assert_eq!(default, mirrored, "capacity {capacity} on {cpus} CPUs");
        }
        assert_eq!(shards_on(2, 40_000), 32);
        assert_eq!(shards_on(8, 40_000), 128);
        assert_eq!(shards_on(8, 300), 1);
        assert_eq!(shards_on(8, 1_000), 1);
        assert_eq!(shards_on(8, 1_024), 4);
        assert_eq!(shards_on(usize::MAX, 1 << 40), 1 << 16);
    }

    #[test]
    fn sweeps_turn_at_each_end() {
        // The position of each requested key in the sweep.
        let keys = |len: usize, requests| -> Vec<u64> {
            sweeps(requests, len)
                .into_iter()
                .map(|k| {
                    (0..len.max(1) as u64)
                        .find(|&i| scramble((6 << 40) + i) == k)
                        .unwrap()
                })
                .collect()
        };
        assert_eq!(keys(4, 10), [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]);
        assert_eq!(keys(2, 5), [0, 1, 0, 1, 0]);
        assert_eq!(keys(1, 3), [0, 0, 0]);
        assert_eq!(keys(0, 2), [0, 0]);
    }
}
