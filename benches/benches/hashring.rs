//! Consistent hashing: lookup cost at 10, 100 and 1,000 nodes, replicas, and build time,
//! keel's algorithms beside hashring, consistent_hash_ring, jumphash, maglev and anchorhash.
//!
//! `cargo bench -p keel-benches --bench hashring`
//!
//! The `shared` group reads one placement from two threads at once: keel's `Shared` (an
//! arc-swap load) beside a `RwLock<Arc<_>>`, the safe swap loom could check.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keel_benches::hashring::{
    VNODES, keel_jump, keel_ketama, keel_maglev, keel_maglev_fixed, keel_multi_probe,
    keel_rendezvous, keel_ring, keys, peer_anchorhash, peer_consistent_hash_ring, peer_hashring,
    peer_jumphash, peer_maglev,
};
use keel_hashring::ConsistentHash;

/// Keys cycled through by the lookups; a power of two so the index is a mask.
const KEYS: usize = 1 << 16;

/// Times `lookup` over a cycle of keys.
fn bench_lookup<R>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    keys: &[u64],
    lookup: impl Fn(u64) -> R,
) {
    group.bench_function(BenchmarkId::new("lookup", name), |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & (KEYS - 1);
            black_box(lookup(black_box(keys[i])))
        })
    });
}

fn lookups(c: &mut Criterion) {
    let keys = keys(KEYS);
    for n in [10u32, 100, 1000] {
        let nodes: Vec<u32> = (0..n).collect();
        let mut group = c.benchmark_group(format!("lookup, {n} nodes"));

        let ring = keel_ring(&nodes);
        bench_lookup(
            &mut group,
            &format!("keel Ring ({VNODES} vnodes)"),
            &keys,
            |k| ring.node(&k).copied(),
        );
        let peer = peer_hashring(&nodes);
        bench_lookup(
            &mut group,
            &format!("hashring ({VNODES} vnodes)"),
            &keys,
            |k| peer.get(&k).map(|v| v.node),
        );
        let peer = peer_consistent_hash_ring(&nodes);
        bench_lookup(
            &mut group,
            &format!("consistent_hash_ring ({VNODES} vnodes)"),
            &keys,
            |k| *peer.get(k),
        );

        let jump = keel_jump(&nodes);
        bench_lookup(&mut group, "keel JumpHash", &keys, |k| {
            jump.node(&k).copied()
        });
        let hasher = peer_jumphash();
        bench_lookup(&mut group, "jumphash", &keys, |k| {
            nodes[hasher.slot(&k, n) as usize]
        });

        let maglev = keel_maglev(&nodes);
        bench_lookup(&mut group, "keel Maglev", &keys, |k| {
            maglev.node(&k).copied()
        });
        let fixed = keel_maglev_fixed(&nodes);
        bench_lookup(&mut group, "keel Maglev (fixed 65,537)", &keys, |k| {
            fixed.node(&k).copied()
        });
        if n <= 100 {
            // The maglev crate's build holds an n × M permutation table (800 MB at 1,000).
            let peer = peer_maglev(&nodes);
            bench_lookup(&mut group, "maglev", &keys, |k| {
                maglev::ConsistentHasher::get(&peer, &k).copied()
            });
        }
        let anchor = peer_anchorhash(&nodes);
        bench_lookup(&mut group, "anchorhash", &keys, |k| {
            anchor.get_resource(k).copied()
        });

        let hrw = keel_rendezvous(&nodes);
        bench_lookup(&mut group, "keel Rendezvous", &keys, |k| {
            hrw.node(&k).copied()
        });
        let mp = keel_multi_probe(&nodes);
        bench_lookup(&mut group, "keel MultiProbe (21)", &keys, |k| {
            mp.node(&k).copied()
        });
        let ketama = keel_ketama(&nodes);
        bench_lookup(&mut group, "keel Ketama", &keys, |k| {
            ketama.node(&k).map(|s| s.id)
        });
        group.finish();
    }
}

