//! `KeyedLimiter`: one limiter state per key, with bounded memory and no background task.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use keel_core::{Clock, Instant, SystemClock};
use parking_lot::Mutex;

use crate::quota_cell::QuotaCell;
use crate::{Algorithm, Decision, Gcra, InsufficientCapacity, Quota};

/// Below this many keys a keyed limiter does not sweep.
const MIN_SWEEP: usize = 1024;

/// One rate limiter per key (IP, user, API token) over a concurrent map, with per-key quota
/// overrides.
///
/// **Bounded memory, no background task.** A key whose state is back to fresh (its bucket
/// full, its windows empty) behaves exactly as a key never seen, so dropping it changes no
/// decision. The limiter drops such keys on its own: when a new key arrives and the map has
/// doubled since the last sweep, the inserting caller sweeps the map once. So without a cap
/// the map holds at most about twice the keys that are not fresh (and at least 1024 before any
/// sweep), and the sweep costs O(1) amortized per new key.
///
/// **Hard cap.** With [`max_keys`](KeyedLimiterBuilder::max_keys) the map never holds more
/// than that many keys (plus at most one per thread inserting at that very moment). At the cap
/// a sweep drops fresh keys first; only if that leaves the map above 7/8 of the cap does it
/// forget keys that are still limiting, which lets those keys start over (counted by
/// [`evicted_live`](KeyedLimiter::evicted_live)). Size the cap above your live key count and
/// that never happens.
///
/// Per-key quota overrides live in their own map, so they survive a key's state being dropped.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
///
/// let limiter = KeyedLimiter::<String, Gcra>::builder(Quota::per_minute(2)?)
///     .max_keys(100_000)
///     .clock(ManualClock::new())
///     .build()?;
/// limiter.set_key_quota("admin".to_string(), Quota::per_minute(1000)?);
///
/// assert!(limiter.check_key("alice").is_allowed());
/// assert!(limiter.check_key("alice").is_allowed());
/// assert!(limiter.check_key("alice").is_denied());
/// assert!(limiter.check_key("bob").is_allowed()); // keys are independent
/// assert!(limiter.check_key_n("admin", 500)?.is_allowed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyedLimiter<K, A: Algorithm = Gcra, C: Clock = SystemClock>
where
    K: Hash + Eq,
{
    map: DashMap<K, A::State>,
    overrides: DashMap<K, Quota>,
    has_overrides: AtomicBool,
    quota: QuotaCell,
    clock: C,
    max_keys: Option<usize>,
    // Keys in `map`, counted on insert and sweep so the hot path never locks every shard.
    len: AtomicUsize,
    next_sweep: AtomicUsize,
    sweeping: Mutex<()>,
    evicted_fresh: AtomicU64,
    evicted_live: AtomicU64,
    #[cfg(feature = "metrics")]
    emitter: crate::emit::Emitter,
}

/// Configures a [`KeyedLimiter`]; made by [`KeyedLimiter::builder`].
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{KeyedLimiter, KeyedLimiterBuilder, Quota, SlidingLog};
///
/// let builder: KeyedLimiterBuilder<u32, SlidingLog> =
///     KeyedLimiter::builder(Quota::per_minute(5)?).max_keys(10_000);
/// let limiter = builder.clock(ManualClock::new()).build()?;
/// assert_eq!(limiter.check_key(&7).remaining(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyedLimiterBuilder<K, A: Algorithm = Gcra, C: Clock = SystemClock> {
    quota: Quota,
    clock: C,
    max_keys: Option<usize>,
    #[cfg(feature = "metrics")]
    name: String,
    _marker: PhantomData<fn(K) -> A>,
}

/// A [`KeyedLimiterBuilder`] setting that cannot work.
///
/// ```
/// use keel_rate_limit::{Gcra, KeyedLimiter, KeyedLimiterError, Quota};
///
/// let err = KeyedLimiter::<String, Gcra>::builder(Quota::per_second(1)?)
///     .max_keys(0)
///     .build()
///     .unwrap_err();
/// assert_eq!(err, KeyedLimiterError::ZeroMaxKeys);
/// assert_eq!(err.to_string(), "max_keys must be > 0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyedLimiterError {
    /// `max_keys(0)`: a keyed limiter must be able to hold at least one key.
    ZeroMaxKeys,
}

