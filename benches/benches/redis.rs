//! A Redis decision on a Redis Cluster connection beside a plain `GET` on the same
//! connection, to the same node (the GET's key shares the decision's hash slot).
//!
//! `cargo bench -p keel-benches --bench redis -- --warm-up-time 1 --measurement-time 3`
//!
//! The cluster (3 masters, 3 replicas) is started through keel-testkit; the group is
//! skipped with a message when `redis-server` or `redis-cli` is missing.

// criterion_group! generates an undocumented pub fn.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keel_lock::{LockService, RedisLockService};
use keel_rate_limit::{FixedWindow, Gcra, Quota, RedisLimiter, SlidingCounter, SlidingLog};

fn cluster_decision(c: &mut Criterion) {
    let cluster = match keel_testkit::RedisCluster::start() {
        Ok(cluster) => cluster,
        Err(err) => {
            eprintln!("skipping the cluster group: {err}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let connection = runtime.block_on(async {
        redis::cluster::ClusterClient::new(cluster.urls())
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("connect")
    });
    let mut group = c.benchmark_group("redis cluster, one decision vs GET");
    let mut get_connection = connection.clone();
    group.bench_function(BenchmarkId::new("round trip", "GET"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                // Same hash tag as the decisions' keys: same node.
                let value: Option<String> = redis::cmd("GET")
                    .arg("get:{bench}")
                    .query_async(&mut get_connection)
                    .await
                    .expect("GET");
                black_box(value)
            })
        })
    });
    macro_rules! limiter_bench {
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
    let quota = Quota::per_second(1_000_000).expect("quota");
    limiter_bench!(Gcra, "keel Gcra", quota);
    limiter_bench!(FixedWindow, "keel FixedWindow", quota);
    limiter_bench!(SlidingCounter, "keel SlidingCounter", quota);
    // The log keeps every admission of the window; 1 000 per second keeps it realistic.
    limiter_bench!(
        SlidingLog,
        "keel SlidingLog (1000/s)",
        Quota::per_second(1_000).expect("quota")
    );
    let locks = RedisLockService::builder()
        .call_timeout(Duration::from_secs(1))
        .build(connection.clone())
        .expect("locks");
    group.bench_function(
        BenchmarkId::new("round trip", "keel lock try_acquire (held)"),
        |b| {
            let ttl = Duration::from_secs(600);
            runtime
                .block_on(locks.try_acquire("bench", ttl))
                .expect("acquire");
            b.iter(|| {
                black_box(
                    runtime
                        .block_on(locks.try_acquire("bench", ttl))
                        .expect("redis"),
                )
            })
        },
    );
    group.finish();
    drop(cluster);
}

criterion_group!(benches, cluster_decision);
criterion_main!(benches);
