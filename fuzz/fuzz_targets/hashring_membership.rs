//! Hashring membership sequences against a reference lookup. Every placement lives in a
//! `Shared` and changes through `update`; after each change it must answer every key exactly
//! as a placement built from scratch with the model's membership does (history does not
//! matter, and a failed change publishes nothing), place keys only on members, and give
//! distinct replicas led by the owner. Jump is also checked against Lamping and Veach's
//! function on live buckets.
#![no_main]

use arbitrary::Arbitrary;
use keel_hashring::{
    ConsistentHash, JumpHash, Ketama, KetamaVariant, Maglev, MultiProbe, Rendezvous, Ring, Shared,
    hash_key,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Add(u8, u8),
    Remove(u8),
    /// Adds a batch that fails on a duplicate: nothing may be published.
    FailingBatch(u8),
}

const KEYS: usize = 24;

fn name(node: u8) -> String {
    format!("10.0.0.{}:11211", node % 32)
}

fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// The same answers for every key, and only members as answers.
fn agree<P: ConsistentHash<Node = String>>(got: &P, want: &P, members: &[String]) {
    assert_eq!(got.len(), members.len());
    assert_eq!(want.len(), members.len());
    let mut a = [None; 3];
    let mut b = [None; 3];
    for k in 0..KEYS as u32 {
        let key = format!("key-{k}");
        let node = got.node(&key);
        assert_eq!(node, want.node(&key), "key {key}");
        assert_eq!(node.is_some(), !members.is_empty());
        if let Some(node) = node {
            assert!(members.contains(node), "{node} is not a member");
        }
        let n = got.replicas(&key, &mut a);
        assert_eq!(n, want.replicas(&key, &mut b));
        assert_eq!(a, b);
        assert_eq!(n, members.len().min(3));
        assert_eq!(a[0], node);
        for i in 0..n {
            for j in 0..i {
                assert_ne!(a[i], a[j], "replicas repeat a node");
            }
        }
    }
}

