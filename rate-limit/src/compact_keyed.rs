//! `CompactKeyedLimiter`: GCRA per `u64` key in 12 bytes a slot, in sharded open-addressing tables.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use keel_core::{Clock, SystemClock};
use parking_lot::Mutex;

use crate::{Decision, InsufficientCapacity, Quota};

/// Shards: enough that 2 to 16 threads rarely meet on one lock; 64 empty tables cost ~6 KiB.
const SHARDS: usize = 64;
/// A shard's table grows (after dropping fresh keys) above this load, in 1/256ths: 0.9.
const MAX_LOAD_256: usize = 230;
/// A rebuilt table holds its keys at this load, in 1/256ths: 0.78, so a slot array is at most
/// 1/0.78 = 1.28 slots per key, 15.4 bytes at 12 bytes a slot.
const REBUILT_LOAD_256: usize = 200;
/// The smallest table; also where a shard starts.
const MIN_SLOTS: usize = 8;
/// A burst spans at most 2^30 units of state, and a shard rebases (and drops its fresh keys)
/// when its epoch is 2^31 units old, so a `u32` state never wraps.
const BURST_SPAN_BITS: u32 = 30;
const REBASE_UNITS: u64 = 1 << 31;

/// A keyed GCRA limiter for `u64` keys (IP addresses as integers, user and tenant ids) that
/// keeps each key in 12 bytes of table: 14 to 16 bytes per key in all, against about 22 to 36
/// for [`KeyedLimiter`](crate::KeyedLimiter) and governor's keyed limiter, whose concurrent
/// hash maps keep 16-byte entries at half to 7/8 load.
///
/// Decisions are [`Gcra`](crate::Gcra)'s, key by key, so each key's bound is the same:
/// `burst + limit − 1` in any window of `period`. Keys are stored whole, so two keys never share
/// a quota. What it gives up beside [`KeyedLimiter`](crate::KeyedLimiter): keys are `u64` only,
/// one quota for all keys (no per-key overrides, no `set_quota`), and checks of one shard
/// take a short lock instead of a compare-and-swap.
///
/// # Layout
///
/// 64 shards, each a [`parking_lot::Mutex`] over an open-addressing table with linear probing:
/// one array of `u64` keys and one of `u32` states, sized to any number of slots (not a power
/// of two), between 0.78 and 0.9 full. A state is the key's theoretical arrival time (TAT)
/// after the shard's epoch in units of `T / 2^k` (`T` the emission interval), with `k` as
/// large as lets a burst span at most 2^30 units and a unit be at least half a nanosecond.
/// Adding `n·T` is then exact (`n·2^k` units), and so is moving the epoch (by whole `T`s); the
/// only rounding is when an idle key starts again at `now`. A unit is at most a nanosecond for
/// any quota whose burst spans up to 0.5 s, and decisions then equal [`Gcra`](crate::Gcra)'s
/// to the nanosecond. Beyond, a unit is `burst·T / 2^30` to twice that (5.4 µs for a burst of
/// 10 an hour) and a restart is stored at `now` rounded down to a unit: a key's TAT is then
/// at most one unit earlier than exact GCRA's, so a request is never denied that GCRA would
/// admit (a full burst is always admitted at once), and one may be admitted at most one unit
/// early. Bursts above 2^30 are refused by the builder. Keys are placed by a multiply-fold hash with a random
/// seed per limiter (not a keyed cryptographic hash: a client who learns the seed could
/// aim keys at one probe run).
///
/// # Bounded memory, no background task
///
/// A key whose TAT has passed is fresh (a full bucket), which behaves exactly as a key never
/// seen, so dropping it changes no decision. A shard drops its fresh keys before it grows, and
/// whenever its epoch is 2^31 units old (at least 1.07 s, and at least twice the burst's span),
/// when it moves the rest to a recent epoch. So the table holds about the keys that are
/// still limiting, and [`retain_recent`](CompactKeyedLimiter::retain_recent) drops fresh keys
/// at once.
///
/// # Example
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{CompactKeyedLimiter, Quota};
///
/// let limiter = CompactKeyedLimiter::builder(Quota::per_minute(2)?)
///     .clock(ManualClock::new())
///     .build()?;
/// assert!(limiter.check_key(7).is_allowed());
/// assert!(limiter.check_key(7).is_allowed());
/// assert!(limiter.check_key(7).is_denied());
/// assert!(limiter.check_key(8).is_allowed()); // keys are independent
/// assert_eq!(limiter.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CompactKeyedLimiter<C: Clock = SystemClock> {
    shards: Box<[Mutex<Table>]>,
    quota: Quota,
    units: Units,
    seed: u64,
    clock: C,
    evicted_fresh: AtomicU64,
}

