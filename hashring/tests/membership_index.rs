//! `JumpHash` and `Ketama` find members through an index rather than a scan; these check
//! the index against the plain model it replaces (a list searched from the start), over
//! random histories, including nodes whose stable hashes collide.

use core::hash::Hasher;

use keel_hashring::{ConsistentHash, Error, JumpHash, Ketama, KetamaVariant, StableHash};
use proptest::prelude::*;

/// A node whose stable hash is only `id % 3`, so distinct nodes collide all the time and
/// the index's collision path runs on every history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Colliding(u8);

impl StableHash for Colliding {
    fn stable_hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.0 % 3);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Remove(u8),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![(0u8..24).prop_map(Op::Add), (0u8..24).prop_map(Op::Remove)],
        0..80,
    )
}

/// What `JumpHash` did before it had an index: find by scanning the buckets, refill the
/// lowest tombstone, drop a removed last bucket.
#[derive(Default)]
struct JumpModel(Vec<Option<Colliding>>);

impl JumpModel {
    fn bucket_of(&self, node: Colliding) -> Option<u32> {
        self.0
            .iter()
            .position(|s| *s == Some(node))
            .map(|b| b as u32)
    }

    fn add(&mut self, node: Colliding) -> Result<(), Error> {
        if self.bucket_of(node).is_some() {
            return Err(Error::DuplicateNode);
        }
        match self.0.iter().position(Option::is_none) {
            Some(dead) => self.0[dead] = Some(node),
            None => self.0.push(Some(node)),
        }
        Ok(())
    }

    fn remove(&mut self, node: Colliding) -> bool {
        let Some(b) = self.bucket_of(node) else {
            return false;
        };
        if b as usize + 1 == self.0.len() {
            self.0.pop();
        } else {
            self.0[b as usize] = None;
        }
        true
    }
}

proptest! {
    #[test]
    fn jump_index_agrees_with_a_scan(ops in ops()) {
        let mut jump = JumpHash::new();
        let mut model = JumpModel::default();
        for op in ops {
            match op {
                Op::Add(n) => prop_assert_eq!(jump.add(Colliding(n)), model.add(Colliding(n))),
                Op::Remove(n) => {
                    prop_assert_eq!(jump.remove(&Colliding(n)), model.remove(Colliding(n)));
                }
            }
            prop_assert_eq!(jump.slots(), &model.0[..]);
            for n in 0..24 {
                prop_assert_eq!(jump.bucket_of(&Colliding(n)), model.bucket_of(Colliding(n)));
                prop_assert_eq!(jump.contains(&Colliding(n)), model.bucket_of(Colliding(n)).is_some());
            }
            // A restored table has the same index: it refuses and refills alike.
            let mut restored = JumpHash::from_slots(jump.slots().to_vec()).unwrap();
            let mut copy = jump.clone();
            prop_assert_eq!(restored.add(Colliding(200)), copy.add(Colliding(200)));
            prop_assert_eq!(restored.slots(), copy.slots());
        }
    }

}

proptest! {
    // Fewer cases: every add rebuilds the MD5 continuum, slow in a debug build.
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn ketama_index_agrees_with_a_scan(ops in ops()) {
        let mut ketama = Ketama::new(KetamaVariant::Libketama);
        let mut model: Vec<String> = Vec::new();
        for op in ops {
            let label = |n: u8| format!("10.0.{}.{}:11211", n % 3, n);
            match op {
                Op::Add(n) => {
                    let expected = if model.contains(&label(n)) {
                        Err(Error::DuplicateNode)
                    } else {
                        model.push(label(n));
                        Ok(())
                    };
                    prop_assert_eq!(ketama.add(label(n)), expected);
                }
                Op::Remove(n) => {
                    let at = model.iter().position(|s| *s == label(n));
                    if let Some(at) = at {
                        model.remove(at);
                    }
                    prop_assert_eq!(ketama.remove(&label(n)), at.is_some());
                }
            }
            let servers: Vec<&String> = ketama.iter().map(|(s, _)| s).collect();
            prop_assert_eq!(servers, model.iter().collect::<Vec<_>>());
            for n in 0..24 {
                prop_assert_eq!(ketama.contains(&label(n)), model.contains(&label(n)));
            }
            prop_assert_eq!(ketama.len(), model.len());
        }
    }
}

/// 200,000 one-at-a-time adds and as many lookups: a scan per call made this take minutes.
#[test]
fn jump_membership_calls_do_not_scan() {
    let mut jump = JumpHash::new();
    for n in 0..200_000u64 {
        jump.add(n).unwrap();
    }
    assert_eq!(jump.add(0), Err(Error::DuplicateNode));
    for n in (0..200_000u64).step_by(2) {
        assert!(jump.remove(&n));
    }
    for n in 0..200_000u64 {
        assert_eq!(jump.contains(&n), n % 2 == 1);
    }
    jump.add(1_000_000).unwrap();
    assert_eq!(jump.bucket_of(&1_000_000), Some(0)); // the lowest tombstone
    jump.add(1_000_001).unwrap();
    assert_eq!(jump.bucket_of(&1_000_001), Some(2));
}
