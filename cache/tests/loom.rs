//! Loom model of the read path racing a writer: a reader sees the old value, the new value
//! or nothing, never a torn entry, and capacity holds.
#![cfg(keel_loom)]

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

use keel_cache::Cache;
use loom::thread;

#[test]
fn reader_races_writer_and_remover() {
    loom::model(|| {
        let cache = loom::sync::Arc::new(
            Cache::builder()
                .max_capacity(2)
                .shards(1)
                .record_stats()
                // A fixed hasher: loom needs every run of the model to be the same.
                .hasher(BuildHasherDefault::<DefaultHasher>::default())
                .build()
                .unwrap(),
        );
        cache.insert(1u64, 10u64);
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || {
                let v = cache.get(&1);
                assert!(matches!(v, None | Some(10) | Some(11)), "{v:?}");
            })
        };
        let writer = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.insert(1, 11);
                cache.insert(2, 20);
                cache.insert(3, 30);
            })
        };
        reader.join().unwrap();
        writer.join().unwrap();
        assert!(cache.entry_count() <= 2);
        let s = cache.stats();
        assert_eq!(s.hits + s.misses, 1);
    });
}
