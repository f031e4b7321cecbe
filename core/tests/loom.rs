//! Proves that `keel_core::sync` hands out loom's types under `--cfg keel_loom`: loom must
//! find the lost update in a racy load-then-store increment, which it can only do if the
//! atomics are its own. With std's atomics the model would see one interleaving only.
#![cfg(keel_loom)]

use std::collections::BTreeSet;

use keel_core::sync::Arc;
use keel_core::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn loom_explores_interleavings_of_keel_atomics() {
    let outcomes = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let seen = outcomes.clone();
    loom::model(move || {
        let counter = Arc::new(AtomicUsize::new(0));
        let other = counter.clone();
        let racer = loom::thread::spawn(move || {
            let value = other.load(Ordering::SeqCst);
            other.store(value + 1, Ordering::SeqCst);
        });
        let value = counter.load(Ordering::SeqCst);
        counter.store(value + 1, Ordering::SeqCst);
        racer.join().unwrap();
        seen.lock().unwrap().insert(counter.load(Ordering::SeqCst));
    });
    let outcomes = outcomes.lock().unwrap();
    assert_eq!(
        *outcomes,
        BTreeSet::from([1, 2]),
        "loom must find the lost update"
    );
}

#[test]
fn fetch_add_never_loses_an_update() {
    loom::model(|| {
        let counter = Arc::new(AtomicUsize::new(0));
        let other = counter.clone();
        let racer = loom::thread::spawn(move || {
            other.fetch_add(1, Ordering::AcqRel);
        });
        counter.fetch_add(1, Ordering::AcqRel);
        racer.join().unwrap();
        assert_eq!(counter.load(Ordering::Acquire), 2);
    });
}
