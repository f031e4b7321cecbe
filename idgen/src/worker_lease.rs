//! `WorkerLease`: a worker id held as a keel-lock lease, on any `LockService`.

use std::fmt;
use std::time::Duration;

use keel_core::Instant;
use keel_lock::{FencingToken, KeepAlive, LeaseGuard, LockError, LockService, LostLease};

use crate::{LeaseValidity, StoreError, WorkerId, WorkerIdError, WorkerIdProvider};

/// A worker id leased from a keel-lock [`LockService`] (feature `lease`): in memory, Redis
/// (feature `redis`), or any other backend, including a `Box<dyn DynLockService>` chosen at
/// run time.
///
/// # How it works
///
/// - **Claim.** Worker id `n` is the lock named `<prefix><n>`. [`acquire`](WorkerLeaseBuilder::acquire)
///   tries [`LockService::try_acquire`] on `n = 0, 1, …, ids - 1` in order and keeps the
///   first it is granted, so concurrent claimants get distinct ids (the lock service decides)
///   and an id whose holder died is free again once its lease runs out. Claiming costs one
///   call per id already held before the free one.
/// - **Renew and lose.** The lock lease is renewed by keel-lock's [`KeepAlive`], the one
///   renewal loop, and watched through its [`LostLease`] signal. A generator built from
///   [`worker_id`](WorkerIdProvider::worker_id) checks before every ID that the lease is not
///   lost and that its expiry, read on the lock service's clock, is more than a safety margin
///   away (default a tenth of the TTL). So it stops as soon as a renewal fails or the service
///   says the lease is gone, and at the latest a margin before the expiry, also when the
///   renewal task cannot run (a stalled process sees the lease expired the moment it wakes).
/// - **Wait one TTL before the first ID.** A newly granted id is valid only from one TTL
///   after the grant ([`ready_at`](WorkerLease::ready_at); until then the generator returns
///   [`GenerateError::LeaseNotYetValid`]). The store may have granted the id while a
///   previous holder still believes it holds it: a Redis restart without persistence, a
///   failover to a replica that missed the last renewals, or a key evicted under memory
///   pressure all forget a live lease. That holder's lease expires, on its own clock, at
///   most one TTL after its last successful renewal, which the store answered before it
///   granted the id again; so one TTL after the grant was received, the previous holder has
///   stopped, whether or not it has heard that it lost the lease. [`ready`](WorkerLease::ready)
///   waits for it.
///
/// # What would prove the wait unneeded, and why it is never skipped
///
/// The wait could be skipped only if the store could prove that nobody held the id between
/// the previous holder's last renewal and this grant: that no state of it was lost. A lock
/// service's answer cannot show that: after a restart without persistence or a failover,
/// Redis grants the name with a fresh key, exactly as it would after an honest expiry, and
/// the fencing token (raised to the server's clock) does not reveal which. An in-memory
/// service in one process could prove it, but worker ids matter across processes. So every
/// grant waits: the cost is one TTL (default 10 s) of start-up time per acquired id, paid
/// again only when a lease is lost and a new one acquired; keep the TTL short (a few
/// seconds) where start-up time matters.
///
/// # What the margins must cover
///
/// The old and new holder stamp IDs from their own wall clocks, so the wait assumes that
/// the holders' monotonic clocks run at about the same rate (the safety margin covers the
/// difference over one TTL) and that their wall clocks differ by less than the wait;
/// otherwise the new holder's first IDs may repeat the old holder's last ones.
///
/// Keep the `WorkerLease` alive while generating: dropping it stops the renewals and
/// releases the id (best effort), and generators built from it stop at once.
///
/// # Example
///
/// In memory, with paused tokio time so the wait of one TTL takes no real time:
///
/// ```
/// use keel_core::TokioClock;
/// use keel_idgen::{GenerateError, Layout, Snowflake, WorkerLease, WorkerIdProvider};
/// use keel_lock::InMemoryLockService;
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
/// let clock = TokioClock::new();
/// let locks = InMemoryLockService::with_clock(clock);
/// let ttl = Duration::from_secs(10);
/// let lease = WorkerLease::builder(locks.clone()).ids(1024).ttl(ttl).acquire().await?;
/// let generator = Snowflake::builder(Layout::twitter(), lease.worker_id()?).clock(clock).build()?;
/// // Newly granted: a previous holder may still be using the id for one TTL.
/// assert_eq!(generator.next_id(), Err(GenerateError::LeaseNotYetValid { retry_after: ttl }));
/// lease.ready().await?; // keel-lock's keep-alive renews the lease meanwhile
/// let id = generator.next_id()?;
/// assert_eq!(generator.decode(id).worker, lease.id());
/// // A second process gets the next free id.
/// let other = WorkerLease::builder(locks).ttl(ttl).acquire().await?;
/// assert_eq!((lease.id(), other.id()), (0, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// On Redis (feature `redis`), every process connects its own `RedisLockService`:
///
/// ```
/// # #[cfg(feature = "redis")] {
/// use keel_idgen::{Layout, Snowflake, WorkerLease, WorkerIdProvider};
/// use keel_lock::RedisLockService;
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # let url = server.url();
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let locks = RedisLockService::connect(&url).await?;
/// let lease = WorkerLease::builder(locks).ttl(Duration::from_millis(300)).acquire().await?;
/// lease.ready().await?; // 300 ms
/// let generator = Snowflake::builder(Layout::twitter(), lease.worker_id()?).build()?;
/// assert_eq!(generator.decode(generator.next_id()?).worker, lease.id());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`GenerateError::LeaseNotYetValid`]: crate::GenerateError::LeaseNotYetValid
pub struct WorkerLease<S: LockService + Clone + 'static> {
    id: u64,
    service: S,
    guard: LeaseGuard<S>,
    lost: LostLease,
    validity: LeaseValidity,
}