/// Snapshot loads and lookups on `THREADS` threads at once; the time is per call per thread.
fn shared(c: &mut Criterion) {
    const THREADS: usize = 2;
    let keys = std::sync::Arc::new(keys(KEYS));
    let nodes: Vec<u32> = (0..100).collect();
    let mut group = c.benchmark_group(format!("load + lookup, {THREADS} threads, 100 nodes"));
    let arc_swap = std::sync::Arc::new(keel_hashring::Shared::new(keel_ring(&nodes)));
    let rw_lock = std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(keel_ring(
        &nodes,
    ))));
    fn contended(
        iters: u64,
        keys: &std::sync::Arc<Vec<u64>>,
        call: impl Fn(u64) -> Option<u32> + Clone + Send + 'static,
    ) -> Duration {
        let start = std::time::Instant::now();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (keys, call) = (keys.clone(), call.clone());
                std::thread::spawn(move || {
                    let mut i = t * 7919;
                    for _ in 0..iters {
                        i = (i + 1) & (KEYS - 1);
                        black_box(call(black_box(keys[i])));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        start.elapsed()
    }
    group.bench_function(
        BenchmarkId::new("load + lookup", "keel Shared<Ring> (arc-swap)"),
        |b| {
            b.iter_custom(|iters| {
                let shared = arc_swap.clone();
                contended(iters, &keys, move |k| shared.load().node(&k).copied())
            })
        },
    );
    group.bench_function(
        BenchmarkId::new("load + lookup", "RwLock<Arc<Ring>>"),
        |b| {
            b.iter_custom(|iters| {
                let shared = rw_lock.clone();
                contended(iters, &keys, move |k| {
                    let snapshot = std::sync::Arc::clone(&shared.read().expect("not poisoned"));
                    snapshot.node(&k).copied()
                })
            })
        },
    );
    group.finish();
}

fn replicas(c: &mut Criterion) {
    let keys = keys(KEYS);
    let nodes: Vec<u32> = (0..100).collect();
    let mut group = c.benchmark_group("3 replicas, 100 nodes");

    let ring = keel_ring(&nodes);
    bench_lookup(&mut group, "keel Ring", &keys, |k| {
        let mut out = [None; 3];
        ring.replicas(&k, &mut out);
        out.map(|n| n.copied())
    });
    let peer = peer_consistent_hash_ring(&nodes);
    bench_lookup(&mut group, "consistent_hash_ring", &keys, |k| {
        let mut out = [0u32; 3];
        for (slot, node) in out.iter_mut().zip(peer.replicas(k)) {
            *slot = *node;
        }
        out
    });
    // hashring's get_with_replicas clones the whole ring (16,000 entries) per call; measure
    // it at 10 nodes so the run stays short, which flatters it.
    let small: Vec<u32> = (0..10).collect();
    let peer = peer_hashring(&small);
    bench_lookup(&mut group, "hashring (10 nodes, clones ring)", &keys, |k| {
        peer.get_with_replicas(&k, 2).map(|v| v.len())
    });
    let hrw = keel_rendezvous(&nodes);
    bench_lookup(&mut group, "keel Rendezvous", &keys, |k| {
        let mut out = [None; 3];
        hrw.replicas(&k, &mut out);
        out.map(|n| n.copied())
    });
    let jump = keel_jump(&nodes);
    bench_lookup(&mut group, "keel JumpHash", &keys, |k| {
        let mut out = [None; 3];
        jump.replicas(&k, &mut out);
        out.map(|n| n.copied())
    });
    let maglev = keel_maglev(&nodes);
    bench_lookup(&mut group, "keel Maglev", &keys, |k| {
        let mut out = [None; 3];
        maglev.replicas(&k, &mut out);
        out.map(|n| n.copied())
    });
    group.finish();
}

fn builds(c: &mut Criterion) {
    for n in [100u32, 1000] {
        let nodes: Vec<u32> = (0..n).collect();
        let mut group = c.benchmark_group(format!("build, {n} nodes"));
        group.sample_size(10);
        group.bench_function(
            BenchmarkId::new("build", format!("keel Ring ({VNODES} vnodes)")),
            |b| b.iter(|| keel_ring(black_box(&nodes))),
        );
        group.bench_function(
            BenchmarkId::new("build", format!("hashring ({VNODES} vnodes)")),
            |b| b.iter(|| peer_hashring(black_box(&nodes))),
        );
        group.bench_function(
            BenchmarkId::new("build", format!("consistent_hash_ring ({VNODES} vnodes)")),
            |b| b.iter(|| peer_consistent_hash_ring(black_box(&nodes))),
        );
        group.bench_function(BenchmarkId::new("build", "keel Maglev (65,537)"), |b| {
            b.iter(|| keel_maglev(black_box(&nodes)))
        });
        if n <= 100 {
            group.bench_function(BenchmarkId::new("build", "maglev (65,537)"), |b| {
                b.iter(|| maglev::Maglev::with_capacity(black_box(nodes.iter().copied()), 65_537))
            });
        }
        group.bench_function(BenchmarkId::new("build", "keel MultiProbe"), |b| {
            b.iter(|| keel_multi_probe(black_box(&nodes)))
        });
        group.bench_function(BenchmarkId::new("build", "keel Ketama"), |b| {
            b.iter(|| keel_ketama(black_box(&nodes)))
        });
        group.bench_function(BenchmarkId::new("build", "anchorhash"), |b| {
            b.iter(|| peer_anchorhash(black_box(&nodes)))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = lookups, shared, replicas, builds
}
criterion_main!(benches);
