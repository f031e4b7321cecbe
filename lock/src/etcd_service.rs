//! `EtcdLockService`: leases kept in etcd, fenced by the lock key's create revision.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchFilterType,
    WatchOptions,
};
use keel_core::{Backoff, BackoffJitter, Clock, Delays, Instant, JitterRng, SystemClock};

use crate::{EtcdFence, FencingToken, Lease, LockConfigError, LockError, LockService};

/// etcd refuses a lease TTL above this many seconds (`MaxLeaseTTL`).
const MAX_TTL_SECS: u64 = 9_000_000_000;
/// The pauses before a call that failed to reach etcd is sent again: keel-core's backoff,
/// from 10 ms doubling to 80 ms, each in the upper half of its step, so clients that lost
/// the same member do not all come back to the cluster in lockstep.
fn resend_backoff() -> Backoff {
    Backoff::exponential(Duration::from_millis(10))
        .max(Duration::from_millis(80))
        .jitter(BackoffJitter::Equal)
}

/// Grants named leases from an etcd cluster; the fencing token is the lock key's **create
/// revision**.
///
/// A lock `name` is the key `prefix + name`, attached to an etcd lease granted for the TTL
/// (rounded up to whole seconds, etcd's unit). It is created only if absent, in one
/// transaction, so etcd itself decides who holds it: a linearizable store replicated by Raft,
/// which keeps its guarantees across leader changes, member restarts and client reconnects
/// (unlike Redis, whose asynchronous replication can lose a lease on failover).
///
/// **Why the create revision.** etcd's revision is one global counter that every write raises,
/// in Raft order, so it never goes back, on any member. A key's create revision is the
/// revision of the write that created it, so each grant of `name` (a new create, after the
/// previous holder's key was deleted by release or by its lease running out) gets a token
/// above every earlier grant's. Unlike the mod revision, it stays the same while the holder
/// extends, so a lease keeps one token from grant to release, as [`LockService`] promises.
///
/// - [`extend`](LockService::extend) checks the key still has the lease's token, then sends
///   an etcd keep-alive for its lease, or moves the key to a new etcd lease when a longer TTL
///   is asked for. Use keel's [`KeepAlive`](crate::KeepAlive) to renew in the background: its
///   lost signal fires when a renewal fails or the TTL passes on the clock.
/// - [`release`](LockService::release) deletes the key if it still has the token, and revokes
///   the etcd lease.
/// - [`acquire`](LockService::acquire) waits on an etcd watch for the key's deletion, not by
///   polling.
///
/// The expiry in a granted [`Lease`] is taken on the service's clock *before* the request is
/// sent, with the TTL asked for: never later than etcd's own expiry, which starts when the
/// leader grants it and is rounded up to a whole second.
///
/// # Example
///
/// ```
/// use keel_lock::{EtcdLockService, LockService};
/// use std::time::Duration;
///
/// # let cluster = keel_testkit::EtcdCluster::start()?;
/// # let endpoints = cluster.endpoints();
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let locks = EtcdLockService::connect(&endpoints).await?;
/// let ttl = Duration::from_secs(10);
/// let first = locks.acquire("report", ttl, Duration::ZERO).await?;
/// assert!(locks.try_acquire("report", ttl).await?.is_none()); // held
/// locks.release(&first).await?;
/// let second = locks.acquire("report", ttl, Duration::ZERO).await?;
/// assert!(second.token() > first.token());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EtcdLockService<C: Clock = SystemClock> {
    client: Client,
    shared: Arc<Shared<C>>,
}

struct Shared<C> {
    prefix: String,
    call_timeout: Duration,
    clock: C,
}

/// Configures an [`EtcdLockService`]: key prefix, call timeout, clock.
///
/// ```
/// use keel_lock::EtcdLockService;
/// use std::time::Duration;
///
/// # let cluster = keel_testkit::EtcdCluster::start()?;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let locks = EtcdLockService::builder()
///     .prefix("app/locks/")
///     .call_timeout(Duration::from_secs(5))
///     .connect(&cluster.endpoints())
///     .await?;
/// assert_eq!(locks.lock_key("jobs"), "app/locks/jobs");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct EtcdLockServiceBuilder<C: Clock = SystemClock> {
    prefix: String,
    call_timeout: Duration,
    clock: C,
}

