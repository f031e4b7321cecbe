//! `Lru` against a reference model: a `Vec` kept in recency order.

use keel_cache::{Lru, Pushed};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Get(u8),
    Peek(u8),
    Put(u8, u16),
    Pop(u8),
    PopLru,
    Resize(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(|k| Op::Get(k % 24)),
        1 => any::<u8>().prop_map(|k| Op::Peek(k % 24)),
        5 => (any::<u8>(), any::<u16>()).prop_map(|(k, v)| Op::Put(k % 24, v)),
        1 => any::<u8>().prop_map(|k| Op::Pop(k % 24)),
        1 => Just(Op::PopLru),
        1 => (0usize..12).prop_map(Op::Resize),
    ]
}

/// Most recently used first.
struct Model {
    entries: Vec<(u8, u16)>,
    cap: usize,
}

impl Model {
    fn pos(&self, k: u8) -> Option<usize> {
        self.entries.iter().position(|e| e.0 == k)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn lru_matches_model(cap in 1usize..10, ops in proptest::collection::vec(op(), 1..200)) {
        let mut lru = Lru::new(cap).unwrap();
        let mut model = Model { entries: Vec::new(), cap };
        for op in ops {
            match op {
                Op::Get(k) => {
                    let want = model.pos(k).map(|p| {
                        let e = model.entries.remove(p);
                        model.entries.insert(0, e);
                        e.1
                    });
                    prop_assert_eq!(lru.get(&k).copied(), want);
                }
                Op::Peek(k) => {
                    let want = model.pos(k).map(|p| model.entries[p].1);
                    prop_assert_eq!(lru.peek(&k).copied(), want);
                }
                Op::Put(k, v) => {
                    let want = if let Some(p) = model.pos(k) {
                        let old = model.entries.remove(p).1;
                        Some(Pushed::Replaced(old))
                    } else if model.entries.len() == model.cap {
                        let (ek, ev) = model.entries.pop().unwrap();
                        Some(Pushed::Evicted(ek, ev))
                    } else {
                        None
                    };
                    model.entries.insert(0, (k, v));
                    prop_assert_eq!(lru.push(k, v), want);
                }
                Op::Pop(k) => {
                    let want = model.pos(k).map(|p| model.entries.remove(p).1);
                    prop_assert_eq!(lru.pop(&k), want);
                }
                Op::PopLru => prop_assert_eq!(lru.pop_lru(), model.entries.pop()),
                Op::Resize(c) => {
                    if c == 0 {
                        prop_assert!(lru.resize(c).is_err());
                    } else {
                        lru.resize(c).unwrap();
                        model.cap = c;
                        model.entries.truncate(c);
                    }
                }
            }
            prop_assert_eq!(lru.len(), model.entries.len());
            prop_assert!(lru.len() <= lru.cap());
            let got: Vec<(u8, u16)> = lru.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(&got, &model.entries);
            let mut back: Vec<(u8, u16)> = lru.iter().rev().map(|(k, v)| (*k, *v)).collect();
            back.reverse();
            prop_assert_eq!(&back, &model.entries);
        }
    }
}