/// Configures a [`CompactKeyedLimiter`]; made by [`CompactKeyedLimiter::builder`].
///
/// ```
/// use keel_core::ManualClock;
/// use keel_rate_limit::{CompactKeyedLimiter, Quota};
///
/// let limiter = CompactKeyedLimiter::builder(Quota::per_second(5)?)
///     .clock(ManualClock::new())
///     .build()?;
/// assert_eq!(limiter.check_key(1).remaining(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CompactKeyedLimiterBuilder<C: Clock = SystemClock> {
    quota: Quota,
    clock: C,
}

impl<C: Clock> fmt::Debug for CompactKeyedLimiterBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactKeyedLimiterBuilder")
            .field("quota", &self.quota)
            .field("clock", &self.clock)
            .finish()
    }
}

impl<C: Clock> CompactKeyedLimiterBuilder<C> {
    /// Reads time from `clock` instead of the system clock.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let limiter = CompactKeyedLimiter::builder(Quota::per_minute(1)?)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// assert!(limiter.check_key(3).is_allowed());
    /// assert!(limiter.check_key(3).is_denied());
    /// clock.advance(Duration::from_secs(60));
    /// assert!(limiter.check_key(3).is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> CompactKeyedLimiterBuilder<C2> {
        CompactKeyedLimiterBuilder {
            quota: self.quota,
            clock,
        }
    }

    /// Builds the limiter.
    ///
    /// ```
    /// use keel_rate_limit::{CompactKeyedLimiter, CompactKeyedLimiterError, Quota};
    ///
    /// let limiter = CompactKeyedLimiter::builder(Quota::per_hour(100)?).build()?;
    /// assert!(limiter.is_empty());
    /// let huge = Quota::per_second(10)?.with_burst(2_000_000_000)?;
    /// assert_eq!(
    ///     CompactKeyedLimiter::builder(huge).build().unwrap_err(),
    ///     CompactKeyedLimiterError::BurstTooLarge { burst: 2_000_000_000 }
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`CompactKeyedLimiterError::BurstTooLarge`] for a burst above 2^30.
    pub fn build(self) -> Result<CompactKeyedLimiter<C>, CompactKeyedLimiterError> {
        let burst = self.quota.burst();
        if burst > 1 << BURST_SPAN_BITS {
            return Err(CompactKeyedLimiterError::BurstTooLarge { burst });
        }
        let t = self.quota.emission_nanos().max(1);
        let ceil_log2 = |x: u64| 64 - x.saturating_sub(1).leading_zeros();
        let k = ceil_log2(t).min(BURST_SPAN_BITS - ceil_log2(u64::from(burst)));
        let now = self.clock.now().as_nanos();
        let random = RandomState::new();
        let units = Units::new(t, k);
        Ok(CompactKeyedLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(Table::new(now))).collect(),
            quota: self.quota,
            units,
            seed: random.hash_one(0x6b65_656c_u64) | 1,
            clock: self.clock,
            evicted_fresh: AtomicU64::new(0),
        })
    }
}