impl fmt::Display for KeyedLimiterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyedLimiterError::ZeroMaxKeys => f.write_str("max_keys must be > 0"),
        }
    }
}

impl std::error::Error for KeyedLimiterError {}

impl<K, A: Algorithm, C: Clock> KeyedLimiterBuilder<K, A, C>
where
    K: Hash + Eq + Send + Sync,
{
    /// A hard cap on the number of keys held (see [`KeyedLimiter`] for what happens there).
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<u64, Gcra>::builder(Quota::per_hour(10)?)
    ///     .max_keys(1_000)
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// for ip in 0..10_000u64 {
    ///     assert!(limiter.check_key(&ip).is_allowed());
    /// }
    /// assert!(limiter.len() <= 1_000);
    /// assert!(KeyedLimiter::<u64, Gcra>::builder(Quota::per_hour(10)?).max_keys(0).build().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys);
        self
    }

    /// Reads time from `clock` instead of the system clock.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{FixedWindow, KeyedLimiter, Quota};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let limiter = KeyedLimiter::<&str, FixedWindow>::builder(Quota::per_minute(1)?)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// assert!(limiter.check_key(&"bob").is_allowed());
    /// assert!(limiter.check_key(&"bob").is_denied());
    /// clock.advance(Duration::from_secs(60)); // the limiter sees the manual time
    /// assert!(limiter.check_key(&"bob").is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedLimiterBuilder<K, A, C2> {
        KeyedLimiterBuilder {
            quota: self.quota,
            clock,
            max_keys: self.max_keys,
            #[cfg(feature = "metrics")]
            name: self.name,
            _marker: PhantomData,
        }
    }

    /// Names the limiter: the `name` label of its `keel_rate_limit_decisions_total`
    /// counters (feature `metrics`). Defaults to `"default"`.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<u64, Gcra>::builder(Quota::per_second(10)?)
    ///     .name("per-ip")
    ///     .build()?;
    /// assert!(limiter.check_key(&1).is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Builds the limiter.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<u64, Gcra>::builder(Quota::per_second(10)?).build()?;
    /// assert!(limiter.is_empty());
    /// assert_eq!(limiter.quota(), Quota::per_second(10)?);
    /// let no_room = KeyedLimiter::<u64, Gcra>::builder(Quota::per_second(10)?).max_keys(0);
    /// assert!(no_room.build().is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`KeyedLimiterError::ZeroMaxKeys`] if `max_keys(0)` was set.
    pub fn build(self) -> Result<KeyedLimiter<K, A, C>, KeyedLimiterError> {
        if self.max_keys == Some(0) {
            return Err(KeyedLimiterError::ZeroMaxKeys);
        }
        let first_sweep = self.max_keys.map_or(MIN_SWEEP, |cap| cap.min(MIN_SWEEP));
        Ok(KeyedLimiter {
            map: DashMap::new(),
            overrides: DashMap::new(),
            has_overrides: AtomicBool::new(false),
            quota: QuotaCell::new(self.quota),
            clock: self.clock,
            max_keys: self.max_keys,
            len: AtomicUsize::new(0),
            next_sweep: AtomicUsize::new(first_sweep),
            sweeping: Mutex::new(()),
            evicted_fresh: AtomicU64::new(0),
            evicted_live: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            emitter: crate::emit::Emitter::new(&self.name),
        })
    }
}

