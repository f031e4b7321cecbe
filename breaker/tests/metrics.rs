//! The `metrics` feature: every state transition and rejected call is emitted, labelled with
//! the breaker's name, checked with metrics-util's debugging recorder.
#![cfg(feature = "metrics")]

use std::sync::Arc;
use std::time::Duration;

use keel_breaker::{CircuitBreaker, GiveUp, OpenWait, Retry, RetryBudget, State};
use keel_core::ManualClock;
use keel_testkit::recorded::{Value, labels, snapshot};
use metrics_util::MetricKind;
use metrics_util::debugging::DebuggingRecorder;

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
            .find(|r| r.name == name && r.labels == labels(want))
            .map(|r| (r.kind, &r.value))
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
        .filter(|r| r.name == "keel_breaker_transitions_total")
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

#[test]
fn retries_and_budget_exhaustion_are_counted_per_policy() {
    let recorder = DebuggingRecorder::new();
    metrics::with_local_recorder(&recorder, || {
        // Each request deposits half a retry: two requests pay for one.
        let budget = RetryBudget::builder()
            .percent(50.0)
            .min_per_second(0)
            .build()
            .unwrap();
        let budgeted = Retry::builder()
            .name("payments")
            .max_attempts(5)
            .budget(Arc::new(budget))
            .build()
            .unwrap();
        let mut first = budgeted.start();
        let mut second = budgeted.start();
        assert!(first.next_delay(true).is_ok()); // a retry, paid by the budget
        assert_eq!(first.next_delay(true), Err(GiveUp::Budget));
        assert_eq!(second.next_delay(false), Err(GiveUp::Permanent)); // not counted

        let plain = Retry::builder()
            .name("search")
            .max_attempts(3)
            .build()
            .unwrap();
        let mut attempts = plain.start();
        assert!(attempts.next_delay(true).is_ok());
        assert!(attempts.next_delay(true).is_ok());
        assert_eq!(attempts.next_delay(true), Err(GiveUp::Attempts));
    });

    let rows = snapshot(&recorder);
    let counter = |name: &str, policy: &str| {
        rows.iter()
            .find(|r| r.name == name && r.labels == labels(&[("name", policy)]))
            .map(|r| (r.kind, &r.value))
    };
    let (zero, one, two) = (Value::Counter(0), Value::Counter(1), Value::Counter(2));
    let counted = |v| Some((MetricKind::Counter, v));
    assert_eq!(
        counter("keel_breaker_retry_attempts_total", "payments"),
        counted(&one)
    );
    assert_eq!(
        counter("keel_breaker_retry_budget_exhausted_total", "payments"),
        counted(&one)
    );
    assert_eq!(
        counter("keel_breaker_retry_attempts_total", "search"),
        counted(&two)
    );
    assert_eq!(
        counter("keel_breaker_retry_budget_exhausted_total", "search"),
        counted(&zero)
    );
    assert_eq!(rows.len(), 4, "{rows:?}");
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn bulkhead_queue_depth_follows_the_waiters() {
    use keel_breaker::Bulkhead;

    let recorder = DebuggingRecorder::new();
    // The debugging recorder's snapshot resets each value it reads, so the depth is the
    // sum of the snapshots.
    let seen = std::cell::Cell::new(0.0);
    let depth = || {
        let value = snapshot(&recorder)
            .into_iter()
            .find(|r| {
                r.name == "keel_breaker_bulkhead_queue_depth"
                    && r.labels == labels(&[("name", "db")])
            })
            .map(|r| r.value);
        let Some(Value::Gauge(change)) = value else {
            panic!("no queue depth gauge: {value:?}")
        };
        seen.set(seen.get() + change);
        seen.get()
    };
    let bulkhead = {
        let _guard = metrics::set_default_local_recorder(&recorder);
        Arc::new(
            Bulkhead::with_max_wait(1, Duration::from_secs(1))
                .unwrap()
                .with_name("db"),
        )
    };
    assert_eq!(depth(), 0.0);
    let held = bulkhead.try_acquire().unwrap();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let bulkhead = bulkhead.clone();
            tokio::spawn(async move { bulkhead.acquire_owned().await.map(drop) })
        })
        .collect();
    tokio::task::yield_now().await; // both start waiting
    assert_eq!(depth(), 2.0);
    drop(held);
    for waiter in waiters {
        assert!(waiter.await.unwrap().is_ok());
    }
    assert_eq!(depth(), 0.0);
}
