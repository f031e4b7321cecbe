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
/// operation, by the cache's clock, so no background thread is needed), and on
/// [`flush`](WriteBack::flush) or [`shutdown`](WriteBack::shutdown).
///
/// **No acknowledged write is lost:** an entry leaves the dirty set only after the store
/// accepted that exact version. A failed batch stays dirty and is retried by the next flush;
/// reads see dirty values even if the cache evicted them. A write made while a flush is
/// in progress is not lost either: it has a newer version, which stays dirty.
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
pub struct WriteBackBuilder<K, V, St, S> {
    cache: Cache<K, V, S>,
    store: St,
    batch_size: usize,
    interval: Option<Duration>,
}

impl<K, V, St, S> WriteBackBuilder<K, V, St, S> {
    /// Flush once this many entries are dirty, and write at most this many per store call
    /// (default 64).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Flush when this long has passed since the last flush (checked on every operation
    /// and by [`flush_if_due`](WriteBack::flush_if_due)). Off by default.
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
    /// Configures a write-back `cache` over `store`.
    pub fn builder(cache: Cache<K, V, S>, store: St) -> WriteBackBuilder<K, V, St, S> {
        WriteBackBuilder {
            cache,
            store,
            batch_size: 64,
            interval: None,
        }
    }

    /// Caches `value` and marks it dirty. Once this returns, the write will reach the store
    /// (retried until it does) unless the process dies first.
    pub fn insert(&self, key: K, value: V) {
        self.cache.insert(key.clone(), value.clone());
        let len = {
            let mut dirty = self.dirty.lock();
            let seq = dirty.next_seq;
            dirty.next_seq += 1;
            dirty.map.insert(key, (value, seq));
            dirty.map.len()
        };
        if len >= self.batch_size || self.due() {
            self.opportunistic_flush();
        }
    }

    /// The value of `key`: cached, or dirty and not yet in the store.
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

    /// Entries written to the cache but not yet to the store.
    pub fn dirty_len(&self) -> usize {
        self.dirty.lock().map.len()
    }

    /// Flushes that failed since the cache was built (their entries stayed dirty).
    pub fn failed_flushes(&self) -> u64 {
        self.failed_flushes.load(Ordering::Relaxed)
    }

    /// The cache, for stats and loaders.
    pub fn cache(&self) -> &Cache<K, V, S> {
        &self.cache
    }

    /// The store.
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
    ///
    /// # Errors
    ///
    /// As [`flush`](WriteBack::flush).
    pub fn flush_if_due(&self) -> Result<usize, FlushError<St::Error>> {
        if self.due() { self.flush() } else { Ok(0) }
    }

    /// Flushes unless another flush is running (that one will write our entries).
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
    pub fn shutdown(&self) -> Result<usize, FlushError<St::Error>> {
        self.flush()
    }

    /// Spawns a tokio task that calls [`flush_if_due`](WriteBack::flush_if_due) every
    /// `period`, so an idle cache still flushes on its interval. The task ends when the
    /// last `Arc` is dropped. The store's writes run on the runtime's thread: keep them
    /// short or make `write_batch` hand off to `spawn_blocking`.
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
