//! The `metrics` feature: every state transition and rejected call is emitted, labelled with
//! the breaker's name, checked with metrics-util's debugging recorder.
#![cfg(feature = "metrics")]

use std::time::Duration;

use keel_breaker::{CircuitBreaker, OpenWait, State};
use keel_core::ManualClock;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// A recorded value.
#[derive(Debug, PartialEq)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram,
}

/// One recorded metric: kind, name, labels sorted by key, value.
type Row = (MetricKind, String, Vec<(String, String)>, Value);

/// `(kind, name, sorted labels) -> value` of everything the recorder holds.
fn snapshot(recorder: &DebuggingRecorder) -> Vec<Row> {
    let mut rows: Vec<_> = recorder
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
                DebugValue::Counter(n) => Value::Counter(n),
                DebugValue::Gauge(v) => Value::Gauge(v.into_inner()),
                DebugValue::Histogram(_) => Value::Histogram,
            };
            (kind, key.name().to_owned(), labels, value)
        })
        .collect();
    rows.sort_by(|a, b| (&a.1, &a.2).cmp(&(&b.1, &b.2)));
    rows
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn transitions_and_rejections_are_emitted_per_breaker() {
    let recorder = DebuggingRecorder::new();
    let clock = ManualClock::new();
    metrics::with_local_recorder(&recorder, || {
        let payments = CircuitBreaker::builder()
            .name("payments")
            .consecutive_failures(2)
            .open_wait(OpenWait::Fixed(Duration::from_secs(5)))
            .half_open_probes(1)
            .clock(clock.clone())
            .build()
            .unwrap();
        let _search = CircuitBreaker::builder().name("search").build().unwrap();

        for _ in 0..2 {
            let _ = payments.call(|| Err::<(), _>("down"));
        }
        assert_eq!(payments.state(), State::Open);
        assert!(payments.call(|| Ok::<_, &str>(())).is_err()); // rejected
        assert!(payments.call(|| Ok::<_, &str>(())).is_err()); // rejected
        clock.advance(Duration::from_secs(5));
        assert!(payments.call(|| Ok::<_, &str>(())).is_ok()); // the probe closes it
        assert_eq!(payments.state(), State::Closed);
    });

    let rows = snapshot(&recorder);
    let find = |name: &str, want: &[(&str, &str)]| {
        rows.iter()
            .find(|r| r.1 == name && r.2 == labels(want))
            .map(|r| (r.0, &r.3))
    };
    let (zero, one, two) = (Value::Counter(0), Value::Counter(1), Value::Counter(2));
    let closed = Value::Gauge(0.0);
    let counter = |v| Some((MetricKind::Counter, v));
    let gauge = |v| Some((MetricKind::Gauge, v));

    assert_eq!(
        find("keel_breaker_rejected_total", &[("name", "payments")]),
        counter(&two)
    );
    assert_eq!(
        find("keel_breaker_rejected_total", &[("name", "search")]),
        counter(&zero)
    );
    for (from, to) in [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ] {
        assert_eq!(
            find(
                "keel_breaker_transitions_total",
                &[("from", from), ("name", "payments"), ("to", to)]
            ),
            counter(&one),
            "{from} -> {to}"
        );
    }
    let transitions = rows
        .iter()
        .filter(|r| r.1 == "keel_breaker_transitions_total")
        .count();
    assert_eq!(transitions, 3, "{rows:?}");
    assert_eq!(
        find("keel_breaker_state", &[("name", "payments")]),
        gauge(&closed)
    );
    assert_eq!(
        find("keel_breaker_state", &[("name", "search")]),
        gauge(&closed)
    );
}
