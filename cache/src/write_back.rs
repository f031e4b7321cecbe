//! `WriteBack`: writes land in the cache at once and reach the store later, in batches,
//! written by a flusher thread (or tokio task) rather than by the caller.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::dirty::DirtySet;
use crate::dirty::Marked;
use crate::flusher::{self, FlushLock, Shared, UnflushedHook};
use crate::room::Room;
use crate::{BuildError, Cache, Store};

/// A [`Cache`] in front of a [`Store`] that writes behind.
///
/// [`insert`](WriteBack::insert) updates the cache and marks the entry dirty in its shard
/// of the dirty set; it never calls the store. A flusher, a thread started by
/// [`build`](WriteBackBuilder::build) (or a tokio task started by
/// `build_async` over an `AsyncStore`, feature `tokio`),
/// writes dirty entries in batches when [`batch_size`](WriteBackBuilder::batch_size) of them
/// are dirty and when the [`flush_interval`](WriteBackBuilder::flush_interval) has passed by
/// the cache's clock. [`get`](WriteBack::get) never flushes or waits for the store.
/// [`flush`](WriteBack::flush) and [`close`](WriteBack::close) write on the calling thread,
/// for callers that need the store up to date now.
///
/// # No lost writes
///
/// Once `insert` returns, the write is *acknowledged*, and then at least one of these holds:
///
/// 1. the store took it (or a later write of the same key);
/// 2. it is in the dirty set: readable by [`get`](WriteBack::get), counted by
///    [`dirty_len`](WriteBack::dirty_len), and written by the next successful flush;
/// 3. [`close`](WriteBack::close) handed it back in [`Unflushed::entries`], because the
///    store refused it;
/// 4. the write-back was dropped without `close`, the flusher's last attempt failed, and
///    it was passed to the [`on_unflushed`](WriteBackBuilder::on_unflushed) hook (with no
///    hook, it is dropped: call `close` to be sure).
///
/// Dropping a `WriteBack` whose flusher is a thread waits for that thread's last attempt
/// (as `BufWriter` flushes on drop); a flusher task is told to make it and not waited for.
///
/// An entry leaves the dirty set only after the store accepted that exact version, so a
/// failed, panicking or cancelled flush leaves its batch dirty, and a write made during a
/// flush stays dirty too (it has a newer version). Cancelling the flusher (a tokio runtime
/// shutting down mid-write, or the task being dropped) is case 2 while the `WriteBack`
/// lives: the entries wait for [`flush`](WriteBack::flush) or `close`. Case 4 happens when
/// the state shared by the `WriteBack` and its flusher is freed, whichever goes last. A
/// process that exits without `close` or drop loses what is dirty.
///
/// Two concurrent inserts of one key are ordered: the cache is updated under the lock of
/// the key's dirty shard, so the cache keeps the value whose version is written last. The
/// cache's eviction listener therefore runs under that lock and must not call back into
/// the `WriteBack`. Flushes run one at a time. Deletes are not written behind.
///
/// # Backpressure
///
/// Dirty entries are kept in memory until the store takes them. By default nothing bounds
/// them: if the store stays down, [`dirty_len`](WriteBack::dirty_len) grows with every new
/// key written. [`max_dirty`](WriteBackBuilder::max_dirty) bounds it: a write of a key that
/// is not dirty then finds the set full and [`insert`](WriteBack::insert) blocks until a
/// flush makes room, [`insert_async`](WriteBack::insert_async) (feature `tokio`) waits
/// without blocking, and [`try_insert`](WriteBack::try_insert) hands the write back. A write
/// of a key that is dirty already replaces its value and always goes through.
///
/// ```
/// use keel_cache::{Cache, WriteBack};
/// use std::sync::Arc;
/// # use keel_cache::Store;
/// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
/// # #[derive(Default)] // records each batch; `down` makes it refuse them
/// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
/// # impl Store<u32, u32> for Db {
/// #     type Error = std::fmt::Error;
/// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
/// #         self.write_batch(&[(*k, *v)])
/// #     }
/// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
/// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
/// #             return Err(std::fmt::Error);
/// #         }
/// #         self.batches.lock().unwrap().push(b.to_vec());
/// #         self.wrote.notify_all();
/// #         Ok(())
/// #     }
/// # }
/// # impl Db {
/// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
/// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
/// #         let b = self.batches.lock().unwrap();
/// #         let wait = std::time::Duration::from_secs(10);
/// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
/// #         let mut rows = b.concat();
/// #         rows.sort();
/// #         rows
/// #     }
/// #     fn rows(&self) -> Vec<(u32, u32)> {
/// #         self.rows_when(0)
/// #     }
/// #     fn batch_sizes(&self) -> Vec<usize> {
/// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
/// #     }
/// # }
/// let db = Arc::new(Db::default());
/// let wb = WriteBack::builder(Cache::new(1_000)?, db.clone()).batch_size(3).build()?;
/// wb.insert(1, 10);
/// wb.insert(2, 20);
/// assert_eq!(wb.get(&1), Some(10)); // cached at once, written later
/// wb.insert(3, 30); // a batch is due: the flusher thread writes it
/// assert_eq!(db.rows_when(3), [(1, 10), (2, 20), (3, 30)]);
/// wb.insert(4, 40);
/// wb.close()?; // stops the flusher and writes what is left
/// assert_eq!(db.rows_when(4).len(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
// `insert_async` exists with feature `tokio` only; the docs link it when it does.
#[cfg_attr(not(feature = "tokio"), allow(rustdoc::broken_intra_doc_links))]
pub struct WriteBack<K, V, St, S = crate::DefaultHashBuilder> {
    shared: Arc<Shared<K, V, St, S>>,
    flusher: Option<Flusher>,
}

