//! Property tests of `Backoff` against a reference model: every delay within its bounds for
//! any settings and retry number, exact steps without jitter, and uniform jitter.

use std::time::Duration;

use keel_core::{Backoff, BackoffJitter, JitterRng, RandomSource};
use proptest::prelude::*;

fn jitter() -> impl Strategy<Value = BackoffJitter> {
    prop_oneof![
        Just(BackoffJitter::None),
        Just(BackoffJitter::Full),
        Just(BackoffJitter::Equal),
        Just(BackoffJitter::Decorrelated),
    ]
}

/// Any duration, the extremes included.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        Just(Duration::from_nanos(u64::MAX)),
        (0u64..=u64::MAX).prop_map(Duration::from_nanos),
        (0u64..10_000_000).prop_map(Duration::from_nanos),
        (0u64..u64::MAX, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// Any multiplier, checked or not.
fn multiplier() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(1.0),
        Just(2.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        -10.0f64..10.0,
        1.0f64..1e6,
        any::<f64>(),
    ]
}

fn retry() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..80, Just(u32::MAX), any::<u32>()]
}

/// The step of the reference model: `base × 2^retry`, capped, in exact integers.
fn doubling_step(base: u64, max: u64, retry: u32) -> u64 {
    let max = max.max(base);
    if retry >= 128 {
        return if base == 0 { 0 } else { max };
    }
    let grown = u128::from(base).checked_shl(retry).unwrap_or(u128::MAX);
    let grown = if retry > 0 && (grown >> retry) != u128::from(base) {
        u128::MAX // shifted out: overflow
    } else {
        grown
    };
    grown.min(u128::from(max)) as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Any settings, any retry number, any previous wait: no panic, and the delay lies in
    /// [min_delay, max_delay].
    #[test]
    fn every_delay_is_within_its_bounds(
        base in duration(),
        max in duration(),
        multiplier in multiplier(),
        jitter in jitter(),
        retry in retry(),
        previous in duration(),
        seed in any::<u64>(),
    ) {
        let backoff = Backoff::exponential(base).multiplier(multiplier).max(max).jitter(jitter);
        let mut rng = JitterRng::seeded(seed);
        let delay = backoff.delay(retry, previous, &mut rng);
        prop_assert!(delay >= backoff.min_delay(), "{delay:?} < min of {backoff:?}");
        prop_assert!(delay <= backoff.max_delay(), "{delay:?} > max of {backoff:?}");
        prop_assert!(backoff.max_delay() <= Duration::from_nanos(u64::MAX));
        let step = backoff.step(retry);
        prop_assert!(step <= backoff.max_delay());
        prop_assert!(step >= backoff.min_delay());
    }

    /// Doubling without jitter matches the integer model exactly, up to the cap.
    #[test]
    fn doubling_steps_match_the_model(
        base in 1u64..1_000_000_000_000,
        max in 1u64..(1 << 52),
        retry in retry(),
    ) {
        let backoff = Backoff::exponential(Duration::from_nanos(base))
            .max(Duration::from_nanos(max))
            .jitter(BackoffJitter::None);
        let expected = Duration::from_nanos(doubling_step(base, max, retry));
        prop_assert_eq!(backoff.step(retry), expected);
        prop_assert_eq!(backoff.delay(retry, Duration::ZERO, &mut || 0), expected);
    }

    /// Each jitter stays in its own range around the step.
    #[test]
    fn each_jitter_stays_in_its_range(
        base in 1u64..1_000_000_000,
        max in 1u64..1_000_000_000_000,
        retry in retry(),
        previous in 0u64..1_000_000_000_000,
        seed in any::<u64>(),
    ) {
        let backoff = Backoff::exponential(Duration::from_nanos(base)).max(Duration::from_nanos(max));
        let step = doubling_step(base, max, retry);
        let mut rng = JitterRng::seeded(seed);
        let nanos = |d: Duration| d.as_nanos() as u64;
        let full = nanos(backoff.jitter(BackoffJitter::Full).delay(retry, Duration::ZERO, &mut rng));
        prop_assert!(full <= step);
        let equal = nanos(backoff.jitter(BackoffJitter::Equal).delay(retry, Duration::ZERO, &mut rng));
        prop_assert!(equal >= step - step / 2 && equal <= step);
        let previous_wait = Duration::from_nanos(previous);
        let decorrelated = nanos(backoff.jitter(BackoffJitter::Decorrelated).delay(retry, previous_wait, &mut rng));
        let upper = previous.max(base).saturating_mul(3).min(max.max(base));
        prop_assert!(decorrelated >= base && decorrelated <= upper, "{decorrelated} not in [{base}, {upper}]");
    }

    /// The same seed replays the same waits; the iterator counts retries.
    #[test]
    fn seeded_waits_replay(seed in any::<u64>(), jitter in jitter(), take in 0usize..50) {
        let backoff = Backoff::exponential(Duration::from_millis(3)).jitter(jitter);
        let a: Vec<_> = backoff.delays(JitterRng::seeded(seed)).take(take).collect();
        let mut delays = backoff.delays(JitterRng::seeded(seed));
        let b: Vec<_> = delays.by_ref().take(take).collect();
        prop_assert_eq!(a, b);
        prop_assert_eq!(delays.retries() as usize, take);
    }
}

