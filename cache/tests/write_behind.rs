//! Write-through and write-back against a store that fails on command: no acknowledged
//! write is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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

/// A map that refuses writes while `failing` is set, panics while `panicking` is set,
/// counts batches and remembers which threads wrote; tests wait on `wrote` for the flusher.
#[derive(Default)]
struct FlakyStore {
    data: Mutex<HashMap<u32, u64>>,
    wrote: Condvar,
    failing: AtomicBool,
    panicking: AtomicBool,
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    stalling: AtomicBool,
    panics: AtomicUsize,
    batches: AtomicUsize,
    writer_threads: Mutex<Vec<std::thread::ThreadId>>,
}

impl FlakyStore {
    /// Waits (up to 10 s, failing the test after) until the stored data satisfies `done`.
    fn wait_for(&self, done: impl Fn(&HashMap<u32, u64>) -> bool) {
        let data = self.data.lock().unwrap();
        let (data, _) = self
            .wrote
            .wait_timeout_while(data, Duration::from_secs(10), |d| !done(d))
            .unwrap();
        assert!(done(&data), "the flusher did not write in 10 s: {data:?}");
    }

    /// Waits (up to 10 s) until the store has panicked `n` times.
    fn wait_for_panics(&self, n: usize) {
        let data = self.data.lock().unwrap();
        let _ = self
            .wrote
            .wait_timeout_while(data, Duration::from_secs(10), |_| {
                self.panics.load(Ordering::SeqCst) < n
            })
            .unwrap();
        assert!(self.panics.load(Ordering::SeqCst) >= n);
    }
}

impl Store<u32, u64> for FlakyStore {
    type Error = Down;

    fn write(&self, key: &u32, value: &u64) -> Result<(), Down> {
        Store::write_batch(self, &[(*key, *value)])
    }

