//! `WriteBack`: writes land in the cache at once and reach the store later, in batches.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use keel_core::sync::atomic::{AtomicU64, Ordering};
use parking_lot::Mutex;

use crate::{BuildError, Cache, Store};

/// Entries written to the cache but not yet to the store. Each carries the sequence number
/// of its write, so a flush removes only the version it wrote: a newer write made during
/// the flush stays dirty.
struct Dirty<K, V> {
    map: HashMap<K, (V, u64), foldhash::fast::RandomState>,
    next_seq: u64,
}

/// A [`Cache`] in front of a [`Store`] that writes behind: [`insert`](WriteBack::insert)
/// updates the cache and marks the entry dirty; dirty entries are written to the store in
/// batches when there are [`batch_size`](WriteBackBuilder::batch_size) of them, when the
/// [`flush_interval`](WriteBackBuilder::flush_interval) has passed (checked on every
/// insert and get, by the cache's clock, so no background thread is needed), and on
/// [`flush`](WriteBack::flush) or [`shutdown`](WriteBack::shutdown).
///
/// **No acknowledged write is lost:** an entry leaves the dirty set only after the store
/// accepted that exact version. A failed batch stays dirty and is retried by the next flush;
/// reads see dirty values even if the cache evicted them. A write made while a flush is
/// in progress is not lost either: it has a newer version, which stays dirty. This holds
/// while the `WriteBack` lives: dropping it does not flush, so call
/// [`shutdown`](WriteBack::shutdown) first.
///
/// Two concurrent inserts of one key are ordered: the cache is updated under the lock that
/// versions dirty entries, so the cache keeps the value whose version is written last. The
/// cache's eviction listener therefore runs under that lock and must not call back into
/// the `WriteBack`.
///
/// Dirty entries are kept in memory until the store takes them: if the store stays down,
/// [`dirty_len`](WriteBack::dirty_len) grows. Deletes are not written behind.
///
/// ```
/// use keel_cache::{Cache, Store, WriteBack};
/// use std::sync::Mutex;
///
/// #[derive(Default)]
/// struct Batches(Mutex<Vec<usize>>);
/// impl Store<u32, u32> for Batches {
///     type Error = std::convert::Infallible;
///     fn write(&self, _: &u32, _: &u32) -> Result<(), Self::Error> { Ok(()) }
///     fn write_batch(&self, batch: &[(u32, u32)]) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().push(batch.len());
///         Ok(())
///     }
/// }
///
/// let wb = WriteBack::builder(Cache::new(1_000)?, Batches::default())
///     .batch_size(3)
///     .build()?;
/// wb.insert(1, 1);
/// wb.insert(2, 2);
/// assert_eq!(wb.dirty_len(), 2);
/// wb.insert(3, 3); // the third dirty entry triggers a batch
/// assert_eq!(wb.dirty_len(), 0);
/// wb.insert(4, 4);
/// wb.shutdown()?;
/// assert_eq!(*wb.store().0.lock().unwrap(), [3, 1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WriteBack<K, V, St, S = foldhash::fast::RandomState> {
    cache: Cache<K, V, S>,
    store: St,
    dirty: Mutex<Dirty<K, V>>,
    /// One flush at a time.
    flushing: Mutex<()>,
    batch_size: usize,
    interval: Option<u64>,
    last_flush: AtomicU64,
    failed_flushes: AtomicU64,
}

/// Configures a [`WriteBack`]. See [`WriteBack::builder`].
///
/// ```
/// use keel_cache::{Cache, WriteBack};
/// # use keel_cache::Store;
/// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
/// # #[derive(Default)] // records each batch; `down` makes it refuse them
/// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
/// # impl Store<u32, u32> for Db {
/// #     type Error = std::fmt::Error;
/// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
/// #         self.write_batch(&[(*k, *v)])
/// #     }
/// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
/// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
/// #         self.batches.lock().unwrap().push(b.to_vec());
/// #         Ok(())
/// #     }
/// # }
/// # impl Db { // batch sizes in order; every row written, sorted
/// #     fn batch_sizes(&self) -> Vec<usize> {
/// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
/// #     }
/// #     fn rows(&self) -> Vec<(u32, u32)> {
/// #         let mut r = self.batches.lock().unwrap().concat();
/// #         r.sort();
/// #         r
/// #     }
/// # }
/// use keel_core::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let cache = Cache::builder().max_capacity(1_000).clock(clock.clone()).build()?;
/// let wb = WriteBack::builder(cache, Db::default())
///     .batch_size(100)
///     .flush_interval(Duration::from_secs(5))
///     .build()?;
/// wb.insert(1, 10);
/// clock.advance(Duration::from_secs(5));
/// wb.insert(2, 20); // 5 s since the last flush: this write flushes both
/// assert_eq!(wb.store().batch_sizes(), [2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WriteBackBuilder<K, V, St, S> {
    cache: Cache<K, V, S>,
    store: St,
    batch_size: usize,
    interval: Option<Duration>,
}

