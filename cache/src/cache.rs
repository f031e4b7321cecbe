//! `Cache`: the concurrent cache, sharded, with an adaptive S3-FIFO and TinyLFU admission,
//! expiry and stats.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use keel_core::{Clock, SystemClock};

use crate::lock::{ShardLock, ShardLocks};
use crate::shard::{Lookup, MAX_SHARD_ENTRIES, NEVER, Shard, ShardConfig};
use crate::{BuildError, CacheStats, DefaultHashBuilder, RemovalCause};

pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;
pub(crate) type Listener<K, V> = Arc<dyn Fn(K, V, RemovalCause) + Send + Sync>;
/// One lock per shard.
type Shards<K, V> = ShardLocks<Shard<K, V>>;

/// The largest capacity (entry count, or total weight with a weigher) any cache accepts.
///
/// Without a weigher a shard also holds at most 2^28 − 2 entries (node indexes take 28
/// bits), so a cache of `n` shards holds at most `n × (2^28 − 2)` entries; a larger
/// capacity is refused with [`BuildError::CapacityTooLarge`] as well.
///
/// ```
/// use keel_cache::{BuildError, Cache, MAX_CACHE_CAPACITY};
///
/// let err = Cache::<u64, Vec<u8>>::builder()
///     .max_capacity(MAX_CACHE_CAPACITY + 1)
///     .weigher(|_k, v| v.len() as u32)
///     .build()
///     .unwrap_err();
/// assert_eq!(
///     err,
///     BuildError::CapacityTooLarge { requested: MAX_CACHE_CAPACITY + 1, max: MAX_CACHE_CAPACITY }
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_CACHE_CAPACITY: u64 = 1 << 40;

/// The most shards a cache can be built with (each costs a lock and a policy).
const MAX_SHARDS: usize = 1 << 16;

/// A concurrent cache (`&self`, `Send + Sync`) with a scan-resistant, adaptive policy
/// (S3-FIFO whose small queue adapts to recency, with TinyLFU admission, see the crate docs), by entry count or by weight, with optional
/// time-to-live, time-to-idle and per-entry expiry.
///
/// Build one with [`Cache::builder`]. Values are returned by clone: store `Arc<T>` for large
/// values.
///
/// # Example
///
/// ```
/// use keel_cache::Cache;
///
/// let cache: Cache<u64, String> = Cache::builder()
///     .max_capacity(10_000)
///     .record_stats()
///     .build()?;
/// cache.insert(1, "one".to_string());
/// assert_eq!(cache.get(&1).as_deref(), Some("one"));
/// assert_eq!(cache.get(&2), None);
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Cache<K, V, S = DefaultHashBuilder> {
    shards: Shards<K, V>,
    shift: u32,
    hasher: S,
    pub(crate) clock: Arc<dyn Clock>,
    ttl: Option<u64>,
    expiry: bool,
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    /// Heaviest entry a shard can take.
    max_weight: u64,
    capacity: u64,
    pub(crate) load_stats: crate::stats::LoadCounters,
    pub(crate) flights: crate::loader::Flights<K, V>,
    record_stats: bool,
    hits: crate::striped::Striped,
    misses: crate::striped::Striped,
    #[cfg(feature = "metrics")]
    emitter: crate::emit::Emitter,
}

/// Configures and builds a [`Cache`]. See [`Cache::builder`].
///
/// Every setting but [`max_capacity`](CacheBuilder::max_capacity) is optional;
/// [`build`](CacheBuilder::build) checks them.
///
/// ```
/// use keel_cache::{Cache, RemovalCause};
/// use keel_core::ManualClock;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let evicted = Arc::new(AtomicU64::new(0));
/// let counter = evicted.clone();
/// let clock = ManualClock::new();
/// let cache = Cache::builder()
///     .max_capacity(1 << 20) // total bytes, with the weigher below
///     .weigher(|_key: &u64, value: &Vec<u8>| value.len() as u32)
///     .shards(8)
///     .time_to_live(Duration::from_secs(300))
///     .time_to_idle(Duration::from_secs(60))
///     .clock(clock.clone())
///     .eviction_listener(move |_k, _v, cause| {
///         if cause == RemovalCause::Expired {
///             counter.fetch_add(1, Ordering::Relaxed);
///         }
///     })
///     .record_stats()
///     .build()?;
/// cache.insert(1, vec![0; 1_000]);
/// assert_eq!(cache.weighted_size(), 1_000);
/// clock.advance(Duration::from_secs(60)); // idle for a minute
/// assert_eq!(cache.get(&1), None);
/// cache.purge_expired();
/// assert_eq!(evicted.load(Ordering::Relaxed), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CacheBuilder<K, V, S = DefaultHashBuilder> {
    capacity: u64,
    shards: Option<usize>,
    hasher: S,
    clock: Arc<dyn Clock>,
    ttl: Option<Duration>,
    tti: Option<Duration>,
    per_entry: bool,
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    record_stats: bool,
    #[cfg(feature = "metrics")]
    name: String,
}