    fn write_batch(&self, batch: &[(u32, u64)]) -> Result<(), Down> {
        self.writer_threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        if self.panicking.load(Ordering::SeqCst) {
            self.panics.fetch_add(1, Ordering::SeqCst);
            let _data = self.data.lock().unwrap();
            self.wrote.notify_all();
            drop(_data);
            panic!("store panics");
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(Down);
        }
        self.batches.fetch_add(1, Ordering::SeqCst);
        let mut data = self.data.lock().unwrap();
        for (k, v) in batch {
            data.insert(*k, *v);
        }
        self.wrote.notify_all();
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
fn builder_rejects_zero_batch_interval_and_tick() {
    let err = WriteBack::builder(Cache::new(10).unwrap(), FlakyStore::default())
        .flush_interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::ZeroDuration("flush interval"));
    assert_eq!(err.to_string(), "flush interval must be > 0");
    let err = WriteBack::builder(Cache::new(10).unwrap(), FlakyStore::default())
        .flusher_tick(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "flusher tick must be > 0");
}

#[test]
fn the_flusher_writes_a_full_batch_and_only_then() {
    let store = Arc::new(FlakyStore::default());
    let wb = WriteBack::builder(Cache::new(1_000).unwrap(), store.clone())
        .batch_size(10)
        .build()
        .unwrap();
    for k in 0..9 {
        wb.insert(k, 1);
    }
    // Under a batch and no interval: the flusher has no reason to write.
    assert_eq!(wb.dirty_len(), 9);
    wb.insert(9, 1);
    store.wait_for(|data| data.len() == 10);
    // `close` waits for the flusher to acknowledge its batch: nothing is left to write.
    assert_eq!(wb.close().unwrap(), 0);
    assert_eq!(store.batches.load(Ordering::SeqCst), 1);
}

#[test]
fn store_io_never_runs_on_the_callers_thread() {
    let store = Arc::new(FlakyStore::default());
    let wb = WriteBack::builder(Cache::new(16).unwrap(), store.clone())
        .batch_size(4)
        .build()
        .unwrap();
    for k in 0..200u32 {
        wb.insert(k, u64::from(k));
        assert_eq!(wb.get(&k), Some(u64::from(k)));
        let _ = wb.get(&(k / 2));
    }
    // Every full batch reaches the store; only a remainder under 4 may stay dirty.
    store.wait_for(|data| data.len() >= 197);
    let me = std::thread::current().id();
    let writers = store.writer_threads.lock().unwrap();
    assert!(!writers.is_empty());
    assert!(
        writers.iter().all(|t| *t != me),
        "insert or get wrote the store"
    );
}

#[test]
fn the_flusher_flushes_on_the_interval_by_the_clock() {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .max_capacity(100)
        .clock(clock.clone())
        .build()
        .unwrap();
    let store = Arc::new(FlakyStore::default());
    let wb = WriteBack::builder(cache, store.clone())
        .flush_interval(Duration::from_secs(1))
        .flusher_tick(Duration::from_millis(1))
        .build()
        .unwrap();
    wb.insert(1, 1);
    clock.advance(Duration::from_millis(999));
    // Not due by the clock, however often the flusher looks.
    assert_eq!(wb.dirty_len(), 1);
    clock.advance(Duration::from_millis(1));
    store.wait_for(|data| data.get(&1) == Some(&1));
    assert_eq!(wb.get(&1), Some(1));
}

#[test]
fn a_failed_flush_keeps_entries_dirty_and_retries() {
    let store = Arc::new(FlakyStore::default());
    let wb = WriteBack::builder(Cache::new(4).unwrap(), store.clone())
        .batch_size(3)
        .flusher_tick(Duration::from_millis(1))
        .build()
        .unwrap();
    store.failing.store(true, Ordering::SeqCst);
    for k in 0..20 {
        wb.insert(k, u64::from(k) * 10);
    }
    assert_eq!(wb.dirty_len(), 20);
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
    assert!(wb.failed_flushes() >= 1);
    // The flusher retries on its tick once the store is back.
    store.failing.store(false, Ordering::SeqCst);
    store.wait_for(|data| data.len() == 20);
    wb.close().unwrap();
    let data = store.data.lock().unwrap();
    assert!((0..20).all(|k| data[&k] == u64::from(k) * 10));
}

#[test]
fn a_panicking_store_fails_one_flush_and_the_flusher_carries_on() {
    let store = Arc::new(FlakyStore::default());
    let wb = WriteBack::builder(Cache::new(100).unwrap(), store.clone())
        .batch_size(1)
        .flusher_tick(Duration::from_millis(1))
        .build()
        .unwrap();
    store.panicking.store(true, Ordering::SeqCst);
    wb.insert(1, 10);
    store.wait_for_panics(1);
    assert_eq!(wb.get(&1), Some(10));
    store.panicking.store(false, Ordering::SeqCst);
    store.wait_for(|data| data.get(&1) == Some(&10));
    assert!(wb.failed_flushes() >= 1);
    wb.insert(2, 20);
    store.wait_for(|data| data.get(&2) == Some(&20));
}

#[test]
fn concurrent_writers_lose_nothing() {
    let store = Arc::new(FlakyStore::default());
    let wb = Arc::new(
        WriteBack::builder(Cache::new(64).unwrap(), store.clone())
            .batch_size(8)
            .flusher_tick(Duration::from_millis(1))
            .build()
            .unwrap(),
    );
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let wb = wb.clone();
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..2_000u64 {
                    if t == 0 && i % 100 == 0 {
                        let fail = (i / 100) % 2 == 0;
                        store.failing.store(fail, Ordering::SeqCst);
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
    store.failing.store(false, Ordering::SeqCst);
    let Ok(wb) = Arc::try_unwrap(wb) else {
        panic!("the threads are joined")
    };
    wb.close().unwrap();
    let data = store.data.lock().unwrap();
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

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        prop_oneof![
            6 => (0u8..16, any::<u64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            1 => any::<bool>().prop_map(Op::Fail),
            1 => Just(Op::Flush),
        ],
        1..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// After any mix of writes, store outages and flushes, racing the flusher thread, one
    /// successful close leaves the store holding the last acknowledged value of every key.
    #[test]
    fn no_acknowledged_write_is_lost(batch in 1usize..6, ops in ops()) {
        let store = Arc::new(FlakyStore::default());
        let wb = WriteBack::builder(Cache::new(4).unwrap(), store.clone())
            .batch_size(batch)
            .flusher_tick(Duration::from_millis(1))
            .build()
            .unwrap();
        let mut model = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    wb.insert(u32::from(k), v);
                    model.insert(u32::from(k), v);
                }
                Op::Fail(f) => store.failing.store(f, Ordering::SeqCst),
                Op::Flush => {
                    let _ = wb.flush();
                }
            }
            // Every acknowledged write is readable: cached, dirty, or already in the store.
            for (k, v) in &model {
                match wb.get(k) {
                    Some(got) => prop_assert_eq!(got, *v),
                    None => {
                        let stored = store.data.lock().unwrap().get(k).copied();
                        prop_assert_eq!(stored, Some(*v));
                    }
                }
            }
        }
        store.failing.store(false, Ordering::SeqCst);
        wb.close().unwrap();
        prop_assert_eq!(&*store.data.lock().unwrap(), &model);
    }

    /// The write-back ends with the store down, by `close` or by drop: every acknowledged
    /// write is in the store, handed back by `close`, or given to the `on_unflushed` hook,
    /// and what is handed back is the key's latest value.
    #[test]
    fn ending_with_the_store_down_hands_back_every_unwritten_write(
        batch in 1usize..6,
        ops in ops(),
        by_close in any::<bool>(),
    ) {
        let store = Arc::new(FlakyStore::default());
        let spilled = Arc::new(Mutex::new(Vec::new()));
        let spill = spilled.clone();
        let wb = WriteBack::builder(Cache::new(4).unwrap(), store.clone())
            .batch_size(batch)
            .flusher_tick(Duration::from_millis(1))
            .on_unflushed(move |rows| spill.lock().unwrap().extend(rows))
            .build()
            .unwrap();
        let mut model = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    wb.insert(u32::from(k), v);
                    model.insert(u32::from(k), v);
                }
                Op::Fail(f) => store.failing.store(f, Ordering::SeqCst),
                Op::Flush => {
                    let _ = wb.flush();
                }
            }
        }
        store.failing.store(true, Ordering::SeqCst);
        let handed_back = if by_close {
            match wb.close() {
                Ok(_) => Vec::new(),
                Err(e) => e.entries,
            }
        } else {
            drop(wb);
            std::mem::take(&mut *spilled.lock().unwrap())
        };
        prop_assert!(by_close || spilled.lock().unwrap().is_empty());
        check_accounted(&model, &store.data.lock().unwrap(), &handed_back)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// With `max_dirty` set, racing the flusher thread through store outages: the dirty set
    /// never holds more than the bound, `try_insert` refuses only a clean key of a full set
    /// and then changes nothing, and every accepted write reaches the store at close.
    #[test]
    fn a_bounded_dirty_set_refuses_only_when_full_and_loses_nothing(
        batch in 1usize..4,
        extra in 0usize..4,
        ops in ops(),
    ) {
        let max = batch + extra;
        let store = Arc::new(FlakyStore::default());
        let wb = WriteBack::builder(Cache::new(4).unwrap(), store.clone())
            .batch_size(batch)
            .max_dirty(max)
            .flusher_tick(Duration::from_millis(1))
            .build()
            .unwrap();
        let mut model = HashMap::new();
        let mut refused = 0;
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    let k = u32::from(k);
                    let before = wb.get(&k);
                    match wb.try_insert(k, v) {
                        Ok(()) => {
                            model.insert(k, v);
                        }
                        Err(full) => {
                            refused += 1;
                            prop_assert_eq!(full.max_dirty(), max);
                            prop_assert_eq!(full.into_inner(), (k, v));
                            // The flusher may have made room since, but never more than it
                            // had: a refusal means the set was full a moment ago.
                            prop_assert!(wb.dirty_len() <= max);
                            prop_assert_eq!(wb.get(&k), before, "a refused write changed the key");
                        }
                    }
                }
                Op::Fail(f) => store.failing.store(f, Ordering::SeqCst),
                Op::Flush => {
                    let _ = wb.flush();
                }
            }
            prop_assert!(wb.dirty_len() <= max, "{} dirty over a bound of {}", wb.dirty_len(), max);
        }
        store.failing.store(false, Ordering::SeqCst);
        wb.close().unwrap();
        prop_assert_eq!(&*store.data.lock().unwrap(), &model, "{} refused", refused);
    }
}