impl EtcdLockService<SystemClock> {
    /// A builder with the defaults: prefix `keel/lock/`, call timeout 3 s, the system clock.
    ///
    /// ```
    /// use keel_lock::EtcdLockService;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = EtcdLockService::builder().connect(&cluster.endpoints()).await?;
    /// assert_eq!(locks.lock_key("a"), "keel/lock/a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> EtcdLockServiceBuilder<SystemClock> {
        EtcdLockServiceBuilder {
            prefix: "keel/lock/".to_owned(),
            call_timeout: Duration::from_secs(3),
            clock: SystemClock,
        }
    }

    /// Connects to the cluster at `endpoints` with the defaults.
    ///
    /// # Errors
    ///
    /// [`LockError::Backend`] when no endpoint can be reached; [`LockError::Timeout`] after
    /// the call timeout.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_lock::{EtcdLockService, LockService};
    /// use std::time::Duration;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    /// assert!(locks.try_acquire("a", Duration::from_secs(5)).await?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn connect<E: AsRef<str>>(
        endpoints: &[E],
    ) -> Result<EtcdLockService<SystemClock>, LockError> {
        EtcdLockService::builder().connect(endpoints).await
    }
}

impl<C: Clock> EtcdLockServiceBuilder<C> {
    /// Sets the prefix of every lock key (default `keel/lock/`).
    ///
    /// ```
    /// use keel_lock::EtcdLockService;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = EtcdLockService::builder().prefix("x/").connect(&cluster.endpoints()).await?;
    /// assert_eq!(locks.lock_key("y"), "x/y");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> EtcdLockServiceBuilder<C> {
        self.prefix = prefix.into();
        self
    }

    /// Sets how long one etcd call may take before it fails with [`LockError::Timeout`]
    /// (default 3 s: a leader election takes about a second).
    ///
    /// ```
    /// use keel_lock::EtcdLockService;
    /// use std::time::Duration;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let zero = EtcdLockService::builder().call_timeout(Duration::ZERO).connect(&cluster.endpoints()).await;
    /// assert!(zero.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_timeout(mut self, timeout: Duration) -> EtcdLockServiceBuilder<C> {
        self.call_timeout = timeout;
        self
    }

    /// Sets the clock that lease expiries are read on.
    ///
    /// ```
    /// use keel_core::ManualClock;
    /// use keel_lock::{EtcdLockService, LockService};
    /// use std::time::Duration;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let clock = ManualClock::new();
    /// let locks = EtcdLockService::builder().clock(clock.clone()).connect(&cluster.endpoints()).await?;
    /// let lease = locks.acquire("a", Duration::from_secs(5), Duration::ZERO).await?;
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(lease.remaining(locks.now()), Duration::from_secs(3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clock<C2: Clock>(self, clock: C2) -> EtcdLockServiceBuilder<C2> {
        EtcdLockServiceBuilder {
            prefix: self.prefix,
            call_timeout: self.call_timeout,
            clock,
        }
    }

    /// Builds the service over a connected client.
    ///
    /// # Errors
    ///
    /// [`LockConfigError`] when the call timeout is zero.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_lock::EtcdLockService;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let client = etcd_client::Client::connect(cluster.endpoints(), None).await?;
    /// let locks = EtcdLockService::builder().build(client)?;
    /// assert_eq!(locks.lock_key("a"), "keel/lock/a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self, client: Client) -> Result<EtcdLockService<C>, LockConfigError> {
        if self.call_timeout.is_zero() {
            return Err(LockConfigError::new("etcd call timeout must be > 0"));
        }
        Ok(EtcdLockService {
            client,
            shared: Arc::new(Shared {
                prefix: self.prefix,
                call_timeout: self.call_timeout,
                clock: self.clock,
            }),
        })
    }

    /// Connects to `endpoints` and builds the service.
    ///
    /// # Errors
    ///
    /// [`LockError::Config`] for a zero call timeout; [`LockError::Backend`] or
    /// [`LockError::Timeout`] when the cluster cannot be reached.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_lock::EtcdLockService;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = EtcdLockService::builder().connect(&cluster.endpoints()).await?;
    /// assert!(format!("{locks:?}").contains("keel/lock/"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn connect<E: AsRef<str>>(
        self,
        endpoints: &[E],
    ) -> Result<EtcdLockService<C>, LockError> {
        if self.call_timeout.is_zero() {
            return Err(LockError::Config(LockConfigError::new(
                "etcd call timeout must be > 0",
            )));
        }
        let client = with_timeout(
            "connect",
            self.call_timeout,
            Client::connect(endpoints, None),
        )
        .await?;
        self.build(client).map_err(LockError::Config)
    }
}

