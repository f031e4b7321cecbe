//! Write-through and write-back against a store that fails on command: no acknowledged
//! write is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_cache::{BuildError, Cache, Store, WriteBack, WriteThrough};
use keel_core::ManualClock;
use proptest::prelude::*;

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store is down")
    }
}

impl std::error::Error for Down {}

/// A map that refuses writes while `failing` is set, and counts batches.
#[derive(Default)]
struct FlakyStore {
    data: Mutex<HashMap<u32, u64>>,
    failing: AtomicBool,
    batches: AtomicUsize,
}

impl Store<u32, u64> for FlakyStore {
    type Error = Down;

    fn write(&self, key: &u32, value: &u64) -> Result<(), Down> {
        self.write_batch(&[(*key, *value)])
    }

    fn write_batch(&self, batch: &[(u32, u64)]) -> Result<(), Down> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Down);
        }
        self.batches.fetch_add(1, Ordering::SeqCst);
        let mut data = self.data.lock().unwrap();
        for (k, v) in batch {
            data.insert(*k, *v);
        }
        Ok(())
    }
}

#[test]
fn write_through_writes_the_store_before_the_cache() {
    let wt = WriteThrough::new(Cache::new(100).unwrap(), FlakyStore::default());
    wt.insert(1, 10).unwrap();
    assert_eq!(wt.get(&1), Some(10));
    assert_eq!(wt.store().data.lock().unwrap()[&1], 10);
    wt.store().failing.store(true, Ordering::SeqCst);
    assert!(wt.insert(1, 11).is_err());
    // The cache does not keep a value the store may not have.
    assert_eq!(wt.get(&1), None);
    assert_eq!(wt.store().data.lock().unwrap()[&1], 10);
}

#[test]
fn builder_rejects_zero_batch_and_interval() {
    let err = WriteBack::builder(Cache::new(10).unwrap(), FlakyStore::default())
        .flush_interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroDuration("flush interval"));
    assert_eq!(err.to_string(), "flush interval must be > 0");
}

#[test]
fn flushes_on_size() {
    let wb = WriteBack::builder(Cache::new(1_000).unwrap(), FlakyStore::default())
        .batch_size(10)
        .build()
        .unwrap();
    for k in 0..9 {
        wb.insert(k, 1);
    }
    assert_eq!(wb.store().batches.load(Ordering::SeqCst), 0);
    wb.insert(9, 1);
    assert_eq!(wb.store().batches.load(Ordering::SeqCst), 1);
    assert_eq!(wb.store().data.lock().unwrap().len(), 10);
    assert_eq!(wb.dirty_len(), 0);
}

#[test]
fn flushes_on_interval_by_the_clock() {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .max_capacity(100)
        .clock(clock.clone())
        .build()
        .unwrap();
    let wb = WriteBack::builder(cache, FlakyStore::default())
        .flush_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    wb.insert(1, 1);
    clock.advance(Duration::from_millis(999));
    assert_eq!(wb.flush_if_due().unwrap(), 0);
    assert_eq!(wb.dirty_len(), 1);
    clock.advance(Duration::from_millis(1));
    // Any operation notices the interval passed.
    assert_eq!(wb.get(&1), Some(1));
    assert_eq!(wb.dirty_len(), 0);
    assert_eq!(wb.store().data.lock().unwrap()[&1], 1);
}

#[test]
fn a_failed_flush_keeps_entries_dirty_and_retries() {
    let wb = WriteBack::builder(Cache::new(4).unwrap(), FlakyStore::default())
        .batch_size(3)
        .build()
        .unwrap();
    wb.store().failing.store(true, Ordering::SeqCst);
    for k in 0..20 {
        wb.insert(k, u64::from(k) * 10);
    }
    assert_eq!(wb.dirty_len(), 20);
    assert!(wb.failed_flushes() > 0);
    // The cache evicted most of them, but reads still see every acknowledged write.
    for k in 0..20 {
        assert_eq!(wb.get(&k), Some(u64::from(k) * 10));
    }
    let err = wb.flush().unwrap_err();
    assert_eq!(err.pending, 20);
    assert_eq!(
        err.to_string(),
        "write-back flush failed after 0 entries, 20 still dirty: store is down"
    );
    wb.store().failing.store(false, Ordering::SeqCst);
    assert_eq!(wb.shutdown().unwrap(), 20);
    let data = wb.store().data.lock().unwrap();
    assert_eq!(data.len(), 20);
    assert!((0..20).all(|k| data[&k] == u64::from(k) * 10));
}