/// A [`CompactKeyedLimiterBuilder`] setting that cannot work.
///
/// ```
/// use keel_rate_limit::{CompactKeyedLimiter, CompactKeyedLimiterError, Quota};
///
/// let quota = Quota::per_second(1)?.with_burst(u32::MAX)?;
/// let err = CompactKeyedLimiter::builder(quota).build().unwrap_err();
/// assert_eq!(err, CompactKeyedLimiterError::BurstTooLarge { burst: u32::MAX });
/// assert_eq!(err.to_string(), "burst 4294967295 is above 2^30, the most a compact keyed limiter holds");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompactKeyedLimiterError {
    /// The quota's burst is above 2^30: its span would not fit a key's 32-bit state.
    BurstTooLarge {
        /// The burst asked for.
        burst: u32,
    },
}

impl fmt::Display for CompactKeyedLimiterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactKeyedLimiterError::BurstTooLarge { burst } => write!(
                f,
                "burst {burst} is above 2^30, the most a compact keyed limiter holds"
            ),
        }
    }
}

impl std::error::Error for CompactKeyedLimiterError {}

/// A state's unit, `t / 2^k` nanoseconds.
#[derive(Clone, Copy, Debug)]
struct Units {
    t: u64,
    k: u32,
    /// A unit is at most 1 ns: restarts round up, and round trips are exact.
    fine: bool,
    /// Nanoseconds in 2^31 units: a shard's epoch older than this is moved.
    rebase_nanos: u64,
}

impl Units {
    fn new(t: u64, k: u32) -> Units {
        let mut units = Units {
            t,
            k,
            fine: (1u64 << k) >= t,
            rebase_nanos: 0,
        };
        units.rebase_nanos = units.nanos(REBASE_UNITS);
        units
    }

    /// Where an idle key restarts: `nanos` in units, rounded up when a unit is at most 1 ns
    /// (exact: the state decodes back to `nanos`), else rounded down (at most a unit early).
    #[inline]
    fn restart(self, nanos: u64) -> u64 {
        if self.fine {
            return self.units_up(nanos);
        }
        u64::try_from((u128::from(nanos) << self.k) / u128::from(self.t)).unwrap_or(u64::MAX)
    }

    /// Nanoseconds after the epoch that `units` stand for, rounded down.
    #[inline]
    fn nanos(self, units: u64) -> u64 {
        u64::try_from((u128::from(units) * u128::from(self.t)) >> self.k).unwrap_or(u64::MAX)
    }

    /// Units for `nanos` after the epoch, rounded up.
    #[inline]
    fn units_up(self, nanos: u64) -> u64 {
        let scaled = u128::from(nanos) << self.k;
        u64::try_from(scaled.div_ceil(u128::from(self.t))).unwrap_or(u64::MAX)
    }
}

impl CompactKeyedLimiter {
    /// A limiter on the system clock.
    ///
    /// ```
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    ///
    /// let per_user = CompactKeyedLimiter::new(Quota::per_minute(2)?)?;
    /// assert!(per_user.check_key(42).is_allowed());
    /// assert!(per_user.check_key(42).is_allowed());
    /// assert!(per_user.check_key(42).is_denied());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`CompactKeyedLimiterError::BurstTooLarge`] for a burst above 2^30.
    pub fn new(quota: Quota) -> Result<CompactKeyedLimiter, CompactKeyedLimiterError> {
        CompactKeyedLimiter::builder(quota).build()
    }

    /// A builder, for another clock.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    ///
    /// let limiter = CompactKeyedLimiter::builder(Quota::per_second(10)?)
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// assert_eq!(limiter.quota(), Quota::per_second(10)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(quota: Quota) -> CompactKeyedLimiterBuilder {
        CompactKeyedLimiterBuilder {
            quota,
            clock: SystemClock,
        }
    }
}

