//! Worker ids leased from Redis: claimed atomically, renewed in the background, and given up
//! by the generator before the lease can expire.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keel_core::{Clock, SystemClock};
use redis::Script;
use redis::aio::ConnectionManager;

use crate::{Lease, WorkerId, WorkerIdError, WorkerIdProvider};

// Claims the first free id: one SET NX PX per id, all inside one script so two claimants
// can never both see an id as free.
const CLAIM: &str = r"
local prefix, token, ttl, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
for id = 0, count - 1 do
  if redis.call('SET', prefix .. id, token, 'NX', 'PX', ttl) then
    return id
  end
end
return -1
";

// Extends the lease only if this holder still owns it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A worker id leased from Redis (feature `redis`).
///
/// # How it works
///
/// - **Claim.** One Lua script tries `SET <prefix><id> <token> NX PX <ttl>` for ids
///   `0..ids` in order and returns the first that succeeds, so concurrent claimants always
///   get distinct ids, and an id whose holder died is free again once its TTL passes.
/// - **Renew.** A tokio task renews every `renew_every` with a script that extends the TTL
///   only if the key still holds this holder's random token.
/// - **Stop before expiry.** The lease's deadline (on the monotonic [`Clock`]) is the time a
///   claim or renewal was *sent* plus the TTL minus a safety margin. Redis cannot expire the
///   key before that, since it started the TTL after the request was sent; the margin covers
///   the two machines' clocks running at slightly different rates. A [`Snowflake`] built from
///   [`worker_id`](WorkerIdProvider::worker_id) checks the deadline before every ID, so if
///   renewals fail (Redis down, paused, partitioned), it stops issuing before another process
///   could claim the id. If a renewal finds the key gone or owned by another token, the lease
///   is revoked at once.
/// - **What the margin must cover.** The next holder stamps IDs from its own wall clock, so
///   besides the clocks' rates the margin should exceed the offset between the machines'
///   wall clocks plus how far the generator may stamp ahead of its clock
///   ([`ClockBackwards::Borrow`] or [`SequenceExhausted::BorrowAhead`]'s `max`); otherwise
///   the new holder's first IDs may repeat the old holder's last ones.
///
/// # Persistence
///
/// A restarted Redis must still know every live lease, or it would hand out an id that a
/// running process holds. Run Redis with `appendonly yes` and `appendfsync always` (each
/// claim is on disk before it is acknowledged); Redis writes `PX` as an absolute expiry in
/// the append-only file, so leases keep their deadlines across restarts. With `everysec` a
/// crash can lose the last second of claims; without persistence a restart frees every id.
/// A replica promoted after a failover may likewise lack the latest claims (use `WAIT`-style
/// replication or a single persistent instance). Keys are built inside the script, so the
/// lease needs a single Redis instance, not a cluster.
///
/// Keep the `RedisWorkerLease` alive while generating: dropping it stops the renewals (the
/// id is then freed by its TTL, or at once by [`release`](RedisWorkerLease::release)).
///
/// # Example
///
/// ```
/// use keel_idgen::{Layout, RedisWorkerLease, Snowflake, WorkerIdProvider};
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # let url = server.url();
/// # let runtime = tokio::runtime::Runtime::new()?;
/// # runtime.block_on(async {
/// let lease = RedisWorkerLease::builder(redis::Client::open(url)?)
///     .key_prefix("orders:worker:")
///     .ids(1024)
///     .ttl(Duration::from_secs(10))
///     .acquire()
///     .await?;
/// let generator = Snowflake::builder(Layout::twitter(), lease.worker_id()?).build()?;
/// let id = generator.next_id()?;
/// assert_eq!(generator.decode(id).worker, lease.id());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Snowflake`]: crate::Snowflake
/// [`ClockBackwards::Borrow`]: crate::ClockBackwards::Borrow
/// [`SequenceExhausted::BorrowAhead`]: crate::SequenceExhausted::BorrowAhead
pub struct RedisWorkerLease {
    shared: Arc<Shared>,
    renewer: tokio::task::JoinHandle<()>,
}

