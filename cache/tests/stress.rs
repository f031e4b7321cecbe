//! Several threads at once: values stay consistent, capacity holds, counters add up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keel_cache::Cache;
use keel_core::ManualClock;

#[test]
fn threads_mixing_reads_writes_and_removes() {
    let clock = ManualClock::new();
    let cache: Arc<Cache<u64, (u64, u64)>> = Arc::new(
        Cache::builder()
            .max_capacity(256)
            .shards(4)
            .record_stats()
            .time_to_live(Duration::from_secs(5))
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let gets = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let cache = cache.clone();
            let gets = gets.clone();
            let clock = clock.clone();
            std::thread::spawn(move || {
                let mut x = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                for i in 0..20_000u64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = x % 1_024;
                    match x % 10 {
                        0..=5 => {
                            gets.fetch_add(1, Ordering::Relaxed);
                            if let Some((k, _)) = cache.get(&key) {
                                assert_eq!(k, key, "a value under the wrong key");
                            }
                        }
                        6..=8 => cache.insert(key, (key, i)),
                        _ => {
                            if let Some((k, _)) = cache.remove(&key) {
                                assert_eq!(k, key);
                            }
                        }
                    }
                    if t == 0 && i % 1_000 == 0 {
                        clock.advance(Duration::from_secs(1));
                    }
                    if i % 512 == 0 {
                        assert!(cache.weighted_size() <= 256);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(cache.entry_count() <= 256);
    let s = cache.stats();
    assert_eq!(s.hits + s.misses, gets.load(Ordering::Relaxed));
    clock.advance(Duration::from_secs(5));
    cache.purge_expired();
    assert_eq!(cache.entry_count(), 0);
}
