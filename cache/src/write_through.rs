//! `WriteThrough`: every write goes to the store, then to the cache.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::{Cache, Store};

/// A [`Cache`] in front of a [`Store`]: [`insert`](WriteThrough::insert) writes the store
/// first and caches the value only once the store took it, so the cache never holds a
/// value the store does not.
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
pub struct WriteThrough<K, V, St, S = foldhash::fast::RandomState> {
    cache: Cache<K, V, S>,
    store: St,
}

impl<K, V, St, S> WriteThrough<K, V, St, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
    St: Store<K, V>,
{
    /// Puts `cache` in front of `store`.
    pub fn new(cache: Cache<K, V, S>, store: St) -> Self {
        WriteThrough { cache, store }
    }

    /// Writes `key` to the store, then caches it.
    ///
    /// # Errors
    ///
    /// The store's error. The cache then drops any value it had for `key`, since the store
    /// may or may not have applied the write.
    pub fn insert(&self, key: K, value: V) -> Result<(), St::Error> {
        match self.store.write(&key, &value) {
            Ok(()) => {
                self.cache.insert(key, value);
                Ok(())
            }
            Err(e) => {
                self.cache.remove(&key);
                Err(e)
            }
        }
    }

    /// The cached value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.get(key)
    }

    /// The cache, for reads, loaders and stats.
    pub fn cache(&self) -> &Cache<K, V, S> {
        &self.cache
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }
}

impl<K, V, St, S> fmt::Debug for WriteThrough<K, V, St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteThrough")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}