impl<S: LockService + Clone + 'static> WorkerLease<S> {
    /// A builder for a worker id leased from `service`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::InMemoryLockService;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = InMemoryLockService::new();
    /// // Defaults: names keel:idgen:worker:<n>, ids 0..1024, a 10 s TTL, renewal every third.
    /// let lease = WorkerLease::builder(locks.clone()).acquire().await?;
    /// assert_eq!(lease.id(), 0);
    /// assert_eq!(locks.holder("keel:idgen:worker:0"), Some(lease.token()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(service: S) -> WorkerLeaseBuilder<S> {
        WorkerLeaseBuilder {
            service,
            prefix: "keel:idgen:worker:".to_owned(),
            ids: 1024,
            ttl: Duration::from_secs(10),
            keep_alive: KeepAlive::new(),
            margin: None,
        }
    }

    /// The leased worker id.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::InMemoryLockService;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = InMemoryLockService::new();
    /// let first = WorkerLease::builder(locks.clone()).acquire().await?;
    /// let second = WorkerLease::builder(locks).acquire().await?;
    /// assert_eq!((first.id(), second.id()), (0, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The fencing token of the lock lease, to send with writes a resource fences.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::InMemoryLockService;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = InMemoryLockService::new();
    /// let lease = WorkerLease::builder(locks.clone()).acquire().await?;
    /// assert_eq!(locks.holder("keel:idgen:worker:0"), Some(lease.token()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token(&self) -> FencingToken {
        self.guard.token()
    }

    /// The validity generators built from this id check before every ID.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let locks = InMemoryLockService::with_clock(TokioClock::new());
    /// let lease = WorkerLease::builder(locks).ttl(Duration::from_secs(10)).acquire().await?;
    /// assert!(!lease.validity().is_valid()); // not before one TTL
    /// tokio::time::sleep(Duration::from_secs(10)).await; // paused time; renewed meanwhile
    /// assert!(lease.validity().is_valid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validity(&self) -> &LeaseValidity {
        &self.validity
    }

    /// keel-lock's signal that the lease is lost; it reads the lock service's clock.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::{InMemoryLockService, LockService, LostReason};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = InMemoryLockService::new();
    /// let lease = WorkerLease::builder(locks.clone()).acquire().await?;
    /// let lost = lease.lost();
    /// assert!(!lost.is_lost());
    /// lease.release().await?;
    /// assert!(matches!(lost.reason(), Some(LostReason::Released)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lost(&self) -> LostLease {
        self.lost.clone()
    }

    /// The first reading of the lock service's clock at which the id may be used: one TTL
    /// after the grant was received.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let clock = ManualClock::new();
    /// let locks = InMemoryLockService::with_clock(clock.clone());
    /// let lease = WorkerLease::builder(locks).ttl(Duration::from_secs(5)).acquire().await?;
    /// assert_eq!(lease.ready_at(), clock.now() + Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ready_at(&self) -> Instant {
        self.validity.valid_from()
    }

    /// Waits until the id may be used ([`ready_at`](WorkerLease::ready_at)), sleeping on the
    /// tokio timer and re-reading the lock service's clock.
    ///
    /// # Errors
    ///
    /// [`WorkerIdError::Lost`] if the lease is lost first.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::TokioClock;
    /// use keel_idgen::{Layout, Snowflake, WorkerLease, WorkerIdProvider};
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?.block_on(async {
    /// let clock = TokioClock::new();
    /// let locks = InMemoryLockService::with_clock(clock.clone());
    /// let lease = WorkerLease::builder(locks).ttl(Duration::from_secs(2)).acquire().await?;
    /// let started = tokio::time::Instant::now();
    /// lease.ready().await?; // paused time: no real waiting
    /// assert_eq!(started.elapsed(), Duration::from_secs(2));
    /// let generator = Snowflake::builder(Layout::twitter(), lease.worker_id()?).clock(clock).build()?;
    /// assert!(generator.next_id().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn ready(&self) -> Result<(), WorkerIdError> {
        let ready_at = self.ready_at();
        loop {
            if self.lost.is_lost() {
                return Err(WorkerIdError::Lost { id: self.id });
            }
            let now = self.service.now();
            if now >= ready_at {
                return Ok(());
            }
            tokio::select! {
                _ = self.lost.wait() => {}
                () = tokio::time::sleep(ready_at - now) => {}
            }
        }
    }

    /// Stops renewing and releases the id at once; generators built from it stop.
    ///
    /// # Errors
    ///
    /// [`WorkerIdError::Store`] if the lock service failed or the lease was already gone;
    /// the id is then freed by its TTL.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::InMemoryLockService;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = InMemoryLockService::new();
    /// let lease = WorkerLease::builder(locks.clone()).acquire().await?;
    /// let validity = lease.validity().clone();
    /// lease.release().await?;
    /// assert!(!validity.is_valid());
    /// let next = WorkerLease::builder(locks).acquire().await?;
    /// assert_eq!(next.id(), 0); // free again at once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn release(self) -> Result<(), WorkerIdError> {
        self.validity.revoke();
        self.guard.release().await.map_err(store)
    }
}