impl<C: Clock> CompactKeyedLimiter<C> {
    /// Decides one request for `key`.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    /// use std::time::Duration;
    ///
    /// let limiter = CompactKeyedLimiter::builder(Quota::per_second(1)?)
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// assert!(limiter.check_key(1).is_allowed());
    /// assert_eq!(limiter.check_key(1).retry_after(), Some(Duration::from_secs(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn check_key(&self, key: u64) -> Decision {
        match self.check_key_n(key, 1) {
            Ok(decision) => decision,
            // Every quota holds at least one cell, so this arm is never taken.
            Err(_) => Decision::deny(&self.quota, 0, 0, self.quota.period_nanos()),
        }
    }

    /// Decides `n` cells for `key`, all or nothing.
    ///
    /// ```
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    ///
    /// let limiter = CompactKeyedLimiter::new(Quota::per_minute(10)?)?;
    /// assert!(limiter.check_key_n(5, 8)?.is_allowed());
    /// assert!(limiter.check_key_n(5, 3)?.is_denied()); // only 2 left: nothing taken
    /// assert_eq!(limiter.check_key_n(5, 2)?.remaining(), 0);
    /// assert!(limiter.check_key_n(5, 11).is_err()); // never satisfiable
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsufficientCapacity`] if `n` exceeds the quota's burst.
    pub fn check_key_n(&self, key: u64, n: u32) -> Result<Decision, InsufficientCapacity> {
        let burst = self.quota.burst();
        if n > burst {
            return Err(InsufficientCapacity::new(n, burst));
        }
        let hash = self.hash(key);
        let shard = &self.shards[(hash >> (64 - SHARDS.trailing_zeros())) as usize];
        let mut table = shard.lock();
        // Read under the lock: no holder before saw a later time, so `now` is not before the
        // epoch a rebase by another thread set.
        let now = self.clock.now().as_nanos();
        let units = self.units;
        if now.saturating_sub(table.epoch) >= units.rebase_nanos {
            let dropped = table.rebuild(now, units, 0, |k| self.hash(k));
            self.evicted_fresh.fetch_add(dropped, Ordering::Relaxed);
        }
        let now_rel = now.saturating_sub(table.epoch);
        let slot = table.find(key, hash);
        let state = match slot {
            Found::At(index) => Some(table.states[index]),
            Found::Sentinel => table.sentinel,
            Found::Vacant(_) => None,
        };
        let tat_rel = state.map_or(0, |state| units.nanos(u64::from(state)));
        let (decision, new_tat) = gcra_step(&self.quota, tat_rel, now_rel, n);
        if new_tat.is_none() {
            return Ok(decision);
        }
        // Exact while the key is limited; an idle key restarts at `now` in units.
        let start = match state {
            Some(state) if tat_rel >= now_rel => u64::from(state),
            Some(state) => units.restart(now_rel).max(u64::from(state)),
            None => units.restart(now_rel),
        };
        let new_state = start + (u64::from(n) << units.k);
        let new_state = u32::try_from(new_state).unwrap_or(u32::MAX);
        match slot {
            Found::At(index) => table.states[index] = new_state,
            Found::Sentinel => table.sentinel = Some(new_state),
            Found::Vacant(index) => {
                if (table.len + 1) * 256 > table.keys.len() * MAX_LOAD_256 {
                    // Rebuilt at the same epoch (`now` is within one `T` of it or equal), so
                    // `new_state` stays valid.
                    let dropped = table.rebuild_at_epoch(now, units, 1, |k| self.hash(k));
                    self.evicted_fresh.fetch_add(dropped, Ordering::Relaxed);
                    table.insert_new(key, hash, new_state);
                } else {
                    table.place(index, key, new_state);
                }
            }
        }
        Ok(decision)
    }

    /// The quota every key gets.
    ///
    /// ```
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    ///
    /// let limiter = CompactKeyedLimiter::new(Quota::per_hour(500)?)?;
    /// assert_eq!(limiter.quota(), Quota::per_hour(500)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The number of keys held now (locks each shard briefly).
    ///
    /// ```
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    ///
    /// let limiter = CompactKeyedLimiter::new(Quota::per_hour(3)?)?;
    /// for user in [1, 2, 3, 2, 1] {
    ///     assert!(limiter.check_key(user).is_allowed());
    /// }
    /// assert_eq!(limiter.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let table = shard.lock();
                table.len + usize::from(table.sentinel.is_some())
            })
            .sum()
    }

    /// Whether no key is held.
    ///
    /// ```
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    ///
    /// let limiter = CompactKeyedLimiter::new(Quota::per_hour(3)?)?;
    /// assert!(limiter.is_empty());
    /// assert!(limiter.check_key(0).is_allowed());
    /// assert!(!limiter.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many fresh keys have been dropped (with no change in behaviour).
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let limiter = CompactKeyedLimiter::builder(Quota::per_second(1)?)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// for user in 0..3 {
    ///     assert!(limiter.check_key(user).is_allowed());
    /// }
    /// clock.advance(Duration::from_secs(1)); // every bucket is full again
    /// limiter.retain_recent();
    /// assert_eq!(limiter.evicted_fresh(), 3);
    /// assert!(limiter.check_key(0).is_allowed()); // as if never seen
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn evicted_fresh(&self) -> u64 {
        self.evicted_fresh.load(Ordering::Relaxed)
    }

    /// Drops every key that is fresh at the clock's current time, now. The limiter also does
    /// this on its own; calling it is never needed for correctness.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// let limiter = CompactKeyedLimiter::builder(Quota::per_second(10)?)
    ///     .clock(clock.clone())
    ///     .build()?;
    /// assert!(limiter.check_key(1).is_allowed());
    /// clock.advance(Duration::from_millis(100)); // back to a full bucket
    /// limiter.retain_recent();
    /// assert!(limiter.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retain_recent(&self) {
        let now = self.clock.now().as_nanos();
        for shard in self.shards.iter() {
            let dropped = shard.lock().rebuild(now, self.units, 0, |k| self.hash(k));
            self.evicted_fresh.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Bytes held by the tables' slot arrays (not counting the 64 shard headers).
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_rate_limit::{CompactKeyedLimiter, Quota};
    ///
    /// let limiter = CompactKeyedLimiter::builder(Quota::per_hour(1)?)
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// for key in 0..100_000 {
    ///     assert!(limiter.check_key(key).is_allowed());
    /// }
    /// let per_key = limiter.table_bytes() as f64 / 100_000.0;
    /// assert!(per_key <= 15.5, "{per_key}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().keys.len() * SLOT_BYTES)
            .sum()
    }

    #[inline]
    fn hash(&self, key: u64) -> u64 {
        // Folded multiply (as foldhash and wyhash do): both halves of a 128-bit product.
        let product = u128::from(key ^ self.seed) * u128::from(0x9E37_79B9_7F4A_7C15_u64);
        (product as u64) ^ ((product >> 64) as u64)
    }
}

