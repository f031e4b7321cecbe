//! The `metrics` feature: a Snowflake counts each wait caused by the clock stepping back,
//! labelled with its name, checked with metrics-util's debugging recorder.
#![cfg(feature = "metrics")]

use std::time::Duration;

use keel_core::ManualClock;
use keel_idgen::{ClockBackwards, GenerateError, Layout, Snowflake};
use keel_testkit::recorded::counters;
use metrics_util::debugging::DebuggingRecorder;

#[test]
fn clock_backwards_waits_are_counted_per_generator() {
    let recorder = DebuggingRecorder::new();
    let clock = ManualClock::new();
    metrics::with_local_recorder(&recorder, || {
        let orders = Snowflake::builder(Layout::twitter(), 1)
            .name("orders")
            .clock(clock.clone())
            .build()
            .unwrap();
        let strict = Snowflake::builder(Layout::twitter(), 2)
            .name("strict")
            .clock(clock.clone())
            .on_clock_backwards(ClockBackwards::Error)
            .build()
            .unwrap();
        orders.try_next_id().unwrap();
        strict.try_next_id().unwrap();
        clock.step_wall_back(Duration::from_millis(100)); // within the default 1 s wait
        for _ in 0..2 {
            assert!(matches!(
                orders.try_next_id(),
                Err(GenerateError::WouldBlock { .. })
            ));
        }
        // A refusal is not a wait.
        assert!(matches!(
            strict.try_next_id(),
            Err(GenerateError::ClockMovedBack { .. })
        ));
        clock.advance(Duration::from_millis(101));
        assert!(orders.try_next_id().is_ok()); // caught up: no wait
    });

    let row = |name: &str, n| {
        (
            "keel_idgen_clock_backwards_waits_total".to_owned(),
            vec![("name".to_owned(), name.to_owned())],
            n,
        )
    };
    assert_eq!(
        counters(&recorder),
        vec![row("orders", 2), row("strict", 0)]
    );
}