impl<S: LockService + Clone + 'static> WorkerIdProvider for WorkerLease<S> {
    /// The leased id with its validity.
    ///
    /// # Errors
    ///
    /// [`WorkerIdError::Lost`] if the lease is lost.
    fn worker_id(&self) -> Result<WorkerId, WorkerIdError> {
        if self.lost.is_lost() {
            return Err(WorkerIdError::Lost { id: self.id });
        }
        Ok(WorkerId::leased(self.id, self.validity.clone()))
    }
}

impl<S: LockService + Clone + 'static> fmt::Debug for WorkerLease<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerLease")
            .field("id", &self.id)
            .field("lease", &self.guard.lease())
            .field("ready_at", &self.ready_at())
            .field("lost", &self.lost.reason())
            .finish_non_exhaustive()
    }
}

/// Configures and acquires a [`WorkerLease`]; see [`WorkerLease::builder`].
///
/// # Example
///
/// ```
/// use keel_idgen::WorkerLease;
/// use keel_lock::{InMemoryLockService, KeepAlive};
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let locks = InMemoryLockService::new();
/// let lease = WorkerLease::builder(locks)
///     .name_prefix("orders:worker:")
///     .ids(16)
///     .ttl(Duration::from_secs(5))
///     .keep_alive(KeepAlive::renew_every(0.25)?)
///     .safety_margin(Duration::from_millis(500))
///     .acquire()
///     .await?;
/// assert!(lease.id() < 16);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WorkerLeaseBuilder<S> {
    service: S,
    prefix: String,
    ids: u64,
    ttl: Duration,
    keep_alive: KeepAlive,
    margin: Option<Duration>,
}

