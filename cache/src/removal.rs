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
    /// Whether the cache removed the entry on its own (size or expiry).
    pub fn was_evicted(self) -> bool {
        matches!(self, RemovalCause::Size | RemovalCause::Expired)
    }
}
