//! Bulk membership changes and large replica lookups, which once took quadratic time,
//! against their one-at-a-time references.

use keel_hashring::{
    ConsistentHash, Error, JumpHash, Ketama, KetamaVariant, Maglev, Membership, MultiProbe,
    PlacementHash, Rendezvous, Ring, hash_key,
};
use proptest::prelude::*;

/// What one `add_weighted` at a time gives for `entries`: the first error (and then the
/// placement as it was, since a bulk add adds nothing on error), or the grown placement.
fn one_by_one<P: Membership<N> + Clone, N: Clone>(
    start: &P,
    entries: &[(N, u32)],
) -> (Result<(), Error>, P) {
    let mut grown = start.clone();
    for (node, weight) in entries {
        if let Err(e) = grown.add_weighted(node.clone(), *weight) {
            return (Err(e), start.clone());
        }
    }
    (Ok(()), grown)
}

/// Entries of `(node, weight)`.
type Entries<N> = Vec<(N, u32)>;

/// Owners and 5 replicas of 300 keys, and the member list.
fn answers<P, N>(placement: &P, members: Entries<N>) -> (Vec<Vec<Option<N>>>, Entries<N>)
where
    P: ConsistentHash<Node = N>,
    N: Clone,
{
    let lookups = (0..300u32)
        .map(|k| {
            let mut out = [None; 5];
            placement.replicas(&k, &mut out);
            out.iter().map(|n| n.cloned()).collect()
        })
        .collect();
    (lookups, members)
}

fn entries() -> impl Strategy<Value = (Entries<u32>, Entries<u32>)> {
    // Nodes from a small range so duplicates happen, weights 0..4 so zero weights do.
    let entry = (0u32..60, prop_oneof![9 => 1u32..4, 1 => Just(0u32)]);
    (
        prop::collection::vec((0u32..60, 1u32..4), 0..20),
        prop::collection::vec(entry, 0..40),
    )
}

/// Keeps the first entry of each node, so a start membership has no duplicates.
fn distinct(entries: Entries<u32>) -> Entries<u32> {
    let mut seen = std::collections::HashSet::new();
    entries
        .into_iter()
        .filter(|(n, _)| seen.insert(*n))
        .collect()
}

macro_rules! same_as_one_by_one {
    ($start:expr, $initial:expr, $added:expr, $label:expr) => {{
        let mut start = $start;
        start
            .extend_weighted($initial.iter().map(|&(n, w)| ($label(n), w)))
            .unwrap();
        let added: Vec<_> = $added.iter().map(|&(n, w)| ($label(n), w)).collect();
        let (want, reference) = one_by_one(&start, &added);
        let mut bulk = start.clone();
        prop_assert_eq!(bulk.extend_weighted(added.clone()), want);
        prop_assert_eq!(
            answers(&bulk, bulk.iter().map(|(n, w)| (n.clone(), w)).collect()),
            answers(
                &reference,
                reference.iter().map(|(n, w)| (n.clone(), w)).collect()
            )
        );
    }};
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `extend_weighted` gives the same members, lookups, replicas and error as adding the
    /// same entries one at a time, and adds nothing when one is bad.
    #[test]
    fn bulk_add_equals_adding_one_by_one((initial, added) in entries()) {
        let initial = distinct(initial);
        same_as_one_by_one!(Ring::builder().vnodes(8).build().unwrap(), initial, added, |n: u32| n);
        same_as_one_by_one!(Maglev::builder().table_size(1009).build().unwrap(), initial, added, |n: u32| n);
        same_as_one_by_one!(MultiProbe::new(), initial, added, |n: u32| n);
        same_as_one_by_one!(
            Ketama::new(KetamaVariant::Libketama),
            initial,
            added,
            |n: u32| format!("10.0.0.{n}:11211")
        );
    }

    /// Asking for more replicas than the buffer scan covers (16) gives distinct nodes, all
    /// of them when the buffer is large enough, whose first 16 are what a 16-slot buffer
    /// gets.
    #[test]
    fn large_replica_buffers_extend_small_ones(n in 17u32..80, key in any::<u64>()) {
        let mut ring = Ring::builder().vnodes(8).build().unwrap();
        let mut maglev = Maglev::builder().table_size(1009).build().unwrap();
        let mut mp = MultiProbe::new();
        let mut hrw = Rendezvous::new();
        let mut jump = JumpHash::new();
        let mut ketama = Ketama::new(KetamaVariant::Libketama);
        for i in 0..n {
            ring.add(i).unwrap();
            maglev.add(i).unwrap();
            mp.add(i).unwrap();
            hrw.add(i).unwrap();
            jump.add(i).unwrap();
            ketama.add(format!("10.0.0.{i}:11211")).unwrap();
        }
        check_prefix(&ring, hash_key(&key), n as usize)?;
        check_prefix(&maglev, hash_key(&key), n as usize)?;
        check_prefix(&mp, hash_key(&key), n as usize)?;
        check_prefix(&hrw, hash_key(&key), n as usize)?;
        check_prefix(&jump, hash_key(&key), n as usize)?;
        let hash = <Ketama<String> as ConsistentHash>::Hash::of(&key);
        check_prefix(&ketama, hash, n as usize)?;
    }
}

fn check_prefix<P: ConsistentHash>(
    placement: &P,
    hash: P::Hash,
    n: usize,
) -> Result<(), TestCaseError>
where
    P::Node: PartialEq + std::fmt::Debug,
{
    let mut small = vec![None; 16];
    let mut large = vec![None; n + 3];
    prop_assert_eq!(placement.replicas_for_hash(hash, &mut small), 16);
    prop_assert_eq!(placement.replicas_for_hash(hash, &mut large), n);
    prop_assert_eq!(&large[..16], &small[..]);
    prop_assert!(large[n..].iter().all(Option::is_none));
    let distinct: std::collections::HashSet<*const P::Node> = large[..n]
        .iter()
        .map(|node| node.map_or(std::ptr::null(), std::ptr::from_ref))
        .collect();
    prop_assert!(!distinct.contains(&std::ptr::null()));
    prop_assert_eq!(distinct.len(), n, "a replica repeats");
    Ok(())
}

/// Past 8,192 members the large-buffer path keeps a set of indexes: the same answers.
#[test]
fn large_buffers_over_many_members_agree() {
    let mut jump = JumpHash::new();
    for i in 0..9_000u32 {
        jump.add(i).unwrap();
    }
    for key in 0..50u64 {
        check_prefix(&jump, hash_key(&key), 9_000).unwrap();
    }
}
