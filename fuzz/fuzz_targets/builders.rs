//! Every quota and config builder, fed through `arbitrary`: a builder never panics or aborts,
//! refuses with an error, and whatever it accepts works: a short run on a manual clock
//! neither panics nor breaks the documented bound.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use keel_breaker::{
    Backoff, BackoffJitter, Bulkhead, CircuitBreaker, OpenWait, Retry, RetryBudget, Window,
};
use keel_cache::{Cache, Lru};
use keel_core::ManualClock;
use keel_hashring::{ConsistentHash, Maglev, MultiProbe, Ring};
use keel_idgen::{Layout, SequenceExhausted, Snowflake};
use keel_rate_limit::{
    FixedWindow, Gcra, KeyedLimiter, LeakyBucket, Limiter, Quota, RateLimit, SlidingCounter,
    SlidingLog,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Input {
    Quota {
        limit: u32,
        period_nanos: u64,
        burst: Option<u32>,
        algorithm: u8,
        steps: Vec<(u8, u16)>,
    },
    Keyed {
        limit: u32,
        period_nanos: u64,
        max_keys: usize,
        keys: Vec<u8>,
    },
    Breaker(BreakerInput),
    Bulkhead {
        max: usize,
        wait_nanos: u64,
        takes: u8,
    },
    Retry {
        attempts: u32,
        elapsed_nanos: u64,
        base_nanos: u64,
        multiplier: f64,
        max_nanos: u64,
        jitter: u8,
        budget: Option<(f64, u32, u64)>,
        transient: Vec<bool>,
    },
    Cache {
        capacity: u64,
        shards: Option<usize>,
        ttl_nanos: Option<u64>,
        tti_nanos: Option<u64>,
        keys: Vec<u8>,
    },
    Lru {
        capacity: usize,
        keys: Vec<u8>,
    },
    Ring {
        vnodes: u32,
        weights: Vec<u32>,
    },
    Maglev {
        table_size: u64,
        weights: Vec<u32>,
    },
    MultiProbe {
        probes: u32,
        nodes: u8,
    },
    Snowflake {
        timestamp_bits: u8,
        worker_bits: u8,
        sequence_bits: u8,
        worker: u64,
        borrow_ms: Option<u16>,
        ids: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct BreakerInput {
    consecutive: Option<u32>,
    failure_rate: Option<f64>,
    slow: Option<(f64, u64)>,
    window: Option<(bool, u32, u64)>,
    minimum_calls: Option<u32>,
    open_wait: Option<(u64, Option<(f64, u64)>)>,
    probes: Option<u32>,
    probe_timeout_nanos: Option<u64>,
    calls: Vec<(bool, u16)>,
}

fn quota(limit: u32, period_nanos: u64, burst: Option<u32>) -> Option<Quota> {
    let quota = Quota::with_period(limit, Duration::from_nanos(period_nanos)).ok()?;
    assert!(limit > 0 && period_nanos >= u64::from(limit));
    assert_eq!(quota.limit(), limit);
    assert_eq!(quota.burst(), limit);
    // The emission interval rounds up, so the rate never exceeds the quota.
    let emission = quota.emission_interval().as_nanos();
    assert!(emission * u128::from(limit) >= u128::from(period_nanos));
    assert!(emission >= 1);
    match burst {
        Some(burst) => {
            let with = quota.with_burst(burst).ok()?;
            assert_eq!(with.burst(), burst);
            Some(with)
        }
        None => Some(quota),
    }
}

fn run<A: keel_rate_limit::Algorithm>(quota: Quota, steps: &[(u8, u16)], burst_rule: bool)
where
    Limiter<A, ManualClock>: RateLimit,
{
    let clock = ManualClock::new();
    let limiter = Limiter::<A, _>::with_clock(quota, clock.clone());
    if burst_rule {
        // A fresh GCRA or leaky bucket admits its whole burst at once, and not one more.
        assert!(
            limiter.check_n(quota.burst()).is_ok_and(|d| d.is_allowed()),
            "{quota:?}"
        );
        assert!(limiter.check().is_denied(), "{quota:?}");
    }
    for &(n, advance) in steps {
        clock.advance(Duration::from_nanos(u64::from(advance) * 1_000));
        if let Ok(decision) = limiter.check_n(u32::from(n)) {
            assert!(decision.limit() == quota.limit() || decision.limit() == quota.burst());
        }
    }
}

fuzz_target!(|input: Input| match input {
    Input::Quota {
        limit,
        period_nanos,
        burst,
        algorithm,
        steps,
    } => {
        let Some(quota) = quota(limit, period_nanos, burst) else {
            return;
        };
        let steps = &steps[..steps.len().min(64)];
        match algorithm % 5 {
            0 => run::<Gcra>(quota, steps, true),
            1 => run::<LeakyBucket>(quota, steps, true),
            2 => run::<FixedWindow>(quota, steps, false),
            3 => run::<SlidingCounter>(quota, steps, false),
            _ => {
                // The sliding log keeps one entry per admitted request: keep it small.
                if quota.limit() <= 4096 {
                    run::<SlidingLog>(quota, steps, false);
                }
            }
        }
    }
    Input::Keyed {
        limit,
        period_nanos,
        max_keys,
        keys,
    } => {
        let Some(quota) = quota(limit, period_nanos, None) else {
            return;
        };
        let Ok(limiter) = KeyedLimiter::<u8, Gcra>::builder(quota)
            .max_keys(max_keys)
            .clock(ManualClock::new())
            .build()
        else {
            return;
        };
        for key in keys.iter().take(64) {
            let _ = limiter.check_key(key);
            assert!(
                limiter.len() <= max_keys.max(1),
                "{} keys over {max_keys}",
                limiter.len()
            );
        }
    }
    Input::Breaker(b) => breaker(b),
    Input::Bulkhead {
        max,
        wait_nanos,
        takes,
    } => {
        let Ok(bulkhead) = Bulkhead::with_max_wait(max, Duration::from_nanos(wait_nanos)) else {
            assert_eq!(max, 0);
            return;
        };
        let mut held = Vec::new();
        for _ in 0..takes.min(32) {
            match bulkhead.try_acquire() {
                Ok(permit) => held.push(permit),
                Err(_) => assert_eq!(held.len(), max),
            }
            assert_eq!(bulkhead.in_use(), held.len());
        }
        drop(held);
        assert_eq!(bulkhead.in_use(), 0);
    }
    Input::Retry {
        attempts,
        elapsed_nanos,
        base_nanos,
        multiplier,
        max_nanos,
        jitter,
        budget,
        transient,
    } => {
        let clock = ManualClock::new();
        let jitter = match jitter % 4 {
            0 => BackoffJitter::None,
            1 => BackoffJitter::Full,
            2 => BackoffJitter::Equal,
            _ => BackoffJitter::Decorrelated,
        };
        let backoff = Backoff::exponential(Duration::from_nanos(base_nanos))
            .multiplier(multiplier)
            .max(Duration::from_nanos(max_nanos))
            .jitter(jitter);
        let mut builder = Retry::builder()
            .clock(clock.clone())
            .max_attempts(attempts)
            .max_elapsed(Duration::from_nanos(elapsed_nanos))
            .backoff(backoff);
        if let Some((percent, min, ttl)) = budget {
            let Ok(budget) = RetryBudget::builder()
                .percent(percent)
                .min_per_second(min)
                .ttl(Duration::from_nanos(ttl))
                .clock(clock.clone())
                .build()
            else {
                return;
            };
            builder = builder.budget(std::sync::Arc::new(budget));
        }
        let Ok(retry) = builder.build() else { return };
        let mut tries = retry.start();
        for &t in transient.iter().take(64) {
            match tries.next_delay(t) {
                Ok(delay) => clock.advance(delay.min(Duration::from_secs(3600))),
                Err(_) => break,
            }
            assert!(
                tries.made() <= attempts.max(1),
                "{} tries over {attempts}",
                tries.made()
            );
        }
    }
    Input::Cache {
        capacity,
        shards,
        ttl_nanos,
        tti_nanos,
        keys,
    } => {
        // Bounded for speed only. This target found that each shard's frequency sketch was
        // allocated up front by capacity (2^40 asked for terabytes); the sketch now grows with
        // the entries held.
        let capacity = capacity % (1 << 20);
        let clock = ManualClock::new();
        let mut builder = Cache::builder().max_capacity(capacity).clock(clock.clone());
        if let Some(shards) = shards {
            builder = builder.shards(shards);
        }
        if let Some(ttl) = ttl_nanos {
            builder = builder.time_to_live(Duration::from_nanos(ttl));
        }
        if let Some(tti) = tti_nanos {
            builder = builder.time_to_idle(Duration::from_nanos(tti));
        }
        let Ok(cache) = builder.build() else { return };
        for &key in keys.iter().take(64) {
            cache.insert(key, u32::from(key));
            clock.advance(Duration::from_micros(u64::from(key)));
            let _ = cache.get(&key.wrapping_add(1));
            assert!(cache.entry_count() <= capacity);
        }
    }
    Input::Lru { capacity, keys } => {
        let Ok(mut lru) = Lru::new(capacity) else {
            return;
        };
        for &key in keys.iter().take(64) {
            lru.put(key, key);
            assert!(lru.len() <= capacity);
        }
    }
    Input::Ring { vnodes, weights } => {
        // Bounded to 2^17 points for speed: millions of points take seconds to sort under the
        // sanitizer. This target found that rings took up to u32::MAX points (about 51 GB);
        // a ring now holds at most MAX_POINTS (2^24) and says so in an error.
        let vnodes = vnodes % (1 << 8);
        let weights: Vec<u32> = weights.iter().map(|w| w % (1 << 6)).collect();
        let Ok(mut ring) = Ring::builder().vnodes(vnodes).build() else {
            assert_eq!(vnodes, 0);
            return;
        };
        for (node, &weight) in weights.iter().take(8).enumerate() {
            if ring.add_weighted(node, weight).is_ok() {
                assert!(ring.node("k").is_some());
            }
        }
    }
    Input::Maglev {
        table_size,
        weights,
    } => {
        // Bounded for speed. This target found that any prime below 2^32 was accepted (16 GB
        // of table); a fixed table is now at most MAX_TABLE_SIZE (2^24) slots.
        let table_size = table_size % (1 << 20);
        let Ok(mut maglev) = Maglev::builder().table_size(table_size).build() else {
            return;
        };
        for (node, &weight) in weights.iter().take(8).enumerate() {
            if maglev.add_weighted(node, weight).is_ok() {
                assert!(maglev.node("k").is_some());
            }
        }
    }
    Input::MultiProbe { probes, nodes } => {
        // This target found that any count up to u32::MAX was accepted, with one binary search
        // per probe a lookup (hours for 4e9); the builder now refuses more than MAX_PROBES.
        // 1,025 covers the limit and one past it.
        let probes = probes % 1025;
        let Ok(mut mp) = MultiProbe::builder().probes(probes).build() else {
            assert_eq!(probes, 0);
            return;
        };
        for node in 0..nodes.min(16) {
            mp.add(node).expect("distinct nodes");
        }
        assert_eq!(mp.node("k").is_some(), nodes > 0);
    }
    Input::Snowflake {
        timestamp_bits,
        worker_bits,
        sequence_bits,
        worker,
        borrow_ms,
        ids,
    } => {
        let Ok(layout) = Layout::builder()
            .timestamp_bits(timestamp_bits)
            .worker_bits(worker_bits)
            .sequence_bits(sequence_bits)
            .epoch_unix_millis(0)
            .build()
        else {
            return;
        };
        let mut builder =
            Snowflake::builder(layout, worker).clock(ManualClock::at_unix_millis(1_000));
        if let Some(ms) = borrow_ms {
            builder = builder.on_sequence_exhausted(SequenceExhausted::BorrowAhead {
                max: Duration::from_millis(u64::from(ms)),
            });
        }
        let Ok(generator) = builder.build() else {
            return;
        };
        assert!(worker <= layout.max_worker());
        let mut last = None;
        for _ in 0..ids.min(64) {
            match generator.try_next_id() {
                Ok(id) => {
                    assert!(last.is_none_or(|l| id > l), "{last:?} then {id}");
                    assert_eq!(layout.decode(id).worker, worker);
                    last = Some(id);
                }
                Err(_) => break,
            }
        }
    }
});

fn breaker(b: BreakerInput) {
    let clock = ManualClock::new();
    let mut builder = CircuitBreaker::builder().clock(clock.clone());
    if let Some(n) = b.consecutive {
        builder = builder.consecutive_failures(n);
    }
    if let Some(rate) = b.failure_rate {
        builder = builder.failure_rate(rate);
    }
    if let Some((percent, threshold)) = b.slow {
        builder = builder.slow_calls(percent, Duration::from_nanos(threshold));
    }
    if let Some((count, n, length)) = b.window {
        builder = builder.window(if count {
            Window::Count(n)
        } else {
            Window::Time {
                length: Duration::from_nanos(length),
                buckets: n,
            }
        });
    }
    if let Some(n) = b.minimum_calls {
        builder = builder.minimum_calls(n);
    }
    if let Some((initial, exp)) = b.open_wait {
        let initial = Duration::from_nanos(initial);
        builder = builder.open_wait(match exp {
            None => OpenWait::Fixed(initial),
            Some((multiplier, max)) => OpenWait::Exponential {
                initial,
                multiplier,
                max: Duration::from_nanos(max),
            },
        });
    }
    if let Some(n) = b.probes {
        builder = builder.half_open_probes(n);
    }
    if let Some(t) = b.probe_timeout_nanos {
        builder = builder.probe_timeout(Duration::from_nanos(t));
    }
    let Ok(breaker) = builder.build() else { return };
    for &(failed, millis) in b.calls.iter().take(64) {
        if let Ok(permit) = breaker.try_acquire() {
            clock.advance(Duration::from_millis(u64::from(millis)));
            permit.record(failed);
        } else {
            clock.advance(Duration::from_millis(u64::from(millis)));
        }
        let metrics = breaker.metrics();
        assert!(metrics.failed <= metrics.calls && metrics.slow <= metrics.calls);
        assert_eq!(metrics.probes_in_flight, 0, "no permit is held now");
    }
}