enum Flusher {
    Thread(std::thread::JoinHandle<()>),
    #[cfg(feature = "tokio")]
    Task(tokio::task::JoinHandle<()>),
}

/// Configures a [`WriteBack`]. See [`WriteBack::builder`].
///
/// ```
/// use keel_cache::{Cache, WriteBack};
/// use keel_core::ManualClock;
/// use std::sync::Arc;
/// use std::time::Duration;
/// # use keel_cache::Store;
/// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
/// # #[derive(Default)] // records each batch; `down` makes it refuse them
/// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
/// # impl Store<u32, u32> for Db {
/// #     type Error = std::fmt::Error;
/// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
/// #         self.write_batch(&[(*k, *v)])
/// #     }
/// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
/// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
/// #             return Err(std::fmt::Error);
/// #         }
/// #         self.batches.lock().unwrap().push(b.to_vec());
/// #         self.wrote.notify_all();
/// #         Ok(())
/// #     }
/// # }
/// # impl Db {
/// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
/// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
/// #         let b = self.batches.lock().unwrap();
/// #         let wait = std::time::Duration::from_secs(10);
/// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
/// #         let mut rows = b.concat();
/// #         rows.sort();
/// #         rows
/// #     }
/// #     fn rows(&self) -> Vec<(u32, u32)> {
/// #         self.rows_when(0)
/// #     }
/// #     fn batch_sizes(&self) -> Vec<usize> {
/// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
/// #     }
/// # }
/// let clock = ManualClock::new();
/// let cache = Cache::builder().max_capacity(1_000).clock(clock.clone()).build()?;
/// let db = Arc::new(Db::default());
/// let wb = WriteBack::builder(cache, db.clone())
///     .batch_size(100)
///     .flush_interval(Duration::from_secs(5))
///     .flusher_tick(Duration::from_millis(1))
///     .build()?;
/// wb.insert(1, 10);
/// wb.insert(2, 20);
/// assert_eq!(wb.dirty_len(), 2); // neither a batch nor the interval is due
/// clock.advance(Duration::from_secs(5)); // now the flusher's next look finds it due
/// assert_eq!(db.rows_when(2), [(1, 10), (2, 20)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WriteBackBuilder<K, V, St, S> {
    cache: Cache<K, V, S>,
    store: St,
    batch_size: usize,
    interval: Option<Duration>,
    tick: Option<Duration>,
    max_dirty: Option<usize>,
    on_unflushed: Option<UnflushedHook<K, V>>,
}