#[test]
fn concurrent_writers_lose_nothing() {
    let wb = Arc::new(
        WriteBack::builder(Cache::new(64).unwrap(), FlakyStore::default())
            .batch_size(8)
            .build()
            .unwrap(),
    );
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let wb = wb.clone();
            std::thread::spawn(move || {
                for i in 0..2_000u64 {
                    if t == 0 && i % 100 == 0 {
                        let fail = (i / 100) % 2 == 0;
                        wb.store().failing.store(fail, Ordering::SeqCst);
                    }
                    // Each thread owns its keys, so its last write per key is the truth.
                    wb.insert(t * 1_000 + (i % 50) as u32, i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    wb.store().failing.store(false, Ordering::SeqCst);
    wb.shutdown().unwrap();
    let data = wb.store().data.lock().unwrap();
    for t in 0..4u32 {
        for k in 0..50u32 {
            let last = (0..2_000u64)
                .filter(|i| i % 50 == u64::from(k))
                .max()
                .unwrap();
            assert_eq!(data[&(t * 1_000 + k)], last, "thread {t} key {k}");
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u64),
    Fail(bool),
    Flush,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// After any mix of writes, store outages and flushes, one successful shutdown leaves
    /// the store holding the last acknowledged value of every key.
    #[test]
    fn no_acknowledged_write_is_lost(
        batch in 1usize..6,
        ops in proptest::collection::vec(prop_oneof![
            6 => (0u8..16, any::<u64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            1 => any::<bool>().prop_map(Op::Fail),
            1 => Just(Op::Flush),
        ], 1..120),
    ) {
        let wb = WriteBack::builder(Cache::new(4).unwrap(), FlakyStore::default())
            .batch_size(batch)
            .build()
            .unwrap();
        let mut model = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    wb.insert(u32::from(k), v);
                    model.insert(u32::from(k), v);
                }
                Op::Fail(f) => wb.store().failing.store(f, Ordering::SeqCst),
                Op::Flush => {
                    let _ = wb.flush();
                }
            }
            // Every acknowledged write is readable: cached, dirty, or already in the store.
            for (k, v) in &model {
                match wb.get(k) {
                    Some(got) => prop_assert_eq!(got, *v),
                    None => {
                        let stored = wb.store().data.lock().unwrap().get(k).copied();
                        prop_assert_eq!(stored, Some(*v));
                    }
                }
            }
        }
        wb.store().failing.store(false, Ordering::SeqCst);
        wb.shutdown().unwrap();
        prop_assert_eq!(&*wb.store().data.lock().unwrap(), &model);
        prop_assert_eq!(wb.dirty_len(), 0);
    }
}

#[cfg(feature = "tokio")]
#[tokio::test(start_paused = true)]
async fn the_tokio_flusher_flushes_an_idle_cache() {
    let clock = keel_core::TokioClock::new();
    let cache = Cache::builder()
        .max_capacity(10)
        .clock(clock)
        .build()
        .unwrap();
    let wb = Arc::new(
        WriteBack::builder(cache, FlakyStore::default())
            .flush_interval(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    let task = WriteBack::spawn_flusher(&wb, Duration::from_millis(250));
    wb.insert(1, 1);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(wb.dirty_len(), 0);
    assert_eq!(wb.store().data.lock().unwrap()[&1], 1);
    drop(wb);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(task.is_finished());
}

/// Two threads insert one key; the first one's write is held up mid-way until the second
/// has written (or 300 ms pass, when the second is correctly made to wait).
fn race_two_inserts(
    first: impl FnOnce() + Send,
    second: impl FnOnce() + Send,
    first_held: &std::sync::mpsc::Receiver<()>,
) {
    std::thread::scope(|s| {
        let a = s.spawn(first);
        first_held
            .recv()
            .expect("the first insert reaches its hold");
        let b = s.spawn(second);
        a.join().expect("first insert");
        b.join().expect("second insert");
    });
}

/// A store whose write of value 1 applies, then waits for the write of value 2.
struct StallingStore {
    data: Mutex<HashMap<u32, u64>>,
    held: Mutex<std::sync::mpsc::Sender<()>>,
    second: Mutex<std::sync::mpsc::Receiver<()>>,
    second_done: Mutex<std::sync::mpsc::Sender<()>>,
}

impl Store<u32, u64> for StallingStore {
    type Error = Down;

    fn write(&self, key: &u32, value: &u64) -> Result<(), Down> {
        self.data.lock().unwrap().insert(*key, *value);
        match value {
            1 => {
                self.held.lock().unwrap().send(()).unwrap();
                // The second write arrives here unless the key lock holds it back.
                let _ = self
                    .second
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_millis(300));
            }
            2 => {
                let _ = self.second_done.lock().unwrap().send(());
            }
            _ => {}
        }
        Ok(())
    }
}

#[test]
fn write_through_orders_concurrent_writes_of_a_key() {
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (second_tx, second_rx) = std::sync::mpsc::channel();
    let store = StallingStore {
        data: Mutex::default(),
        held: Mutex::new(held_tx),
        second: Mutex::new(second_rx),
        second_done: Mutex::new(second_tx),
    };
    let wt = WriteThrough::new(Cache::new(100).unwrap(), store);
    race_two_inserts(
        || wt.insert(7, 1).unwrap(),
        || wt.insert(7, 2).unwrap(),
        &held_rx,
    );
    let stored = wt.store().data.lock().unwrap()[&7];
    assert_eq!(wt.get(&7), Some(stored), "cache and store disagree");
}

#[test]
fn write_back_orders_concurrent_writes_of_a_key() {
    // The cache's listener holds the first insert up right after it updated the cache
    // (when it replaces value 0), until the second insert has marked its value dirty.
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let (second_tx, second_rx) = std::sync::mpsc::channel::<()>();
    let held_tx = Mutex::new(held_tx);
    let second_rx = Mutex::new(second_rx);
    let cache = Cache::builder()
        .max_capacity(100)
        .eviction_listener(move |_k: u32, old: u64, _cause| {
            if old == 0 {
                held_tx.lock().unwrap().send(()).unwrap();
                let _ = second_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_millis(300));
            }
        })
        .build()
        .unwrap();
    let wb = WriteBack::builder(cache, FlakyStore::default())
        .batch_size(100)
        .build()
        .unwrap();
    wb.insert(7, 0);
    race_two_inserts(
        || wb.insert(7, 1),
        || {
            wb.insert(7, 2);
            let _ = second_tx.send(());
        },
        &held_rx,
    );
    wb.flush().unwrap();
    let stored = wb.store().data.lock().unwrap()[&7];
    assert_eq!(wb.get(&7), Some(stored), "cache and store disagree");
}

/// A store that applies the write of value 13, then panics (a driver bug after commit).
#[derive(Default)]
struct PanicsAfterApplying(Mutex<HashMap<u32, u64>>);

impl Store<u32, u64> for PanicsAfterApplying {
    type Error = Down;

    fn write(&self, key: &u32, value: &u64) -> Result<(), Down> {
        self.0.lock().unwrap().insert(*key, *value);
        assert_ne!(*value, 13, "store panics after applying the write");
        Ok(())
    }
}

#[test]
fn write_through_drops_the_cached_value_when_the_store_panics() {
    let wt = WriteThrough::new(Cache::new(100).unwrap(), PanicsAfterApplying::default());
    wt.insert(1, 10).unwrap();
    wt.insert(2, 20).unwrap();
    assert_eq!(wt.get(&1), Some(10));
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wt.insert(1, 13)));
    assert!(unwound.is_err(), "the store's panic reaches the caller");
    // The store holds 13; the cache must not answer with the old 10.
    assert_eq!(wt.store().0.lock().unwrap()[&1], 13);
    assert_eq!(wt.get(&1), None);
    // Only that key was dropped, and the key's lock was released on unwind.
    assert_eq!(wt.get(&2), Some(20));
    wt.insert(1, 14).unwrap();
    assert_eq!(wt.get(&1), Some(14));
}