/// A writer of a new key into a full dirty set blocks while the store is down and goes
/// through once the flusher's retry finds it back; no write is lost.
#[test]
fn insert_into_a_full_dirty_set_waits_for_the_store() {
    let store = Arc::new(FlakyStore::default());
    store.failing.store(true, Ordering::SeqCst);
    let wb = WriteBack::builder(Cache::new(100).unwrap(), store.clone())
        .batch_size(2)
        .max_dirty(2)
        .flusher_tick(Duration::from_millis(1))
        .build()
        .unwrap();
    wb.insert(1, 10);
    wb.insert(2, 20);
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            wb.insert(3, 30);
            done_tx.send(()).unwrap();
        });
        // The store is down, so the third writer must still be waiting (a wrong early
        // return would show here; a slow machine only makes this pass more easily).
        assert_eq!(
            done.recv_timeout(Duration::from_millis(100)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout),
            "insert returned while the dirty set was full"
        );
        assert_eq!(wb.get(&3), None);
        store.failing.store(false, Ordering::SeqCst);
        done.recv_timeout(Duration::from_secs(10))
            .expect("the flusher made room within 10 s");
    });
    assert_eq!(wb.get(&3), Some(30));
    wb.close().unwrap();
    let data = store.data.lock().unwrap();
    assert_eq!(*data, HashMap::from([(1, 10), (2, 20), (3, 30)]));
}