impl<S: LockService + Clone + 'static> WorkerLeaseBuilder<S> {
    /// The lock names are `<prefix><id>` (default prefix `keel:idgen:worker:`).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::InMemoryLockService;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = InMemoryLockService::new();
    /// let lease = WorkerLease::builder(locks.clone()).name_prefix("orders:").acquire().await?;
    /// assert_eq!(locks.holder("orders:0"), Some(lease.token()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> WorkerLeaseBuilder<S> {
        self.prefix = prefix.into();
        self
    }

    /// How many ids to lease from, `0..ids` (default 1024, a 10-bit worker field).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{WorkerIdError, WorkerLease};
    /// use keel_lock::InMemoryLockService;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = InMemoryLockService::new();
    /// let only = WorkerLease::builder(locks.clone()).ids(1).acquire().await?;
    /// assert_eq!(only.id(), 0);
    /// let refused = WorkerLease::builder(locks).ids(1).acquire().await;
    /// assert_eq!(refused.unwrap_err(), WorkerIdError::NoFreeId { ids: 1 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ids(mut self, ids: u64) -> WorkerLeaseBuilder<S> {
        self.ids = ids;
        self
    }

    /// The lock lease's time to live (default 10 s); also how long a new id waits before its
    /// first ID.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let clock = ManualClock::new();
    /// let locks = InMemoryLockService::with_clock(clock.clone());
    /// let lease = WorkerLease::builder(locks).ttl(Duration::from_secs(3)).acquire().await?;
    /// assert_eq!(lease.ready_at(), clock.now() + Duration::from_secs(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> WorkerLeaseBuilder<S> {
        self.ttl = ttl;
        self
    }

    /// How the lease is renewed (default [`KeepAlive::new`], every third of the TTL). It must
    /// renew before the generator would stop, so its fraction must be below
    /// `1 - safety_margin / ttl`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::{InMemoryLockService, KeepAlive};
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = InMemoryLockService::new();
    /// let too_late = WorkerLease::builder(locks)
    ///     .ttl(Duration::from_secs(10))
    ///     .keep_alive(KeepAlive::renew_every(0.95)?) // at 9.5 s, after the stop at 9 s
    ///     .acquire()
    ///     .await;
    /// assert!(too_late.unwrap_err().to_string().contains("renew before"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keep_alive(mut self, keep_alive: KeepAlive) -> WorkerLeaseBuilder<S> {
        self.keep_alive = keep_alive;
        self
    }

    /// How long before the lock lease's expiry the generator stops (default a tenth of the
    /// TTL): it covers the holders' clocks running at different rates.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::WorkerLease;
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let clock = ManualClock::new();
    /// let locks = InMemoryLockService::with_clock(clock.clone());
    /// let lease = WorkerLease::builder(locks)
    ///     .ttl(Duration::from_secs(10))
    ///     .safety_margin(Duration::from_secs(3))
    ///     .acquire()
    ///     .await?;
    /// assert_eq!(lease.validity().deadline(), clock.now() + Duration::from_secs(7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn safety_margin(mut self, margin: Duration) -> WorkerLeaseBuilder<S> {
        self.margin = Some(margin);
        self
    }

    /// Claims the first free id and starts renewing it on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`WorkerIdError::Config`] for an invalid configuration (the message says which),
    /// [`WorkerIdError::NoFreeId`] if every id is held, and [`WorkerIdError::Store`] if the
    /// lock service fails or there is no tokio runtime to renew on.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{WorkerIdError, WorkerLease};
    /// use keel_lock::InMemoryLockService;
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = InMemoryLockService::new();
    /// let lease = WorkerLease::builder(locks.clone()).ids(1024).acquire().await?;
    /// assert_eq!(lease.id(), 0);
    /// let zero = WorkerLease::builder(locks).ttl(Duration::ZERO).acquire().await;
    /// assert_eq!(zero.unwrap_err(), WorkerIdError::Config { reason: "ttl must be above zero" });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn acquire(self) -> Result<WorkerLease<S>, WorkerIdError> {
        let margin = self.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(store(LockError::NoRuntime));
        }
        let mut name = String::with_capacity(self.prefix.len() + 20);
        for id in 0..self.ids {
            name.clear();
            name.push_str(&self.prefix);
            name.push_str(&id.to_string());
            let Some(granted) = self
                .service
                .try_acquire(&name, self.ttl)
                .await
                .map_err(store)?
            else {
                continue;
            };
            // Counted from when the grant was received: after the store answered every
            // renewal of a previous holder.
            let ready_at = self.service.now().saturating_add(self.ttl);
            let guard = match self.keep_alive.start(self.service.clone(), granted.clone()) {
                Ok(guard) => guard,
                Err(error) => {
                    let _ = self.service.release(&granted).await;
                    return Err(store(error));
                }
            };
            let lost = guard.lost();
            let clock = self.service.clone();
            let validity = LeaseValidity::held(
                lost.clone(),
                margin,
                ready_at,
                Box::new(move || clock.now()),
            );
            return Ok(WorkerLease {
                id,
                service: self.service,
                guard,
                lost,
                validity,
            });
        }
        Err(WorkerIdError::NoFreeId { ids: self.ids })
    }

    /// The safety margin, once the configuration is known to work.
    fn validate(&self) -> Result<Duration, WorkerIdError> {
        if self.ids == 0 {
            return Err(config("ids must be at least 1"));
        }
        if self.ttl.is_zero() {
            return Err(config("ttl must be above zero"));
        }
        let margin = self.margin.unwrap_or(self.ttl / 10);
        if margin.is_zero() || margin >= self.ttl {
            return Err(config("safety margin must be above zero and below the ttl"));
        }
        if self.ttl.mul_f64(self.keep_alive.fraction()) >= self.ttl - margin {
            return Err(config(
                "the keep-alive must renew before the generator stops: its fraction of the ttl must be below 1 - safety margin / ttl",
            ));
        }
        Ok(margin)
    }
}

impl<S: fmt::Debug> fmt::Debug for WorkerLeaseBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerLeaseBuilder")
            .field("service", &self.service)
            .field("prefix", &self.prefix)
            .field("ids", &self.ids)
            .field("ttl", &self.ttl)
            .field("keep_alive", &self.keep_alive)
            .field("margin", &self.margin)
            .finish()
    }
}

fn config(reason: &'static str) -> WorkerIdError {
    WorkerIdError::Config { reason }
}

fn store(error: LockError) -> WorkerIdError {
    WorkerIdError::Store {
        source: StoreError::new(error),
    }
}
