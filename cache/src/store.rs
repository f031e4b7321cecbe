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
    /// # Errors
    ///
    /// The store's error; the caller keeps the entry (write-back retries it).
    fn write(&self, key: &K, value: &V) -> Result<(), Self::Error>;

    /// Writes a batch, all or nothing as far as the caller can tell: on error every entry of
    /// the batch stays dirty and is written again later, so writes must be idempotent.
    /// The default writes one at a time.
    ///
    /// # Errors
    ///
    /// The first error.
    fn write_batch(&self, batch: &[(K, V)]) -> Result<(), Self::Error> {
        batch.iter().try_for_each(|(k, v)| self.write(k, v))
    }
}