/// Counts of `samples` draws in ten equal buckets of `[low, high]`.
fn histogram(samples: impl Iterator<Item = Duration>, low: Duration, high: Duration) -> [u32; 10] {
    let mut buckets = [0u32; 10];
    let width = (high - low).as_nanos() as f64 / 10.0;
    for sample in samples {
        assert!(
            sample >= low && sample <= high,
            "{sample:?} outside [{low:?}, {high:?}]"
        );
        let bucket = ((sample - low).as_nanos() as f64 / width) as usize;
        buckets[bucket.min(9)] += 1;
    }
    buckets
}

/// 20,000 draws per jitter, ten buckets: each holds 2,000 ± 10% (over 4 standard deviations),
/// so a skewed draw (say, never the top half) fails while a fair one passes for any seed.
#[test]
fn jitter_is_uniform_over_its_range() {
    let ms = Duration::from_millis;
    let backoff = Backoff::exponential(ms(100)).max(ms(10_000));
    for seed in [1, 2, 3] {
        let mut rng = JitterRng::seeded(seed);
        let step = backoff.step(4); // 1.6 s
        let cases = [
            (BackoffJitter::Full, Duration::ZERO, step, Duration::ZERO),
            (BackoffJitter::Equal, step / 2, step, Duration::ZERO),
            (BackoffJitter::Decorrelated, ms(100), ms(1_500), ms(500)),
        ];
        for (jitter, low, high, previous) in cases {
            let backoff = backoff.jitter(jitter);
            let draws = (0..20_000).map(|_| backoff.delay(4, previous, &mut rng));
            let buckets = histogram(draws, low, high);
            for count in buckets {
                assert!((1_800..=2_200).contains(&count), "{jitter:?}: {buckets:?}");
            }
        }
    }
}

/// Different seeds from the process's entropy give different waits.
#[test]
fn entropy_seeds_differ() {
    let backoff = Backoff::exponential(Duration::from_secs(1));
    let waits: std::collections::BTreeSet<_> = (0..64)
        .map(|_| backoff.delay(10, Duration::ZERO, &mut JitterRng::from_entropy()))
        .collect();
    assert!(waits.len() > 60, "only {} distinct waits", waits.len());
}

/// A caller's own generator plugs in through a closure or a `dyn` source.
#[test]
fn any_source_plugs_in() {
    let backoff = Backoff::constant(Duration::from_millis(10)).jitter(BackoffJitter::Full);
    let mut rng = JitterRng::seeded(4);
    let source: &mut dyn RandomSource = &mut rng;
    assert!(backoff.delay(0, Duration::ZERO, source) <= Duration::from_millis(10));
    assert_eq!(
        backoff.delay(0, Duration::ZERO, &mut || u64::MAX / 2),
        Duration::from_nanos(5_000_000)
    );
}
