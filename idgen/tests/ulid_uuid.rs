//! ULID and UUIDv7: the ULID spec's examples, RFC 9562's test vector, conversions, and
//! monotonic generation shared across threads.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_core::{Clock, ManualClock};
use keel_idgen::{IdGenerator, ParseError, Ulid, UlidGenerator, UuidV7, UuidV7Generator};

#[test]
fn ulid_spec_canonical_examples() {
    // The spec's example ULID.
    let ulid: Ulid = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().expect("valid");
    assert_eq!(ulid.to_string(), "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    // The spec's `ulid(1469918176385)`: the time part encodes as 01ARYZ6S41.
    let at = Ulid::from_parts(1_469_918_176_385, 0);
    assert!(at.to_string().starts_with("01ARYZ6S41"), "{at}");
    // The largest ULID, and its timestamp 2^48 - 1.
    let max: Ulid = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse().expect("valid");
    assert_eq!(max.timestamp_ms(), 281_474_976_710_655);
    assert_eq!(
        "8ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<Ulid>(),
        Err(ParseError::Overflow)
    );
}

#[test]
fn ulid_spec_monotonic_example() {
    // The spec's monotonic example: two ULIDs in one millisecond, then a call with an earlier
    // timestamp (100000) that still sorts after them. Each is the previous plus one, with the
    // carry from RZ to S0.
    let spec = [
        "01BX5ZZKBKACTAV9WEVGEMMVRZ",
        "01BX5ZZKBKACTAV9WEVGEMMVS0",
        "01BX5ZZKBKACTAV9WEVGEMMVS1",
    ];
    let parsed: Vec<Ulid> = spec.iter().map(|s| s.parse().expect("valid")).collect();
    for pair in parsed.windows(2) {
        assert_eq!(pair[1].to_u128(), pair[0].to_u128() + 1);
        assert_eq!(pair[1].timestamp_ms(), pair[0].timestamp_ms());
    }
    // The generator does the same from its own random start, including when the clock reads
    // an earlier time (here 100000 ms, as in the spec).
    let clock = ManualClock::new();
    let generator = UlidGenerator::with_clock(clock.clone());
    let first = generator.next_id().expect("ulid");
    let second = generator.next_id().expect("ulid");
    clock.set_unix_millis(100_000);
    let third = generator.next_id().expect("ulid");
    assert_eq!(second.to_u128(), first.to_u128() + 1);
    assert_eq!(third.to_u128(), second.to_u128() + 1);
    assert_eq!(third.timestamp_ms(), first.timestamp_ms());
    assert_eq!(third.to_string()[..10], first.to_string()[..10]);
}

#[test]
fn rfc_9562_uuid_v7_test_vector() {
    // RFC 9562, appendix A.6: 2022-02-22 19:22:22 UTC, rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F.
    let uuid = UuidV7::from_parts(0x017F_22E2_79B0, 0xCC3, 0x18C4_DC0C_0C07_398F);
    assert_eq!(uuid.to_string(), "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
    assert_eq!(
        uuid.to_bytes(),
        [
            0x01, 0x7F, 0x22, 0xE2, 0x79, 0xB0, 0x7C, 0xC3, 0x98, 0xC4, 0xDC, 0x0C, 0x0C, 0x07,
            0x39, 0x8F
        ]
    );
    assert_eq!(uuid.unix_millis(), 1_645_557_742_000);
}

#[cfg(feature = "uuid")]
#[test]
fn conversions_to_and_from_uuid_crate() {
    let uuid = UuidV7::from_parts(0x017F_22E2_79B0, 0xCC3, 0x18C4_DC0C_0C07_398F);
    let theirs: uuid::Uuid = uuid.into();
    assert_eq!(theirs.get_version_num(), 7);
    assert_eq!(theirs.to_string(), uuid.to_string());
    assert_eq!(UuidV7::try_from(theirs), Ok(uuid));
    assert!(UuidV7::try_from(uuid::Uuid::nil()).is_err());

    let ulid: Ulid = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().expect("valid");
    let as_uuid: uuid::Uuid = ulid.into();
    assert_eq!(as_uuid.as_u128(), ulid.to_u128());
    assert_eq!(Ulid::from(as_uuid), ulid);
}

#[cfg(feature = "serde")]
#[test]
fn serde_uses_the_canonical_text() {
    let ulid: Ulid = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().expect("valid");
    let json = serde_json::to_string(&ulid).expect("serialize");
    assert_eq!(json, "\"01ARZ3NDEKTSV4RRFFQ69G5FAV\"");
    assert_eq!(
        serde_json::from_str::<Ulid>(&json).expect("deserialize"),
        ulid
    );
    let error = serde_json::from_str::<Ulid>("\"01ARZ3NDEKTSV4RRFFQ69G5FA!\"").unwrap_err();
    assert!(error.to_string().contains("position 25"), "{error}");

    let uuid = UuidV7::from_parts(0x017F_22E2_79B0, 0xCC3, 0x18C4_DC0C_0C07_398F);
    let json = serde_json::to_string(&uuid).expect("serialize");
    assert_eq!(json, "\"017f22e2-79b0-7cc3-98c4-dc0c0c07398f\"");
    assert_eq!(
        serde_json::from_str::<UuidV7>(&json).expect("deserialize"),
        uuid
    );
}

// Threads share one generator while another moves the clock forward and sometimes back.
fn shared<G, T>(generator: G, clock: ManualClock, threads: usize, per_thread: usize)
where
    G: IdGenerator<Id = T> + 'static,
    T: Ord + std::hash::Hash + Copy + Send + std::fmt::Debug + 'static,
{
    let generator = Arc::new(generator);
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::Acquire) {
                clock.advance(Duration::from_micros(300));
                n += 1;
                if n.is_multiple_of(11) {
                    clock.step_wall_back(Duration::from_millis(2));
                }
                std::thread::yield_now();
            }
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let generator = Arc::clone(&generator);
            std::thread::spawn(move || {
                (0..per_thread)
                    .map(|_| generator.next_id().expect("id"))
                    .collect::<Vec<T>>()
            })
        })
        .collect();
    let all = common::join_unique_ordered(workers);
    done.store(true, Ordering::Release);
    ticker.join().expect("no panic");
    assert_eq!(all.len(), threads * per_thread);
}

