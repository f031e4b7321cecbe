//! `WriteThrough`: every write goes to the store, then to the cache.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use parking_lot::Mutex;

use crate::{Cache, Store};

/// Stripes of the per-key write lock.
const KEY_LOCKS: usize = 64;

/// A [`Cache`] in front of a [`Store`]: [`insert`](WriteThrough::insert) writes the store
/// first and caches the value only once the store took it, so the cache never holds a
/// value the store did not take.
///
/// Writes of one key are serialized: a lock (one of 64 stripes, by key hash) is
/// held across the store write and the cache update, so two concurrent inserts of a key
/// leave the cache with the value the store took last. A slow store write therefore also
/// delays writes of other keys on its stripe; reads never wait for it.
///
/// ```
/// use keel_cache::{Cache, Store, WriteThrough};
/// use std::sync::Mutex;
///
/// struct Log(Mutex<Vec<(u32, u32)>>);
/// impl Store<u32, u32> for Log {
///     type Error = std::convert::Infallible;
///     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().push((*k, *v));
///         Ok(())
///     }
/// }
///
/// let cache = WriteThrough::new(Cache::new(100)?, Log(Mutex::new(Vec::new())));
/// cache.insert(1, 10)?;
/// assert_eq!(cache.get(&1), Some(10));
/// assert_eq!(*cache.store().0.lock().unwrap(), [(1, 10)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WriteThrough<K, V, St, S = crate::DefaultHashBuilder> {
    cache: Cache<K, V, S>,
    store: St,
    key_locks: Box<[Mutex<()>]>,
}

impl<K, V, St, S> WriteThrough<K, V, St, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
    St: Store<K, V>,
{
    /// Puts `cache` in front of `store`. The cache keeps its settings (capacity, expiry,
    /// listener): an entry it evicts is still in the store.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteThrough};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each write; `down` makes it refuse them
    /// # struct Db { rows: Mutex<Vec<(u32, u32)>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.rows.lock().unwrap().push((*k, *v));
    /// #         Ok(())
    /// #     }
    /// # }
    /// let wt = WriteThrough::new(Cache::new(1)?, Db::default());
    /// wt.insert(1, 10)?;
    /// wt.insert(2, 20)?; // the cache holds one entry; the store has both
    /// assert_eq!(wt.cache().entry_count(), 1);
    /// assert_eq!(*wt.store().rows.lock().unwrap(), [(1, 10), (2, 20)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(cache: Cache<K, V, S>, store: St) -> Self {
        WriteThrough {
            cache,
            store,
            key_locks: (0..KEY_LOCKS).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Writes `key` to the store, then caches it.
    ///
    /// # Errors
    ///
    /// The store's error. The cache then drops any value it had for `key`, since the store
    /// may or may not have applied the write.
    ///
    /// # Panics
    ///
    /// If the store's `write` panics, the panic goes on to the caller; on the way the cache
    /// drops any value it had for `key` (as for an error), so it never serves a value older
    /// than one the store may hold. Other keys, and later writes of `key`, are unaffected.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteThrough};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each write; `down` makes it refuse them
    /// # struct Db { rows: Mutex<Vec<(u32, u32)>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.rows.lock().unwrap().push((*k, *v));
    /// #         Ok(())
    /// #     }
    /// # }
    /// let wt = WriteThrough::new(Cache::new(10)?, Db::default());
    /// wt.insert(1, 10)?;
    /// wt.store().down.store(true, Ordering::Relaxed);
    /// assert!(wt.insert(1, 11).is_err());
    /// assert_eq!(wt.get(&1), None); // not 10: the store may hold 11
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, key: K, value: V) -> Result<(), St::Error> {
        let hash = self.cache.hash_key(&key);
        let stripe = hash as usize % KEY_LOCKS;
        let _writing_key = self.key_locks[stripe].lock();
        // Declared after the key lock, so it runs (if armed) while the lock is still held.
        let invalidate = InvalidateOnUnwind {
            cache: &self.cache,
            key: &key,
            armed: true,
        };
        let written = self.store.write(&key, &value);
        invalidate.disarm();
        match written {
            Ok(()) => {
                let _ = self.cache.try_insert_hashed(hash, key, value);
                Ok(())
            }
            Err(e) => {
                self.cache.remove(&key);
                Err(e)
            }
        }
    }

    /// The cached value of `key`. A miss does not read the store: load through
    /// [`Cache::get_or_insert_with`] on [`cache`](WriteThrough::cache) for that.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteThrough};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each write; `down` makes it refuse them
    /// # struct Db { rows: Mutex<Vec<(u32, u32)>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.rows.lock().unwrap().push((*k, *v));
    /// #         Ok(())
    /// #     }
    /// # }
    /// let wt = WriteThrough::new(Cache::new(10)?, Db::default());
    /// wt.insert(1, 10)?;
    /// assert_eq!(wt.get(&1), Some(10));
    /// assert_eq!(wt.get(&2), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.get(key)
    }

    /// The cache, for reads, loaders and stats. Writing to it directly bypasses the store.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteThrough};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each write; `down` makes it refuse them
    /// # struct Db { rows: Mutex<Vec<(u32, u32)>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.rows.lock().unwrap().push((*k, *v));
    /// #         Ok(())
    /// #     }
    /// # }
    /// let wt = WriteThrough::new(Cache::new(10)?, Db::default());
    /// wt.insert(1, 10)?;
    /// let v = wt.cache().get_or_insert_with(2, || 20); // e.g. loaded from the store
    /// assert_eq!(v, 20);
    /// assert_eq!(wt.cache().entry_count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cache(&self) -> &Cache<K, V, S> {
        &self.cache
    }

    /// The store.
    ///
    /// ```
    /// use keel_cache::{Cache, WriteThrough};
    /// # use keel_cache::Store;
    /// # use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    /// # #[derive(Default)] // records each write; `down` makes it refuse them
    /// # struct Db { rows: Mutex<Vec<(u32, u32)>>, down: AtomicBool }
    /// # impl Store<u32, u32> for Db {
    /// #     type Error = std::fmt::Error;
    /// #     fn write(&self, k: &u32, v: &u32) -> Result<(), Self::Error> {
    /// #         if self.down.load(Ordering::Relaxed) { return Err(std::fmt::Error); }
    /// #         self.rows.lock().unwrap().push((*k, *v));
    /// #         Ok(())
    /// #     }
    /// # }
    /// let wt = WriteThrough::new(Cache::new(10)?, Db::default());
    /// wt.insert(7, 70)?;
    /// assert_eq!(*wt.store().rows.lock().unwrap(), [(7, 70)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store(&self) -> &St {
        &self.store
    }
}

/// Drops `key` from the cache if the store write it guards unwinds: the store may have
/// applied the write before panicking, so the cached value may be stale.
struct InvalidateOnUnwind<'a, K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    cache: &'a Cache<K, V, S>,
    key: &'a K,
    armed: bool,
}

impl<K, V, S> InvalidateOnUnwind<'_, K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    /// The store call returned: the caller handles the outcome.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<K, V, S> Drop for InvalidateOnUnwind<'_, K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    fn drop(&mut self) {
        if self.armed {
            self.cache.remove(self.key);
        }
    }
}

impl<K, V, St, S> fmt::Debug for WriteThrough<K, V, St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteThrough")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}