impl<K, V, St, S> WriteBackBuilder<K, V, St, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
    St: Send + Sync + 'static,
{
    /// Wake the flusher once this many entries are dirty, and write at most this many per
    /// store call (default 64).
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::Arc;
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let db = Arc::new(Db::default());
    /// let wb = WriteBack::builder(Cache::new(100)?, db.clone()).batch_size(2).build()?;
    /// wb.insert(1, 10);
    /// assert_eq!(wb.dirty_len(), 1); // one is not a batch: it waits
    /// wb.insert(2, 20); // two are: the flusher writes them
    /// assert_eq!(db.rows_when(2), [(1, 10), (2, 20)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Flush whatever is dirty once this long has passed since the last flush, by the
    /// cache's clock. Off by default (then only full batches, `flush` and `close` write).
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use keel_core::ManualClock;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder().max_capacity(100).clock(clock.clone()).build()?;
    /// let db = Arc::new(Db::default());
    /// let wb = WriteBack::builder(cache, db.clone())
    ///     .flush_interval(Duration::from_secs(10))
    ///     .flusher_tick(Duration::from_millis(1))
    ///     .build()?;
    /// wb.insert(1, 10);
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(db.rows_when(1), [(1, 10)]); // the flusher saw the clock pass 10 s
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// How often the flusher reads the clock to see whether the interval passed, and how
    /// long it waits before retrying after a failed flush (real time; default a quarter
    /// of the interval, at most 1 s, or 1 s without an interval). Without an interval the
    /// flusher sleeps until a batch is due, unless a flush failed.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::{atomic::Ordering, Arc};
    /// use std::time::Duration;
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let db = Arc::new(Db::default());
    /// db.down.store(true, Ordering::Relaxed);
    /// let wb = WriteBack::builder(Cache::new(100)?, db.clone())
    ///     .batch_size(1)
    ///     .flusher_tick(Duration::from_millis(1))
    ///     .build()?;
    /// wb.insert(1, 10); // the flusher fails, and retries every millisecond
    /// db.down.store(false, Ordering::Relaxed);
    /// assert_eq!(db.rows_when(1), [(1, 10)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flusher_tick(mut self, tick: Duration) -> Self {
        self.tick = Some(tick);
        self
    }

    /// Called with the entries the store has not taken when the write-back ends without
    /// [`close`](WriteBack::close): after the `WriteBack` is dropped and its flusher's last
    /// flush failed, or when a tokio flusher is cancelled after the `WriteBack` is gone.
    /// It runs on whichever thread frees the write-back's state last. Without a hook such
    /// entries are dropped.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::{atomic::Ordering, Arc};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let db = Arc::new(Db::default());
    /// db.down.store(true, Ordering::Relaxed);
    /// let spilled = Arc::new(std::sync::Mutex::new(Vec::new()));
    /// let spill = spilled.clone();
    /// let wb = WriteBack::builder(Cache::new(100)?, db.clone())
    ///     .on_unflushed(move |rows: Vec<(u32, u32)>| spill.lock().unwrap().extend(rows))
    ///     .build()?;
    /// wb.insert(1, 10);
    /// drop(wb); // the flusher's last attempt fails: the entry goes to the hook
    /// assert_eq!(*spilled.lock().unwrap(), [(1, 10)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_unflushed(mut self, hook: impl Fn(Vec<(K, V)>) + Send + Sync + 'static) -> Self {
        self.on_unflushed = Some(Box::new(hook));
        self
    }

    /// Keeps at most `n` keys dirty (not yet in the store); by default there is no bound.
    /// Once `n` are dirty, a write of a clean key waits for a flush to make room (see
    /// [Backpressure](WriteBack#backpressure)), so a store that stays down stops the writers
    /// rather than growing memory without end. `n` must be at least the batch size.
    ///
    /// ```
    /// use keel_cache::{BuildError, Cache, Store, WriteBack};
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// struct Flaky(AtomicBool); // refuses every write while set
    /// impl Store<u32, u32> for Flaky {
    ///     type Error = std::fmt::Error;
    ///     fn write(&self, _: &u32, _: &u32) -> Result<(), Self::Error> {
    ///         if self.0.load(Ordering::Relaxed) { Err(std::fmt::Error) } else { Ok(()) }
    ///     }
    /// }
    ///
    /// let down = Flaky(AtomicBool::new(true));
    /// let wb = WriteBack::builder(Cache::new(100)?, down).batch_size(2).max_dirty(2).build()?;
    /// wb.insert(1, 10);
    /// wb.insert(2, 20);
    /// let full = wb.try_insert(3, 30).unwrap_err(); // the store is down: no room
    /// assert_eq!(full.into_inner(), (3, 30));
    /// wb.insert(1, 11); // key 1 is dirty already: a rewrite always goes through
    /// assert_eq!((wb.dirty_len(), wb.get(&1)), (2, Some(11)));
    /// wb.store().0.store(false, Ordering::Relaxed);
    /// wb.flush()?;
    /// assert!(wb.try_insert(3, 30).is_ok());
    ///
    /// let err = WriteBack::builder(Cache::new(100)?, Flaky(AtomicBool::new(false)))
    ///     .batch_size(64)
    ///     .max_dirty(10)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::DirtyBelowBatch { max_dirty: 10, batch_size: 64 });
    /// assert_eq!(err.to_string(), "write-back max_dirty 10 must be at least the batch size 64");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_dirty(mut self, n: usize) -> Self {
        self.max_dirty = Some(n);
        self
    }

    fn validate(&self) -> Result<(), BuildError> {
        if self.batch_size == 0 {
            return Err(BuildError::ZeroBatch);
        }
        if self.interval == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("flush interval"));
        }
        if self.tick == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("flusher tick"));
        }
        if let Some(max_dirty) = self.max_dirty.filter(|&m| m < self.batch_size) {
            return Err(BuildError::DirtyBelowBatch {
                max_dirty,
                batch_size: self.batch_size,
            });
        }
        Ok(())
    }

    fn into_shared(self) -> Arc<Shared<K, V, St, S>> {
        let tick = self.tick.unwrap_or_else(|| {
            self.interval.map_or(Duration::from_secs(1), |i| {
                (i / 4).clamp(Duration::from_millis(1), Duration::from_secs(1))
            })
        });
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        let now = self.cache.clock.now().as_nanos();
        Arc::new(Shared {
            cache: self.cache,
            store: self.store,
            dirty: DirtySet::new(cpus * 4),
            max_dirty: self.max_dirty.unwrap_or(usize::MAX),
            room: Room::new(),
            batch_size: self.batch_size,
            interval: self
                .interval
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            tick,
            last_flush: AtomicU64::new(now),
            failed_flushes: AtomicU64::new(0),
            flushing: FlushLock::new(),
            wake_pending: AtomicBool::new(false),
            state: AtomicU8::new(flusher::RUN),
            thread: OnceLock::new(),
            #[cfg(feature = "tokio")]
            notify: tokio::sync::Notify::new(),
            on_unflushed: self.on_unflushed,
        })
    }

    /// Builds the write-back cache and starts its flusher thread.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroBatch`] for a batch size of 0, [`BuildError::ZeroDuration`] for a
    /// zero interval or tick, [`BuildError::FlusherNotStarted`] if no thread could be
    /// started.
    ///
    /// ```
    /// use keel_cache::{BuildError, Cache, Store, WriteBack};
    /// # struct Nop;
    /// # impl Store<u8, u8> for Nop {
    /// #     type Error = std::convert::Infallible;
    /// #     fn write(&self, _: &u8, _: &u8) -> Result<(), Self::Error> { Ok(()) }
    /// # }
    /// let err = WriteBack::builder(Cache::new(10)?, Nop).batch_size(0).build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroBatch);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<WriteBack<K, V, St, S>, BuildError>
    where
        St: Store<K, V>,
    {
        self.validate()?;
        let shared = self.into_shared();
        let for_thread = shared.clone();
        let handle = std::thread::Builder::new()
            .name("keel-write-back".into())
            .spawn(move || flusher::run_thread(for_thread))
            .map_err(|e| BuildError::FlusherNotStarted(e.to_string()))?;
        let _ = shared.thread.set(handle.thread().clone());
        Ok(WriteBack {
            shared,
            flusher: Some(Flusher::Thread(handle)),
        })
    }

    /// Builds the write-back cache over an [`AsyncStore`](crate::AsyncStore) and spawns its
    /// flusher as a task on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build); [`BuildError::FlusherNotStarted`] outside a tokio runtime.
    ///
    /// If the store panics, the task ends (its `JoinHandle` is kept inside and the panic
    /// is not re-raised); the batch stays dirty for
    /// [`flush_async`](WriteBack::flush_async) or [`close_async`](WriteBack::close_async),
    /// and [`failed_flushes`](WriteBack::failed_flushes) does not count it.
    ///
    /// ```
    /// use keel_cache::{AsyncStore, Cache, WriteBack};
    /// use std::sync::{Arc, Mutex};
    ///
    /// #[derive(Default)]
    /// struct Remote(Mutex<Vec<(u32, u32)>>);
    /// impl AsyncStore<u32, u32> for Remote {
    ///     type Error = std::convert::Infallible;
    ///     async fn write_batch(&self, batch: &[(u32, u32)]) -> Result<(), Self::Error> {
    ///         self.0.lock().unwrap().extend_from_slice(batch);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let remote = Arc::new(Remote::default());
    /// let outside = WriteBack::builder(Cache::new(100)?, remote.clone()).build_async();
    /// assert!(outside.is_err()); // no runtime here
    ///
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    /// # rt.block_on(async {
    /// let wb = WriteBack::builder(Cache::new(100)?, remote.clone())
    ///     .batch_size(2)
    ///     .build_async()?;
    /// wb.insert(1, 10);
    /// wb.insert(2, 20); // a batch: the flusher task writes it when it next runs
    /// wb.insert(3, 30);
    /// wb.close_async().await?;
    /// let mut rows = remote.0.lock().unwrap().clone();
    /// rows.sort();
    /// assert_eq!(rows, [(1, 10), (2, 20), (3, 30)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tokio")]
    pub fn build_async(self) -> Result<WriteBack<K, V, St, S>, BuildError>
    where
        St: crate::AsyncStore<K, V>,
    {
        self.validate()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| BuildError::FlusherNotStarted(e.to_string()))?;
        let shared = self.into_shared();
        let task = runtime.spawn(flusher::run_task(shared.clone()));
        Ok(WriteBack {
            shared,
            flusher: Some(Flusher::Task(task)),
        })
    }
}

