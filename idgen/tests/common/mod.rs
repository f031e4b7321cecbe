//! Helpers shared by the integration tests.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::thread::JoinHandle;

/// Joins the generating threads and checks that each one's IDs rose strictly and that no ID
/// was issued twice across all of them; returns every ID.
pub(crate) fn join_unique_ordered<T: Ord + Hash + Debug>(
    workers: Vec<JoinHandle<Vec<T>>>,
) -> HashSet<T> {
    let mut all = HashSet::new();
    for worker in workers {
        let ids = worker.join().expect("no panic");
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "per-thread order"
        );
        for id in ids {
            assert!(all.insert(id), "duplicate id");
        }
    }
    all
}