impl<K: Hash + Eq, V: Clone> Cache<K, V> {
    /// A builder with no capacity set yet (building it fails until
    /// [`max_capacity`](CacheBuilder::max_capacity) is given).
    ///
    /// ```
    /// use keel_cache::{BuildError, Cache};
    ///
    /// let builder = Cache::<&str, u32>::builder();
    /// let cache = builder.max_capacity(100).build()?;
    /// assert_eq!(cache.capacity(), 100);
    /// let err = Cache::<&str, u32>::builder().build().unwrap_err();
    /// assert_eq!(err, BuildError::ZeroCapacity);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder {
            capacity: 0,
            shards: None,
            hasher: DefaultHashBuilder::random(),
            clock: Arc::new(SystemClock),
            ttl: None,
            tti: None,
            per_entry: false,
            weigher: None,
            listener: None,
            record_stats: false,
            #[cfg(feature = "metrics")]
            name: "default".to_owned(),
        }
    }

    /// A cache of at most `capacity` entries with default settings.
    ///
    /// # Errors
    ///
    /// As [`CacheBuilder::build`].
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache = Cache::new(100)?;
    /// cache.insert("k", 1);
    /// assert_eq!(cache.get("k"), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(capacity: u64) -> Result<Self, BuildError> {
        Self::builder().max_capacity(capacity).build()
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// The maximum number of entries, or the maximum total weight with a
    /// [`weigher`](CacheBuilder::weigher). Required.
    ///
    /// The cache evicts before an insert returns, so it never holds more than this.
    ///
    /// ```
    /// use keel_cache::Cache;
    ///
    /// let cache = Cache::builder().max_capacity(2).build()?;
    /// for k in 0..10 {
    ///     cache.insert(k, k * 10);
    /// }
    /// assert_eq!(cache.capacity(), 2);
    /// assert_eq!(cache.entry_count(), 2); // 8 of the 10 were evicted
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// The number of shards, a power of two. By default 16 per CPU (so threads seldom meet
    /// in one shard), but at least 256 units of capacity per shard, since each shard runs
    /// its own policy and tiny shards choose badly; and under 1,024 units, one shard rather
    /// than two (the hash splits a working set near the capacity unevenly, and the fuller
    /// shard misses).
    ///
    /// Each shard gets `capacity / shards` of the capacity, so with a weigher the shard count
    /// also bounds the heaviest entry (see [`InsertError::TooHeavy`]). With a weigher the
    /// default is therefore one shard per CPU; still, a machine with more CPUs gets more
    /// shards and refuses entries a smaller machine takes. Set the shard count when entries
    /// may be heavy.
    ///
    /// ```
    /// use keel_cache::{BuildError, Cache, InsertError};
    ///
    /// let cache = Cache::builder()
    ///     .max_capacity(1_000)
    ///     .shards(4) // 250 of weight each
    ///     .weigher(|_k: &u32, v: &Vec<u8>| v.len() as u32)
    ///     .build()?;
    /// assert_eq!(
    ///     cache.try_insert(1, vec![0; 251]),
    ///     Err(InsertError::TooHeavy { weight: 251, max: 250 })
    /// );
    /// let err = Cache::<u32, u32>::builder().max_capacity(1_000).shards(3).build().unwrap_err();
    /// assert_eq!(err, BuildError::BadShards(3)); // not a power of two
    ///
    /// // By default a capacity under 1,024 is one shard, so it holds that many keys.
    /// let small = Cache::builder().max_capacity(1_000).build()?;
    /// for k in 0..1_000u32 {
    ///     small.insert(k, ());
    /// }
    /// assert_eq!(small.entry_count(), 1_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Entries expire this long after they were written. Reads do not extend it; a new
    /// insert of the key starts it again.
    ///
    /// ```
    /// use keel_cache::Cache;
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder()
    ///     .max_capacity(100)
    ///     .time_to_live(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// cache.insert("token", 1);
    /// clock.advance(Duration::from_secs(59));
    /// assert_eq!(cache.get("token"), Some(1)); // this read does not extend the life
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(cache.get("token"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Entries expire when not read or written for this long. With a time-to-live as well,
    /// an entry read often still expires at its time-to-live.
    ///
    /// ```
    /// use keel_cache::Cache;
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder()
    ///     .max_capacity(100)
    ///     .time_to_idle(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// cache.insert("session", 1);
    /// clock.advance(Duration::from_secs(40));
    /// assert_eq!(cache.get("session"), Some(1)); // read: idle for 60s from now
    /// clock.advance(Duration::from_secs(40));
    /// assert_eq!(cache.get("session"), Some(1)); // 80s old, but read 40s ago
    /// clock.advance(Duration::from_secs(60));
    /// assert_eq!(cache.get("session"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Keeps per-entry deadlines so [`Cache::insert_with_ttl`] can be used without a
    /// cache-wide time-to-live. Implied by `time_to_live` and `time_to_idle`.
    ///
    /// Entries inserted with [`Cache::insert`] then never expire. The deadlines cost 8 bytes
    /// per entry.
    ///
    /// ```
    /// use keel_cache::Cache;
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder()
    ///     .max_capacity(100)
    ///     .per_entry_expiry()
    ///     .clock(clock.clone())
    ///     .build()?;
    /// cache.insert("config", 1);
    /// cache.insert_with_ttl("otp", 2, Duration::from_secs(30))?;
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(cache.get("config"), Some(1));
    /// assert_eq!(cache.get("otp"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn per_entry_expiry(mut self) -> Self {
        self.per_entry = true;
        self
    }

    /// The clock expiry and load times are read from (default [`SystemClock`]). Tests pass a
    /// [`ManualClock`](keel_core::ManualClock) to move time by hand.
    ///
    /// ```
    /// use keel_cache::Cache;
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder().max_capacity(100).clock(clock.clone()).build()?;
    /// let v = cache.get_or_insert_with(1, || {
    ///     clock.advance(Duration::from_millis(5)); // a load that takes 5 ms
    ///     "loaded"
    /// });
    /// assert_eq!(v, "loaded");
    /// assert_eq!(cache.stats().total_load_time, Duration::from_millis(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Measures capacity in weight: the sum of `weigher(key, value)` stays within
    /// [`max_capacity`](CacheBuilder::max_capacity). A weight of 0 is refused at insert
    /// (see [`Cache::try_insert`]).
    ///
    /// ```
    /// use keel_cache::Cache;
    ///
    /// let cache = Cache::builder()
    ///     .max_capacity(100) // bytes
    ///     .weigher(|_key: &u32, value: &String| value.len() as u32)
    ///     .build()?;
    /// cache.insert(1, "a".repeat(40));
    /// cache.insert(2, "b".repeat(40));
    /// assert_eq!((cache.entry_count(), cache.weighted_size()), (2, 80));
    /// cache.insert(3, "c".repeat(40)); // 120 > 100: one entry is evicted
    /// assert_eq!((cache.entry_count(), cache.weighted_size()), (2, 80));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Called after an entry leaves the cache, with the cause, outside the shard lock (on
    /// the thread whose call removed it), so the listener may use the cache.
    ///
    /// ```
    /// use keel_cache::{Cache, RemovalCause};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let heard = Arc::new(Mutex::new(Vec::new()));
    /// let log = heard.clone();
    /// let cache = Cache::builder()
    ///     .max_capacity(100)
    ///     .eviction_listener(move |k: u32, v: char, cause| {
    ///         log.lock().unwrap().push((k, v, cause));
    ///     })
    ///     .build()?;
    /// cache.insert(1, 'a');
    /// cache.insert(1, 'b');
    /// cache.remove(&1);
    /// assert_eq!(
    ///     *heard.lock().unwrap(),
    ///     [(1, 'a', RemovalCause::Replaced), (1, 'b', RemovalCause::Explicit)]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(K, V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Counts hits and misses for [`Cache::stats`] (off by default, as in Caffeine: the
    /// count is one more write per read, to a per-thread stripe). Evictions and loads are
    /// always counted.
    ///
    /// ```
    /// use keel_cache::Cache;
    ///
    /// let counted = Cache::builder().max_capacity(10).record_stats().build()?;
    /// let silent = Cache::builder().max_capacity(10).build()?;
    /// for cache in [&counted, &silent] {
    ///     cache.insert(1, 1);
    ///     cache.get(&1);
    ///     cache.get(&2);
    /// }
    /// assert_eq!((counted.stats().hits, counted.stats().misses), (1, 1));
    /// assert_eq!((silent.stats().hits, silent.stats().misses), (0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_stats(mut self) -> Self {
        self.record_stats = true;
        self
    }

    /// Names the cache: the `name` label of its metrics (feature `metrics`), so several
    /// caches in one process are told apart. Defaults to `"default"`.
    ///
    /// ```
    /// use keel_cache::Cache;
    ///
    /// let cache = Cache::builder().max_capacity(10).name("sessions").build()?;
    /// cache.insert(1, 1);
    /// assert_eq!(cache.get(&1), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Hashes keys with `hasher` instead of the default, a [`DefaultHashBuilder`] seeded at
    /// random. The hash picks a key's shard and its sketch counters, so with a fixed seed
    /// ([`DefaultHashBuilder::with_seed`]) a replay of the same requests evicts the same
    /// entries in every run.
    ///
    /// ```
    /// use keel_cache::Cache;
    /// use std::collections::hash_map::DefaultHasher;
    /// use std::hash::BuildHasherDefault;
    ///
    /// // SipHash with fixed keys: the same shard for a key in every run.
    /// let cache: Cache<&str, u32, BuildHasherDefault<DefaultHasher>> = Cache::builder()
    ///     .max_capacity(100)
    ///     .hasher(BuildHasherDefault::<DefaultHasher>::default())
    ///     .build()?;
    /// cache.insert("k", 1);
    /// assert_eq!(cache.get("k"), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn hasher<S2>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            capacity: self.capacity,
            shards: self.shards,
            hasher,
            clock: self.clock,
            ttl: self.ttl,
            tti: self.tti,
            per_entry: self.per_entry,
            weigher: self.weigher,
            listener: self.listener,
            record_stats: self.record_stats,
            #[cfg(feature = "metrics")]
            name: self.name,
        }
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// - [`BuildError::ZeroCapacity`]: no capacity, or a capacity of 0;
    /// - [`BuildError::CapacityTooLarge`]: above [`MAX_CACHE_CAPACITY`] or, without a
    ///   weigher, above 2^28 − 2 entries per shard;
    /// - [`BuildError::BadShards`]: a shard count that is 0, not a power of two, above
    ///   65,536 or above the capacity;
    /// - [`BuildError::ZeroDuration`]: a time-to-live or time-to-idle of zero.
    ///
    /// ```
    /// use keel_cache::{BuildError, Cache};
    /// use std::time::Duration;
    ///
    /// let err = Cache::<u64, u64>::builder().build().unwrap_err();
    /// assert_eq!(err.to_string(), "capacity must be > 0");
    /// let err = Cache::<u64, u64>::builder()
    ///     .max_capacity(10)
    ///     .time_to_live(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err, BuildError::ZeroDuration("time to live"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Cache<K, V, S>, BuildError>
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        if self.capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if self.capacity > MAX_CACHE_CAPACITY {
            return Err(BuildError::CapacityTooLarge {
                requested: self.capacity,
                max: MAX_CACHE_CAPACITY,
            });
        }
        if self.ttl == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("time to live"));
        }
        if self.tti == Some(Duration::ZERO) {
            return Err(BuildError::ZeroDuration("time to idle"));
        }
        let shards = match self.shards {
            Some(n)
                if n == 0 || !n.is_power_of_two() || n > MAX_SHARDS || n as u64 > self.capacity =>
            {
                return Err(BuildError::BadShards(n));
            }
            Some(n) => n,
            None => default_shards(self.capacity, self.weigher.is_some()),
        };
        // A shard indexes its entries in 28 bits. (With a weigher, a shard also evicts
        // beyond that many entries, whatever their weight.)
        let per_shard = self.capacity.div_ceil(shards as u64);
        if self.weigher.is_none() && per_shard > MAX_SHARD_ENTRIES {
            return Err(BuildError::CapacityTooLarge {
                requested: self.capacity,
                max: MAX_SHARD_ENTRIES * shards as u64,
            });
        }
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let expiry = self.ttl.is_some() || self.tti.is_some() || self.per_entry;
        let base = self.capacity / shards as u64;
        let extra = self.capacity % shards as u64;
        let shard_list = (0..shards as u64).map(|s| {
            Shard::new(ShardConfig {
                capacity: base + u64::from(s < extra),
                expiry,
                idle: self.tti.map(nanos),
                weighted: self.weigher.is_some(),
            })
        });
        Ok(Cache {
            shards: ShardLocks::new(shard_list),
            shift: 64 - shards.trailing_zeros(),
            hasher: self.hasher,
            clock: self.clock,
            ttl: self.ttl.map(nanos),
            expiry,
            weigher: self.weigher,
            listener: self.listener,
            max_weight: base.min(u64::from(u32::MAX)),
            capacity: self.capacity,
            load_stats: Default::default(),
            flights: Default::default(),
            record_stats: self.record_stats,
            hits: crate::striped::Striped::new(),
            misses: crate::striped::Striped::new(),
            #[cfg(feature = "metrics")]
            emitter: crate::emit::Emitter::new(&self.name),
        })
    }
}

