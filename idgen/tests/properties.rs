//! Invariants checked against simple reference models: text round-trips, text order is
//! numeric order, and IDs decode into the parts they were built from.

use proptest::prelude::*;

use keel_idgen::{FieldOrder, Layout, Ulid, UuidV7};

fn layouts() -> impl Strategy<Value = Layout> {
    (
        1u8..=44,
        0u8..=16,
        1u8..=22,
        0u64..2_000_000_000_000,
        1u64..=100,
        any::<bool>(),
    )
        .prop_filter_map("at most 64 bits", |(t, w, s, epoch, unit, sony)| {
            Layout::builder()
                .timestamp_bits(t)
                .worker_bits(w)
                .sequence_bits(s)
                .epoch_unix_millis(epoch)
                .time_unit(std::time::Duration::from_millis(unit))
                .order(if sony {
                    FieldOrder::SequenceThenWorker
                } else {
                    FieldOrder::WorkerThenSequence
                })
                .build()
                .ok()
        })
}

// Reference model of a ULID's text: the value's 130-bit base32 digits, most significant first.
fn reference_ulid_text(value: u128) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut digits = Vec::with_capacity(26);
    let mut rest = value;
    for _ in 0..26 {
        digits.push(ALPHABET[(rest % 32) as usize]);
        rest /= 32;
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn snowflake_parts_round_trip(layout in layouts(), a in any::<u64>(), b in any::<u64>(), c in any::<u64>()) {
        let ticks = a & layout.max_ticks();
        let worker = b & layout.max_worker();
        let sequence = c & layout.max_sequence();
        let id = layout.compose(ticks, worker, sequence).expect("fields fit");
        let parts = layout.decode(id);
        prop_assert_eq!((parts.ticks, parts.worker, parts.sequence), (ticks, worker, sequence));
        prop_assert_eq!(
            parts.unix_millis,
            layout.epoch_unix_millis() + ticks * layout.time_unit().as_millis() as u64
        );
        prop_assert!(layout.total_bits() == 64 || id >> layout.total_bits() == 0);
    }

    #[test]
    fn snowflake_order_is_time_then_sequence_for_one_worker(
        layout in layouts(), w in any::<u64>(),
        t1 in any::<u64>(), s1 in any::<u64>(), t2 in any::<u64>(), s2 in any::<u64>(),
    ) {
        let worker = w & layout.max_worker();
        let one = (t1 & layout.max_ticks(), s1 & layout.max_sequence());
        let two = (t2 & layout.max_ticks(), s2 & layout.max_sequence());
        let a = layout.compose(one.0, worker, one.1).expect("fits");
        let b = layout.compose(two.0, worker, two.1).expect("fits");
        prop_assert_eq!(a.cmp(&b), one.cmp(&two));
    }

    #[test]
    fn ulid_text_round_trips_and_matches_the_reference(value in any::<u128>()) {
        let ulid = Ulid::from_u128(value);
        let text = ulid.to_string();
        prop_assert_eq!(&text, &reference_ulid_text(value));
        prop_assert_eq!(text.parse::<Ulid>(), Ok(ulid));
        prop_assert_eq!(text.to_lowercase().parse::<Ulid>(), Ok(ulid));
        prop_assert_eq!(Ulid::from_bytes(ulid.to_bytes()), ulid);
        prop_assert_eq!(Ulid::from_parts(ulid.timestamp_ms(), ulid.random()), ulid);
    }

    #[test]
    fn ulid_text_order_is_numeric_order(a in any::<u128>(), b in any::<u128>()) {
        let (x, y) = (Ulid::from_u128(a), Ulid::from_u128(b));
        prop_assert_eq!(x.to_string().cmp(&y.to_string()), a.cmp(&b));
        prop_assert_eq!(x.to_bytes().cmp(&y.to_bytes()), a.cmp(&b));
    }

    #[test]
    fn ulid_parsing_never_panics(text in "\\PC{0,30}") {
        let _ = text.parse::<Ulid>();
    }

    #[test]
    fn uuid_v7_round_trips_and_sorts(ms in 0u64..1 << 48, a in any::<u16>(), b in any::<u64>(),
                                      ms2 in 0u64..1 << 48, a2 in any::<u16>(), b2 in any::<u64>()) {
        let x = UuidV7::from_parts(ms, a, b);
        let y = UuidV7::from_parts(ms2, a2, b2);
        prop_assert_eq!((x.unix_millis(), x.rand_a(), x.rand_b()), (ms, a & 0xFFF, b & ((1 << 62) - 1)));
        prop_assert_eq!(x.to_string().parse::<UuidV7>(), Ok(x));
        prop_assert_eq!(x.to_string().to_uppercase().parse::<UuidV7>(), Ok(x));
        prop_assert_eq!(UuidV7::from_bytes(x.to_bytes()), Ok(x));
        prop_assert_eq!(x.to_string().cmp(&y.to_string()), x.to_u128().cmp(&y.to_u128()));
    }

    #[test]
    fn uuid_parsing_never_panics(text in "[0-9a-fA-F\\-é]{30,40}") {
        let _ = text.parse::<UuidV7>();
    }
}

/// One step of a random run against a Snowflake on a ManualClock.
#[derive(Clone, Debug)]
enum Move {
    Generate(u8),
    Advance(u16),
    WallBack(u16),
    WallForward(u16),
}

fn steps() -> impl Strategy<Value = Vec<Move>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<u8>().prop_map(Move::Generate),
            2 => (0u16..20).prop_map(Move::Advance),
            1 => (0u16..3000).prop_map(Move::WallBack),
            1 => (0u16..3000).prop_map(Move::WallForward),
        ],
        1..60,
    )
}