#[test]
fn max_dirty_below_the_batch_is_refused() {
    let err = WriteBack::builder(Cache::new(10).unwrap(), FlakyStore::default())
        .batch_size(8)
        .max_dirty(7)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::DirtyBelowBatch {
            max_dirty: 7,
            batch_size: 8
        }
    );
}

/// Every key of `model` has its last value handed back, or (when not handed back) in the
/// store; nothing is handed back twice.
fn check_accounted(
    model: &HashMap<u32, u64>,
    stored: &HashMap<u32, u64>,
    handed_back: &[(u32, u64)],
) -> Result<(), TestCaseError> {
    let back: HashMap<u32, u64> = handed_back.iter().copied().collect();
    prop_assert_eq!(back.len(), handed_back.len(), "a key handed back twice");
    for (k, v) in model {
        match back.get(k) {
            Some(b) => prop_assert_eq!(b, v, "key {} handed back stale", k),
            None => prop_assert_eq!(stored.get(k), Some(v), "key {} lost", k),
        }
    }
    Ok(())
}

#[cfg(feature = "tokio")]
mod tokio_flusher {
    use super::*;
    use keel_cache::AsyncStore;

    /// The async face of `FlakyStore`; with `stalling` set, a write applies its batch and
    /// then never completes, so cancelling the flusher cuts it mid-write.
    impl AsyncStore<u32, u64> for FlakyStore {
        type Error = Down;

