//! Load balance of each algorithm, measured on sampled keys with the sampling floor in mind.

use keel_hashring::{ConsistentHash, Maglev, MultiProbe, hash_key};

/// Peak-to-mean load of `keys` sampled keys.
fn peak_to_mean<H: ConsistentHash<Node = u32, Hash = u64>>(
    placement: &H,
    nodes: usize,
    keys: u64,
) -> f64 {
    let mut counts = vec![0u64; nodes];
    for k in 0..keys {
        let node = placement.node_for_hash(hash_key(&k)).expect("members");
        counts[*node as usize] += 1;
    }
    let mean = keys as f64 / nodes as f64;
    *counts.iter().max().expect("nodes") as f64 / mean
}

/// Multi-probe with 21 probes reaches the paper's peak-to-mean of 1.05.
///
/// With 100 nodes and 1M keys each node expects 10,000 keys, so sampling alone lifts the
/// maximum of 100 counts by about 2.5 standard deviations, 2.5 %: the allowance below. The
/// configuration is fixed, so the result is deterministic: 1.066 here, and 1.052 with 20M
/// keys, where the sampling floor is 0.6 %.
#[test]
fn multi_probe_21_probes_peak_to_mean_is_1_05() {
    let mut mp = MultiProbe::builder().probes(21).build().unwrap();
    mp.extend(0..100u32).unwrap();
    let ratio = peak_to_mean(&mp, 100, 1_000_000);
    assert!(ratio <= 1.05 + 0.025, "peak-to-mean {ratio}");

    // One probe is a plain ring with one point per node: far worse, as the paper shows.
    let mut one = MultiProbe::builder().probes(1).build().unwrap();
    one.extend(0..100u32).unwrap();
    assert!(peak_to_mean(&one, 100, 200_000) > 2.0);
}

/// Maglev's slot counts differ by at most one, so the only imbalance is sampling noise.
#[test]
fn maglev_balance_is_at_the_sampling_floor() {
    let mut maglev = Maglev::new();
    maglev.extend_weighted((0..100u32).map(|n| (n, 1))).unwrap();
    let ratio = peak_to_mean(&maglev, 100, 400_000);
    // 4,000 keys per node: 2.5 sigma of sampling is 4 %, plus 655 vs 656 slots.
    assert!(ratio <= 1.05, "peak-to-mean {ratio}");
}

/// A table sized for the membership keeps the keys an added node moves under 2× the ideal
/// `1/(n+1)`, with no step that moves nearly every key: the size never changes on its own,
/// including across 115 and 162 nodes, where earlier releases grew the table. A
/// 65,537-slot table sized for 114 nodes degrades past that, gradually.
#[test]
fn maglev_sized_for_the_membership_moves_under_twice_the_ideal() {
    let keys: Vec<u64> = (0..100_000u64).map(|k| hash_key(&k)).collect();
    let moved_on_add = |mut maglev: Maglev<u32>, n: u32| {
        let size = maglev.table_size();
        maglev.extend_weighted((0..n).map(|i| (i, 1))).unwrap();
        let before: Vec<u32> = keys
            .iter()
            .map(|&h| *maglev.node_for_hash(h).unwrap())
            .collect();
        maglev.add(n).unwrap();
        assert_eq!(maglev.table_size(), size, "a membership change resized");
        let moved = keys
            .iter()
            .zip(&before)
            .filter(|&(&h, b)| maglev.node_for_hash(h).unwrap() != b)
            .count();
        moved as f64 / keys.len() as f64 * f64::from(n + 1)
    };
    let sized = Maglev::builder().expected_nodes(300).build().unwrap();
    for n in [10, 100, 114, 161, 300] {
        let ratio = moved_on_add(sized.clone(), n);
        // 1.0–1.6 measured; 100,000 keys leave a few percent of sampling noise.
        assert!(ratio <= 1.8, "{n} nodes: {ratio}× the ideal");
    }
    let ratio = moved_on_add(Maglev::new(), 300);
    assert!(
        (2.5..6.0).contains(&ratio),
        "past its planned 114 nodes, the default table moves more, not all: {ratio}"
    );
}

/// Multi-probe's weights: a node of weight `w` holds `w` points, so each weight class takes
/// its share `w·count / W` of the keys. With 25 nodes per weight 1 to 4 (250 points), a
/// class of weight `w` has `25w` points, each varying by 15.3 % (see `MultiProbe`), so its
/// share deviates by about `15.3 % / √(25w)`: 3.1 % for weight 1. The allowance is 3 of those
/// deviations plus sampling on 500,000 keys. The configuration is fixed, so the result is
/// deterministic.
#[test]
fn multi_probe_weights_give_proportional_shares() {
    let mut mp = MultiProbe::new();
    mp.extend_weighted((0..100u32).map(|n| (n, n / 25 + 1)))
        .unwrap();
    let keys = 500_000u64;
    let mut by_weight = [0u64; 4];
    for k in 0..keys {
        let node = *mp.node_for_hash(hash_key(&k)).expect("members");
        by_weight[(node / 25) as usize] += 1;
    }
    for (i, &count) in by_weight.iter().enumerate() {
        let w = i as f64 + 1.0;
        let expected = 25.0 * w / 250.0;
        let share = count as f64 / keys as f64;
        let allowance = 3.0 * 0.153 / (25.0 * w).sqrt() + 0.005;
        assert!(
            (share / expected - 1.0).abs() <= allowance,
            "weight {w}: share {share:.4} against {expected:.4}"
        );
    }
}
