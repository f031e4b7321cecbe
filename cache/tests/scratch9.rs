//! Ninth-round diagnostic (exploration only): misses on the 1,000-key shifting set.
use keel_cache::{Cache, DefaultHashBuilder, Lru};
fn shifting(requests: u64, window: u64, step: u64, every: u64) -> impl Iterator<Item = u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..requests).map(move |i| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (i / every) * step + x % window
    })
}
#[test]
fn dbg() {
    let cap: u64 = std::env::var("CAP").map(|v| v.parse().unwrap()).unwrap_or(1000);
    let n: u64 = std::env::var("N").map(|v| v.parse().unwrap()).unwrap_or(600_000);
    let mut lru = Lru::new(cap as usize).unwrap();
    let mut l = 0;
    for k in shifting(n, 1000, 100, 5000) {
        if lru.get(&k).is_none() { l += 1; lru.put(k, ()); }
    }
    for seed in 1..=8 {
        let cache = Cache::builder().max_capacity(cap).hasher(DefaultHashBuilder::with_seed(seed)).build().unwrap();
        let mut m = 0;
        for k in shifting(n, 1000, 100, 5000) {
            if cache.get(&k).is_none() { m += 1; cache.insert(k, ()); }
        }
        eprintln!("seed {seed} keel {m} lru {l} ratio {:.3}", m as f64 / l as f64);
    }
}
