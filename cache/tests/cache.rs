//! Behaviour of the concurrent `Cache`: capacity, weights, expiry, listener, stats.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_cache::{BuildError, Cache, InsertError, RemovalCause};
use keel_core::ManualClock;

type Log = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

fn logged(builder: keel_cache::CacheBuilder<u64, u64>) -> (Cache<u64, u64>, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let cache = builder
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((k, v, cause)))
        .build()
        .unwrap();
    (cache, log)
}

#[test]
fn builder_rejects_bad_configuration() {
    let err = Cache::<u64, u64>::builder().build().unwrap_err();
    assert_eq!(err, BuildError::ZeroCapacity);
    let err = Cache::<u64, u64>::builder()
        .max_capacity(100)
        .shards(3)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "shard count must be a power of two from 1 to 65536 and at most the capacity, got 3"
    );
    // Too many shards would allocate a lock and a policy each before the first insert.
    for shards in [0, 1 << 17, 256] {
        let err = Cache::<u64, u64>::builder()
            .max_capacity(1 << 20)
            .shards(shards)
            .build();
        if shards == 256 {
            assert!(err.is_ok());
        } else {
            assert_eq!(err.unwrap_err(), BuildError::BadShards(shards));
        }
    }
    assert_eq!(
        Cache::<u64, u64>::builder()
            .max_capacity(4)
            .shards(8)
            .build()
            .unwrap_err(),
        BuildError::BadShards(8)
    );
    let err = Cache::<u64, u64>::builder()
        .max_capacity(100)
        .time_to_idle(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "time to idle must be > 0");
    assert!(matches!(
        Cache::<u64, u64>::new(u64::MAX),
        Err(BuildError::CapacityTooLarge { .. })
    ));
}

#[test]
fn count_never_exceeds_capacity() {
    let cache = Cache::builder()
        .max_capacity(100)
        .shards(4)
        .build()
        .unwrap();
    for k in 0..10_000u64 {
        cache.insert(k, k);
        assert!(cache.entry_count() <= 100);
    }
    assert_eq!(cache.entry_count(), 100);
    assert!(cache.stats().evictions >= 9_900);
}

#[test]
fn frequently_read_keys_survive_a_scan() {
    let cache = Cache::builder()
        .max_capacity(100)
        .shards(1)
        .build()
        .unwrap();
    for round in 0..20 {
        for k in 0..50u64 {
            if cache.get(&k).is_none() {
                cache.insert(k, k);
            }
        }
        // A scan of never-repeated keys, much longer than the cache.
        for k in 0..500u64 {
            cache.insert(1_000_000 + round * 1_000 + k, 0);
        }
    }
    let kept = (0..50u64).filter(|k| cache.contains_key(k)).count();
    assert!(
        kept >= 45,
        "only {kept} of the 50 hot keys survived the scans"
    );
}

#[test]
fn weigher_bounds_total_weight_and_refuses_bad_weights() {
    let cache = Cache::builder()
        .max_capacity(1_000)
        .shards(2)
        .weigher(|_k: &u64, v: &Vec<u8>| v.len() as u32)
        .build()
        .unwrap();
    assert_eq!(
        cache.try_insert(1, Vec::new()),
        Err(InsertError::ZeroWeight)
    );
    assert_eq!(
        cache.try_insert(2, vec![0; 600]),
        Err(InsertError::TooHeavy {
            weight: 600,
            max: 500
        })
    );
    assert_eq!(cache.entry_count(), 0);
    for k in 0..1_000u64 {
        cache.try_insert(k, vec![0; (k % 50 + 1) as usize]).unwrap();
        assert!(cache.weighted_size() <= 1_000);
    }
    assert!(cache.weighted_size() > 800);
    assert_eq!(
        InsertError::ZeroWeight.to_string(),
        "the weigher returned 0; weights must be > 0"
    );
}

#[test]
fn listener_hears_every_cause() {
    let clock = ManualClock::new();
    let (cache, log) = logged(
        Cache::builder()
            .max_capacity(2)
            .shards(1)
            .time_to_live(Duration::from_secs(10))
            .clock(clock.clone()),
    );
    cache.insert(1, 10);
    cache.insert(1, 11);
    assert_eq!(
        log.lock().unwrap().pop(),
        Some((1, 10, RemovalCause::Replaced))
    );
    assert_eq!(cache.remove(&1), Some(11));
    assert_eq!(
        log.lock().unwrap().pop(),
        Some((1, 11, RemovalCause::Explicit))
    );
    cache.insert(2, 20);
    cache.insert(3, 30);
    cache.insert(4, 40);
    assert_eq!(
        log.lock()
            .unwrap()
            .iter()
            .filter(|e| e.2 == RemovalCause::Size)
            .count(),
        1
    );
    clock.advance(Duration::from_secs(10));
    cache.purge_expired();
    let expired = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.2 == RemovalCause::Expired)
        .count();
    assert_eq!(expired, 2);
    assert_eq!(cache.entry_count(), 0);
}