/// A key's `u64` plus its `u32` state.
const SLOT_BYTES: usize = 12;

/// The key marking an empty slot; the key itself, if used, lives in `sentinel`.
const EMPTY: u64 = 0xA5A5_5A5A_C3C3_3C3C;

enum Found {
    At(usize),
    Vacant(usize),
    Sentinel,
}

/// One shard: linear probing over `keys`, with each key's state at the same index of `states`.
struct Table {
    keys: Box<[u64]>,
    states: Box<[u32]>,
    /// Keys held, not counting `sentinel`.
    len: usize,
    /// The state of the key equal to [`EMPTY`], if held.
    sentinel: Option<u32>,
    /// Nanoseconds on the limiter's clock that state 0 stands for.
    epoch: u64,
}

impl Table {
    fn new(epoch: u64) -> Table {
        Table {
            keys: vec![EMPTY; MIN_SLOTS].into_boxed_slice(),
            states: vec![0; MIN_SLOTS].into_boxed_slice(),
            len: 0,
            sentinel: None,
            epoch,
        }
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        // The hash's top bits chose the shard; the rest, spread over any table length.
        ((u128::from(hash << SHARDS.trailing_zeros()) * self.keys.len() as u128) >> 64) as usize
    }

    #[inline]
    fn find(&self, key: u64, hash: u64) -> Found {
        if key == EMPTY {
            return match self.sentinel {
                Some(_) => Found::Sentinel,
                None => Found::Vacant(usize::MAX),
            };
        }
        let mut index = self.home(hash);
        loop {
            let at = self.keys[index];
            if at == key {
                return Found::At(index);
            }
            if at == EMPTY {
                return Found::Vacant(index);
            }
            index += 1;
            if index == self.keys.len() {
                index = 0;
            }
        }
    }

