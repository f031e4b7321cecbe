//! keel-rate-limit beside governor, ratelimit and leaky-bucket.
//!
//! `cargo bench -p keel-benches --bench rate_limit`
//!
//! Each call's result is reduced to "admitted or not" before `black_box`, as for the peers,
//! so no limiter pays for writing out a bigger answer.
//!
//! Every limiter gets a quota far above the rate a benchmark loop reaches (10⁹ per second,
//! burst 10⁹), so each call is an admission and all of them do the same work: read the clock,
//! update the state. The Redis group starts its own `redis-server` (keel-testkit) and is
//! skipped if none is installed.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keel_rate_limit::{
    CompactKeyedLimiter, FixedWindow, Gcra, KeyedLimiter, LeakyBucket, Limiter, Quota, RateLimit,
    RedisLimiter, SlidingCounter, SlidingLog,
};

const RATE: u32 = 1_000_000_000;

/// The clock read governor does on every check: quanta's raw counter scaled to nanoseconds.
/// keel with this clock isolates the limiter's own cost from the default clock's.
#[derive(Debug)]
struct GovernorClockRead {
    clock: quanta::Clock,
    origin: u64,
}

impl GovernorClockRead {
    fn new() -> GovernorClockRead {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        GovernorClockRead { clock, origin }
    }
}

impl keel_core::Clock for GovernorClockRead {
    fn now(&self) -> keel_core::Instant {
        keel_core::Instant::from_nanos(self.clock.delta_as_nanos(self.origin, self.clock.raw()))
    }
    fn unix_millis(&self) -> u64 {
        keel_core::SystemClock.unix_millis()
    }
}

fn keel_quota() -> Quota {
    Quota::per_second(RATE).expect("valid quota")
}

fn governor_quota() -> governor::Quota {
    governor::Quota::per_second(NonZeroU32::new(RATE).expect("non-zero"))
}

fn peer_ratelimit() -> ratelimit::Ratelimiter {
    ratelimit::Ratelimiter::builder(u64::from(RATE))
        .max_tokens(u64::from(RATE))
        .initial_available(u64::from(RATE))
        .build()
        .expect("valid ratelimit")
}

fn peer_leaky_bucket() -> leaky_bucket::RateLimiter {
    leaky_bucket::RateLimiter::builder()
        .max(RATE as usize)
        .initial(RATE as usize)
        .refill(RATE as usize)
        .interval(Duration::from_secs(1))
        .build()
}

/// Single limiter, one thread: the cost of one decision.
fn single_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("check, one key, uncontended");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    let gcra = Limiter::<Gcra>::new(keel_quota());
    group.bench_function(BenchmarkId::new("check", "keel Gcra"), |b| {
        b.iter(|| black_box(gcra.check().is_allowed()))
    });
    let gcra_raw = Limiter::<Gcra, _>::with_clock(keel_quota(), GovernorClockRead::new());
    group.bench_function(
        BenchmarkId::new("check", "keel Gcra, governor's clock read"),
        |b| b.iter(|| black_box(gcra_raw.check().is_allowed())),
    );
    let leaky = Limiter::with_algorithm(keel_quota(), LeakyBucket);
    group.bench_function(BenchmarkId::new("check", "keel LeakyBucket"), |b| {
        b.iter(|| black_box(leaky.check().is_allowed()))
    });
    let fixed = Limiter::with_algorithm(keel_quota(), FixedWindow);
    group.bench_function(BenchmarkId::new("check", "keel FixedWindow"), |b| {
        b.iter(|| black_box(fixed.check().is_allowed()))
    });
    let counter = Limiter::with_algorithm(keel_quota(), SlidingCounter);
    group.bench_function(BenchmarkId::new("check", "keel SlidingCounter"), |b| {
        b.iter(|| black_box(counter.check().is_allowed()))
    });
    // The log holds one entry per admission instant; a modest quota keeps it short.
    let log = Limiter::with_algorithm(Quota::per_second(1_000_000).expect("quota"), SlidingLog);
    group.bench_function(BenchmarkId::new("check", "keel SlidingLog (1M/s)"), |b| {
        b.iter(|| black_box(log.check().is_allowed()))
    });
    let governor = governor::RateLimiter::direct(governor_quota());
    group.bench_function(BenchmarkId::new("check", "governor"), |b| {
        b.iter(|| black_box(governor.check().is_ok()))
    });
    let ratelimit = peer_ratelimit();
    group.bench_function(BenchmarkId::new("check", "ratelimit"), |b| {
        b.iter(|| black_box(ratelimit.try_wait().is_ok()))
    });
    let leaky_bucket = peer_leaky_bucket();
    group.bench_function(BenchmarkId::new("check", "leaky-bucket"), |b| {
        b.iter(|| black_box(leaky_bucket.try_acquire(1)))
    });
    group.finish();
}