fuzz_target!(|ops: Vec<(u8, Op)>| {
    let ring = Shared::new(Ring::<String>::builder().vnodes(8).build().expect("vnodes"));
    let hrw = Shared::new(Rendezvous::<String>::new());
    let maglev = Shared::new(
        Maglev::<String>::builder()
            .table_size(251)
            .build()
            .expect("prime"),
    );
    let probe = Shared::new(
        MultiProbe::<String>::builder()
            .probes(5)
            .build()
            .expect("probes"),
    );
    let ketama = Shared::new(Ketama::<String>::new(KetamaVariant::Libketama));
    let jumps = Shared::new(JumpHash::<String>::new());
    // The model: members in insertion order with weights, and jump's slots.
    let mut members: Vec<(String, u32)> = Vec::new();
    let mut slots: Vec<Option<String>> = Vec::new();

    for (which, op) in ops.into_iter().take(48) {
        let which = which % 6;
        match op {
            Op::Add(node, weight) => {
                let node = name(node);
                let weight = u32::from(weight % 4);
                let fresh = !members.iter().any(|(n, _)| *n == node);
                // Jump takes no weight; its result never depends on the weight.
                let jumped = jumps.update(|j| j.add(node.clone()));
                assert_eq!(jumped.is_ok(), fresh);
                if fresh {
                    let at = slots
                        .iter()
                        .position(Option::is_none)
                        .unwrap_or(slots.len());
                    assert_eq!(jumps.load().bucket_of(&node), Some(at as u32));
                    if at == slots.len() {
                        slots.push(Some(node.clone()));
                    } else {
                        slots[at] = Some(node.clone());
                    }
                }
                let ok = fresh && weight > 0;
                let w = weight;
                let results = [
                    ring.update(|r| r.add_weighted(node.clone(), w)).is_ok(),
                    hrw.update(|r| r.add_weighted(node.clone(), w)).is_ok(),
                    maglev.update(|r| r.add_weighted(node.clone(), w)).is_ok(),
                    ketama.update(|r| r.add_weighted(node.clone(), w)).is_ok(),
                ];
                assert_eq!(results, [ok; 4], "add {node} weight {w}");
                // Multi-probe takes no weight either.
                assert_eq!(probe.update(|r| r.add(node.clone())).is_ok(), fresh);
                if ok {
                    members.push((node, weight));
                } else if fresh {
                    // Weight 0: the others refused; take it out of jump and multi-probe too.
                    assert!(jumps.update(|j| Ok::<_, ()>(j.remove(&node))).unwrap());
                    assert!(probe.update(|r| Ok::<_, ()>(r.remove(&node))).unwrap());
                    let at = slots
                        .iter()
                        .position(|s| s.as_ref() == Some(&node))
                        .unwrap();
                    if at + 1 == slots.len() {
                        slots.pop();
                    } else {
                        slots[at] = None;
                    }
                }
            }
            Op::Remove(node) => {
                let node = name(node);
                let at = members.iter().position(|(n, _)| *n == node);
                let removed = [
                    ring.update(|r| Ok::<_, ()>(r.remove(&node))).unwrap(),
                    hrw.update(|r| Ok::<_, ()>(r.remove(&node))).unwrap(),
                    maglev.update(|r| Ok::<_, ()>(r.remove(&node))).unwrap(),
                    probe.update(|r| Ok::<_, ()>(r.remove(&node))).unwrap(),
                    ketama.update(|r| Ok::<_, ()>(r.remove(&node))).unwrap(),
                    jumps.update(|r| Ok::<_, ()>(r.remove(&node))).unwrap(),
                ];
                assert_eq!(removed, [at.is_some(); 6], "remove {node}");
                if let Some(at) = at {
                    members.remove(at);
                    let slot = slots
                        .iter()
                        .position(|s| s.as_ref() == Some(&node))
                        .unwrap();
                    if slot + 1 == slots.len() {
                        slots.pop();
                    } else {
                        slots[slot] = None;
                    }
                }
            }
            Op::FailingBatch(node) => {
                // A new node, then one already in: refused whole, on the placement chosen.
                let Some((existing, _)) = members.first().cloned() else {
                    continue;
                };
                let new = format!("fresh-{node}");
                let refused = match which {
                    0 => ring
                        .update(|r| r.extend_weighted([(new.clone(), 1), (existing.clone(), 1)]))
                        .is_err(),
                    1 => hrw
                        .update(|r| {
                            r.add(new.clone())?;
                            r.add(existing.clone())
                        })
                        .is_err(),
                    2 => maglev
                        .update(|r| r.extend_weighted([(new.clone(), 1), (existing.clone(), 1)]))
                        .is_err(),
                    3 => probe
                        .update(|r| r.extend([new.clone(), existing.clone()]))
                        .is_err(),
                    4 => ketama
                        .update(|r| r.extend_weighted([(new.clone(), 1), (existing.clone(), 1)]))
                        .is_err(),
                    _ => jumps
                        .update(|r| {
                            r.add(new.clone())?;
                            r.add(existing.clone())
                        })
                        .is_err(),
                };
                assert!(refused);
            }
        }

        // The reference: each placement built from scratch with the model's membership.
        let names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
        match which {
            0 => {
                let mut fresh = Ring::builder().vnodes(8).build().unwrap();
                fresh.extend_weighted(members.iter().cloned()).unwrap();
                agree(&*ring.load(), &fresh, &names);
            }
            1 => {
                let mut fresh = Rendezvous::new();
                for (n, w) in members.iter().rev() {
                    fresh.add_weighted(n.clone(), *w).unwrap();
                }
                agree(&*hrw.load(), &fresh, &names);
            }
            2 => {
                let mut fresh = Maglev::builder().table_size(251).build().unwrap();
                fresh
                    .extend_weighted(members.iter().rev().cloned())
                    .unwrap();
                agree(&*maglev.load(), &fresh, &names);
            }
            3 => {
                let mut fresh = MultiProbe::builder().probes(5).build().unwrap();
                fresh.extend(names.iter().rev().cloned()).unwrap();
                agree(&*probe.load(), &fresh, &names);
            }
            4 => {
                // Ketama breaks ties between equal points by server order, as libketama does.
                let mut fresh = Ketama::new(KetamaVariant::Libketama);
                fresh.extend_weighted(members.iter().cloned()).unwrap();
                agree(&*ketama.load(), &fresh, &names);
            }
            _ => {
                let got = jumps.load();
                assert_eq!(got.slots(), &slots[..]);
                let fresh = JumpHash::from_slots(slots.clone()).unwrap();
                agree(&*got, &fresh, &names);
                for k in 0..KEYS as u32 {
                    let key = format!("key-{k}");
                    let bucket = jump(hash_key(&key), slots.len() as u32) as usize;
                    if let Some(Some(live)) = slots.get(bucket) {
                        assert_eq!(got.node(&key), Some(live), "jump put {key} elsewhere");
                    }
                }
            }
        }
    }
});