impl<K, V, St, S> WriteBackBuilder<K, V, St, S> {
    /// Flush once this many entries are dirty, and write at most this many per store call
    /// (default 64).
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(100)?, Db::default()).batch_size(2).build()?;
    /// wb.insert(1, 10);
    /// assert_eq!(wb.dirty_len(), 1);
    /// wb.insert(2, 20); // the second dirty entry flushes both
    /// assert_eq!(wb.dirty_len(), 0);
    /// assert_eq!(wb.store().rows(), [(1, 10), (2, 20)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Flush when this long has passed since the last flush (checked on every insert and
    /// get, and by [`flush_if_due`](WriteBack::flush_if_due)), by the cache's clock. Off by
    /// default.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder().max_capacity(100).clock(clock.clone()).build()?;
    /// let wb = WriteBack::builder(cache, Db::default())
    ///     .flush_interval(Duration::from_secs(10))
    ///     .build()?;
    /// wb.insert(1, 10);
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(wb.get(&1), Some(10)); // a read also flushes when the interval has passed
    /// assert_eq!(wb.dirty_len(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Builds the write-back cache.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroBatch`] for a batch size of 0, [`BuildError::ZeroDuration`] for a
    /// zero interval.
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
        K: Hash + Eq + Clone,
        V: Clone,
        S: BuildHasher,
    {
        if self.batch_size == 0 {
            return Err(BuildError::ZeroBatch);
        }
        if self.interval == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("flush interval"));
        }
        let now = self.cache.clock.now().as_nanos();
        Ok(WriteBack {
            cache: self.cache,
            store: self.store,
            dirty: Mutex::new(Dirty {
                map: HashMap::default(),
                next_seq: 0,
            }),
            flushing: Mutex::new(()),
            batch_size: self.batch_size,
            interval: self
                .interval
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            last_flush: AtomicU64::new(now),
            failed_flushes: AtomicU64::new(0),
        })
    }
}

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