struct Shared {
    connection: ConnectionManager,
    key: String,
    id: u64,
    token: String,
    ttl: Duration,
    margin: Duration,
    renew_every: Duration,
    lease: Lease,
    renew_script: Script,
}

impl RedisWorkerLease {
    /// A builder for a lease in the Redis at `client`.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::RedisWorkerLease;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let client = redis::Client::open(server.url())?;
    /// // Defaults: prefix keel:idgen:worker:, ids 0..1024, a 10 s TTL.
    /// let lease = RedisWorkerLease::builder(client).acquire().await?;
    /// assert_eq!(lease.id(), 0);
    /// assert_eq!(server.command(&["EXISTS", "keel:idgen:worker:0"])?, keel_testkit::Reply::Integer(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(client: redis::Client) -> RedisWorkerLeaseBuilder<SystemClock> {
        RedisWorkerLeaseBuilder {
            client,
            prefix: "keel:idgen:worker:".to_string(),
            ids: 1024,
            ttl: Duration::from_secs(10),
            renew_every: None,
            margin: None,
            clock: SystemClock,
        }
    }

    /// The leased id.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::RedisWorkerLease;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let client = redis::Client::open(server.url())?;
    /// let first = RedisWorkerLease::builder(client.clone()).acquire().await?;
    /// let second = RedisWorkerLease::builder(client).acquire().await?;
    /// assert_eq!((first.id(), second.id()), (0, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The lease's validity, shared with every generator built from this id.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::RedisWorkerLease;
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let clock = ManualClock::new();
    /// let lease = RedisWorkerLease::builder(redis::Client::open(server.url())?)
    ///     .ttl(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .acquire()
    ///     .await?;
    /// // Valid until the TTL minus the default margin (a tenth), from when the claim was sent.
    /// assert_eq!(lease.lease().deadline(), clock.now() + Duration::from_secs(9));
    /// assert!(lease.lease().is_valid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lease(&self) -> &Lease {
        &self.shared.lease
    }

    /// Renews the lease now (the background task also does, every `renew_every`).
    ///
    /// # Errors
    ///
    /// [`WorkerIdError::Lost`] if the key no longer holds this lease's token (the lease is
    /// then revoked), and [`WorkerIdError::Store`] if Redis did not answer in time (the
    /// deadline is then not moved, so the generator stops once it passes).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::RedisWorkerLease;
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let clock = ManualClock::new();
    /// let lease = RedisWorkerLease::builder(redis::Client::open(server.url())?)
    ///     .ttl(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .acquire()
    ///     .await?;
    /// clock.advance(Duration::from_secs(5));
    /// lease.renew().await?;
    /// assert_eq!(lease.lease().deadline(), clock.now() + Duration::from_secs(9));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn renew(&self) -> Result<(), WorkerIdError> {
        self.shared.renew().await
    }

    /// Stops renewing and frees the id at once, if this lease still holds it.
    ///
    /// # Errors
    ///
    /// [`WorkerIdError::Store`] if Redis failed; the id is then freed by its TTL.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::RedisWorkerLease;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let client = redis::Client::open(server.url())?;
    /// let lease = RedisWorkerLease::builder(client.clone()).acquire().await?;
    /// let held = lease.lease().clone();
    /// lease.release().await?;
    /// // Generators sharing the lease stop at once, and the id is free for the next claimant.
    /// assert!(held.is_revoked());
    /// let next = RedisWorkerLease::builder(client).acquire().await?;
    /// assert_eq!(next.id(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn release(self) -> Result<(), WorkerIdError> {
        self.renewer.abort();
        self.shared.lease.revoke();
        let mut connection = self.shared.connection.clone();
        Script::new(RELEASE)
            .key(&self.shared.key)
            .arg(&self.shared.token)
            .invoke_async::<i64>(&mut connection)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

