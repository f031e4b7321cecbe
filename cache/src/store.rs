//! The backing store behind write-through and write-back caches.

/// Where a [`WriteThrough`](crate::WriteThrough) or [`WriteBack`](crate::WriteBack) cache
/// keeps the data of record.
///
/// ```
/// use keel_cache::Store;
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// #[derive(Default)]
/// struct MapStore(Mutex<HashMap<u32, String>>);
///
/// impl Store<u32, String> for MapStore {
///     type Error = std::convert::Infallible;
///     fn write(&self, key: &u32, value: &String) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().insert(*key, value.clone());
///         Ok(())
///     }
/// }
///
/// let store = MapStore::default();
/// store.write_batch(&[(1, "one".to_string())])?;
/// assert_eq!(store.0.lock().unwrap()[&1], "one");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Store<K, V>: Send + Sync {
    /// Why a write failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Writes one entry.
    ///
    /// ```
    /// use keel_cache::Store;
    /// use std::sync::Mutex;
    ///
    /// /// Takes at most two rows.
    /// struct Small(Mutex<Vec<(u32, u32)>>);
    /// impl Store<u32, u32> for Small {
    ///     type Error = std::fmt::Error;
    ///     fn write(&self, key: &u32, value: &u32) -> Result<(), Self::Error> {
    ///         let mut rows = self.0.lock().unwrap();
    ///         if rows.len() == 2 {
    ///             return Err(std::fmt::Error);
    ///         }
    ///         rows.push((*key, *value));
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let store = Small(Mutex::new(Vec::new()));
    /// store.write(&1, &10)?;
    /// store.write(&2, &20)?;
    /// assert!(store.write(&3, &30).is_err());
    /// assert_eq!(*store.0.lock().unwrap(), [(1, 10), (2, 20)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The store's error; the caller keeps the entry (write-back retries it).
    fn write(&self, key: &K, value: &V) -> Result<(), Self::Error>;

    /// Writes a batch, all or nothing as far as the caller can tell: on error every entry of
    /// the batch stays dirty and is written again later, so writes must be idempotent.
    /// The default writes one at a time, in order, and stops at the first error; override
    /// it where the store has a bulk write (a multi-row insert, a pipeline).
    ///
    /// ```
    /// use keel_cache::Store;
    /// use std::sync::Mutex;
    ///
    /// /// Refuses key 0. Implements only `write`, so `write_batch` is the default.
    /// struct Rows(Mutex<Vec<u32>>);
    /// impl Store<u32, u32> for Rows {
    ///     type Error = std::fmt::Error;
    ///     fn write(&self, key: &u32, _value: &u32) -> Result<(), Self::Error> {
    ///         if *key == 0 {
    ///             return Err(std::fmt::Error);
    ///         }
    ///         self.0.lock().unwrap().push(*key);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let store = Rows(Mutex::new(Vec::new()));
    /// store.write_batch(&[(1, 1), (2, 2)])?;
    /// assert!(store.write_batch(&[(3, 3), (0, 0), (4, 4)]).is_err());
    /// assert_eq!(*store.0.lock().unwrap(), [1, 2, 3]); // 3 was written before the error
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The first error.
    fn write_batch(&self, batch: &[(K, V)]) -> Result<(), Self::Error> {
        batch.iter().try_for_each(|(k, v)| self.write(k, v))
    }
}

/// A shared store: keep an `Arc` of it to read it while a cache writes to it, or after
/// [`WriteBack::close`](crate::WriteBack::close) consumed the cache.
///
/// ```
/// use keel_cache::{Cache, Store, WriteThrough};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Default)]
/// struct Log(Mutex<Vec<u32>>);
/// impl Store<u32, u32> for Log {
///     type Error = std::convert::Infallible;
///     fn write(&self, k: &u32, _: &u32) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().push(*k);
///         Ok(())
///     }
/// }
///
/// let log = Arc::new(Log::default());
/// let wt = WriteThrough::new(Cache::new(10)?, log.clone());
/// wt.insert(1, 10)?;
/// drop(wt);
/// assert_eq!(*log.0.lock().unwrap(), [1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<K, V, T: Store<K, V> + ?Sized> Store<K, V> for std::sync::Arc<T> {
    type Error = T::Error;

    fn write(&self, key: &K, value: &V) -> Result<(), Self::Error> {
        (**self).write(key, value)
    }

    fn write_batch(&self, batch: &[(K, V)]) -> Result<(), Self::Error> {
        (**self).write_batch(batch)
    }
}