/// Keyed limiter, the same key every time: map lookup plus decision.
fn hot_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("check, keyed, one hot key");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    let keel = KeyedLimiter::<u64, Gcra>::new(keel_quota());
    group.bench_function(BenchmarkId::new("check_key", "keel Gcra"), |b| {
        b.iter(|| black_box(keel.check_key(&42).is_allowed()))
    });
    let keel_raw = KeyedLimiter::<u64, Gcra>::builder(keel_quota())
        .clock(GovernorClockRead::new())
        .build()
        .expect("keyed limiter");
    group.bench_function(
        BenchmarkId::new("check_key", "keel Gcra, governor's clock read"),
        |b| b.iter(|| black_box(keel_raw.check_key(&42).is_allowed())),
    );
    let compact = CompactKeyedLimiter::new(keel_quota()).expect("compact limiter");
    group.bench_function(
        BenchmarkId::new("check_key", "keel CompactKeyedLimiter"),
        |b| b.iter(|| black_box(compact.check_key(42).is_allowed())),
    );
    let governor = governor::RateLimiter::keyed(governor_quota());
    group.bench_function(BenchmarkId::new("check_key", "governor"), |b| {
        b.iter(|| black_box(governor.check_key(&42u64).is_ok()))
    });
    group.finish();
}

/// Keyed limiter, 1M distinct keys in turn: cache misses dominate.
fn many_keys(c: &mut Criterion) {
    const KEYS: u64 = 1_000_000;
    let mut group = c.benchmark_group("check, keyed, 1M keys cycling");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_secs(1));
    let keel = KeyedLimiter::<u64, Gcra>::new(keel_quota());
    let mut key = 0u64;
    group.bench_function(BenchmarkId::new("check_key", "keel Gcra"), |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(keel.check_key(&key).is_allowed())
        })
    });
    let compact = CompactKeyedLimiter::new(keel_quota()).expect("compact limiter");
    let mut key = 0u64;
    group.bench_function(
        BenchmarkId::new("check_key", "keel CompactKeyedLimiter"),
        |b| {
            b.iter(|| {
                key = (key + 1) % KEYS;
                black_box(compact.check_key(key).is_allowed())
            })
        },
    );
    let governor = governor::RateLimiter::keyed(governor_quota());
    let mut key = 0u64;
    group.bench_function(BenchmarkId::new("check_key", "governor"), |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(governor.check_key(&key).is_ok())
        })
    });
    group.finish();
}

