//! The `metrics` feature: hits, misses, evictions by cause and size are emitted, labelled
//! with the cache's name, checked with metrics-util's debugging recorder.
#![cfg(feature = "metrics")]

use std::time::Duration;

use keel_cache::Cache;
use keel_core::ManualClock;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// A recorded metric: kind, name, sorted labels and value (a counter's as f64).
type Row = (MetricKind, String, Vec<(String, String)>, f64);

fn snapshot(recorder: &DebuggingRecorder) -> Vec<Row> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<_> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let value = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(v) => v.into_inner(),
                DebugValue::Histogram(_) => panic!("{key:?}: no histogram is emitted"),
            };
            (kind, key.name().to_owned(), labels, value)
        })
        .collect()
}

fn find(rows: &[Row], kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: Vec<_> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    rows.iter()
        .find(|r| r.0 == kind && r.1 == name && r.2 == want)
        .map(|r| r.3)
}

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
    let counter = |name, labels: &[(&str, &str)]| find(&rows, MetricKind::Counter, name, labels);
    let gauge = |name, labels: &[(&str, &str)]| find(&rows, MetricKind::Gauge, name, labels);
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