/// 16 shards per CPU: measured with 2 threads on Zipf keys, a 90/10 get/insert mix took
/// 34.5 ns per operation with 8 shards, 30.9 with 16, 29.1 with 32 (fewer readers meet a
/// writer in its shard); no trace row moved by more than 0.1 point beyond run-to-run noise.
/// With a weigher, one per CPU: there each shard's share of the capacity is also the
/// heaviest entry it takes, so more shards would refuse heavier entries.
fn default_shards(capacity: u64, weighted: bool) -> usize {
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
    let per_cpu = if weighted { 1 } else { 16 };
    let by_cpu = (cpus * per_cpu).next_power_of_two();
    // Clamped first, so the cast and the shift fit a 32-bit `usize` too.
    let by_size = (capacity / 256).clamp(1, MAX_SHARDS as u64) as usize;
    // Largest power of two not above `by_size`, and one shard rather than two: two shards
    // of 256-511 cost a working set near the capacity the split (each shard's half of it
    // varies; the 1,000-key shifting set at 1,000 entries missed 0.0689 in two, 0.0619 in
    // one) for little concurrency, while four or more of that size measured no worse than
    // fewer (arc-oltp at 1,868 entries is better in four than in one or two).
    let by_size = if by_size < 4 {
        1
    } else {
        1usize << by_size.ilog2()
    };
    by_cpu.min(by_size)
}