/// A write that [`WriteBack::try_insert`] handed back: its key was not dirty and
/// [`max_dirty`](WriteBackBuilder::max_dirty) keys were. Nothing was cached or marked.
///
/// ```
/// use keel_cache::{Cache, Store, WriteBack};
///
/// struct Down;
/// impl Store<u8, u8> for Down {
///     type Error = std::fmt::Error;
///     fn write(&self, _: &u8, _: &u8) -> Result<(), Self::Error> { Err(std::fmt::Error) }
/// }
///
/// let wb = WriteBack::builder(Cache::new(10)?, Down).batch_size(1).max_dirty(1).build()?;
/// wb.insert(1, 1);
/// let full = wb.try_insert(2, 2).unwrap_err();
/// assert_eq!((full.key(), full.value(), full.max_dirty()), (&2, &2, 1));
/// assert_eq!(full.into_inner(), (2, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DirtyFull<K, V> {
    key: K,
    value: V,
    max_dirty: usize,
}

impl<K, V> DirtyFull<K, V> {
    /// The key of the refused write.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The value of the refused write.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The bound that was reached.
    pub fn max_dirty(&self) -> usize {
        self.max_dirty
    }

    /// The refused write, to try again or to send elsewhere.
    pub fn into_inner(self) -> (K, V) {
        (self.key, self.value)
    }
}

// Without `K: Debug` or `V: Debug`, so any write can be handed back as an error.
impl<K, V> fmt::Debug for DirtyFull<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirtyFull")
            .field("max_dirty", &self.max_dirty)
            .finish_non_exhaustive()
    }
}

impl<K, V> fmt::Display for DirtyFull<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write-back dirty set is full ({} keys): the store has not taken them yet",
            self.max_dirty
        )
    }
}

impl<K, V> std::error::Error for DirtyFull<K, V> {}

