//! The `metrics` feature: hits, misses, evictions by cause and size are emitted, labelled
//! with the cache's name, checked with metrics-util's debugging recorder.
#![cfg(feature = "metrics")]

use std::time::Duration;

use keel_cache::Cache;
use keel_core::ManualClock;
use keel_testkit::recorded::{find, snapshot};
use metrics_util::MetricKind;
use metrics_util::debugging::DebuggingRecorder;

#[test]
fn hits_misses_evictions_and_size_are_emitted_per_cache() {
    let recorder = DebuggingRecorder::new();
    let clock = ManualClock::new();
    metrics::with_local_recorder(&recorder, || {
        let sessions = Cache::builder()
            .max_capacity(2)
            .shards(1)
            .name("sessions")
            .time_to_live(Duration::from_secs(10))
            .clock(clock.clone())
            .build()
            .unwrap();
        sessions.insert(1, "a");
        sessions.insert(2, "b");
        assert_eq!(sessions.get(&1), Some("a")); // hit
        assert_eq!(sessions.get(&9), None); // miss
        sessions.insert(3, "c"); // full: one entry is evicted by size
        sessions.insert(3, "d"); // replaced: not an eviction, same size
        assert_eq!(sessions.entry_count(), 2);
        clock.advance(Duration::from_secs(10));
        assert_eq!(sessions.get(&3), None); // expired: a miss
        sessions.purge_expired(); // both left expired
        assert_eq!(sessions.entry_count(), 0);
        sessions.insert(4, "e");
        assert_eq!(sessions.remove(&4), Some("e")); // explicit: not an eviction

        let weighted = Cache::builder()
            .max_capacity(100)
            .name("blobs")
            .weigher(|_k: &u8, v: &Vec<u8>| v.len() as u32)
            .build()
            .unwrap();
        weighted.insert(1, vec![0; 30]);
        weighted.insert(2, vec![0; 12]);
        weighted.insert(1, vec![0; 5]);
        assert_eq!(weighted.weighted_size(), 17);
        weighted.clear();
        weighted.insert(3, vec![0; 7]);
    });

    let rows = snapshot(&recorder);
    let value = |kind, name, labels: &[(&str, &str)]| {
        find(&rows, kind, name, labels).and_then(|m| m.value.as_f64())
    };
    let counter = |name, labels: &[(&str, &str)]| value(MetricKind::Counter, name, labels);
    let gauge = |name, labels: &[(&str, &str)]| value(MetricKind::Gauge, name, labels);
    let sessions = [("name", "sessions")];
    assert_eq!(counter("keel_cache_hits_total", &sessions), Some(1.0));
    assert_eq!(counter("keel_cache_misses_total", &sessions), Some(2.0));
    assert_eq!(
        counter(
            "keel_cache_evictions_total",
            &[("cause", "size"), ("name", "sessions")]
        ),
        Some(1.0)
    );
    assert_eq!(
        counter(
            "keel_cache_evictions_total",
            &[("cause", "expired"), ("name", "sessions")]
        ),
        Some(2.0)
    );
    assert_eq!(gauge("keel_cache_size", &sessions), Some(0.0));

    let blobs = [("name", "blobs")];
    assert_eq!(gauge("keel_cache_size", &blobs), Some(7.0));
    assert_eq!(counter("keel_cache_hits_total", &blobs), Some(0.0));
    assert_eq!(
        counter(
            "keel_cache_evictions_total",
            &[("cause", "size"), ("name", "blobs")]
        ),
        Some(0.0)
    );
    assert_eq!(rows.len(), 10, "{rows:?}");
}