/// A [`Store`] reached asynchronously (a database client, a remote service), for a
/// [`WriteBack`](crate::WriteBack) built with
/// [`build_async`](crate::WriteBackBuilder::build_async), whose flusher is a tokio task.
///
/// The flusher may be cancelled at any await of `write_batch` (the runtime shuts down):
/// the batch then stays dirty and is written again later, so writes must be idempotent.
///
/// ```
/// use keel_cache::AsyncStore;
/// use std::sync::Mutex;
///
/// #[derive(Default)]
/// struct Remote(Mutex<Vec<(u32, u32)>>);
/// impl AsyncStore<u32, u32> for Remote {
///     type Error = std::convert::Infallible;
///     async fn write_batch(&self, batch: &[(u32, u32)]) -> Result<(), Self::Error> {
///         tokio::task::yield_now().await; // a network round trip, say
///         self.0.lock().unwrap().extend_from_slice(batch);
///         Ok(())
///     }
/// }
///
/// # let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// # rt.block_on(async {
/// let remote = Remote::default();
/// remote.write_batch(&[(1, 10), (2, 20)]).await?;
/// assert_eq!(*remote.0.lock().unwrap(), [(1, 10), (2, 20)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "tokio")]
pub trait AsyncStore<K, V>: Send + Sync {
    /// Why a write failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Writes a batch, all or nothing as far as the caller can tell: on error (or if the
    /// future is dropped before it completes) every entry of the batch stays dirty and is
    /// written again later.
    ///
    /// ```
    /// use keel_cache::AsyncStore;
    /// use std::sync::Mutex;
    ///
    /// /// Refuses batches over two rows.
    /// struct Small(Mutex<usize>);
    /// impl AsyncStore<u8, u8> for Small {
    ///     type Error = std::fmt::Error;
    ///     async fn write_batch(&self, batch: &[(u8, u8)]) -> Result<(), Self::Error> {
    ///         if batch.len() > 2 {
    ///             return Err(std::fmt::Error);
    ///         }
    ///         *self.0.lock().unwrap() += batch.len();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// # rt.block_on(async {
    /// let store = Small(Mutex::new(0));
    /// store.write_batch(&[(1, 1), (2, 2)]).await?;
    /// assert!(store.write_batch(&[(1, 1), (2, 2), (3, 3)]).await.is_err());
    /// assert_eq!(*store.0.lock().unwrap(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The store's error; the batch stays dirty.
    fn write_batch(
        &self,
        batch: &[(K, V)],
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send;
}

/// A shared async store, as for [`Store`].
///
/// ```
/// use keel_cache::AsyncStore;
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Default)]
/// struct Remote(Mutex<usize>);
/// impl AsyncStore<u8, u8> for Remote {
///     type Error = std::convert::Infallible;
///     async fn write_batch(&self, batch: &[(u8, u8)]) -> Result<(), Self::Error> {
///         *self.0.lock().unwrap() += batch.len();
///         Ok(())
///     }
/// }
///
/// # let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// # rt.block_on(async {
/// let remote = Arc::new(Remote::default());
/// remote.write_batch(&[(1, 1)]).await?;
/// assert_eq!(*remote.0.lock().unwrap(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "tokio")]
impl<K, V, T: AsyncStore<K, V> + ?Sized> AsyncStore<K, V> for std::sync::Arc<T> {
    type Error = T::Error;

    fn write_batch(
        &self,
        batch: &[(K, V)],
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        (**self).write_batch(batch)
    }
}
