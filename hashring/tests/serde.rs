//! Saving and restoring a placement gives the same answers.
#![cfg(feature = "serde")]

use keel_hashring::{
    ConsistentHash, JumpHash, Ketama, KetamaVariant, MAX_POINTS, Maglev, MultiProbe, Rendezvous,
    Ring,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<H>(placement: &H) -> H
where
    H: ConsistentHash<Node = String> + Serialize + DeserializeOwned,
{
    let json = serde_json::to_string(placement).unwrap();
    let restored: H = serde_json::from_str(&json).unwrap();
    assert_eq!(restored.len(), placement.len());
    for k in 0..500u32 {
        let key = format!("key-{k}");
        assert_eq!(
            restored.node(key.as_str()),
            placement.node(key.as_str()),
            "{json}"
        );
    }
    restored
}

fn names(n: u32) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("node-{i}"))
}

#[test]
fn every_placement_round_trips() {
    let mut ring = Ring::builder().vnodes(40).build().unwrap();
    ring.extend_weighted(names(6).zip(1..)).unwrap();
    assert_eq!(round_trip(&ring).vnodes(), 40);

    let mut hrw = Rendezvous::new();
    for (n, w) in names(6).zip(1..) {
        hrw.add_weighted(n, w).unwrap();
    }
    round_trip(&hrw);

    let mut maglev = Maglev::builder().table_size(1009).build().unwrap();
    maglev.extend_weighted(names(6).zip(1..)).unwrap();
    assert_eq!(round_trip(&maglev).table_size(), 1009);

    let mut mp = MultiProbe::builder().probes(5).build().unwrap();
    mp.extend(names(6)).unwrap();
    assert_eq!(round_trip(&mp).probes(), 5);
    // Unweighted, it saves as it did before weights existed: no `weights` field.
    assert!(!serde_json::to_string(&mp).unwrap().contains("weights"));
    let mut weighted = MultiProbe::builder().probes(5).build().unwrap();
    weighted.extend_weighted(names(6).zip(1..)).unwrap();
    let restored = round_trip(&weighted);
    let mut members: Vec<_> = restored.iter().map(|(n, w)| (n.clone(), w)).collect();
    members.sort();
    assert_eq!(members, names(6).zip(1..).collect::<Vec<_>>());

    let mut jump = JumpHash::new();
    for n in names(6) {
        jump.add(n).unwrap();
    }
    jump.remove(&"node-2".to_string());
    assert_eq!(round_trip(&jump).buckets(), 6);

    let mut ketama = Ketama::new(KetamaVariant::Twemproxy);
    ketama
        .extend_weighted(names(6).map(|n| (format!("{n}:11211"), 2)))
        .unwrap();
    assert_eq!(round_trip(&ketama).variant(), KetamaVariant::Twemproxy);
}