/// The outcome of one create-if-absent attempt.
enum Attempt {
    Granted(FencingToken),
    /// Held by someone; watch for its deletion from this revision on.
    Held {
        revision: i64,
    },
}

impl<C: Clock> EtcdLockService<C> {
    /// A fence kept in etcd at `fence_key`, on this service's client and call timeout.
    ///
    /// ```
    /// use keel_lock::{EtcdLockService, LockService};
    /// use std::time::Duration;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    /// let fence = locks.fence("orders/fence");
    /// let lease = locks.acquire("orders", Duration::from_secs(5), Duration::ZERO).await?;
    /// fence.set(lease.token(), "orders/total", "42").await?;
    /// assert_eq!(fence.fence_key(), "orders/fence");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fence(&self, fence_key: impl Into<String>) -> EtcdFence {
        EtcdFence::from_checked(self.client.clone(), fence_key, self.shared.call_timeout)
    }

    /// The etcd client the service uses.
    ///
    /// ```
    /// use keel_lock::{EtcdLockService, LockService};
    /// use std::time::Duration;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    /// let lease = locks.acquire("a", Duration::from_secs(5), Duration::ZERO).await?;
    /// let found = locks.client().clone().get(locks.lock_key("a"), None).await?;
    /// assert_eq!(found.kvs()[0].create_revision() as u64, lease.token().get());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The etcd key that holds lock `name`.
    ///
    /// ```
    /// use keel_lock::EtcdLockService;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    /// assert_eq!(locks.lock_key("jobs"), "keel/lock/jobs");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_key(&self, name: &str) -> String {
        format!("{}{name}", self.shared.prefix)
    }

    async fn call<T, F, Fut>(&self, operation: &'static str, call: F) -> Result<T, LockError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        retrying(&self.client, self.shared.call_timeout, operation, call).await
    }

    /// Grants an etcd lease and creates the key on it if the key is absent, in one
    /// transaction; revokes the lease if the key was there.
    async fn attempt(&self, key: &str, ttl: Duration) -> Result<Attempt, LockError> {
        let secs = ttl_secs(ttl)?;
        let lease_id = self
            .call(
                "grant",
                |mut c| async move { c.lease_grant(secs, None).await },
            )
            .await?
            .id();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                lease_id.to_string(),
                Some(PutOptions::new().with_lease(lease_id)),
            )])
            .or_else([TxnOp::get(key, None)]);
        // On an error the put may or may not have landed; if it did, the lease runs out by
        // its TTL.
        let reply = self
            .call("acquire", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        let revision = reply.header().map(|h| h.revision()).unwrap_or(0);
        let token = |revision: i64| {
            u64::try_from(revision)
                .ok()
                .filter(|&r| r > 0)
                .map(FencingToken::new)
                .ok_or_else(|| unexpected("acquire", &revision))
        };
        if reply.succeeded() {
            return token(revision).map(Attempt::Granted);
        }
        let holder = reply.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(got) => got
                .kvs()
                .first()
                .map(|kv| (kv.lease(), kv.create_revision())),
            _ => None,
        });
        if let Some((holder_lease, created)) = holder
            && holder_lease == lease_id
        {
            // A retried call whose first try had landed: the key is ours.
            return token(created).map(Attempt::Granted);
        }
        // Nothing holds this lease now; give it back at once rather than after its TTL.
        let _ = self
            .call(
                "revoke",
                |mut c| async move { c.lease_revoke(lease_id).await },
            )
            .await;
        Ok(Attempt::Held { revision })
    }

    /// Waits, up to `wait`, for a delete of `key` after `revision` (a release or an expiry).
    async fn wait_for_delete(
        &self,
        key: &str,
        revision: i64,
        wait: Duration,
    ) -> Result<(), LockError> {
        let options = WatchOptions::new()
            .with_start_revision(revision + 1)
            .with_filters([WatchFilterType::NoPut]);
        let mut stream = self
            .call("watch", |mut c| {
                let options = options.clone();
                async move { c.watch(key, Some(options)).await }
            })
            .await?;
        let deleted = async {
            loop {
                match stream.message().await {
                    Ok(Some(reply)) => {
                        if reply.canceled() {
                            // Compacted past our revision, or the server went away: look again.
                            return Ok(());
                        }
                        if reply
                            .events()
                            .iter()
                            .any(|e| e.event_type() == EventType::Delete)
                        {
                            return Ok(());
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(error) => return Err(backend(error)),
                }
            }
        };
        match tokio::time::timeout(wait, deleted).await {
            Ok(result) => result,
            Err(_elapsed) => Ok(()),
        }
    }

    fn not_held(lease: &Lease) -> LockError {
        LockError::NotHeld {
            name: lease.shared_name(),
            token: lease.token(),
        }
    }
}

impl<C: Clock> LockService for EtcdLockService<C> {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, LockError> {
        check_name(name)?;
        ttl_secs(ttl)?;
        let start = self.shared.clock.now();
        match self.attempt(&self.lock_key(name), ttl).await? {
            Attempt::Granted(token) => Ok(Some(Lease::new(name.into(), token, start + ttl, ttl))),
            Attempt::Held { .. } => Ok(None),
        }
    }

    async fn acquire(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Lease, LockError> {
        check_name(name)?;
        ttl_secs(ttl)?;
        let key = self.lock_key(name);
        let clock = &self.shared.clock;
        let first = clock.now();
        let deadline = first.saturating_add(wait);
        loop {
            let start = clock.now();
            let revision = match self.attempt(&key, ttl).await? {
                Attempt::Granted(token) => {
                    return Ok(Lease::new(name.into(), token, start + ttl, ttl));
                }
                Attempt::Held { revision } => revision,
            };
            let now = clock.now();
            if now >= deadline {
                return Err(LockError::Busy {
                    name: name.into(),
                    waited: now - first,
                });
            }
            self.wait_for_delete(&key, revision, deadline - now).await?;
        }
    }

    async fn extend(&self, lease: &Lease, ttl: Duration) -> Result<Lease, LockError> {
        let secs = ttl_secs(ttl)?;
        let start = self.shared.clock.now();
        let key = self.lock_key(lease.name());
        let key = key.as_str();
        let token = i64::try_from(lease.token().get()).map_err(|_| Self::not_held(lease))?;
        let found = self
            .call("extend", |mut c| async move { c.get(key, None).await })
            .await?;
        let Some(kv) = found
            .kvs()
            .first()
            .filter(|kv| kv.create_revision() == token)
        else {
            return Err(Self::not_held(lease));
        };
        let old_lease = kv.lease();
        let granted = self
            .call("extend", |mut c| async move {
                let (mut keeper, mut replies) = c.lease_keep_alive(old_lease).await?;
                keeper.keep_alive().await?;
                Ok(replies.message().await?.map_or(0, |reply| reply.ttl()))
            })
            .await?;
        if granted <= 0 {
            return Err(Self::not_held(lease));
        }
        if granted < secs {
            // A longer TTL than the etcd lease has: move the key to a new lease, if it is
            // still ours. A put keeps the create revision, so the token stays.
            let new_lease = self
                .call(
                    "extend",
                    |mut c| async move { c.lease_grant(secs, None).await },
                )
                .await?
                .id();
            let txn = Txn::new()
                .when([Compare::create_revision(key, CompareOp::Equal, token)])
                .and_then([TxnOp::put(
                    key,
                    new_lease.to_string(),
                    Some(PutOptions::new().with_lease(new_lease)),
                )]);
            let moved = self
                .call("extend", |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?
                .succeeded();
            let stale = if moved { old_lease } else { new_lease };
            let _ = self
                .call("revoke", |mut c| async move { c.lease_revoke(stale).await })
                .await;
            if !moved {
                return Err(Self::not_held(lease));
            }
        }
        Ok(Lease::new(
            lease.shared_name(),
            lease.token(),
            start + ttl,
            ttl,
        ))
    }

    async fn release(&self, lease: &Lease) -> Result<(), LockError> {
        let key = self.lock_key(lease.name());
        let key = key.as_str();
        let token = i64::try_from(lease.token().get()).map_err(|_| Self::not_held(lease))?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, token)])
            .and_then([TxnOp::get(key, None), TxnOp::delete(key, None)]);
        // A retry after a first try that landed finds the key gone: NotHeld, and the lock is
        // free either way.
        let reply = self
            .call("release", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if !reply.succeeded() {
            return Err(Self::not_held(lease));
        }
        let etcd_lease = reply.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(got) => got.kvs().first().map(|kv| kv.lease()),
            _ => None,
        });
        if let Some(id) = etcd_lease.filter(|&id| id != 0) {
            // The key is gone, so the lock is free either way; a failed revoke only leaves
            // an empty etcd lease to run out.
            let _ = self
                .call("revoke", |mut c| async move { c.lease_revoke(id).await })
                .await;
        }
        Ok(())
    }

    fn now(&self) -> Instant {
        self.shared.clock.now()
    }
}