    /// Fills a vacant slot `find` returned (or the sentinel).
    fn place(&mut self, index: usize, key: u64, state: u32) {
        if key == EMPTY {
            self.sentinel = Some(state);
            return;
        }
        self.keys[index] = key;
        self.states[index] = state;
        self.len += 1;
    }

    fn insert_new(&mut self, key: u64, hash: u64, state: u32) {
        if let Found::Vacant(index) = self.find(key, hash) {
            self.place(index, key, state);
        }
    }

    /// Moves the epoch forward by whole emission intervals to within one of `now` (exact: a
    /// state drops by `j·2^k` units), drops the fresh keys (TAT at or before `now`), re-lays
    /// the table for the rest plus `extra`, and returns how many were dropped.
    fn rebuild(&mut self, now: u64, units: Units, extra: usize, hash: impl Fn(u64) -> u64) -> u64 {
        let intervals = now.saturating_sub(self.epoch) / units.t;
        let shift = u128::from(intervals) << units.k;
        let shift = u64::try_from(shift).unwrap_or(u64::MAX);
        let epoch = self.epoch + intervals * units.t;
        self.relay(now, epoch, shift, units, extra, hash)
    }

    /// [`rebuild`](Table::rebuild) without moving the epoch.
    fn rebuild_at_epoch(
        &mut self,
        now: u64,
        units: Units,
        extra: usize,
        hash: impl Fn(u64) -> u64,
    ) -> u64 {
        self.relay(now, self.epoch, 0, units, extra, hash)
    }

    fn relay(
        &mut self,
        now: u64,
        epoch: u64,
        shift: u64,
        units: Units,
        extra: usize,
        hash: impl Fn(u64) -> u64,
    ) -> u64 {
        // `retain_recent` reads the time before locking: it may be before the epoch.
        let now_rel = now.saturating_sub(self.epoch);
        // A key is live while its TAT is after `now`; its state then exceeds `shift`.
        let moved = |state: u32| -> Option<u32> {
            let live = units.nanos(u64::from(state)) > now_rel;
            live.then(|| u32::try_from(u64::from(state) - shift).unwrap_or(u32::MAX))
        };
        let mut dropped = 0u64;
        let sentinel = self.sentinel.and_then(|state| {
            let kept = moved(state);
            dropped += u64::from(kept.is_none());
            kept
        });
        let live = self
            .keys
            .iter()
            .zip(self.states.iter())
            .filter(|(key, state)| **key != EMPTY && moved(**state).is_some())
            .count();
        dropped += (self.len - live) as u64;
        let slots = ((live + extra) * 256)
            .div_ceil(REBUILT_LOAD_256)
            .max(MIN_SLOTS);
        let mut table = Table {
            keys: vec![EMPTY; slots].into_boxed_slice(),
            states: vec![0; slots].into_boxed_slice(),
            len: 0,
            sentinel,
            epoch,
        };
        for (key, state) in self.keys.iter().zip(self.states.iter()) {
            if *key != EMPTY
                && let Some(state) = moved(*state)
            {
                table.insert_new(*key, hash(*key), state);
            }
        }
        *self = table;
        dropped
    }
}