#[test]
fn invalid_saved_state_is_rejected_with_the_reason() {
    let err = serde_json::from_str::<Ring<String>>(r#"{"vnodes":0,"nodes":[]}"#).unwrap_err();
    assert!(err.to_string().contains("virtual nodes"), "{err}");
    let err = serde_json::from_str::<Ring<String>>(r#"{"nodes":[["a",1],["a",2]]}"#).unwrap_err();
    assert!(err.to_string().contains("already a member"), "{err}");
    let err =
        serde_json::from_str::<Maglev<String>>(r#"{"table_size":100,"nodes":[]}"#).unwrap_err();
    assert!(err.to_string().contains("not prime"), "{err}");
    let err = serde_json::from_str::<JumpHash<String>>(r#"{"slots":["a",null,"a"]}"#).unwrap_err();
    assert!(err.to_string().contains("already a member"), "{err}");
    let err = serde_json::from_str::<Rendezvous<String>>(r#"{"nodes":[["a",0]]}"#).unwrap_err();
    assert!(err.to_string().contains("weight"), "{err}");
    let err = serde_json::from_str::<MultiProbe<String>>(
        r#"{"probes":3,"nodes":["a","b"],"weights":[1]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("1 weights for 2 nodes"), "{err}");
    let err = serde_json::from_str::<MultiProbe<String>>(
        r#"{"probes":3,"nodes":["a"],"weights":[4294967295]}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("more than the limit"), "{err}");
}

/// A saved ring is restored through the same bound as a built one: oversized state is an
/// error naming the limit, never an allocation abort.
#[test]
fn oversized_saved_ring_is_rejected_before_allocating() {
    let err = serde_json::from_str::<Ring<String>>(r#"{"vnodes":4294967295,"nodes":[["a",1]]}"#)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("4294967295 virtual nodes per weight is more than the 16777216 points"),
        "{err}"
    );
    let err = serde_json::from_str::<Ring<String>>(
        r#"{"vnodes":160,"nodes":[["a",100000],["b",4294967295]]}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "ring would hold {} points, more than the limit of {MAX_POINTS}",
            160 * (100_000 + u64::from(u32::MAX))
        )),
        "{err}"
    );
}

/// Adds `(node, weight)` one by one, as restoring did before it took one bulk merge.
fn rendezvous_by_adds(nodes: &[(u32, u32)]) -> Result<Rendezvous<u32>, keel_hashring::Error> {
    let mut hrw = Rendezvous::new();
    for &(node, weight) in nodes {
        hrw.add_weighted(node, weight)?;
    }
    Ok(hrw)
}

fn rendezvous_from_saved(nodes: &[(u32, u32)]) -> Result<Rendezvous<u32>, String> {
    let saved = serde_json::json!({ "nodes": nodes });
    serde_json::from_value(saved).map_err(|e| e.to_string())
}

fn same_rendezvous(a: &Rendezvous<u32>, b: &Rendezvous<u32>) -> bool {
    a.iter().eq(b.iter()) && (0..200u32).all(|k| a.node(&k) == b.node(&k))
}

proptest::proptest! {
    /// Restoring a saved list, valid or not, gives what adding it one node at a time gives:
    /// the same members in the same canonical order, or the same first error.
    #[test]
    fn rendezvous_restores_as_adds_do(
        nodes in proptest::collection::vec(
            (0u32..300, proptest::prop_oneof![19 => 1u32..4, 1 => proptest::strategy::Just(0)]),
            0..120,
        ),
    ) {
        match (rendezvous_by_adds(&nodes), rendezvous_from_saved(&nodes)) {
            (Ok(expected), Ok(restored)) => {
                proptest::prop_assert!(same_rendezvous(&expected, &restored));
            }
            (Err(expected), Err(restored)) => {
                proptest::prop_assert_eq!(expected.to_string(), restored);
            }
            (expected, restored) => {
                proptest::prop_assert!(false, "adds: {expected:?}, restored: {restored:?}");
            }
        }
    }
}

/// A large saved set restores to the set built by adds, and its duplicate and zero-weight
/// entries fail as adds fail.
#[test]
fn large_rendezvous_restores_as_adds_do() {
    let nodes: Vec<(u32, u32)> = (0..5_000).map(|n| (n * 7919, 1 + n % 5)).collect();
    let expected = rendezvous_by_adds(&nodes).unwrap();
    let restored = rendezvous_from_saved(&nodes).unwrap();
    assert!(same_rendezvous(&expected, &restored));
    let json = serde_json::to_string(&expected).unwrap();
    let round_tripped: Rendezvous<u32> = serde_json::from_str(&json).unwrap();
    assert!(same_rendezvous(&expected, &round_tripped));

    let mut duplicate = nodes.clone();
    duplicate.push(nodes[2_500]);
    assert_eq!(
        rendezvous_from_saved(&duplicate).unwrap_err(),
        keel_hashring::Error::DuplicateNode.to_string()
    );
    let mut zero = nodes;
    zero.push((1, 0));
    assert_eq!(
        rendezvous_from_saved(&zero).unwrap_err(),
        keel_hashring::Error::ZeroWeight.to_string()
    );
}