impl Shared {
    async fn renew(&self) -> Result<(), WorkerIdError> {
        let sent = self.lease.now();
        let mut connection = self.connection.clone();
        let mut invocation = self.renew_script.key(&self.key);
        invocation.arg(&self.token).arg(millis(self.ttl));
        // One retry: after a server restart the first call finds the old connection broken
        // and the connection manager reconnects for the second.
        let call = async {
            match invocation.invoke_async::<i64>(&mut connection).await {
                Err(error) if error.is_io_error() || error.is_connection_dropped() => {
                    invocation.invoke_async::<i64>(&mut connection).await
                }
                outcome => outcome,
            }
        };
        let renewed = match tokio::time::timeout(self.ttl / 4, call).await {
            Ok(Ok(renewed)) => renewed,
            Ok(Err(error)) => return Err(store_error(error)),
            Err(_) => {
                return Err(WorkerIdError::Store {
                    reason: "renewal timed out".to_string(),
                });
            }
        };
        if renewed != 1 {
            self.lease.revoke();
            return Err(WorkerIdError::Lost { id: self.id });
        }
        self.lease
            .extend_to(sent + self.ttl.saturating_sub(self.margin));
        Ok(())
    }
}

impl WorkerIdProvider for RedisWorkerLease {
    /// The leased id with its [`Lease`].
    ///
    /// # Errors
    ///
    /// [`WorkerIdError::Lost`] if the lease was revoked.
    fn worker_id(&self) -> Result<WorkerId, WorkerIdError> {
        if self.shared.lease.is_revoked() {
            return Err(WorkerIdError::Lost { id: self.shared.id });
        }
        Ok(WorkerId::leased(self.shared.id, self.shared.lease.clone()))
    }
}

impl Drop for RedisWorkerLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl fmt::Debug for RedisWorkerLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWorkerLease")
            .field("key", &self.shared.key)
            .field("ttl", &self.shared.ttl)
            .field("lease", &self.shared.lease)
            .finish_non_exhaustive()
    }
}

/// Configures and acquires a [`RedisWorkerLease`]; see [`RedisWorkerLease::builder`].
///
/// # Example
///
/// ```
/// use keel_idgen::{RedisWorkerLease, RedisWorkerLeaseBuilder};
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # let runtime = tokio::runtime::Runtime::new()?;
/// # runtime.block_on(async {
/// let builder: RedisWorkerLeaseBuilder = RedisWorkerLease::builder(redis::Client::open(server.url())?)
///     .ids(16)
///     .ttl(Duration::from_secs(30));
/// let lease = builder.acquire().await?;
/// assert!(lease.id() < 16);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisWorkerLeaseBuilder<C = SystemClock> {
    client: redis::Client,
    prefix: String,
    ids: u64,
    ttl: Duration,
    renew_every: Option<Duration>,
    margin: Option<Duration>,
    clock: C,
}