impl<K, A: Algorithm> KeyedLimiter<K, A>
where
    K: Hash + Eq + Send + Sync,
{
    /// A keyed limiter on the system clock with no cap on keys (fresh keys are still dropped).
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    /// use std::net::{IpAddr, Ipv4Addr};
    ///
    /// let per_ip = KeyedLimiter::<IpAddr, Gcra>::new(Quota::per_minute(2)?);
    /// let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    /// assert!(per_ip.check_key(&ip).is_allowed());
    /// assert!(per_ip.check_key(&ip).is_allowed());
    /// assert!(per_ip.check_key(&ip).is_denied());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(quota: Quota) -> KeyedLimiter<K, A> {
        KeyedLimiter {
            map: DashMap::new(),
            overrides: DashMap::new(),
            has_overrides: AtomicBool::new(false),
            quota: QuotaCell::new(quota),
            clock: SystemClock,
            max_keys: None,
            len: AtomicUsize::new(0),
            next_sweep: AtomicUsize::new(MIN_SWEEP),
            sweeping: Mutex::new(()),
            evicted_fresh: AtomicU64::new(0),
            evicted_live: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            emitter: crate::emit::Emitter::new("default"),
        }
    }

    /// A builder, for a cap on keys or another clock.
    ///
    /// ```
    /// use keel_rate_limit::{KeyedLimiter, LeakyBucket, Quota};
    ///
    /// let limiter = KeyedLimiter::<String, LeakyBucket>::builder(Quota::per_second(5)?)
    ///     .max_keys(50_000)
    ///     .build()?;
    /// assert_eq!(limiter.check_key("tenant-1").remaining(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(quota: Quota) -> KeyedLimiterBuilder<K, A> {
        KeyedLimiterBuilder {
            quota,
            clock: SystemClock,
            max_keys: None,
            #[cfg(feature = "metrics")]
            name: "default".to_owned(),
            _marker: PhantomData,
        }
    }
}