fn policies() -> impl Strategy<Value = keel_idgen::ClockBackwards> {
    use keel_idgen::ClockBackwards;
    prop_oneof![
        Just(ClockBackwards::Error),
        (0u64..2000).prop_map(|ms| ClockBackwards::Wait {
            max: std::time::Duration::from_millis(ms)
        }),
        (0u64..2000).prop_map(|ms| ClockBackwards::Borrow {
            max: std::time::Duration::from_millis(ms)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Reference model: the list of IDs issued so far. Whatever the clock does, every issued ID
    // is larger than all before it, carries the worker, and is never stamped further ahead of
    // the clock than the policies allow.
    #[test]
    fn snowflake_never_repeats_or_reorders_under_random_clock_moves(
        run in steps(), policy in policies(), seq_bits in 1u8..6, borrow_ahead in 0u64..5,
    ) {
        use keel_core::{Clock, ManualClock};
        use keel_idgen::{ClockBackwards, GenerateError, SequenceExhausted, Snowflake};
        use std::time::Duration;

        let layout = Layout::builder().sequence_bits(seq_bits).build().expect("layout");
        let clock = ManualClock::new();
        let exhausted = if borrow_ahead == 0 {
            SequenceExhausted::Wait
        } else {
            SequenceExhausted::BorrowAhead { max: Duration::from_millis(borrow_ahead) }
        };
        let generator = Snowflake::builder(layout, 5)
            .clock(clock.clone())
            .on_clock_backwards(policy)
            .on_sequence_exhausted(exhausted)
            .build()
            .expect("valid");
        let borrow_back = match policy {
            ClockBackwards::Borrow { max } => max.as_millis() as u64,
            _ => 0,
        };
        let allowed_lead = borrow_back.max(borrow_ahead);
        let mut issued: Vec<u64> = Vec::new();
        for step in run {
            match step {
                Move::Generate(count) => {
                    for _ in 0..count {
                        // Liveness: once the clock is past every issued tick, nothing may
                        // stand in the way of the next ID.
                        let clock_ticks = clock.unix_millis() - layout.epoch_unix_millis();
                        let must_issue = issued
                            .last()
                            .is_none_or(|last| generator.decode(*last).ticks < clock_ticks);
                        let outcome = generator.try_next_id();
                        prop_assert!(!must_issue || outcome.is_ok(), "refused with the clock ahead: {outcome:?}");
                        match outcome {
                            Ok(id) => {
                                if let Some(last) = issued.last() {
                                    prop_assert!(id > *last, "{id} after {last}");
                                }
                                let parts = generator.decode(id);
                                prop_assert_eq!(parts.worker, 5);
                                let lead = parts.unix_millis.saturating_sub(clock.unix_millis());
                                prop_assert!(lead <= allowed_lead, "lead {lead} > {allowed_lead}");
                                issued.push(id);
                            }
                            Err(GenerateError::WouldBlock { .. }) | Err(GenerateError::ClockMovedBack { .. }) => {}
                            Err(other) => prop_assert!(false, "unexpected {other}"),
                        }
                    }
                }
                Move::Advance(ms) => clock.advance(Duration::from_millis(u64::from(ms))),
                Move::WallBack(ms) => clock.step_wall_back(Duration::from_millis(u64::from(ms))),
                Move::WallForward(ms) => clock.step_wall_forward(Duration::from_millis(u64::from(ms))),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    // Reference model for the ULID and UUIDv7 generators under random clock moves: each ID
    // is larger than the one before, never stamped before the clock, and ahead of it only by
    // the last millisecond kept through a step back, plus one for a used-up counter; a
    // UUIDv7 always carries version 7 and the RFC variant.
    #[test]
    fn ulids_and_uuids_increase_and_follow_the_clock_under_random_moves(run in steps()) {
        use keel_core::{Clock, ManualClock};
        use keel_idgen::{UlidGenerator, UuidV7Generator};
        use std::time::Duration;

        let clock = ManualClock::new();
        let ulids = UlidGenerator::with_clock(clock.clone());
        let uuids = UuidV7Generator::with_clock(clock.clone());
        let (mut last_ulid, mut last_uuid) = (None, None);
        for step in run {
            match step {
                Move::Generate(count) => {
                    for _ in 0..count {
                        let now = clock.unix_millis();
                        let ulid = ulids.next_id().expect("ulid");
                        let uuid = uuids.next_id().expect("uuid");
                        prop_assert_eq!(UuidV7::from_u128(uuid.to_u128()), Ok(uuid));
                        let previous_ulid_ms = last_ulid.map_or(0, |u: Ulid| u.timestamp_ms());
                        let previous_uuid_ms = last_uuid.map_or(0, |u: UuidV7| u.unix_millis());
                        prop_assert!(ulid.timestamp_ms() >= now);
                        prop_assert!(uuid.unix_millis() >= now);
                        prop_assert!(ulid.timestamp_ms() <= now.max(previous_ulid_ms) + 1);
                        prop_assert!(uuid.unix_millis() <= now.max(previous_uuid_ms) + 1);
                        if let Some(last) = last_ulid {
                            prop_assert!(ulid > last, "{ulid} after {last}");
                        }
                        if let Some(last) = last_uuid {
                            prop_assert!(uuid > last, "{uuid} after {last}");
                        }
                        last_ulid = Some(ulid);
                        last_uuid = Some(uuid);
                    }
                }
                Move::Advance(ms) => clock.advance(Duration::from_millis(u64::from(ms))),
                Move::WallBack(ms) => clock.step_wall_back(Duration::from_millis(u64::from(ms))),
                Move::WallForward(ms) => clock.step_wall_forward(Duration::from_millis(u64::from(ms))),
            }
        }
    }
}