impl<K, V, St, S> WriteBack<K, V, St, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    St: Store<K, V>,
{
    /// Configures a write-back `cache` over `store`: batches of 64, no flush interval.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(1_000)?, Db::default()).build()?;
    /// for k in 0..63 {
    ///     wb.insert(k, k);
    /// }
    /// assert_eq!(wb.dirty_len(), 63);
    /// wb.insert(63, 63); // the 64th dirty entry flushes them
    /// assert_eq!((wb.dirty_len(), wb.store().batch_sizes()), (0, vec![64]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(cache: Cache<K, V, S>, store: St) -> WriteBackBuilder<K, V, St, S> {
        WriteBackBuilder {
            cache,
            store,
            batch_size: 64,
            interval: None,
        }
    }

    /// Caches `value` and marks it dirty. Once this returns, the write stays dirty until the
    /// store takes it: a failed flush leaves it for the next one (the next batch, interval,
    /// [`flush`](WriteBack::flush) or [`shutdown`](WriteBack::shutdown)). Nothing is
    /// retried on its own and dropping a `WriteBack` does not flush, so dirty entries are
    /// lost if it is dropped (or the process dies) before a flush succeeds.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(100)?, Db::default()).build()?;
    /// wb.insert(1, 10);
    /// assert_eq!(wb.get(&1), Some(10)); // cached at once
    /// assert!(wb.store().rows().is_empty()); // written later
    /// wb.flush()?;
    /// assert_eq!(wb.store().rows(), [(1, 10)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, key: K, value: V) {
        let len = {
            let mut dirty = self.dirty.lock();
            // Under the dirty lock: the cache and the dirty set see writes of a key in the
            // same order.
            self.cache.insert(key.clone(), value.clone());
            let seq = dirty.next_seq;
            dirty.next_seq += 1;
            dirty.map.insert(key, (value, seq));
            dirty.map.len()
        };
        if len >= self.batch_size || self.due() {
            self.opportunistic_flush();
        }
    }

    /// The value of `key`: cached, or dirty and not yet in the store. A miss does not read
    /// the store. With a [`flush_interval`](WriteBackBuilder::flush_interval), a read may
    /// also flush.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(1)?, Db::default()).build()?;
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
        let value = match self.cache.get(key) {
            Some(v) => Some(v),
            None => self.dirty.lock().map.get(key).map(|(v, _)| v.clone()),
        };
        if self.due() {
            self.opportunistic_flush();
        }
        value
    }

    /// Entries written to the cache but not yet to the store (a key written twice counts
    /// once: only its latest value is written).
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(100)?, Db::default()).build()?;
    /// wb.insert(1, 10);
    /// wb.insert(1, 11);
    /// assert_eq!(wb.dirty_len(), 1);
    /// wb.flush()?;
    /// assert_eq!(wb.dirty_len(), 0);
    /// assert_eq!(wb.store().rows(), [(1, 11)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dirty_len(&self) -> usize {
        self.dirty.lock().map.len()
    }

    /// Flushes that failed since the cache was built (their entries stayed dirty),
    /// including the automatic ones, whose errors are not returned: watch this to alert.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(100)?, Db::default()).batch_size(1).build()?;
    /// wb.store().down.store(true, Ordering::Relaxed);
    /// wb.insert(1, 10); // its automatic flush fails quietly
    /// assert!(wb.flush().is_err());
    /// assert_eq!((wb.failed_flushes(), wb.dirty_len()), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failed_flushes(&self) -> u64 {
        self.failed_flushes.load(Ordering::Relaxed)
    }

    /// The cache, for stats and loaders. Writing to it directly bypasses the store.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(100)?, Db::default()).build()?;
    /// wb.insert(1, 10);
    /// assert_eq!(wb.cache().entry_count(), 1);
    /// assert_eq!(wb.cache().capacity(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cache(&self) -> &Cache<K, V, S> {
        &self.cache
    }

    /// The store.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(100)?, Db::default()).build()?;
    /// wb.insert(1, 10);
    /// wb.shutdown()?;
    /// assert_eq!(wb.store().rows(), [(1, 10)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store(&self) -> &St {
        &self.store
    }

    fn due(&self) -> bool {
        self.interval.is_some_and(|interval| {
            let now = self.cache.clock.now().as_nanos();
            now.saturating_sub(self.last_flush.load(Ordering::Relaxed)) >= interval
        })
    }

    /// Flushes if the interval has passed; call it from a timer if the cache can sit idle.
    /// Returns how many entries were written (0 when not due, or always without a
    /// [`flush_interval`](WriteBackBuilder::flush_interval)).
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder().max_capacity(100).clock(clock.clone()).build()?;
    /// let wb = WriteBack::builder(cache, Db::default())
    ///     .flush_interval(Duration::from_secs(10))
    ///     .build()?;
    /// wb.insert(1, 10);
    /// assert_eq!(wb.flush_if_due()?, 0);
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(wb.flush_if_due()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`flush`](WriteBack::flush).
    pub fn flush_if_due(&self) -> Result<usize, FlushError<St::Error>> {
        if self.due() { self.flush() } else { Ok(0) }
    }

    /// Flushes unless another flush is running. That one may have taken its snapshot
    /// before our entry; then the entry stays dirty for the next flush.
    fn opportunistic_flush(&self) {
        if let Some(guard) = self.flushing.try_lock() {
            let _ = self.flush_locked(&guard);
        }
    }

    /// Writes every dirty entry to the store, `batch_size` per call; returns how many were
    /// written. Waits for a flush in progress.
    ///
    /// # Errors
    ///
    /// The first batch the store refused; it and every later entry stay dirty and are
    /// retried by the next flush.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(100)?, Db::default()).batch_size(2).build()?;
    /// wb.store().down.store(true, Ordering::Relaxed);
    /// for k in 1..=5 {
    ///     wb.insert(k, k * 10); // automatic flushes fail: the store is down
    /// }
    /// wb.store().down.store(false, Ordering::Relaxed);
    /// assert_eq!(wb.flush()?, 5);
    /// assert_eq!(wb.store().batch_sizes(), [2, 2, 1]);
    /// assert_eq!(wb.flush()?, 0); // nothing left
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Result<usize, FlushError<St::Error>> {
        let guard = self.flushing.lock();
        self.flush_locked(&guard)
    }

    fn flush_locked(
        &self,
        _guard: &parking_lot::MutexGuard<'_, ()>,
    ) -> Result<usize, FlushError<St::Error>> {
        self.last_flush
            .store(self.cache.clock.now().as_nanos(), Ordering::Relaxed);
        let snapshot: Vec<(K, V, u64)> = {
            let dirty = self.dirty.lock();
            dirty
                .map
                .iter()
                .map(|(k, (v, seq))| (k.clone(), v.clone(), *seq))
                .collect()
        };
        let mut written = 0;
        for chunk in snapshot.chunks(self.batch_size) {
            let batch: Vec<(K, V)> = chunk
                .iter()
                .map(|(k, v, _)| (k.clone(), v.clone()))
                .collect();
            if let Err(source) = self.store.write_batch(&batch) {
                self.failed_flushes.fetch_add(1, Ordering::Relaxed);
                return Err(FlushError {
                    written,
                    pending: self.dirty_len(),
                    source,
                });
            }
            let mut dirty = self.dirty.lock();
            for (k, _, seq) in chunk {
                // Only the version we wrote: a newer write stays dirty.
                if dirty.map.get(k).is_some_and(|(_, s)| s == seq) {
                    dirty.map.remove(k);
                }
            }
            written += chunk.len();
        }
        Ok(written)
    }

    /// Flushes everything; call before dropping to know the store has every write.
    ///
    /// # Errors
    ///
    /// As [`flush`](WriteBack::flush); the entries stay dirty, so it can be called again.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// let wb = WriteBack::builder(Cache::new(100)?, Db::default()).build()?;
    /// wb.insert(1, 10);
    /// wb.insert(2, 20);
    /// wb.store().down.store(true, Ordering::Relaxed);
    /// assert!(wb.shutdown().is_err());
    /// wb.store().down.store(false, Ordering::Relaxed);
    /// assert_eq!(wb.shutdown()?, 2);
    /// assert_eq!(wb.store().rows(), [(1, 10), (2, 20)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self) -> Result<usize, FlushError<St::Error>> {
        self.flush()
    }

    /// Spawns a tokio task that calls [`flush_if_due`](WriteBack::flush_if_due) every
    /// `period`, so an idle cache still flushes on its interval. The task ends at its first
    /// tick after the last `Arc` is dropped (it does not flush then: call
    /// [`shutdown`](WriteBack::shutdown) before). The store's writes run on the runtime's
    /// thread: keep them short or make `write_batch` hand off to `spawn_blocking`.
    ///
    /// Must be called within a tokio runtime (it uses `tokio::spawn`).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteBack};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each batch; `down` makes it refuse them
    /// # struct Db { batches: Mutex<Vec<Vec<(u32, u32)>>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         self.write_batch(&[(*k, *v)])
    /// #     }
    /// #     fn write_batch(&self, b: &[(u32, u32)]) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.batches.lock().unwrap().push(b.to_vec());
    /// #         Ok(())
    /// #     }
    /// # }
    /// # impl Db { // batch sizes in order; every row written, sorted
    /// #     fn batch_sizes(&self) -> Vec<usize> {
    /// #         self.batches.lock().unwrap().iter().map(Vec::len).collect()
    /// #     }
    /// #     fn rows(&self) -> Vec<(u32, u32)> {
    /// #         let mut r = self.batches.lock().unwrap().concat();
    /// #         r.sort();
    /// #         r
    /// #     }
    /// # }
    /// use keel_core::ManualClock;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// # let rt = tokio::runtime::Builder::new_current_thread()
    /// #     .enable_time()
    /// #     .start_paused(true) // tokio's sleeps return at once
    /// #     .build()?;
    /// # rt.block_on(async {
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder().max_capacity(100).clock(clock.clone()).build()?;
    /// let wb = WriteBack::builder(cache, Db::default())
    ///     .flush_interval(Duration::from_secs(1))
    ///     .build()?;
    /// let wb = Arc::new(wb);
    /// let task = WriteBack::spawn_flusher(&wb, Duration::from_secs(1));
    /// wb.insert(1, 10);
    /// clock.advance(Duration::from_secs(1)); // due, but no further call comes
    /// tokio::time::sleep(Duration::from_secs(2)).await; // the task flushes meanwhile
    /// assert_eq!(wb.dirty_len(), 0);
    /// drop(wb);
    /// tokio::time::timeout(Duration::from_secs(5), task).await??; // ends with the last Arc
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tokio")]
    pub fn spawn_flusher(
        this: &std::sync::Arc<Self>,
        period: Duration,
    ) -> tokio::task::JoinHandle<()>
    where
        K: Send + Sync + 'static,
        V: Send + Sync + 'static,
        St: 'static,
        S: Send + Sync + 'static,
    {
        let weak = std::sync::Arc::downgrade(this);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(wb) = weak.upgrade() else { break };
                let _ = wb.flush_if_due();
            }
        })
    }
}

impl<K, V, St, S> fmt::Debug for WriteBack<K, V, St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBack")
            .field("cache", &self.cache)
            .field("batch_size", &self.batch_size)
            .field("dirty", &self.dirty.lock().map.len())
            .finish_non_exhaustive()
    }
}

impl<K, V, St, S> fmt::Debug for WriteBackBuilder<K, V, St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBackBuilder")
            .field("batch_size", &self.batch_size)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}
