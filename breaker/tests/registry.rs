//! Keys come and go: `retain` and `remove` prune the registry, and a pruned key's next
//! `get` starts a fresh breaker while holders keep the old one.

use std::collections::BTreeSet;
use std::sync::Arc;

use keel_breaker::{BreakerRegistry, CircuitBreaker, State};

fn registry(keys: impl IntoIterator<Item = u32>) -> BreakerRegistry<u32> {
    let registry = BreakerRegistry::new(CircuitBreaker::builder().consecutive_failures(1)).unwrap();
    for key in keys {
        registry.get(&key);
    }
    registry
}

fn keys(registry: &BreakerRegistry<u32>) -> BTreeSet<u32> {
    let mut keys = BTreeSet::new();
    registry.for_each(|key, _| {
        keys.insert(*key);
    });
    keys
}

#[test]
fn retain_keeps_exactly_what_the_predicate_keeps() {
    let registry = registry(0..100);
    let kept_before = registry.get(&42);
    let mut seen = Vec::new();
    registry.retain(|key, _| {
        seen.push(*key);
        key % 3 == 0
    });
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..100).collect::<Vec<_>>(),
        "each key is offered once"
    );
    assert_eq!(keys(&registry), (0..100).filter(|k| k % 3 == 0).collect());
    assert_eq!(registry.len(), 34);
    assert!(
        Arc::ptr_eq(&registry.get(&42), &kept_before),
        "kept breakers are the same"
    );
}

#[test]
fn retain_by_state_and_a_pruned_key_starts_fresh() {
    let registry = registry(0..4);
    let _ = registry.get(&1).call(|| Err::<(), _>("down"));
    let held = registry.get(&2);
    let _ = held.call(|| Err::<(), _>("down"));
    assert_eq!(held.state(), State::Open);
    registry.retain(|key, breaker| *key == 1 || breaker.state() == State::Closed);
    assert_eq!(keys(&registry), BTreeSet::from([0, 1, 3]));
    // The holder keeps the removed breaker, open; the registry builds a new one.
    assert_eq!(held.state(), State::Open);
    let fresh = registry.get(&2);
    assert!(!Arc::ptr_eq(&fresh, &held));
    assert_eq!(fresh.state(), State::Closed);
    assert_eq!(
        registry.get(&1).state(),
        State::Open,
        "a kept breaker keeps its state"
    );
}

#[test]
fn remove_and_retain_bound_a_registry_of_changing_keys() {
    let registry = registry([]);
    for round in 0..50u32 {
        for key in round * 10..round * 10 + 10 {
            registry.get(&key);
        }
        registry.retain(|key, _| *key >= round * 10); // only this round's keys
        assert_eq!(registry.len(), 10);
        assert!(registry.remove(&(round * 10)).is_some());
        assert!(registry.remove(&(round * 10)).is_none());
        assert_eq!(registry.len(), 9);
    }
    assert_eq!(keys(&registry), (491..500).collect());
}

#[test]
fn get_existing_builds_nothing() {
    let registry = registry([7]);
    assert!(registry.get_existing(&8).is_none());
    assert_eq!(registry.len(), 1, "a miss adds no key");
    let seven = registry.get_existing(&7).unwrap();
    assert!(Arc::ptr_eq(&seven, &registry.get(&7)));
    registry.remove(&7);
    assert!(registry.get_existing(&7).is_none());
    assert!(registry.is_empty());
}
