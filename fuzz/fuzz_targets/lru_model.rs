//! `Lru` against a reference model (a `Vec` in recency order, most recent first): every
//! operation returns what the model returns, and the iteration order agrees both ways.
#![no_main]

use arbitrary::Arbitrary;
use keel_cache::{Lru, Pushed};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Get(u8),
    GetMut(u8, u16),
    Peek(u8),
    Contains(u8),
    Put(u8, u16),
    Push(u8, u16),
    Pop(u8),
    PopLru,
    PeekLru,
    Resize(u8),
    Clear,
}

fuzz_target!(|input: (u8, Vec<Op>)| {
    let (cap, ops) = input;
    let mut cap = usize::from(cap % 16);
    let Ok(mut lru) = Lru::<u8, u16>::new(cap) else {
        assert_eq!(cap, 0);
        return;
    };
    let mut model: Vec<(u8, u16)> = Vec::new();
    let pos = |model: &Vec<(u8, u16)>, k: u8| model.iter().position(|e| e.0 == k);
    for op in ops {
        match op {
            Op::Get(k) => {
                let want = pos(&model, k).map(|p| {
                    let e = model.remove(p);
                    model.insert(0, e);
                    e.1
                });
                assert_eq!(lru.get(&k).copied(), want);
            }
            Op::GetMut(k, v) => {
                let want = pos(&model, k).map(|p| {
                    let mut e = model.remove(p);
                    let old = e.1;
                    e.1 = v;
                    model.insert(0, e);
                    old
                });
                let got = lru.get_mut(&k).map(|slot| std::mem::replace(slot, v));
                assert_eq!(got, want);
            }
            Op::Peek(k) => assert_eq!(lru.peek(&k).copied(), pos(&model, k).map(|p| model[p].1)),
            Op::Contains(k) => assert_eq!(lru.contains(&k), pos(&model, k).is_some()),
            Op::Put(k, v) | Op::Push(k, v) => {
                let want = if let Some(p) = pos(&model, k) {
                    Some(Pushed::Replaced(model.remove(p).1))
                } else if model.len() == cap {
                    let (ek, ev) = model.pop().expect("cap > 0");
                    Some(Pushed::Evicted(ek, ev))
                } else {
                    None
                };
                model.insert(0, (k, v));
                if matches!(op, Op::Push(..)) {
                    assert_eq!(lru.push(k, v), want);
                } else {
                    let replaced = match want {
                        Some(Pushed::Replaced(old)) => Some(old),
                        _ => None,
                    };
                    assert_eq!(lru.put(k, v), replaced);
                }
            }
            Op::Pop(k) => assert_eq!(lru.pop(&k), pos(&model, k).map(|p| model.remove(p).1)),
            Op::PopLru => assert_eq!(lru.pop_lru(), model.pop()),
            Op::PeekLru => assert_eq!(lru.peek_lru().map(|(k, v)| (*k, *v)), model.last().copied()),
            Op::Resize(c) => {
                let c = usize::from(c % 16);
                if c == 0 {
                    assert!(lru.resize(c).is_err());
                } else {
                    lru.resize(c).expect("a positive capacity");
                    cap = c;
                    // Shrinking drops the least recently used.
                    model.truncate(c);
                }
            }
            Op::Clear => {
                lru.clear();
                model.clear();
            }
        }
        assert_eq!(lru.len(), model.len());
        assert_eq!(lru.cap(), cap);
        assert_eq!(lru.is_empty(), model.is_empty());
        assert!(lru.iter().map(|(k, v)| (*k, *v)).eq(model.iter().copied()));
        assert!(
            lru.iter()
                .rev()
                .map(|(k, v)| (*k, *v))
                .eq(model.iter().rev().copied())
        );
    }
});