        async fn write_batch(&self, batch: &[(u32, u64)]) -> Result<(), Down> {
            tokio::task::yield_now().await;
            let stall = self.stalling.load(Ordering::SeqCst);
            let result = Store::write_batch(self, batch);
            if stall {
                std::future::pending::<()>().await;
            }
            result
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_flusher_task_flushes_an_idle_cache_by_the_clock() {
        let clock = ManualClock::new();
        let cache = Cache::builder()
            .max_capacity(10)
            .clock(clock.clone())
            .build()
            .unwrap();
        let store = Arc::new(FlakyStore::default());
        let wb = WriteBack::builder(cache, store.clone())
            .flush_interval(Duration::from_secs(1))
            .build_async()
            .unwrap();
        wb.insert(1, 1);
        clock.advance(Duration::from_secs(1));
        // The task looks at the clock on its tick (tokio's paused time moves it on).
        for _ in 0..1_000 {
            if wb.dirty_len() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(store.data.lock().unwrap().get(&1), Some(&1));
        wb.close_async().await.unwrap();
    }

    /// Tasks write their own keys and flush concurrently with each other and with the
    /// flusher task; flushes are serialized, so none writes an older version after a newer
    /// one was acknowledged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_async_flushes_keep_the_last_write() {
        let store = Arc::new(FlakyStore::default());
        let wb = Arc::new(
            WriteBack::builder(Cache::new(8).unwrap(), store.clone())
                .batch_size(3)
                .flusher_tick(Duration::from_millis(1))
                .build_async()
                .unwrap(),
        );
        let tasks: Vec<_> = (0..4u32)
            .map(|t| {
                let wb = wb.clone();
                tokio::spawn(async move {
                    for i in 0..300u64 {
                        wb.insert(t * 100 + (i % 7) as u32, i);
                        if i % 5 == 0 {
                            wb.flush_async().await.unwrap();
                        }
                    }
                    wb.flush_async().await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let Ok(wb) = Arc::try_unwrap(wb) else {
            panic!("the tasks are done")
        };
        wb.close_async().await.unwrap();
        let data = store.data.lock().unwrap();
        for t in 0..4u32 {
            for k in 0..7u32 {
                let last = (0..300u64).filter(|i| i % 7 == u64::from(k)).max().unwrap();
                assert_eq!(data[&(t * 100 + k)], last, "task {t} key {k}");
            }
        }
    }

    /// `insert_async` into a full dirty set waits without blocking the one runtime thread
    /// its flusher task needs, and a cancelled wait makes no write.
    #[tokio::test(start_paused = true)]
    async fn insert_async_waits_for_room_and_a_cancelled_wait_writes_nothing() {
        let store = Arc::new(FlakyStore::default());
        store.failing.store(true, Ordering::SeqCst);
        let wb = Arc::new(
            WriteBack::builder(Cache::new(100).unwrap(), store.clone())
                .batch_size(1)
                .max_dirty(1)
                .flusher_tick(Duration::from_millis(1))
                .build_async()
                .unwrap(),
        );
        wb.insert_async(1, 10).await;
        // Cancelled while waiting: key 2 is neither cached nor dirty.
        let cancelled =
            tokio::time::timeout(Duration::from_millis(50), wb.insert_async(2, 20)).await;
        assert!(
            cancelled.is_err(),
            "the dirty set was full and the store down"
        );
        assert_eq!((wb.get(&2), wb.dirty_len()), (None, 1));
        let waiter = tokio::spawn({
            let wb = wb.clone();
            async move { wb.insert_async(3, 30).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the store is still down");
        store.failing.store(false, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the flusher task made room")
            .unwrap();
        let Ok(wb) = Arc::try_unwrap(wb) else {
            panic!("the waiter is done")
        };
        wb.close_async().await.unwrap();
        assert_eq!(
            *store.data.lock().unwrap(),
            HashMap::from([(1, 10), (3, 30)])
        );
    }

    /// A store call that never completes holds up neither the flusher's cancellation nor,
    /// once `close_async` is given up on, the hand-back: the hook gets every dirty entry.
    #[tokio::test(start_paused = true)]
    async fn close_async_under_a_timeout_hands_back_what_a_hung_store_holds() {
        let store = Arc::new(FlakyStore::default());
        let spilled = Arc::new(Mutex::new(Vec::new()));
        let spill = spilled.clone();
        let wb = WriteBack::builder(Cache::new(100).unwrap(), store.clone())
            .batch_size(2)
            .flusher_tick(Duration::from_millis(1))
            .on_unflushed(move |rows| spill.lock().unwrap().extend(rows))
            .build_async()
            .unwrap();
        store.stalling.store(true, Ordering::SeqCst);
        wb.insert(1, 10);
        wb.insert(2, 20); // a batch: the flusher task writes it and hangs
        for _ in 0..100 {
            if store.batches.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            store.batches.load(Ordering::SeqCst),
            1,
            "the flusher is in the store"
        );
        wb.insert(3, 30);
        let closed = tokio::time::timeout(Duration::from_secs(1), wb.close_async()).await;
        assert!(closed.is_err(), "the store never completes");
        let mut back = std::mem::take(&mut *spilled.lock().unwrap());
        back.sort_unstable();
        // Applied by the hung calls but never acknowledged: handed back, all three.
        assert_eq!(back, [(1, 10), (2, 20), (3, 30)]);
    }

    #[test]
    fn build_async_outside_a_runtime_is_an_error() {
        let err = WriteBack::builder(Cache::new(10).unwrap(), FlakyStore::default())
            .build_async()
            .unwrap_err();
        assert!(matches!(err, BuildError::FlusherNotStarted(_)), "{err}");
    }

    #[derive(Debug, Clone)]
    enum AsyncOp {
        Insert(u8, u64),
        Fail(bool),
        Stall(bool),
        Yield,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The flusher task is cancelled at a random point (its runtime shuts down, maybe
        /// mid-write with the batch applied but not acknowledged). Then the write-back
        /// either closes on a new runtime, or is dropped with the store down. Every
        /// acknowledged write ends in the store, handed back by `close_async`, or in the
        /// `on_unflushed` hook.
        #[test]
        fn cancelling_the_flusher_task_loses_no_write(
            batch in 1usize..6,
            ops in proptest::collection::vec(prop_oneof![
                6 => (0u8..16, any::<u64>()).prop_map(|(k, v)| AsyncOp::Insert(k, v)),
                1 => any::<bool>().prop_map(AsyncOp::Fail),
                1 => any::<bool>().prop_map(AsyncOp::Stall),
                2 => Just(AsyncOp::Yield),
            ], 1..80),
            end_with_close in any::<bool>(),
            store_up_at_end in any::<bool>(),
        ) {
            let store = Arc::new(FlakyStore::default());
            let spilled = Arc::new(Mutex::new(Vec::new()));
            let spill = spilled.clone();
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let wb = rt.block_on(async {
                WriteBack::builder(Cache::new(4).unwrap(), store.clone())
                    .batch_size(batch)
                    .flusher_tick(Duration::from_millis(1))
                    .on_unflushed(move |rows| spill.lock().unwrap().extend(rows))
                    .build_async()
                    .unwrap()
            });
            let mut model = HashMap::new();
            rt.block_on(async {
                for op in ops {
                    match op {
                        AsyncOp::Insert(k, v) => {
                            wb.insert(u32::from(k), v);
                            model.insert(u32::from(k), v);
                        }
                        AsyncOp::Fail(f) => store.failing.store(f, Ordering::SeqCst),
                        AsyncOp::Stall(s) => store.stalling.store(s, Ordering::SeqCst),
                        // Lets the flusher task run.
                        AsyncOp::Yield => tokio::task::yield_now().await,
                    }
                }
            });
            drop(rt); // cancels the flusher wherever it is
            store.stalling.store(false, Ordering::SeqCst);
            store.failing.store(!store_up_at_end, Ordering::SeqCst);
            let handed_back = if end_with_close {
                let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
                match rt.block_on(wb.close_async()) {
                    Ok(_) => Vec::new(),
                    Err(e) => e.entries,
                }
            } else {
                drop(wb);
                std::mem::take(&mut *spilled.lock().unwrap())
            };
            if store_up_at_end && end_with_close {
                prop_assert!(handed_back.is_empty());
            }
            check_accounted(&model, &store.data.lock().unwrap(), &handed_back)?;
        }
    }
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
    let store = Arc::new(FlakyStore::default());
    let wb = WriteBack::builder(cache, store.clone())
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
    let stored = store.data.lock().unwrap()[&7];
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
