//! Counters a cache keeps about itself.

use std::time::Duration;

use keel_core::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a [`Cache`](crate::Cache)'s counters. See [`Cache::stats`](crate::Cache::stats).
///
/// ```
/// use keel_cache::Cache;
///
/// let cache = Cache::builder().max_capacity(10).record_stats().build()?;
/// cache.insert(1, 1);
/// cache.get(&1);
/// cache.get(&2);
/// let stats = cache.stats();
/// assert_eq!(stats.hit_ratio(), 0.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups that found an unexpired entry.
    pub hits: u64,
    /// Lookups that found nothing (or only an expired entry).
    pub misses: u64,
    /// Entries the policy evicted to stay within capacity (expiry is not counted).
    pub evictions: u64,
    /// Loader calls that returned a value.
    pub load_successes: u64,
    /// Loader calls that returned an error (a loader that panics or is cancelled is not
    /// counted).
    pub load_failures: u64,
    /// Time spent in loaders, by the cache's clock.
    pub total_load_time: Duration,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 0 before any lookup (and always 0 without
    /// [`record_stats`](crate::CacheBuilder::record_stats)).
    ///
    /// ```
    /// use keel_cache::Cache;
    ///
    /// let cache = Cache::builder().max_capacity(10).record_stats().build()?;
    /// assert_eq!(cache.stats().hit_ratio(), 0.0);
    /// cache.insert("k", 1);
    /// for _ in 0..3 {
    ///     cache.get("k");
    /// }
    /// cache.get("missing");
    /// assert_eq!(cache.stats().hit_ratio(), 0.75);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// Load counters: touched only on loads, which are rare next to reads.
#[derive(Debug, Default)]
pub(crate) struct LoadCounters {
    successes: AtomicU64,
    failures: AtomicU64,
    nanos: AtomicU64,
}

impl LoadCounters {
    pub(crate) fn record(&self, ok: bool, took: Duration) {
        let counter = if ok { &self.successes } else { &self.failures };
        counter.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            load_successes: self.successes.load(Ordering::Relaxed),
            load_failures: self.failures.load(Ordering::Relaxed),
            total_load_time: Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
            ..CacheStats::default()
        }
    }
}