/// Why [`Cache::try_insert`] did not store an entry.
///
/// ```
/// use keel_cache::{Cache, InsertError};
///
/// let cache = Cache::builder()
///     .max_capacity(100)
///     .shards(1)
///     .weigher(|_k: &u8, v: &Vec<u8>| v.len() as u32)
///     .build()?;
/// let err = cache.try_insert(1, vec![0; 101]).unwrap_err();
/// assert_eq!(err, InsertError::TooHeavy { weight: 101, max: 100 });
/// assert_eq!(err.to_string(), "entry weight 101 is above the per-shard maximum 100");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InsertError {
    /// The weigher returned 0: a weightless entry would let the cache grow without bound.
    ZeroWeight,
    /// The entry weighs more than one shard can hold.
    TooHeavy {
        /// The entry's weight.
        weight: u32,
        /// The heaviest entry this cache takes.
        max: u64,
    },
}

impl fmt::Display for InsertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::ZeroWeight => f.write_str("the weigher returned 0; weights must be > 0"),
            InsertError::TooHeavy { weight, max } => {
                write!(
                    f,
                    "entry weight {weight} is above the per-shard maximum {max}"
                )
            }
        }
    }
}

impl std::error::Error for InsertError {}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    /// The hash the cache places `key` by (write-through stripes its key locks by it).
    pub(crate) fn hash_key<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn shard_of(&self, hash: u64) -> ShardLock<'_, Shard<K, V>> {
        // High bits pick the shard; hashbrown uses the low bits and the top seven, which
        // differ in practice only for one shard, where the shift makes the index 0.
        let idx = if self.shift == 64 {
            0
        } else {
            (hash.rotate_left(20) >> self.shift) as usize
        };
        self.shards.get(idx)
    }

    #[inline]
    fn now(&self) -> u64 {
        if self.expiry {
            self.clock.now().as_nanos()
        } else {
            0
        }
    }

    /// The value of `key`, if cached and not expired. Counts a hit or a miss (with
    /// [`record_stats`](CacheBuilder::record_stats)).
    ///
    /// Takes only the shard's read lock and bumps a per-entry counter.
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache: Cache<String, u32> = Cache::new(10)?;
    /// cache.insert("a".to_string(), 1);
    /// assert_eq!(cache.get("a"), Some(1)); // look up by `&str` for `String` keys
    /// assert_eq!(cache.get("b"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let now = self.now();
        let shard = self.shard_of(hash).read();
        match shard.get(hash, key, now) {
            Lookup::Hit(v) => {
                #[cfg(feature = "metrics")]
                self.emitter.hit();
                if self.record_stats {
                    self.hits.add(1);
                }
                Some(v.clone())
            }
            Lookup::Miss => {
                #[cfg(feature = "metrics")]
                self.emitter.miss();
                if self.record_stats {
                    self.misses.add(1);
                }
                None
            }
        }
    }

    /// The value of `key` without counting a hit or miss or affecting the policy (nor
    /// extending a time-to-idle).
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache = Cache::builder().max_capacity(10).record_stats().build()?;
    /// cache.insert(1, "one");
    /// assert_eq!(cache.peek(&1), Some("one"));
    /// assert_eq!(cache.peek(&2), None);
    /// assert_eq!((cache.stats().hits, cache.stats().misses), (0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let now = self.now();
        self.shard_of(hash).read().peek(hash, key, now).cloned()
    }

    /// Whether `key` is cached and not expired (no hit or miss counted).
    ///
    /// ```
    /// use keel_cache::Cache;
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder()
    ///     .max_capacity(10)
    ///     .time_to_live(Duration::from_secs(1))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// cache.insert("a", ());
    /// assert!(cache.contains_key("a"));
    /// assert!(!cache.contains_key("b"));
    /// clock.advance(Duration::from_secs(1));
    /// assert!(!cache.contains_key("a")); // expired, even if not yet reclaimed
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let now = self.now();
        self.shard_of(hash).read().peek(hash, key, now).is_some()
    }

    /// Inserts or replaces `key`. An entry the weigher refuses is not stored (see
    /// [`try_insert`](Cache::try_insert)).
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache = Cache::new(10)?;
    /// cache.insert("k", 1);
    /// cache.insert("k", 2); // replaces
    /// assert_eq!(cache.get("k"), Some(2));
    /// assert_eq!(cache.entry_count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, key: K, value: V) {
        let _ = self.try_insert(key, value);
    }

    /// Inserts or replaces `key`, reporting why an entry was refused.
    ///
    /// # Errors
    ///
    /// With a weigher: [`InsertError::ZeroWeight`] or [`InsertError::TooHeavy`]. The cache
    /// is unchanged then (an older value of `key` stays).
    ///
    /// ```
    /// use keel_cache::{Cache, InsertError};
    ///
    /// let cache = Cache::builder()
    ///     .max_capacity(100)
    ///     .weigher(|_k: &u32, v: &String| v.len() as u32)
    ///     .build()?;
    /// assert_eq!(cache.try_insert(1, String::new()), Err(InsertError::ZeroWeight));
    /// cache.try_insert(2, "ok".to_string())?;
    /// assert_eq!(cache.weighted_size(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_insert(&self, key: K, value: V) -> Result<(), InsertError> {
        let hash = self.hasher.hash_one(&key);
        self.try_insert_hashed(hash, key, value)
    }

    /// [`try_insert`](Cache::try_insert) of a key whose [`hash_key`](Cache::hash_key) the
    /// caller has already computed (write-back and write-through need it first).
    pub(crate) fn try_insert_hashed(&self, hash: u64, key: K, value: V) -> Result<(), InsertError> {
        let deadline = match self.ttl {
            Some(ttl) => self.clock.now().as_nanos().saturating_add(ttl),
            None => NEVER,
        };
        self.insert_at(hash, key, value, deadline)
    }

    /// Inserts `key` expiring `ttl` from now (or at the cache's time-to-live or idle
    /// deadline, whichever comes first). The cache must have been built with expiry
    /// ([`per_entry_expiry`](CacheBuilder::per_entry_expiry), `time_to_live` or
    /// `time_to_idle`); otherwise the entry is stored without a deadline.
    ///
    /// # Errors
    ///
    /// As [`try_insert`](Cache::try_insert).
    ///
    /// ```
    /// use keel_cache::Cache;
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder()
    ///     .max_capacity(100)
    ///     .per_entry_expiry()
    ///     .clock(clock.clone())
    ///     .build()?;
    /// cache.insert_with_ttl("session", 7, Duration::from_secs(30))?;
    /// clock.advance(Duration::from_secs(29));
    /// assert_eq!(cache.get("session"), Some(7));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(cache.get("session"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Result<(), InsertError> {
        let now = self.clock.now().as_nanos();
        let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        let mut deadline = now.saturating_add(ttl);
        if let Some(cache_ttl) = self.ttl {
            deadline = deadline.min(now.saturating_add(cache_ttl));
        }
        let hash = self.hasher.hash_one(&key);
        self.insert_at(hash, key, value, deadline)
    }

    fn insert_at(&self, hash: u64, key: K, value: V, deadline: u64) -> Result<(), InsertError> {
        let weight = match &self.weigher {
            Some(w) => {
                let weight = w(&key, &value);
                if weight == 0 {
                    return Err(InsertError::ZeroWeight);
                }
                if u64::from(weight) > self.max_weight {
                    return Err(InsertError::TooHeavy {
                        weight,
                        max: self.max_weight,
                    });
                }
                weight
            }
            None => 1,
        };
        debug_assert_eq!(hash, self.hasher.hash_one(&key));
        let now = self.now();
        let hash_of = |k: &K| self.hasher.hash_one(k);
        let mut removed = Removed::new(self.listener.is_some());
        {
            let mut shard = self.shard_of(hash).write();
            #[cfg(feature = "metrics")]
            let before = shard.weight();
            shard.insert(
                hash,
                key,
                value,
                weight,
                deadline,
                now,
                &hash_of,
                &mut |k, v, c| removed.push(k, v, c),
            );
            #[cfg(feature = "metrics")]
            removed.resized(before, shard.weight());
        }
        self.notify(removed);
        Ok(())
    }

    /// Removes `key`, returning its value if it was cached and not expired.
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache = Cache::new(10)?;
    /// cache.insert(1, 'a');
    /// assert_eq!(cache.remove(&1), Some('a'));
    /// assert_eq!(cache.get(&1), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let now = self.now();
        let hash_of = |k: &K| self.hasher.hash_one(k);
        let mut removed = Removed::new(self.listener.is_some());
        let value = {
            let mut shard = self.shard_of(hash).write();
            #[cfg(feature = "metrics")]
            let before = shard.weight();
            let value = shard.remove(hash, key, now, &hash_of, &mut |k, v, c| {
                removed.push(k, v, c)
            });
            #[cfg(feature = "metrics")]
            removed.resized(before, shard.weight());
            value
        };
        self.notify(removed);
        value
    }

    /// Removes every entry (the listener hears each as [`RemovalCause::Explicit`]).
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache = Cache::new(10)?;
    /// cache.insert(1, 1);
    /// cache.insert(2, 2);
    /// cache.clear();
    /// assert_eq!(cache.entry_count(), 0);
    /// assert_eq!(cache.get(&1), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut removed = Removed::new(self.listener.is_some());
            let mut shard = shard.write();
            #[cfg(feature = "metrics")]
            let before = shard.weight();
            shard.clear(&mut |k, v, c| removed.push(k, v, c));
            #[cfg(feature = "metrics")]
            removed.resized(before, shard.weight());
            drop(shard);
            self.notify(removed);
        }
    }

    /// Removes every expired entry now. Expired entries are also reclaimed a few at a time
    /// on every write, and are never returned, so calling this is optional. The listener
    /// hears each as [`RemovalCause::Expired`]. Does nothing on a cache without expiry.
    ///
    /// ```
    /// use keel_cache::Cache;
    /// use keel_core::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let cache = Cache::builder()
    ///     .max_capacity(10)
    ///     .time_to_live(Duration::from_secs(1))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// cache.insert(1, 1);
    /// cache.insert(2, 2);
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(cache.entry_count(), 2); // expired, still held
    /// cache.purge_expired();
    /// assert_eq!(cache.entry_count(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn purge_expired(&self) {
        if !self.expiry {
            return;
        }
        let now = self.now();
        let hash_of = |k: &K| self.hasher.hash_one(k);
        for shard in self.shards.iter() {
            let mut removed = Removed::new(self.listener.is_some());
            let mut shard = shard.write();
            #[cfg(feature = "metrics")]
            let before = shard.weight();
            shard.purge_expired(now, &hash_of, &mut |k, v, c| removed.push(k, v, c));
            #[cfg(feature = "metrics")]
            removed.resized(before, shard.weight());
            drop(shard);
            self.notify(removed);
        }
    }

    /// The number of entries held, including expired ones not yet reclaimed (see
    /// [`purge_expired`](Cache::purge_expired)). Read shard by shard: under concurrent
    /// writes it is a close estimate, not a snapshot.
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache = Cache::new(10)?;
    /// assert_eq!(cache.entry_count(), 0);
    /// cache.insert('a', 1);
    /// cache.insert('b', 2);
    /// assert_eq!(cache.entry_count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn entry_count(&self) -> u64 {
        self.shards.iter().map(|s| s.read().len() as u64).sum()
    }

    /// The total weight held (the entry count without a weigher).
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache = Cache::builder()
    ///     .max_capacity(1_000)
    ///     .weigher(|_k: &u8, v: &Vec<u8>| v.len() as u32)
    ///     .build()?;
    /// cache.insert(1, vec![0; 100]);
    /// cache.insert(2, vec![0; 20]);
    /// assert_eq!(cache.weighted_size(), 120);
    /// cache.insert(1, vec![0; 10]); // a replaced value's weight is updated
    /// assert_eq!(cache.weighted_size(), 30);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn weighted_size(&self) -> u64 {
        self.shards.iter().map(|s| s.read().weight()).sum()
    }

    /// The configured capacity. [`weighted_size`](Cache::weighted_size) never exceeds it.
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache = Cache::new(3)?;
    /// for k in 0..100 {
    ///     cache.insert(k, k);
    /// }
    /// assert_eq!(cache.capacity(), 3);
    /// assert!(cache.weighted_size() <= cache.capacity());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Hit, miss, eviction and load counters since the cache was built (hits and misses
    /// only with [`record_stats`](CacheBuilder::record_stats)).
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache = Cache::builder().max_capacity(2).record_stats().build()?;
    /// for k in 0..5 {
    ///     cache.get_or_insert_with(k, || k * 10); // a miss, then a load
    /// }
    /// cache.get(&4);
    /// let stats = cache.stats();
    /// assert_eq!((stats.hits, stats.misses), (1, 5));
    /// assert_eq!(stats.load_successes, 5);
    /// assert_eq!(stats.evictions, 3); // 5 loaded into room for 2
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> CacheStats {
        let mut stats = self.load_stats.snapshot();
        stats.hits = self.hits.sum();
        stats.misses = self.misses.sum();
        for shard in self.shards.iter() {
            let s = shard.read();
            stats.evictions += s.evictions;
        }
        stats
    }

    /// Calls `f` with every unexpired entry, one shard at a time (a snapshot per shard, not
    /// of the whole cache), in no particular order.
    ///
    /// `f` gets references and runs under the shard's read lock: it must not write to the
    /// cache (an insert or remove of a key in the same shard would deadlock). Collect what
    /// to change and apply it after.
    ///
    /// ```
    /// # use keel_cache::Cache;
    /// let cache = Cache::new(10)?;
    /// for k in 1..=4 {
    ///     cache.insert(k, k * 10);
    /// }
    /// let mut sum = 0;
    /// cache.for_each(|_k, v| sum += v);
    /// assert_eq!(sum, 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        let now = self.now();
        for shard in self.shards.iter() {
            shard.read().for_each(now, &mut f);
        }
    }

    fn notify(&self, removed: Removed<K, V>) {
        #[cfg(feature = "metrics")]
        self.emitter.wrote(
            removed.size,
            removed.expired,
            removed.weight_before,
            removed.weight_after,
        );
        if let Some(listener) = &self.listener {
            for (k, v, cause) in removed.items {
                listener(k, v, cause);
            }
        }
    }
}

