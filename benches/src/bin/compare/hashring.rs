//! `compare hashring`: lookup cost, balance, keys moved and memory of each consistent
//! hashing implementation at 10, 100 and 1,000 nodes. An argument keeps the
//! implementations whose name contains it (`compare hashring Maglev`).

use std::hint::black_box;
use std::time::Instant;

use keel_benches::hashring::{Implementation, implementations, keys};
use keel_hashring::{ConsistentHash, JumpHash, Ketama, KetamaVariant, Maglev, MultiProbe, Ring};

/// Keys for the balance columns.
const BALANCE_KEYS: usize = 1_000_000;
/// Keys for the timing and movement columns.
const SAMPLE_KEYS: usize = 200_000;

/// Peak-to-mean load and the relative standard deviation of per-node key counts.
fn balance(owners: &[u32], n: usize) -> (f64, f64) {
    let mut counts = vec![0f64; n];
    for &o in owners {
        counts[o as usize] += 1.0;
    }
    let mean = owners.len() as f64 / n as f64;
    let max = counts.iter().copied().fold(0.0, f64::max);
    let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / n as f64;
    (max / mean, var.sqrt() / mean)
}

/// What perfect balance looks like through `keys` random keys: the expected relative
/// standard deviation of a multinomial count, and the expected peak-to-mean of its max.
fn sampling_floor(keys: usize, n: usize) -> (f64, f64) {
    let cv = ((n as f64 - 1.0) / keys as f64).sqrt();
    let peak = 1.0 + (2.0 * (n as f64).ln()).sqrt() * cv;
    (peak, cv)
}

fn moved(before: &[u32], after: &[u32]) -> f64 {
    let count = before.iter().zip(after).filter(|(a, b)| a != b).count();
    count as f64 / before.len() as f64
}