/// A flush that did not write everything: the unwritten entries stay dirty.
///
/// ```
/// use keel_cache::{Cache, Store, WriteBack};
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// #[derive(Debug)]
/// struct Down;
/// impl std::fmt::Display for Down {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("store down")
///     }
/// }
/// impl std::error::Error for Down {}
///
/// struct Flaky(AtomicBool);
/// impl Store<u8, u8> for Flaky {
///     type Error = Down;
///     fn write(&self, _: &u8, _: &u8) -> Result<(), Down> {
///         if self.0.load(Ordering::Relaxed) { Err(Down) } else { Ok(()) }
///     }
/// }
///
/// let wb = WriteBack::builder(Cache::new(10)?, Flaky(AtomicBool::new(true))).build()?;
/// wb.insert(1, 1);
/// let err = wb.flush().unwrap_err();
/// assert_eq!((err.written, err.pending), (0, 1));
/// assert_eq!(err.to_string(), "write-back flush failed after 0 entries, 1 still dirty: store down");
/// wb.store().0.store(false, Ordering::Relaxed);
/// assert_eq!(wb.flush()?, 1); // the entry stayed dirty and is written now
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FlushError<E> {
    /// Entries written before the failure (no longer dirty).
    pub written: usize,
    /// Entries still dirty.
    pub pending: usize,
    /// The store's error.
    pub source: E,
}

impl<E: fmt::Display> fmt::Display for FlushError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write-back flush failed after {} entries, {} still dirty: {}",
            self.written, self.pending, self.source
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for FlushError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// [`close`](WriteBack::close) could not write everything: the entries the store did not
/// take are handed back here, so none is lost unseen.
///
/// ```
/// use keel_cache::{Cache, WriteBack};
/// use std::sync::{atomic::Ordering, Arc};
/// # use keel_cache::Store;
/// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
/// # #[derive(Default)] // records each batch; `down` makes it refuse them
/// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
/// # impl Store<u32, u32> for Db {
/// #     type Error = std::fmt::Error;
/// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
/// #         self.write_batch(&[(*k, *v)])
/// #     }
/// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
/// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
/// #             return Err(std::fmt::Error);
/// #         }
/// #         self.batches.lock().unwrap().push(b.to_vec());
/// #         self.wrote.notify_all();
/// #         Ok(())
/// #     }
/// # }
/// # impl Db {
/// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
/// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
/// #         let b = self.batches.lock().unwrap();
/// #         let wait = std::time::Duration::from_secs(10);
/// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
/// #         let mut rows = b.concat();
/// #         rows.sort();
/// #         rows
/// #     }
/// #     fn rows(&self) -> Vec<(u32, u32)> {
/// #         self.rows_when(0)
/// #     }
/// #     fn batch_sizes(&self) -> Vec<usize> {
/// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
/// #     }
/// # }
/// let db = Arc::new(Db::default());
/// let wb = WriteBack::builder(Cache::new(100)?, db.clone()).build()?;
/// db.down.store(true, Ordering::Relaxed);
/// wb.insert(1, 10);
/// let err = wb.close().unwrap_err();
/// assert_eq!(err.entries, [(1, 10)]);
/// assert_eq!(err.error.pending, 1);
/// assert!(err.to_string().starts_with("write-back closed with 1 entries unwritten: "));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Unflushed<K, V, E> {
    /// Every entry the store has not taken, with its latest value.
    pub entries: Vec<(K, V)>,
    /// Why the last flush failed.
    pub error: FlushError<E>,
}

impl<K, V, E: fmt::Debug> fmt::Debug for Unflushed<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unflushed")
            .field("entries", &self.entries.len())
            .field("error", &self.error)
            .finish()
    }
}

impl<K, V, E: fmt::Display> fmt::Display for Unflushed<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "write-back closed with {} entries unwritten: {}",
            self.entries.len(),
            self.error
        )
    }
}