impl<C: Clock> Clone for EtcdLockService<C> {
    fn clone(&self) -> EtcdLockService<C> {
        EtcdLockService {
            client: self.client.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<C: Clock> fmt::Debug for EtcdLockService<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdLockService")
            .field("prefix", &self.shared.prefix)
            .field("call_timeout", &self.shared.call_timeout)
            .field("clock", &self.shared.clock)
            .finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<(), LockError> {
    if name.is_empty() {
        Err(LockError::EmptyName)
    } else {
        Ok(())
    }
}

/// The TTL in whole seconds, rounded up (etcd's unit); zero or beyond etcd's limit is an error.
fn ttl_secs(ttl: Duration) -> Result<i64, LockError> {
    let secs = ttl.as_nanos().div_ceil(1_000_000_000);
    match u64::try_from(secs) {
        Ok(secs) if secs > 0 && secs <= MAX_TTL_SECS => {
            i64::try_from(secs).map_err(|_| LockError::InvalidTtl { ttl })
        }
        _ => Err(LockError::InvalidTtl { ttl }),
    }
}

/// Runs `call` on a clone of `client`, again while it fails at the transport (the client
/// still routes some calls to a member that is down), all within `after`. Every call made
/// through it is safe to repeat even if a failed try had landed: see `attempt` and `release`
/// for the two that must look at what the first try did.
pub(crate) async fn retrying<T, F, Fut>(
    client: &Client,
    after: Duration,
    operation: &'static str,
    mut call: F,
) -> Result<T, LockError>
where
    F: FnMut(Client) -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let deadline = tokio::time::Instant::now() + after;
    // Seeded on the first failure only: a call that goes through pays for no generator.
    let mut pauses: Option<Delays<JitterRng>> = None;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, call(client.clone())).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) if not_sent(&error) => {
                let pauses = pauses
                    .get_or_insert_with(|| resend_backoff().delays(JitterRng::from_entropy()));
                let pause = pauses.next().unwrap_or_default();
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left <= pause {
                    return Err(backend(error));
                }
                tokio::time::sleep(pause).await;
            }
            Ok(Err(error)) => return Err(backend(error)),
            Err(_elapsed) => return Err(LockError::Timeout { operation, after }),
        }
    }
}

