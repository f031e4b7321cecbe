//! Snowflake text: keel has no Snowflake string type (IDs are `u64`), so this fuzzes the text
//! that does reach it: a decimal ID decoded under any valid layout, and the worker ordinal
//! read from a host name (`EnvWorkerId::parse`). Decoding never panics, its fields fit their
//! widths, and composing them again gives back the ID's low `total_bits`.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use keel_idgen::{EnvWorkerId, FieldOrder, Layout};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    timestamp_bits: u8,
    worker_bits: u8,
    sequence_bits: u8,
    epoch: u64,
    unit_millis: u16,
    sonyflake_order: bool,
    text: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    // The worker ordinal: digits after the last '-', or the whole text.
    if let Ok(ordinal) = EnvWorkerId::parse(input.text) {
        let tail = input.text.rsplit('-').next().unwrap_or(input.text).trim();
        assert_eq!(tail.parse::<u64>().ok(), Some(ordinal), "{:?}", input.text);
    }

    let order = if input.sonyflake_order {
        FieldOrder::SequenceThenWorker
    } else {
        FieldOrder::WorkerThenSequence
    };
    let built = Layout::builder()
        .timestamp_bits(input.timestamp_bits)
        .worker_bits(input.worker_bits)
        .sequence_bits(input.sequence_bits)
        .epoch_unix_millis(input.epoch)
        .time_unit(Duration::from_millis(u64::from(input.unit_millis)))
        .order(order)
        .build();
    let Ok(layout) = built else {
        return;
    };
    let total = u32::from(input.timestamp_bits)
        + u32::from(input.worker_bits)
        + u32::from(input.sequence_bits);
    assert!(total <= 64 && input.unit_millis > 0, "accepted {input:?}");
    assert_eq!(u32::from(layout.total_bits()), total);
    let _ = layout.lifetime();
    let Ok(id) = input.text.trim().parse::<u64>() else {
        return;
    };
    let parts = layout.decode(id);
    assert!(parts.ticks <= layout.max_ticks());
    assert!(parts.worker <= layout.max_worker());
    assert!(parts.sequence <= layout.max_sequence());
    assert!(parts.unix_millis >= layout.epoch_unix_millis());
    let again = layout
        .compose(parts.ticks, parts.worker, parts.sequence)
        .expect("decoded fields fit");
    let low = if total >= 64 {
        id
    } else {
        id & ((1u64 << total) - 1)
    };
    assert_eq!(again, low, "{layout:?} {id}");
});