#[test]
fn time_to_live_is_never_exceeded() {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .max_capacity(100)
        .time_to_live(Duration::from_secs(5))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert("a", 1);
    clock.advance(Duration::from_millis(4_999));
    assert_eq!(cache.get("a"), Some(1));
    clock.advance(Duration::from_millis(1));
    assert_eq!(cache.get("a"), None);
    assert_eq!(cache.peek("a"), None);
    assert!(!cache.contains_key("a"));
    // Writing again starts a new lifetime.
    cache.insert("a", 2);
    assert_eq!(cache.get("a"), Some(2));
}

#[test]
fn time_to_idle_extends_on_reads_but_not_past_the_ttl() {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .max_capacity(100)
        .time_to_idle(Duration::from_secs(10))
        .time_to_live(Duration::from_secs(25))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 1);
    for _ in 0..2 {
        clock.advance(Duration::from_secs(9));
        assert_eq!(cache.get(&1), Some(1));
    }
    clock.advance(Duration::from_secs(6)); // 24 s: idle 6 s, alive
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(Duration::from_secs(1)); // 25 s: the TTL caps it
    assert_eq!(cache.get(&1), None);

    cache.insert(2, 2);
    clock.advance(Duration::from_secs(10)); // idle for the whole 10 s
    assert_eq!(cache.get(&2), None);
}

#[test]
fn per_entry_expiry_and_reclaim_without_a_background_thread() {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .max_capacity(1_000)
        .shards(1)
        .per_entry_expiry()
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in 0..100u64 {
        cache
            .insert_with_ttl(k, k, Duration::from_secs(1 + k % 2))
            .unwrap();
    }
    cache.insert(1_000, 0); // no deadline
    clock.advance(Duration::from_secs(1));
    for k in 0..100u64 {
        assert_eq!(cache.get(&k).is_some(), k % 2 == 1, "key {k}");
    }
    // Writes sweep a few slots each: the expired half is reclaimed without purge_expired.
    for k in 0..200u64 {
        cache.insert(10_000 + k, k);
    }
    let left = (0..100u64).filter(|k| cache.peek(k).is_some()).count();
    assert_eq!(left, 50);
    assert_eq!(cache.entry_count(), 50 + 1 + 200);
    assert_eq!(cache.get(&1_000), Some(0));
}

#[test]
fn stats_count_hits_misses_and_evictions() {
    let cache = Cache::builder()
        .max_capacity(10)
        .shards(1)
        .record_stats()
        .build()
        .unwrap();
    for k in 0..10u64 {
        cache.insert(k, k);
    }
    for k in 0..20u64 {
        cache.get(&k);
    }
    cache.peek(&1); // not counted
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.evictions), (10, 10, 0));
    cache.insert(99, 99);
    assert_eq!(cache.stats().evictions, 1);
    cache.clear();
    assert_eq!(cache.entry_count(), 0);
    // Without record_stats, reads are not counted.
    let quiet = Cache::new(10).unwrap();
    quiet.insert(1, 1);
    quiet.get(&1);
    quiet.get(&2);
    assert_eq!((quiet.stats().hits, quiet.stats().misses), (0, 0));
}

#[test]
fn for_each_sees_live_entries() {
    let cache = Cache::new(100).unwrap();
    for k in 0..10u64 {
        cache.insert(k, k * 2);
    }
    let mut sum = 0;
    cache.for_each(|k, v| {
        assert_eq!(*v, k * 2);
        sum += v;
    });
    assert_eq!(sum, 90);
}

#[test]
fn a_weighted_cache_defaults_to_one_shard_per_cpu() {
    // Each shard's share of the capacity is the heaviest entry it takes.
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
    let shards = cpus.next_power_of_two() as u64;
    let capacity = 1u64 << 24;
    let cache = Cache::builder()
        .max_capacity(capacity)
        .weigher(|_k: &u32, v: &u32| *v)
        .build()
        .unwrap();
    let heaviest = (capacity / shards) as u32;
    assert_eq!(cache.try_insert(1, heaviest), Ok(()));
    assert_eq!(
        cache.try_insert(2, heaviest + 1),
        Err(keel_cache::InsertError::TooHeavy {
            weight: heaviest + 1,
            max: u64::from(heaviest),
        })
    );
}