impl<C: Clock + Clone + 'static> RedisWorkerLeaseBuilder<C> {
    /// The prefix of the lease keys (default `keel:idgen:worker:`); the id is appended.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::RedisWorkerLease;
    /// use keel_testkit::Reply;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let lease = RedisWorkerLease::builder(redis::Client::open(server.url())?)
    ///     .key_prefix("orders:worker:")
    ///     .acquire()
    ///     .await?;
    /// assert_eq!(server.command(&["EXISTS", "orders:worker:0"])?, Reply::Integer(1));
    /// assert_eq!(lease.id(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> RedisWorkerLeaseBuilder<C> {
        self.prefix = prefix.into();
        self
    }

    /// How many ids to lease from, `0..ids` (default 1024, a 10-bit worker field).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{RedisWorkerLease, WorkerIdError};
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let client = redis::Client::open(server.url())?;
    /// let only = RedisWorkerLease::builder(client.clone()).ids(1).acquire().await?;
    /// assert_eq!(only.id(), 0);
    /// let refused = RedisWorkerLease::builder(client).ids(1).acquire().await;
    /// assert_eq!(refused.unwrap_err(), WorkerIdError::NoFreeId { ids: 1 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ids(mut self, ids: u64) -> RedisWorkerLeaseBuilder<C> {
        self.ids = ids;
        self
    }

    /// The lease's time to live in Redis (default 10 s).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::RedisWorkerLease;
    /// use keel_testkit::Reply;
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let _lease = RedisWorkerLease::builder(redis::Client::open(server.url())?)
    ///     .ttl(Duration::from_secs(60))
    ///     .acquire()
    ///     .await?;
    /// let Reply::Integer(left) = server.command(&["PTTL", "keel:idgen:worker:0"])? else {
    ///     panic!("no TTL");
    /// };
    /// assert!(left > 59_000 && left <= 60_000, "{left}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> RedisWorkerLeaseBuilder<C> {
        self.ttl = ttl;
        self
    }

    /// How often the background task renews (default a third of the TTL): at least 1 ms
    /// and below the TTL minus the safety margin, or [`acquire`](Self::acquire) refuses it.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{RedisWorkerLease, WorkerIdError};
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let client = redis::Client::open(server.url())?;
    /// let lease = RedisWorkerLease::builder(client.clone())
    ///     .ttl(Duration::from_secs(10))
    ///     .renew_every(Duration::from_secs(2))
    ///     .acquire()
    ///     .await?;
    /// assert_eq!(lease.id(), 0);
    /// // Renewing no sooner than the generator stops would let the lease lapse.
    /// let error = RedisWorkerLease::builder(client)
    ///     .ttl(Duration::from_secs(10))
    ///     .renew_every(Duration::from_secs(9))
    ///     .acquire()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(
    ///     error,
    ///     WorkerIdError::Config {
    ///         reason: "renew_every must be at least 1 ms and below the ttl minus the safety margin"
    ///     }
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn renew_every(mut self, every: Duration) -> RedisWorkerLeaseBuilder<C> {
        self.renew_every = Some(every);
        self
    }

    /// How much earlier than the TTL the generator stops (default a tenth of the TTL).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::{Clock, ManualClock};
    /// use keel_idgen::RedisWorkerLease;
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let clock = ManualClock::new();
    /// let lease = RedisWorkerLease::builder(redis::Client::open(server.url())?)
    ///     .ttl(Duration::from_secs(10))
    ///     .safety_margin(Duration::from_secs(3))
    ///     .clock(clock.clone())
    ///     .acquire()
    ///     .await?;
    /// assert_eq!(lease.lease().deadline(), clock.now() + Duration::from_secs(7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn safety_margin(mut self, margin: Duration) -> RedisWorkerLeaseBuilder<C> {
        self.margin = Some(margin);
        self
    }

    /// Measures the lease's deadline on `clock` (default the system clock).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_idgen::RedisWorkerLease;
    /// use std::time::Duration;
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let clock = ManualClock::new();
    /// let lease = RedisWorkerLease::builder(redis::Client::open(server.url())?)
    ///     .ttl(Duration::from_secs(10))
    ///     .clock(clock.clone())
    ///     .acquire()
    ///     .await?;
    /// // The deadline is measured on the given clock: moving it past 9 s ends the lease.
    /// clock.advance(Duration::from_secs(9));
    /// assert!(!lease.lease().is_valid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock<D: Clock + Clone + 'static>(self, clock: D) -> RedisWorkerLeaseBuilder<D> {
        RedisWorkerLeaseBuilder {
            client: self.client,
            prefix: self.prefix,
            ids: self.ids,
            ttl: self.ttl,
            renew_every: self.renew_every,
            margin: self.margin,
            clock,
        }
    }

    /// Claims a free id and starts renewing it on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`WorkerIdError::Config`] for an invalid configuration (the message says which),
    /// [`WorkerIdError::NoFreeId`] if every id is leased, and [`WorkerIdError::Store`] if
    /// Redis cannot be reached.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime (it spawns the renewal task).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_idgen::{Layout, RedisWorkerLease, Snowflake, WorkerIdProvider};
    ///
    /// # let server = keel_testkit::RedisServer::start()?;
    /// # let runtime = tokio::runtime::Runtime::new()?;
    /// # runtime.block_on(async {
    /// let client = redis::Client::open(server.url())?;
    /// let lease = RedisWorkerLease::builder(client).ids(1024).acquire().await?;
    /// let generator = Snowflake::builder(Layout::twitter(), lease.worker_id()?).build()?;
    /// assert_eq!(generator.decode(generator.next_id()?).worker, lease.id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn acquire(self) -> Result<RedisWorkerLease, WorkerIdError> {
        let margin = self.margin.unwrap_or(self.ttl / 10);
        let renew_every = self.renew_every.unwrap_or(self.ttl / 3);
        if self.ids == 0 {
            return Err(config("ids must be at least 1"));
        }
        if self.ttl < Duration::from_millis(10) {
            return Err(config("ttl must be at least 10 ms"));
        }
        if margin.is_zero() || margin >= self.ttl {
            return Err(config("safety margin must be above zero and below the ttl"));
        }
        // Redis counts the TTL in milliseconds: renewing more often only loads the server.
        if renew_every < Duration::from_millis(1) || renew_every >= self.ttl.saturating_sub(margin)
        {
            return Err(config(
                "renew_every must be at least 1 ms and below the ttl minus the safety margin",
            ));
        }
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.ttl / 4))
            .set_connection_timeout(Some(self.ttl / 4))
            .set_number_of_retries(1);
        let mut connection =
            ConnectionManager::new_with_config(self.client.clone(), manager_config)
                .await
                .map_err(store_error)?;
        let token = format!("{:032x}", rand::random::<u128>());
        let lease = Lease::new(self.clock.clone());
        let sent = lease.now();
        let claimed: i64 = Script::new(CLAIM)
            .arg(&self.prefix)
            .arg(&token)
            .arg(millis(self.ttl))
            .arg(self.ids)
            .invoke_async(&mut connection)
            .await
            .map_err(store_error)?;
        let id = u64::try_from(claimed).map_err(|_| WorkerIdError::NoFreeId { ids: self.ids })?;
        lease.extend_to(sent + self.ttl.saturating_sub(margin));
        let shared = Arc::new(Shared {
            connection,
            key: format!("{}{id}", self.prefix),
            id,
            token,
            ttl: self.ttl,
            margin,
            renew_every,
            lease,
            renew_script: Script::new(RENEW),
        });
        let renewer = tokio::spawn(renew_forever(Arc::clone(&shared)));
        Ok(RedisWorkerLease { shared, renewer })
    }
}

impl<C: fmt::Debug> fmt::Debug for RedisWorkerLeaseBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWorkerLeaseBuilder")
            .field("prefix", &self.prefix)
            .field("ids", &self.ids)
            .field("ttl", &self.ttl)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

// Renews until the lease is lost; after a failure, retries sooner, since the deadline is
// approaching.
async fn renew_forever(shared: Arc<Shared>) {
    let mut pause = shared.renew_every;
    loop {
        tokio::time::sleep(pause).await;
        pause = match shared.renew().await {
            Ok(()) => shared.renew_every,
            Err(WorkerIdError::Lost { .. }) => return,
            Err(_) => (shared.renew_every / 4).max(Duration::from_millis(1)),
        };
    }
}

// Rounded up: Redis counts `PX` in whole milliseconds, and must keep the key at least as
// long as the lease's deadline, which counts the whole TTL.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

fn config(reason: &'static str) -> WorkerIdError {
    WorkerIdError::Config { reason }
}

fn store_error(error: redis::RedisError) -> WorkerIdError {
    WorkerIdError::Store {
        reason: error.to_string(),
    }
}