fn row(imp: &Implementation, n: u32, balance_keys: &[u64]) -> String {
    let nodes: Vec<u32> = (0..n).collect();
    let mut placed = (imp.build)(&nodes);
    let sample = &balance_keys[..SAMPLE_KEYS];

    let start = Instant::now();
    for &k in sample {
        black_box(placed.lookup(black_box(k)));
    }
    let ns = start.elapsed().as_nanos() as f64 / sample.len() as f64;

    let owners: Vec<u32> = balance_keys.iter().map(|&k| placed.lookup(k)).collect();
    let (peak, cv) = balance(&owners, n as usize);
    let (floor_peak, floor_cv) = sampling_floor(balance_keys.len(), n as usize);
    let bytes = placed.heap_bytes().map_or("—".to_string(), |b| {
        format!("{:.0}", b as f64 / f64::from(n))
    });

    // Add node n, measure, take it out again; then remove node 0 (the last node where
    // only that is possible).
    let before = &owners[..SAMPLE_KEYS];
    placed.add(n);
    let after: Vec<u32> = sample.iter().map(|&k| placed.lookup(k)).collect();
    let on_add = moved(before, &after);
    placed.remove(n);
    placed.remove(if imp.removal == "last only" { n - 1 } else { 0 });
    let after: Vec<u32> = sample.iter().map(|&k| placed.lookup(k)).collect();
    let on_remove = moved(before, &after);

    format!(
        "| {} | {ns:.0} | {peak:.3} (floor {floor_peak:.3}) | {:.1} % (floor {:.1} %) | {:.2} % / {:.2} % | {:.2} % / {:.2} % | {bytes} | {} | {} | {} |",
        imp.name,
        cv * 100.0,
        floor_cv * 100.0,
        on_add * 100.0,
        100.0 / f64::from(n + 1),
        on_remove * 100.0,
        100.0 / f64::from(n),
        if imp.weights { "yes" } else { "no" },
        imp.replicas,
        imp.removal,
    )
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    // An optional argument keeps the implementations whose name contains it.
    if let Some(extra) = args.get(1) {
        return Err(format!("takes at most one filter, got `{extra}` too"));
    }
    let filter = args.first().map(String::as_str).unwrap_or("");
    let balance_keys = keys(BALANCE_KEYS);
    println!(
        "Keys are 64-bit integers; balance over {BALANCE_KEYS} keys, time and movement over \
         {SAMPLE_KEYS}. The floor is what a perfectly uniform assignment shows through the \
         same number of random keys. Moved: measured / ideal (add node n; remove node 0, or \
         the last node where only that is possible).\n"
    );
    for n in [10u32, 100, 1000] {
        println!("### {n} nodes\n");
        println!(
            "| implementation | ns/lookup | peak/mean | std dev | moved on add | moved on remove | bytes/node | weights | replicas | removal |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for imp in implementations()
            .into_iter()
            .filter(|imp| imp.name.contains(filter))
        {
            if n >= 1000 && !imp.scales_to_1000 {
                println!(
                    "| {} | not run: its build holds an n × M permutation table (500 MB at 1,000 nodes) | | | | | | | | |",
                    imp.name
                );
                continue;
            }
            println!("{}", row(&imp, n, &balance_keys));
        }
        println!();
    }
    if "keel Maglev table sizes".contains(filter) {
        maglev_sizes(&balance_keys);
    }
    if "keel bulk".contains(filter) {
        bulk();
    }
    if "keel MultiProbe".contains(filter) {
        multi_probe_table();
        multi_probe_tail();
    }
    Ok(())
}

/// The cost of bulk work that was once quadratic: adding many nodes in one
/// `extend_weighted`, and a replica lookup asking for every node (best of 3 runs each).
fn bulk() {
    fn best(mut run: impl FnMut()) -> f64 {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::MAX, f64::min)
    }
    println!("### Bulk adds and large replica lookups (ms, best of 3)\n");
    println!("| work | 1,000 nodes | 10,000 nodes | 30,000 nodes |");
    println!("|---|---|---|---|");
    let sizes = [1_000u32, 10_000, 30_000];
    let row = |name: &str, run: &dyn Fn(u32)| {
        let cells: Vec<String> = sizes
            .iter()
            .map(|&n| format!("{:.1}", best(|| run(n))))
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row(
        "MultiProbe::extend_weighted (member list + 1 point each)",
        &|n| {
            let mut mp = MultiProbe::new();
            mp.extend_weighted((0..n).map(|i| (i, 1)))
                .expect("distinct");
            black_box(mp);
        },
    );
    row("Ring::extend_weighted, 10 vnodes", &|n| {
        let mut ring = Ring::builder().vnodes(10).build().expect("vnodes");
        ring.extend_weighted((0..n).map(|i| (i, 1)))
            .expect("distinct");
        black_box(ring);
    });
    row(
        "Ketama::extend_weighted (libketama, 160 points each)",
        &|n| {
            let mut ketama = Ketama::new(KetamaVariant::Libketama);
            ketama
                .extend_weighted((0..n).map(|i| (format!("10.{}.{}.1:11211", i / 256, i % 256), 1)))
                .expect("distinct");
            black_box(ketama);
        },
    );
    // Every node in preference order, for 10 keys; 1,000 and 10,000 nodes only, as the
    // quadratic form took minutes beyond.
    let replicas = |name: &str, lookup: &dyn Fn(u32) -> f64| {
        let cells: Vec<String> = sizes[..2]
            .iter()
            .map(|&n| format!("{:.1}", lookup(n)))
            .collect();
        println!("| {name} | {} | — |", cells.join(" | "));
    };
    replicas("Ring replicas, all nodes, 10 keys (160 vnodes)", &|n| {
        let mut ring = Ring::new();
        ring.extend_weighted((0..n).map(|i| (i, 1)))
            .expect("distinct");
        let mut out = vec![None; n as usize];
        best(|| {
            for k in 0..10u64 {
                black_box(ring.replicas(&k, &mut out));
            }
        })
    });
    replicas("JumpHash replicas, all nodes, 10 keys", &|n| {
        let mut jump = JumpHash::new();
        for i in 0..n {
            jump.add(i).expect("distinct");
        }
        let mut out = vec![None; n as usize];
        best(|| {
            for k in 0..10u64 {
                black_box(jump.replicas(&k, &mut out));
            }
        })
    });
    println!();
}

/// Multi-probe's peak-to-mean by probe count, over enough keys that sampling noise is
/// well under the 5 % the paper claims for 21 probes.
fn multi_probe_table() {
    const NODES: u32 = 100;
    const KEYS: usize = 10_000_000;
    let (floor_peak, _) = sampling_floor(KEYS, NODES as usize);
    println!("### Multi-probe balance by probes ({NODES} nodes, {KEYS} keys)\n");
    println!("| probes | peak/mean | sampling floor |");
    println!("|---|---|---|");
    for probes in [1u32, 5, 21] {
        let mut mp = MultiProbe::builder()
            .probes(probes)
            .build()
            .expect("probes > 0");
        mp.extend(0..NODES).expect("distinct nodes");
        let owners: Vec<u32> = (0..KEYS as u64)
            .map(|k| *mp.node(&k).expect("members"))
            .collect();
        let (peak, _) = balance(&owners, NODES as usize);
        println!("| {probes} | {peak:.3} | {floor_peak:.3} |");
    }
    println!();
}

/// Multi-probe's light tail beside what one point per node predicts (see `MultiProbe`'s
/// docs): a node whose point follows its predecessor's by `x / n` of the circle gets
/// `(1 - e^(-k x)) (k + 1) / k` of the mean, with `x` exponential.
fn multi_probe_tail() {
    const PROBES: u32 = 21;
    const KEYS_PER_NODE: usize = 10_000;
    let k = f64::from(PROBES);
    // The predictions for gaps x ~ Exp(1).
    let mean_share = k / (k + 1.0);
    let cv = ((1.0 - 2.0 / (k + 1.0) + 1.0 / (2.0 * k + 1.0)) / mean_share.powi(2) - 1.0).sqrt();
    let half_gap = -(1.0 - mean_share / 2.0).ln() / k;
    let under_half = 1.0 - (-half_gap).exp();
    println!("### Multi-probe's light tail, {PROBES} probes, {KEYS_PER_NODE} keys per node\n");
    println!(
        "| nodes | min/mean | predicted E[min/mean] = (k+1)/(n+k) | nodes under half the mean | predicted | std dev | predicted (with the sampling floor) | peak/mean | predicted bound (k+1)/k |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for nodes in [100u32, 1000] {
        let n = f64::from(nodes);
        let mut mp = MultiProbe::builder()
            .probes(PROBES)
            .build()
            .expect("probes > 0");
        mp.extend(0..nodes).expect("distinct nodes");
        let keys = KEYS_PER_NODE * nodes as usize;
        let mut counts = vec![0f64; nodes as usize];
        for key in 0..keys as u64 {
            counts[*mp.node(&key).expect("members") as usize] += 1.0;
        }
        let mean = keys as f64 / n;
        let min = counts.iter().copied().fold(f64::MAX, f64::min) / mean;
        let max = counts.iter().copied().fold(0.0, f64::max) / mean;
        let under = counts.iter().filter(|&&c| c < mean / 2.0).count();
        let sd = (counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / n).sqrt() / mean;
        let (_, floor) = sampling_floor(keys, nodes as usize);
        println!(
            "| {nodes} | {min:.3} | {:.3} | {under} | {:.1} | {:.1} % | {:.1} % | {max:.3} | {:.3} |",
            (k + 1.0) / (n + k),
            under_half * n,
            sd * 100.0,
            (cv * cv + floor * floor).sqrt() * 100.0,
            (k + 1.0) / k,
        );
    }
    println!();
}

/// Keys moved by adding one node to `n` over the ideal, at 10, 100, 1,000 nodes and on both
/// sides of each point where earlier releases grew the table: in a table sized for 1,000
/// nodes, in the default 65,537-slot table, and under the old rule, which rebuilt at a
/// bigger size when `n + 1` nodes needed more than `5 n²` slots.
fn maglev_growth_points(
    keys: &[u64],
    build: &dyn Fn(u64, u32) -> Maglev<u32>,
    owners: &dyn Fn(&Maglev<u32>) -> Vec<u32>,
) {
    const OLD_STEPS: [u64; 8] = [
        65_537, 131_101, 262_151, 524_309, 1_048_601, 2_097_211, 4_194_371, 8_388_739,
    ];
    let old_size = |n: u32| {
        let want = 5 * u64::from(n).pow(2);
        OLD_STEPS
            .into_iter()
            .find(|&size| size >= want)
            .unwrap_or(OLD_STEPS[7])
    };
    let sized = Maglev::<u32>::builder()
        .expected_nodes(1000)
        .build()
        .expect("1,000 is under the limit")
        .table_size();
    println!(
        "### Maglev: keys moved on adding a node, over the ideal, across the old growth points\n"
    );
    println!(
        "Adding node `n` to nodes `0..n`, {} keys. Sized: `Maglev::builder().expected_nodes(1000)` \
         ({sized} slots); default: `Maglev::new()` (65,537); old rule: the table grew at these \
         counts.\n",
        keys.len()
    );
    println!("| nodes | sized for 1,000 | default 65,537 | old rule |");
    println!("|---|---|---|---|");
    let ratio = |before: &Maglev<u32>, after: &Maglev<u32>, n: u32| {
        moved(&owners(before), &owners(after)) * f64::from(n + 1)
    };
    let mut points = vec![10u32, 100, 1000];
    for step in &OLD_STEPS[1..] {
        let first = (1..=1000).find(|&n| old_size(n) == *step);
        points.extend(first.map(|n| n - 1));
    }
    points.sort_unstable();
    for n in points {
        let mut cells = Vec::new();
        for size in [u64::from(sized), 65_537] {
            let base = build(size, n);
            let mut grown = base.clone();
            grown.add(n).expect("a new node");
            cells.push(format!("{:.2}", ratio(&base, &grown, n)));
        }
        let old = ratio(&build(old_size(n), n), &build(old_size(n + 1), n + 1), n);
        let share = old / f64::from(n + 1) * 100.0;
        println!(
            "| {n} → {} | {} | {} | {old:.2} ({share:.0} % of keys) |",
            n + 1,
            cells[0],
            cells[1]
        );
    }
    println!();
}

/// Maglev's table size against its movement, memory and lookup time: keys moved by adding
/// one node to `n` (the worst of two different added nodes, over the ideal `1/(n+1)`), for
/// fixed prime table sizes, and what each size costs at 1,000 nodes.
fn maglev_sizes(keys: &[u64]) {
    const SIZES: [u64; 9] = [
        10_007, 65_537, 131_101, 262_151, 524_309, 1_048_601, 2_097_211, 4_194_371, 8_388_739,
    ];
    const NODES: [u32; 7] = [10, 20, 50, 100, 200, 500, 1000];
    let build = |size: u64, n: u32| {
        let mut maglev = Maglev::builder()
            .table_size(size)
            .build()
            .expect("a prime size");
        maglev
            .extend_weighted((0..n).map(|node| (node, 1)))
            .expect("fewer nodes than slots");
        maglev
    };
    let owners = |maglev: &Maglev<u32>| -> Vec<u32> {
        keys.iter()
            .map(|k| *maglev.node(k).expect("members"))
            .collect()
    };
    println!("### Maglev: keys moved on adding a node, over the ideal, by table size\n");
    println!("Worst of two added nodes, {} keys.\n", keys.len());
    print!("| nodes |");
    for size in SIZES {
        print!(" M = {size} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(SIZES.len()));
    for n in NODES {
        print!("| {n} |");
        for size in SIZES {
            let base = build(size, n);
            let before = owners(&base);
            let mut worst = 0f64;
            for added in [n, n + 1] {
                let mut grown = base.clone();
                grown.add(added).expect("a new node");
                let moved = moved(&before, &owners(&grown));
                worst = worst.max(moved * f64::from(n + 1));
            }
            print!(" {worst:.2} |");
        }
        println!();
    }
    println!();
    maglev_growth_points(keys, &build, &owners);
    println!("### Maglev: what each table size costs at 1,000 nodes\n");
    println!("| M | M / n | M / n² | heap bytes | build (ms) | ns/lookup ({SAMPLE_KEYS} keys) |");
    println!("|---|---|---|---|---|---|");
    let sample = &keys[..SAMPLE_KEYS];
    for size in SIZES {
        let start = Instant::now();
        let maglev = build(size, 1000);
        let build_ms = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        for k in sample {
            black_box(maglev.node(black_box(k)));
        }
        let ns = start.elapsed().as_nanos() as f64 / sample.len() as f64;
        println!(
            "| {size} | {:.0} | {:.2} | {} | {build_ms:.0} | {ns:.0} |",
            size as f64 / 1e3,
            size as f64 / 1e6,
            maglev.heap_bytes(),
        );
    }
    println!();
}