impl<K, V, E: std::error::Error + 'static> std::error::Error for Unflushed<K, V, E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<K, V, St, S> WriteBack<K, V, St, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
    St: Send + Sync + 'static,
{
    /// Configures a write-back `cache` over `store`: batches of 64, no flush interval.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::Arc;
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let db = Arc::new(Db::default());
    /// let wb = WriteBack::builder(Cache::new(1_000)?, db.clone()).build()?;
    /// for k in 0..63 {
    ///     wb.insert(k, k);
    /// }
    /// assert_eq!(wb.dirty_len(), 63); // under a batch: nothing is written yet
    /// wb.insert(63, 63); // the 64th dirty entry wakes the flusher
    /// assert_eq!(db.rows_when(64).len(), 64);
    /// assert_eq!(db.batch_sizes(), [64]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(cache: Cache<K, V, S>, store: St) -> WriteBackBuilder<K, V, St, S> {
        WriteBackBuilder {
            cache,
            store,
            batch_size: 64,
            interval: None,
            tick: None,
            max_dirty: None,
            on_unflushed: None,
        }
    }

    /// Caches `value` and marks it dirty; the flusher writes it later. Never calls the
    /// store: it takes the lock of the key's dirty shard, updates the cache under it, and
    /// wakes the flusher if a batch is due. See [No lost writes](WriteBack#no-lost-writes)
    /// for what happens to the write then. With [`max_dirty`](WriteBackBuilder::max_dirty)
    /// set and that many keys dirty, a write of a clean key blocks this thread until a
    /// flush makes room ([Backpressure](WriteBack#backpressure)); from async code use
    /// [`insert_async`](Self::insert_async) or [`try_insert`](Self::try_insert).
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::Arc;
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let db = Arc::new(Db::default());
    /// let wb = WriteBack::builder(Cache::new(100)?, db.clone()).build()?;
    /// wb.insert(1, 10);
    /// assert_eq!(wb.get(&1), Some(10)); // cached at once
    /// assert!(db.rows().is_empty()); // written later
    /// wb.flush()?;
    /// assert_eq!(db.rows(), [(1, 10)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg_attr(not(feature = "tokio"), allow(rustdoc::broken_intra_doc_links))]
    pub fn insert(&self, key: K, value: V) {
        let mut write = (key, value);
        loop {
            match self.try_insert(write.0, write.1) {
                Ok(()) => return,
                Err(full) => {
                    write = full.into_inner();
                    self.shared.room.wait(|| self.shared.has_room());
                }
            }
        }
    }

    /// As [`insert`](Self::insert), but when [`max_dirty`](WriteBackBuilder::max_dirty)
    /// keys are dirty and `key` is not one of them, hands the write back in [`DirtyFull`]
    /// instead of waiting. With no `max_dirty` it always succeeds.
    ///
    /// ```
    /// use keel_cache::{Cache, Store, WriteBack};
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// struct Flaky(AtomicBool); // refuses every write while set
    /// impl Store<u32, u32> for Flaky {
    ///     type Error = std::fmt::Error;
    ///     fn write(&self, _: &u32, _: &u32) -> Result<(), Self::Error> {
    ///         if self.0.load(Ordering::Relaxed) { Err(std::fmt::Error) } else { Ok(()) }
    ///     }
    /// }
    ///
    /// let wb = WriteBack::builder(Cache::new(100)?, Flaky(AtomicBool::new(true)))
    ///     .batch_size(1)
    ///     .max_dirty(1)
    ///     .build()?;
    /// assert!(wb.try_insert(1, 10).is_ok());
    /// let full = wb.try_insert(2, 20).unwrap_err();
    /// assert_eq!(full.to_string(), "write-back dirty set is full (1 keys): the store has not taken them yet");
    /// assert_eq!(full.into_inner(), (2, 20)); // not cached, not dirty: nothing happened
    /// assert_eq!(wb.get(&2), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`DirtyFull`], holding the key and value, when the dirty set is full.
    pub fn try_insert(&self, key: K, value: V) -> Result<(), DirtyFull<K, V>> {
        let shared = &*self.shared;
        let hash = shared.cache.hash_key(&key);
        match shared
            .dirty
            .insert(hash, key, value, shared.max_dirty, |k, v| {
                let _ = shared.cache.try_insert_hashed(hash, k, v);
            }) {
            Marked::Fresh(len) => {
                shared.written(len);
                Ok(())
            }
            Marked::Rewritten => Ok(()),
            Marked::Full(key, value) => Err(DirtyFull {
                key,
                value,
                max_dirty: shared.max_dirty,
            }),
        }
    }

    /// As [`insert`](Self::insert), but waits for room in a full dirty set without blocking
    /// the thread: use it from async code when [`max_dirty`](WriteBackBuilder::max_dirty)
    /// is set, where a blocking `insert` could hold up the very runtime its flusher task
    /// needs. Dropped before it completes, the write was not made.
    ///
    /// ```
    /// use keel_cache::{AsyncStore, Cache, WriteBack};
    /// use std::sync::{Arc, Mutex};
    ///
    /// #[derive(Default)]
    /// struct Remote(Mutex<Vec<(u32, u32)>>);
    /// impl AsyncStore<u32, u32> for Remote {
    ///     type Error = std::convert::Infallible;
    ///     async fn write_batch(&self, batch: &[(u32, u32)]) -> Result<(), Self::Error> {
    ///         self.0.lock().unwrap().extend_from_slice(batch);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    /// # rt.block_on(async {
    /// let remote = Arc::new(Remote::default());
    /// let wb = WriteBack::builder(Cache::new(100)?, remote.clone())
    ///     .batch_size(2)
    ///     .max_dirty(2)
    ///     .build_async()?;
    /// for k in 0..10 {
    ///     wb.insert_async(k, k * 10).await; // waits for the flusher task when 2 are dirty
    ///     assert!(wb.dirty_len() <= 2);
    /// }
    /// wb.close_async().await?;
    /// assert_eq!(remote.0.lock().unwrap().len(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn insert_async(&self, key: K, value: V) {
        let mut write = (key, value);
        loop {
            match self.try_insert(write.0, write.1) {
                Ok(()) => return,
                Err(full) => {
                    write = full.into_inner();
                    self.shared.room.wait_async(|| self.shared.has_room()).await;
                }
            }
        }
    }

    /// The value of `key`: cached, or dirty and not yet in the store. A miss does not read
    /// the store, and a read never flushes.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::Arc;
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(1)?, Arc::new(Db::default())).build()?;
    /// wb.insert(1, 10);
    /// wb.insert(2, 20); // the cache holds one entry, so one of them was evicted
    /// assert_eq!(wb.cache().entry_count(), 1);
    /// assert_eq!((wb.get(&1), wb.get(&2)), (Some(10), Some(20))); // the dirty set has both
    /// assert_eq!(wb.get(&3), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shared = &*self.shared;
        shared
            .cache
            .get(key)
            .or_else(|| shared.dirty.get(shared.cache.hash_key(key), key))
    }

    /// Entries written to the cache but not yet to the store (a key written twice counts
    /// once: only its latest value is written).
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::Arc;
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let db = Arc::new(Db::default());
    /// let wb = WriteBack::builder(Cache::new(100)?, db.clone()).build()?;
    /// wb.insert(1, 10);
    /// wb.insert(1, 11);
    /// assert_eq!(wb.dirty_len(), 1);
    /// wb.flush()?;
    /// assert_eq!(wb.dirty_len(), 0);
    /// assert_eq!(db.rows(), [(1, 11)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dirty_len(&self) -> usize {
        self.shared.dirty.len()
    }

    /// Flushes that failed since the cache was built (their entries stayed dirty),
    /// including the flusher's, whose errors are not returned: watch this to alert. A
    /// store that panicked in the flusher thread counts as a failed flush.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::{atomic::Ordering, Arc};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let db = Arc::new(Db::default());
    /// let wb = WriteBack::builder(Cache::new(100)?, db.clone()).build()?;
    /// db.down.store(true, Ordering::Relaxed);
    /// wb.insert(1, 10);
    /// assert!(wb.flush().is_err());
    /// assert!(wb.failed_flushes() >= 1);
    /// assert_eq!(wb.dirty_len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failed_flushes(&self) -> u64 {
        self.shared.failed_flushes.load(Ordering::Relaxed)
    }

    /// The cache, for stats and loaders. Writing to it directly bypasses the store.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::Arc;
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(100)?, Arc::new(Db::default())).build()?;
    /// wb.insert(1, 10);
    /// assert_eq!(wb.cache().entry_count(), 1);
    /// assert_eq!(wb.cache().capacity(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cache(&self) -> &Cache<K, V, S> {
        &self.shared.cache
    }

    /// The store.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(100)?, Db::default()).build()?;
    /// wb.insert(1, 10);
    /// wb.flush()?;
    /// assert_eq!(wb.store().rows(), [(1, 10)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store(&self) -> &St {
        &self.shared.store
    }

    /// Tells the flusher to end without a last flush (the closing caller does it).
    fn end_flusher(&mut self) -> Option<Flusher> {
        self.shared.state.store(flusher::END, Ordering::Release);
        self.shared.wake();
        self.flusher.take()
    }

    fn unflushed<E>(&self, error: FlushError<E>) -> Unflushed<K, V, E> {
        Unflushed {
            entries: self.shared.dirty.drain(),
            error,
        }
    }

    /// Writes every dirty entry to the store on this thread, `batch_size` per call, and
    /// returns how many were written. Waits for a flush in progress (the flusher's)
    /// first. Needs a [`Store`]; over an `AsyncStore` use `flush_async` (feature `tokio`).
    ///
    /// # Errors
    ///
    /// The first batch the store refused; it and every later entry stay dirty and are
    /// retried by the next flush.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::{atomic::Ordering, Arc};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let db = Arc::new(Db::default());
    /// let wb = WriteBack::builder(Cache::new(100)?, db.clone()).batch_size(2).build()?;
    /// db.down.store(true, Ordering::Relaxed);
    /// for k in 1..=5 {
    ///     wb.insert(k, k * 10); // the flusher's attempts fail: the store is down
    /// }
    /// assert!(wb.flush().is_err());
    /// db.down.store(false, Ordering::Relaxed);
    /// wb.flush()?;
    /// assert_eq!(wb.dirty_len(), 0);
    /// assert_eq!(db.rows(), [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]);
    /// assert_eq!(wb.flush()?, 0); // nothing left
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Result<usize, FlushError<St::Error>>
    where
        St: Store<K, V>,
    {
        self.shared.flush()
    }

    /// Stops the flusher (waiting for its batch in progress), then flushes everything on
    /// this thread. Call it before dropping to know the store has every write.
    ///
    /// # Errors
    ///
    /// If the store refuses a batch, [`Unflushed`] hands back every entry it has not taken,
    /// with the error.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// use std::sync::{atomic::Ordering, Arc};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::AtomicBool, Condvar, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool, wrote: Condvar }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(std::sync::atomic::Ordering::Relaxed) {
    /// #             return Err(std::fmt::Error);
    /// #         }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         self.wrote.notify_all();
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db {
    /// #     /// Every row written, sorted, once there are `n` (waits for the flusher up to 10 s).
    /// #     fn rows_when(&self, n: usize) -> Vec<(u32, u32)> {
    /// #         let b = self.batches.lock().unwrap();
    /// #         let wait = std::time::Duration::from_secs(10);
    /// #         let (b, _) = self.wrote.wait_timeout_while(b, wait, |b| b.concat().len() < n).unwrap();
    /// #         let mut rows = b.concat();
    /// #         rows.sort();
    /// #         rows
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         self.rows_when(0)
    /// #     }
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// # }
    /// let db = Arc::new(Db::default());
    /// let wb = WriteBack::builder(Cache::new(100)?, db.clone()).build()?;
    /// wb.insert(1, 10);
    /// wb.insert(2, 20);
    /// wb.close()?;
    /// assert_eq!(db.rows(), [(1, 10), (2, 20)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(mut self) -> Result<usize, Unflushed<K, V, St::Error>>
    where
        St: Store<K, V>,
    {
        match self.end_flusher() {
            Some(Flusher::Thread(t)) => {
                // A panicking flusher left its batch dirty; the flush below writes it.
                let _ = t.join();
            }
            #[cfg(feature = "tokio")]
            Some(Flusher::Task(t)) => t.abort(),
            None => {}
        }
        self.shared.flush().map_err(|e| self.unflushed(e))
    }

    /// As [`flush`](Self::flush), through an [`AsyncStore`](crate::AsyncStore). Dropping
    /// the future before it completes leaves every entry not yet acknowledged dirty.
    ///
    /// # Errors
    ///
    /// As [`flush`](Self::flush).
    ///
    /// ```
    /// use keel_cache::{AsyncStore, Cache, WriteBack};
    /// use std::sync::Mutex;
    ///
    /// #[derive(Default)]
    /// struct Remote(Mutex<Vec<(u32, u32)>>);
    /// impl AsyncStore<u32, u32> for Remote {
    ///     type Error = std::convert::Infallible;
    ///     async fn write_batch(&self, batch: &[(u32, u32)]) -> Result<(), Self::Error> {
    ///         self.0.lock().unwrap().extend_from_slice(batch);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    /// # rt.block_on(async {
    /// let wb = WriteBack::builder(Cache::new(100)?, Remote::default()).build_async()?;
    /// wb.insert(1, 10);
    /// assert_eq!(wb.flush_async().await?, 1);
    /// assert_eq!(*wb.store().0.lock().unwrap(), [(1, 10)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn flush_async(&self) -> Result<usize, FlushError<St::Error>>
    where
        St: crate::AsyncStore<K, V>,
    {
        self.shared.flush_async().await
    }

    /// As [`close`](Self::close), through an [`AsyncStore`](crate::AsyncStore): cancels the
    /// flusher task, then flushes on this task. Cancelling rather than waiting means a
    /// flusher stuck in a store call that never completes cannot hold `close_async` up; its
    /// batch stays dirty (at worst written twice) and this flush writes it.
    ///
    /// A store that never completes holds up this flush too. Bound it with a timeout:
    /// dropping the unfinished `close_async` drops the write-back, and what is still dirty
    /// goes to the [`on_unflushed`](WriteBackBuilder::on_unflushed) hook.
    ///
    /// # Errors
    ///
    /// As [`close`](Self::close).
    ///
    /// ```
    /// use keel_cache::{AsyncStore, Cache, WriteBack};
    /// use std::sync::{atomic::{AtomicBool, Ordering}, Arc};
    ///
    /// #[derive(Default)]
    /// struct Remote(AtomicBool); // down while set
    /// impl AsyncStore<u32, u32> for Remote {
    ///     type Error = std::fmt::Error;
    ///     async fn write_batch(&self, _: &[(u32, u32)]) -> Result<(), Self::Error> {
    ///         if self.0.load(Ordering::Relaxed) { Err(std::fmt::Error) } else { Ok(()) }
    ///     }
    /// }
    ///
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    /// # rt.block_on(async {
    /// let remote = Arc::new(Remote::default());
    /// let wb = WriteBack::builder(Cache::new(100)?, remote.clone()).build_async()?;
    /// remote.0.store(true, Ordering::Relaxed);
    /// wb.insert(1, 10);
    /// let err = wb.close_async().await.unwrap_err();
    /// assert_eq!(err.entries, [(1, 10)]); // handed back, not lost
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn close_async(mut self) -> Result<usize, Unflushed<K, V, St::Error>>
    where
        St: crate::AsyncStore<K, V>,
    {
        match self.end_flusher() {
            Some(Flusher::Task(t)) => {
                // Cancelled, panicked or ended, it left whatever it had not acknowledged
                // dirty; awaiting it releases its share of the state.
                t.abort();
                let _ = t.await;
            }
            Some(Flusher::Thread(t)) => {
                let _ = t.join();
            }
            None => {}
        }
        self.shared
            .flush_async()
            .await
            .map_err(|e| self.unflushed(e))
    }
}