/// One GCRA decision on a plain TAT (0 for a key never seen): the decision, and the new TAT
/// if it changed. The same rule as [`Gcra`](crate::Gcra)'s compare-and-swap loop.
#[inline]
fn gcra_step(quota: &Quota, tat: u64, now: u64, n: u32) -> (Decision, Option<u64>) {
    let t = quota.emission_nanos();
    let tau = quota.tolerance_nanos();
    let base = tat.max(now);
    let new_tat = base.saturating_add(u64::from(n) * t);
    let ahead = new_tat - now;
    if ahead > tau {
        let slack = tau.saturating_sub(base - now);
        return (
            Decision::deny_slack(quota, slack, t, base - now, ahead - tau),
            None,
        );
    }
    let decision = Decision::allow_slack(quota, tau - ahead, t, ahead);
    (decision, (new_tat != tat).then_some(new_tat))
}

impl<C: Clock> fmt::Debug for CompactKeyedLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactKeyedLimiter")
            .field("quota", &self.quota)
            .field("units", &self.units)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::ManualClock;
    use std::time::Duration;

    #[test]
    fn the_empty_marker_is_a_key_like_any_other() {
        let limiter = CompactKeyedLimiter::builder(Quota::per_hour(1).expect("quota"))
            .clock(ManualClock::new())
            .build()
            .expect("limiter");
        assert!(limiter.check_key(EMPTY).is_allowed());
        assert!(limiter.check_key(EMPTY).is_denied());
        assert!(limiter.check_key(EMPTY + 1).is_allowed());
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn a_long_quota_uses_coarse_units_and_keeps_its_full_burst() {
        let clock = ManualClock::new();
        let quota = Quota::per_hour(10).expect("quota");
        let limiter = CompactKeyedLimiter::builder(quota)
            .clock(clock.clone())
            .build()
            .expect("limiter");
        let unit = limiter.units.nanos(1);
        assert!((3_000..7_000).contains(&unit), "{unit}"); // about an hour / 2^30, up to twice that
        clock.advance(Duration::from_nanos(12_345)); // not on a unit boundary
        for _ in 0..10 {
            assert!(limiter.check_key(1).is_allowed());
        }
        assert!(limiter.check_key(1).is_denied());
        // GCRA frees one cell 6 minutes on; the start, rounded down, frees it < 1 unit early.
        clock.advance(Duration::from_secs(360) - Duration::from_nanos(unit + 1));
        assert!(limiter.check_key(1).is_denied());
        clock.advance(Duration::from_nanos(unit + 1));
        assert!(limiter.check_key(1).is_allowed());
        assert!(limiter.check_key(1).is_denied());
    }

    #[test]
    fn an_old_epoch_is_moved_and_fresh_keys_dropped() {
        let clock = ManualClock::new();
        let limiter = CompactKeyedLimiter::builder(Quota::per_second(1).expect("quota"))
            .clock(clock.clone())
            .build()
            .expect("limiter");
        assert!(limiter.units.nanos(1) <= 1);
        for key in 0..1_000 {
            assert!(limiter.check_key(key).is_allowed());
        }
        clock.advance(Duration::from_secs(3)); // past 2^31 units of at most 1 ns
        assert!(limiter.check_key(5).is_allowed());
        assert!(limiter.check_key(5).is_denied());
        assert!(limiter.evicted_fresh() > 0);
        limiter.retain_recent();
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.evicted_fresh(), 1_000);
        clock.advance(Duration::from_millis(999));
        assert!(limiter.check_key(5).is_denied());
        clock.advance(Duration::from_millis(1));
        assert!(limiter.check_key(5).is_allowed());
    }
}
