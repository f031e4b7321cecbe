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