/// Entries that left a shard, held until its lock is released so the listener runs
/// outside it (and values drop outside it).
struct Removed<K, V> {
    keep: bool,
    items: Vec<(K, V, RemovalCause)>,
    /// Evictions by cause and the shard's weight around the write, for the metrics.
    #[cfg(feature = "metrics")]
    size: u64,
    #[cfg(feature = "metrics")]
    expired: u64,
    #[cfg(feature = "metrics")]
    weight_before: u64,
    #[cfg(feature = "metrics")]
    weight_after: u64,
}

impl<K, V> Removed<K, V> {
    fn new(keep: bool) -> Self {
        Removed {
            keep,
            items: Vec::new(),
            #[cfg(feature = "metrics")]
            size: 0,
            #[cfg(feature = "metrics")]
            expired: 0,
            #[cfg(feature = "metrics")]
            weight_before: 0,
            #[cfg(feature = "metrics")]
            weight_after: 0,
        }
    }

    #[cfg(feature = "metrics")]
    fn resized(&mut self, before: u64, after: u64) {
        self.weight_before = before;
        self.weight_after = after;
    }

    fn push(&mut self, k: K, v: V, cause: RemovalCause) {
        #[cfg(feature = "metrics")]
        match cause {
            RemovalCause::Size => self.size += 1,
            RemovalCause::Expired => self.expired += 1,
            _ => {}
        }
        if self.keep {
            self.items.push((k, v, cause));
        }
    }
}

impl<K, V, S> fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl<K, V, S> fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards)
            .field("ttl", &self.ttl)
            .field("tti", &self.tti)
            .finish_non_exhaustive()
    }
}