/// Two threads hammering one limiter: time per decision, both threads together.
fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("check, 2 threads, one key");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    fn run<L: Send + Sync + 'static>(
        limiter: &Arc<L>,
        iters: u64,
        check: fn(&L) -> bool,
    ) -> Duration {
        let start = Instant::now();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    for _ in 0..iters.div_ceil(2) {
                        black_box(check(&limiter));
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("bench thread");
        }
        start.elapsed()
    }
    let keel = Arc::new(Limiter::<Gcra>::new(keel_quota()));
    group.bench_function(BenchmarkId::new("check", "keel Gcra"), |b| {
        b.iter_custom(|iters| run(&keel, iters, |l| l.check().is_allowed()))
    });
    let keel_raw = Arc::new(Limiter::<Gcra, _>::with_clock(
        keel_quota(),
        GovernorClockRead::new(),
    ));
    group.bench_function(
        BenchmarkId::new("check", "keel Gcra, governor's clock read"),
        |b| b.iter_custom(|iters| run(&keel_raw, iters, |l| l.check().is_allowed())),
    );
    let keyed = Arc::new(KeyedLimiter::<u64, Gcra>::new(keel_quota()));
    group.bench_function(BenchmarkId::new("check_key", "keel keyed Gcra"), |b| {
        b.iter_custom(|iters| run(&keyed, iters, |l| l.check_key(&7).is_allowed()))
    });
    let compact = Arc::new(CompactKeyedLimiter::new(keel_quota()).expect("compact limiter"));
    group.bench_function(
        BenchmarkId::new("check_key", "keel CompactKeyedLimiter"),
        |b| b.iter_custom(|iters| run(&compact, iters, |l| l.check_key(7).is_allowed())),
    );
    let governor = Arc::new(governor::RateLimiter::direct(governor_quota()));
    group.bench_function(BenchmarkId::new("check", "governor"), |b| {
        b.iter_custom(|iters| run(&governor, iters, |l| l.check().is_ok()))
    });
    let governor_keyed = Arc::new(governor::RateLimiter::<u64, _, _>::keyed(governor_quota()));
    group.bench_function(BenchmarkId::new("check_key", "governor keyed"), |b| {
        b.iter_custom(|iters| run(&governor_keyed, iters, |l| l.check_key(&7).is_ok()))
    });
    let ratelimit = Arc::new(peer_ratelimit());
    group.bench_function(BenchmarkId::new("check", "ratelimit"), |b| {
        b.iter_custom(|iters| run(&ratelimit, iters, |l| l.try_wait().is_ok()))
    });
    group.finish();
}

/// One decision in Redis (one EVALSHA) beside a plain GET on the same connection.
fn redis_decision(c: &mut Criterion) {
    let server = match keel_testkit::RedisServer::start() {
        Ok(server) => server,
        Err(err) => {
            eprintln!("skipping the redis group: {err}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let connection = runtime.block_on(async {
        let client = redis::Client::open(server.url()).expect("client");
        redis::aio::ConnectionManager::new(client)
            .await
            .expect("connect")
    });
    let mut group = c.benchmark_group("redis, one decision vs GET");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    let mut get_connection = connection.clone();
    group.bench_function(BenchmarkId::new("round trip", "GET"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let value: Option<String> = redis::cmd("GET")
                    .arg("bench-key")
                    .query_async(&mut get_connection)
                    .await
                    .expect("GET");
                black_box(value)
            })
        })
    });
    macro_rules! redis_bench {
        ($algorithm:ty, $name:expr, $quota:expr) => {
            let limiter = RedisLimiter::<$algorithm>::builder($quota)
                .timeout(Duration::from_secs(1))
                .build(connection.clone())
                .expect("limiter");
            group.bench_function(BenchmarkId::new("round trip", $name), |b| {
                b.iter(|| {
                    runtime.block_on(async {
                        black_box(limiter.try_check_key_n("bench", 1).await.expect("redis"))
                    })
                })
            });
        };
    }
    redis_bench!(Gcra, "keel Gcra", keel_quota());
    redis_bench!(FixedWindow, "keel FixedWindow", keel_quota());
    redis_bench!(SlidingCounter, "keel SlidingCounter", keel_quota());
    // The log keeps every admission of the window; 1 000 per second keeps it realistic.
    redis_bench!(
        SlidingLog,
        "keel SlidingLog (1000/s)",
        Quota::per_second(1_000).expect("quota")
    );
    group.finish();
    drop(server);
}

criterion_group!(
    benches,
    single_key,
    hot_key,
    many_keys,
    two_threads,
    redis_decision
);
criterion_main!(benches);
