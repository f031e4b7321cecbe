//! Loom model of `Shared`: concurrent membership changes are never lost and a reader only
//! ever sees a whole snapshot. Under loom a mutex stands in for arc-swap's pointer (which
//! loom cannot model), so this checks the update protocol around it.
#![cfg(keel_loom)]

use keel_core::sync::Arc;
use keel_hashring::{ConsistentHash, Rendezvous, Shared};

#[test]
fn concurrent_updates_are_not_lost() {
    loom::model(|| {
        let shared = Arc::new(Shared::new(Rendezvous::<u32>::new()));
        let writers: Vec<_> = (0..2u32)
            .map(|node| {
                let shared = shared.clone();
                loom::thread::spawn(move || {
                    shared.update(|r| r.add(node)).unwrap();
                })
            })
            .collect();
        let snapshot = shared.load();
        assert!(snapshot.len() <= 2);
        let mut out = [None; 2];
        assert_eq!(snapshot.replicas("k", &mut out), snapshot.len());
        for writer in writers {
            writer.join().unwrap();
        }
        let done = shared.load();
        assert_eq!(done.len(), 2);
        assert!(done.contains(&0) && done.contains(&1));
    });
}

#[test]
fn failed_update_is_invisible() {
    loom::model(|| {
        let shared = Arc::new(Shared::new(Rendezvous::<u32>::new()));
        shared.update(|r| r.add(7)).unwrap();
        let writer = {
            let shared = shared.clone();
            loom::thread::spawn(move || {
                // Adds 8, then fails on the duplicate 7: nothing may be published.
                let result = shared.update(|r| {
                    r.add(8)?;
                    r.add(7)
                });
                assert!(result.is_err());
            })
        };
        assert_eq!(shared.load().len(), 1);
        writer.join().unwrap();
        assert!(!shared.load().contains(&8));
    });
}