impl<K, V, St, S> Drop for WriteBack<K, V, St, S> {
    fn drop(&mut self) {
        if self.flusher.is_none() {
            return;
        }
        // The flusher makes a last attempt; what it cannot write goes to the hook when the
        // shared state is freed.
        self.shared
            .state
            .store(flusher::FINAL_FLUSH, Ordering::Release);
        if let Some(t) = self.shared.thread.get() {
            t.unpark();
        }
        match self.flusher.take() {
            // Joined, as `BufWriter` flushes on drop: the writes are in the store (or the
            // hook) when drop returns.
            Some(Flusher::Thread(t)) => {
                let _ = t.join();
            }
            #[cfg(feature = "tokio")]
            Some(Flusher::Task(_)) => self.shared.notify.notify_one(),
            None => {}
        }
    }
}

impl<K, V, St, S> fmt::Debug for WriteBack<K, V, St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBack")
            .field("cache", &self.shared.cache)
            .field("batch_size", &self.shared.batch_size)
            .field("dirty", &self.shared.dirty.len())
            .finish_non_exhaustive()
    }
}

impl<K, V, St, S> fmt::Debug for WriteBackBuilder<K, V, St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBackBuilder")
            .field("batch_size", &self.batch_size)
            .field("interval", &self.interval)
            .field("tick", &self.tick)
            .finish_non_exhaustive()
    }
}