impl<K, A: Algorithm, C: Clock> KeyedLimiter<K, A, C>
where
    K: Hash + Eq + Send + Sync,
{
    /// Decides one request for `key`.
    ///
    /// `key` may be a borrowed form of `K` (a `&str` for `String` keys): it is copied into
    /// the map only the first time it is seen.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    /// use std::time::Duration;
    ///
    /// let limiter = KeyedLimiter::<String, Gcra>::builder(Quota::per_second(1)?)
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// assert!(limiter.check_key("alice").is_allowed());
    /// let denied = limiter.check_key("alice");
    /// assert_eq!(denied.retry_after(), Some(Duration::from_secs(1)));
    /// assert!(limiter.check_key("bob").is_allowed()); // another key, its own quota
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_key<Q>(&self, key: &Q) -> Decision
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.check_key_n(key, 1) {
            Ok(decision) => decision,
            // Every quota holds at least one cell, so this arm is never taken.
            Err(_) => {
                let quota = self.quota_for(key);
                Decision::deny(&quota, 0, 0, quota.period_nanos())
            }
        }
    }

    /// Decides `n` cells for `key`, all or nothing.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<String, Gcra>::new(Quota::per_minute(10)?);
    /// assert!(limiter.check_key_n("upload", 8)?.is_allowed());
    /// assert!(limiter.check_key_n("upload", 3)?.is_denied()); // only 2 left: nothing taken
    /// assert_eq!(limiter.check_key_n("upload", 2)?.remaining(), 0);
    /// assert!(limiter.check_key_n("upload", 11).is_err()); // never satisfiable
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` exceeds what the key's quota could ever admit at once.
    pub fn check_key_n<Q>(&self, key: &Q, n: u32) -> Result<Decision, InsufficientCapacity>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let quota = self.quota_for(key);
        let capacity = A::capacity(&quota);
        if n > capacity {
            #[cfg(feature = "metrics")]
            self.emitter.refused();
            return Err(InsufficientCapacity::new(n, capacity));
        }
        let now = self.clock.now();
        if let Some(state) = self.map.get(key) {
            let decision = A::decide(&quota, &state, now, n);
            #[cfg(feature = "metrics")]
            self.emitter.decision(&decision);
            return Ok(decision);
        }
        if self.len.load(Ordering::Relaxed) >= self.next_sweep.load(Ordering::Relaxed) {
            self.sweep(now);
        }
        let decision = match self.map.entry(key.to_owned()) {
            Entry::Occupied(entry) => A::decide(&quota, entry.get(), now, n),
            Entry::Vacant(entry) => {
                let state = entry.insert(A::State::default());
                self.len.fetch_add(1, Ordering::Relaxed);
                A::decide(&quota, &state, now, n)
            }
        };
        #[cfg(feature = "metrics")]
        self.emitter.decision(&decision);
        Ok(decision)
    }

    /// The quota for `key`: its override, or the default.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<String, Gcra>::new(Quota::per_minute(60)?);
    /// limiter.set_key_quota("partner".to_string(), Quota::per_minute(600)?);
    /// assert_eq!(limiter.quota_for("partner"), Quota::per_minute(600)?);
    /// assert_eq!(limiter.quota_for("anyone"), Quota::per_minute(60)?);
    ///
    /// limiter.set_quota(Quota::per_minute(30)?); // the default changes, the override stays
    /// assert_eq!(limiter.quota_for("anyone"), Quota::per_minute(30)?);
    /// assert_eq!(limiter.remove_key_quota("partner"), Some(Quota::per_minute(600)?));
    /// assert_eq!(limiter.quota_for("partner"), limiter.quota());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quota_for<Q>(&self, key: &Q) -> Quota
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.has_overrides.load(Ordering::Acquire)
            && let Some(quota) = self.overrides.get(key)
        {
            return *quota;
        }
        self.quota.load()
    }

    /// The default quota.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<String, Gcra>::new(Quota::per_hour(500)?);
    /// limiter.set_key_quota("vip".to_string(), Quota::per_hour(5_000)?);
    /// assert_eq!(limiter.quota(), Quota::per_hour(500)?); // overrides do not change it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.quota.load()
    }

    /// Replaces the default quota at runtime; keys with an override keep theirs.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<&str, Gcra>::new(Quota::per_minute(1)?);
    /// limiter.set_key_quota("vip", Quota::per_minute(10)?);
    /// limiter.set_quota(Quota::per_minute(3)?);
    /// assert_eq!(limiter.check_key(&"anyone").remaining(), 2); // the new default
    /// assert_eq!(limiter.check_key(&"vip").remaining(), 9); // its override
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_quota(&self, quota: Quota) {
        self.quota.store(quota);
    }

    /// Gives `key` its own quota from the next decision on.
    ///
    /// ```
    /// use keel_rate_limit::{FixedWindow, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<String, FixedWindow>::new(Quota::per_minute(1)?);
    /// limiter.set_key_quota("batch-job".to_string(), Quota::per_minute(100)?);
    /// assert!(limiter.check_key_n("batch-job", 50)?.is_allowed());
    /// assert!(limiter.check_key_n("someone", 50).is_err()); // more than the default holds
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_key_quota(&self, key: K, quota: Quota) {
        self.overrides.insert(key, quota);
        self.has_overrides.store(true, Ordering::Release);
    }

    /// Removes `key`'s override, returning it; the key goes back to the default quota.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<String, Gcra>::new(Quota::per_minute(10)?);
    /// limiter.set_key_quota("trial".to_string(), Quota::per_minute(2)?);
    /// assert_eq!(limiter.remove_key_quota("trial"), Some(Quota::per_minute(2)?));
    /// assert_eq!(limiter.remove_key_quota("trial"), None); // already gone
    /// assert_eq!(limiter.check_key("trial").remaining(), 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove_key_quota<Q>(&self, key: &Q) -> Option<Quota>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.overrides.remove(key).map(|(_, quota)| quota)
    }

    /// The number of keys held now (locks each shard briefly).
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<u32, Gcra>::new(Quota::per_hour(3)?);
    /// for user in [1, 2, 3, 2, 1] {
    ///     assert!(limiter.check_key(&user).is_allowed());
    /// }
    /// assert_eq!(limiter.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    ///
    /// ```
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<u32, Gcra>::new(Quota::per_hour(3)?);
    /// assert!(limiter.is_empty());
    /// assert!(limiter.check_key(&1).is_allowed());
    /// assert!(!limiter.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// How many fresh keys have been dropped (with no change in behaviour).
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let limiter = KeyedLimiter::<u32, Gcra>::builder(Quota::per_second(1)?)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// for user in 0..3 {
    ///     assert!(limiter.check_key(&user).is_allowed());
    /// }
    /// clock.advance(Duration::from_secs(1)); // every bucket is full again
    /// limiter.retain_recent();
    /// assert_eq!(limiter.evicted_fresh(), 3);
    /// assert!(limiter.check_key(&0).is_allowed()); // as if never seen
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn evicted_fresh(&self) -> u64 {
        self.evicted_fresh.load(Ordering::Relaxed)
    }

    /// How many keys that were still limiting were forgotten because the hard cap was reached
    /// with too few fresh keys to drop. Zero unless the cap is below the live key count.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    ///
    /// let limiter = KeyedLimiter::<u32, Gcra>::builder(Quota::per_hour(1)?)
    ///     .max_keys(8)
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// for user in 0..9 {
    ///     assert!(limiter.check_key(&user).is_allowed());
    /// }
    /// // The 9th key met the cap with every key still limiting, so one was forgotten.
    /// assert_eq!(limiter.evicted_live(), 1);
    /// assert_eq!(limiter.evicted_fresh(), 0);
    /// assert_eq!(limiter.len(), 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn evicted_live(&self) -> u64 {
        self.evicted_live.load(Ordering::Relaxed)
    }

    /// Drops every key that is fresh at the clock's current time, now. The limiter also does
    /// this on its own as keys arrive; calling it is never needed for correctness.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{Gcra, KeyedLimiter, Quota};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let limiter = KeyedLimiter::<&str, Gcra>::builder(Quota::per_second(10)?)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// assert!(limiter.check_key(&"a").is_allowed());
    /// assert_eq!(limiter.len(), 1);
    /// clock.advance(Duration::from_millis(100)); // "a" is back to a full bucket
    /// limiter.retain_recent();
    /// assert!(limiter.is_empty());
    /// assert_eq!((limiter.evicted_fresh(), limiter.evicted_live()), (1, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retain_recent(&self) {
        let _guard = self.sweeping.lock();
        self.drop_fresh(self.clock.now());
        self.reset_sweep_mark();
    }

    fn drop_fresh(&self, now: Instant) {
        let mut dropped = 0usize;
        let default = self.quota.load();
        let with_overrides = self.has_overrides.load(Ordering::Acquire);
        self.map.retain(|key, state| {
            let quota = if with_overrides {
                self.overrides.get(key).map_or(default, |q| *q)
            } else {
                default
            };
            let fresh = A::is_fresh(&quota, state, now);
            dropped += usize::from(fresh);
            !fresh
        });
        self.len.fetch_sub(dropped, Ordering::Relaxed);
        self.evicted_fresh
            .fetch_add(dropped as u64, Ordering::Relaxed);
    }

    fn sweep(&self, now: Instant) {
        let _guard = self.sweeping.lock();
        if self.len.load(Ordering::Relaxed) < self.next_sweep.load(Ordering::Relaxed) {
            return; // another caller swept while this one waited
        }
        self.drop_fresh(now);
        if let Some(cap) = self.max_keys {
            let low_water = cap - (cap / 8).max(1);
            let len = self.len.load(Ordering::Relaxed);
            if len > low_water {
                let mut excess = len - low_water;
                let mut dropped = 0usize;
                self.map.retain(|_, _| {
                    if excess == 0 {
                        return true;
                    }
                    excess -= 1;
                    dropped += 1;
                    false
                });
                self.len.fetch_sub(dropped, Ordering::Relaxed);
                self.evicted_live
                    .fetch_add(dropped as u64, Ordering::Relaxed);
            }
        }
        self.reset_sweep_mark();
    }

    fn reset_sweep_mark(&self) {
        let len = self.len.load(Ordering::Relaxed);
        let mut mark = (2 * len).max(MIN_SWEEP);
        if let Some(cap) = self.max_keys {
            mark = mark.min(cap);
        }
        self.next_sweep.store(mark, Ordering::Relaxed);
    }
}

impl<K, A: Algorithm, C: Clock> fmt::Debug for KeyedLimiter<K, A, C>
where
    K: Hash + Eq,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("algorithm", &std::any::type_name::<A>())
            .field("quota", &self.quota.load())
            .field("keys", &self.len.load(Ordering::Relaxed))
            .field("max_keys", &self.max_keys)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<K, A: Algorithm, C: Clock + fmt::Debug> fmt::Debug for KeyedLimiterBuilder<K, A, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiterBuilder")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .field("clock", &self.clock)
            .finish()
    }
}