#[test]
fn ulids_from_threads_are_unique_and_ordered() {
    let clock = ManualClock::new();
    shared(UlidGenerator::with_clock(clock.clone()), clock, 4, 100_000);
}

#[test]
fn uuids_from_threads_are_unique_and_ordered() {
    let clock = ManualClock::new();
    shared(
        UuidV7Generator::with_clock(clock.clone()),
        clock,
        4,
        100_000,
    );
}

#[test]
fn generated_ulids_carry_the_clock() {
    let clock = ManualClock::new();
    let generator = UlidGenerator::with_clock(clock.clone());
    let ulid = generator.next_id().expect("ulid");
    assert_eq!(ulid.timestamp_ms(), clock.unix_millis());
    let uuid = UuidV7Generator::with_clock(clock.clone())
        .next_id()
        .expect("uuid");
    assert_eq!(uuid.unix_millis(), clock.unix_millis());
}

mod increment {
    use keel_idgen::{GenerateError, Ulid};
    use proptest::prelude::*;

    const RANDOM_MAX: u128 = (1 << 80) - 1;

    proptest! {
        /// Against the model: the same timestamp, the random part plus one, and the text
        /// form sorts after the original.
        #[test]
        fn adds_one_to_the_random_part(ms in 0u64..(1 << 48), random in 0..RANDOM_MAX) {
            let ulid = Ulid::from_parts(ms, random);
            let next = ulid.increment().unwrap();
            prop_assert_eq!(next, Ulid::from_parts(ms, random + 1));
            prop_assert!(next.to_string() > ulid.to_string());
        }

        #[test]
        fn fails_when_the_random_part_is_all_ones(ms in 0u64..(1 << 48)) {
            let last = Ulid::from_parts(ms, RANDOM_MAX);
            prop_assert_eq!(last.increment(), Err(GenerateError::Overflow));
        }
    }

    #[test]
    fn carries_through_the_random_part_only() {
        let ulid = Ulid::from_parts(7, (1 << 40) - 1);
        assert_eq!(ulid.increment().unwrap(), Ulid::from_parts(7, 1 << 40));
        assert_eq!(Ulid::MIN.increment().unwrap().to_u128(), 1);
        assert_eq!(Ulid::MAX.increment(), Err(GenerateError::Overflow));
    }
}
