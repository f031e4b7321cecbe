//! Serde restore of every placement from JSON: never panics or aborts on allocation, and a
//! restored placement saves to the same JSON, restores again to one that answers every key
//! the same, and places keys only on its members.
#![no_main]

use keel_hashring::{ConsistentHash, JumpHash, Ketama, Maglev, MultiProbe, Rendezvous, Ring};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

const KEYS: [&str; 6] = ["", "a", "user:42", "session:8f2c", "k\u{e9}y", "0123456789"];

/// `all_own_keys`: every member owns points. Ketama, as libketama, gives a server
/// `floor(40 × servers × weight / total)` digests, which is 0 for a weight under
/// 1/(40 × servers) of the total: such a server is a member that never receives a key.
fn check<P>(json: &[u8], all_own_keys: bool, members: impl Fn(&P) -> Vec<String>)
where
    P: ConsistentHash<Node = String> + Serialize + DeserializeOwned,
{
    let Ok(first) = serde_json::from_slice::<P>(json) else {
        return;
    };
    let saved = serde_json::to_string(&first).expect("serializes");
    let second: P = serde_json::from_str(&saved).expect("what it saved restores");
    assert_eq!(serde_json::to_string(&second).expect("serializes"), saved);
    let nodes = members(&first);
    assert_eq!(first.len(), second.len());
    let mut out_a = [None; 3];
    let mut out_b = [None; 3];
    for key in KEYS {
        let node = first.node(key);
        assert_eq!(node, second.node(key), "{saved}");
        assert_eq!(node.is_none(), first.is_empty());
        if let Some(node) = node {
            assert!(nodes.contains(node), "{node:?} is not a member of {saved}");
        }
        let n = first.replicas(key, &mut out_a);
        assert_eq!(n, second.replicas(key, &mut out_b));
        assert_eq!(out_a, out_b);
        if all_own_keys {
            assert_eq!(n, first.len().min(3));
        } else {
            assert!(n <= first.len().min(3) && (n > 0) == !first.is_empty());
        }
        assert_eq!(out_a[0], node);
    }
}

/// Whether restoring `json` would build a placement of more than 2^22 points or slots,
/// skipped for speed. This target found that restores took up to u32::MAX ring points (about
/// 51 GB) and Maglev tables of any prime below 2^32 (16 GB); both are now bounded (2^24) and
/// refused with an error.
fn too_big(ring: bool, json: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return false;
    };
    let number = |key: &str| value.get(key).and_then(serde_json::Value::as_u64);
    let weights: u64 = value
        .get("nodes")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|pair| pair.get(1).and_then(serde_json::Value::as_u64))
        .fold(0u64, u64::saturating_add);
    let limit = 1 << 22;
    number("table_size").is_some_and(|size| size > limit)
        || (ring && number("vnodes").unwrap_or(160).saturating_mul(weights) > limit)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    if too_big(which % 6 == 0, json) {
        return;
    }
    match which % 6 {
        0 => check::<Ring<String>>(json, true, |p| p.iter().map(|(n, _)| n.clone()).collect()),
        1 => {
            check::<Rendezvous<String>>(json, true, |p| p.iter().map(|(n, _)| n.clone()).collect())
        }
        2 => check::<Maglev<String>>(json, true, |p| p.iter().map(|(n, _)| n.clone()).collect()),
        3 => check::<MultiProbe<String>>(json, true, |p| p.iter().map(|(n, _)| n.clone()).collect()),
        4 => check::<JumpHash<String>>(json, true, |p| {
            p.slots().iter().flatten().cloned().collect()
        }),
        _ => check::<Ketama<String>>(json, false, |p| p.iter().map(|(n, _)| n.clone()).collect()),
    }
});
