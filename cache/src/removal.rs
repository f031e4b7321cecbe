//! Why an entry left the cache.

/// Why an entry left a [`Cache`](crate::Cache), as told to the eviction listener.
///
/// ```
/// use keel_cache::RemovalCause;
/// assert!(RemovalCause::Size.was_evicted());
/// assert!(!RemovalCause::Explicit.was_evicted());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted by the policy to stay within capacity.
    Size,
    /// Its time-to-live, time-to-idle or per-entry expiry passed.
    Expired,
    /// Removed by [`Cache::remove`](crate::Cache::remove) or
    /// [`Cache::clear`](crate::Cache::clear).
    Explicit,
    /// Its value was replaced by an insert of the same key.
    Replaced,
}

impl RemovalCause {
    /// Whether the cache removed the entry on its own (size or expiry), as opposed to a
    /// remove, clear or replacing insert by the caller.
    ///
    /// ```
    /// use keel_cache::{Cache, RemovalCause};
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// let evicted = Arc::new(AtomicU64::new(0));
    /// let count = evicted.clone();
    /// let cache = Cache::builder()
    ///     .max_capacity(1)
    ///     .eviction_listener(move |_k: u32, _v: u32, cause: RemovalCause| {
    ///         if cause.was_evicted() {
    ///             count.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build()?;
    /// cache.insert(1, 1);
    /// cache.insert(1, 2); // Replaced: not an eviction
    /// cache.insert(2, 2); // Size: the cache holds one entry
    /// assert_eq!(evicted.load(Ordering::Relaxed), 1);
    /// assert!(RemovalCause::Expired.was_evicted());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn was_evicted(self) -> bool {
        matches!(self, RemovalCause::Size | RemovalCause::Expired)
    }
}