async fn with_timeout<T>(
    operation: &'static str,
    after: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, LockError> {
    match tokio::time::timeout(after, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(backend(error)),
        Err(_elapsed) => Err(LockError::Timeout { operation, after }),
    }
}

/// Whether the call failed at the transport: no connection, or a broken one to a member that
/// is down (gRPC `UNAVAILABLE`, or `UNKNOWN` "transport error"). Another member may answer.
fn not_sent(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            let code = i32::from(status.code());
            code == 14 || (code == 2 && status.message().contains("transport error"))
        }
        _ => false,
    }
}

pub(crate) fn backend(error: etcd_client::Error) -> LockError {
    LockError::Backend(Arc::new(error))
}

pub(crate) fn unexpected(operation: &str, reply: &dyn fmt::Debug) -> LockError {
    LockError::Backend(Arc::new(UnexpectedReply(format!(
        "unexpected reply to {operation}: {reply:?}"
    ))))
}

#[derive(Debug)]
struct UnexpectedReply(String);

impl fmt::Display for UnexpectedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnexpectedReply {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_secs(Duration::from_millis(1)).ok(), Some(1));
        assert_eq!(ttl_secs(Duration::from_millis(1500)).ok(), Some(2));
        assert_eq!(ttl_secs(Duration::from_secs(30)).ok(), Some(30));
        assert!(ttl_secs(Duration::ZERO).is_err());
        assert!(ttl_secs(Duration::from_secs(MAX_TTL_SECS + 1)).is_err());
        assert!(ttl_secs(Duration::MAX).is_err());
    }
}
