//! `EtcdFence`: the fence check and the write it guards, in one etcd transaction.

use std::fmt;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};

use crate::etcd_service::{retrying, unexpected};
use crate::{FencingToken, LockConfigError, LockError, StaleToken};

/// A [`Fence`](crate::Fence) kept in etcd: a write to an etcd key that is accepted only with a
/// fencing token at least as high as any the fence has accepted.
///
/// [`set`](EtcdFence::set) is one transaction: *if* the fence key holds a higher token, it
/// only reads it back; *else* it stores the offered token and puts the value. Nothing can slip
/// between the check and the write, and etcd applies it on every member in Raft order. Tokens
/// are stored as 20-digit zero-padded decimals, so etcd's byte-wise comparison orders them as
/// numbers.
///
/// # Example
///
/// ```
/// use keel_lock::{EtcdLockService, LockError, LockService};
/// use std::time::Duration;
///
/// # let cluster = keel_testkit::EtcdCluster::start()?;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
/// let fence = locks.fence("report/fence");
/// let ttl = Duration::from_secs(30);
/// let slow = locks.acquire("report", ttl, Duration::ZERO).await?;
/// locks.release(&slow).await?; // stands in for `slow` stalling past its lease
/// let fast = locks.acquire("report", ttl, Duration::ZERO).await?;
/// fence.set(fast.token(), "report/body", "from the new holder").await?;
/// match fence.set(slow.token(), "report/body", "from the paused holder").await {
///     Err(LockError::Stale(stale)) => assert_eq!(stale.highest(), fast.token()),
///     other => panic!("the stale write must be refused, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct EtcdFence {
    client: Client,
    fence_key: String,
    call_timeout: Duration,
}

impl EtcdFence {
    /// A fence at `fence_key` over `client`; each call times out after `call_timeout`.
    ///
    /// # Errors
    ///
    /// [`LockConfigError`] when `call_timeout` is zero.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_lock::{EtcdFence, FencingToken};
    /// use std::time::Duration;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::builder().members(1)?.start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let client = etcd_client::Client::connect(cluster.endpoints(), None).await?;
    /// assert!(EtcdFence::new(client.clone(), "f", Duration::ZERO).is_err());
    /// let fence = EtcdFence::new(client, "f", Duration::from_secs(2))?;
    /// assert_eq!(fence.advance(FencingToken::new(3)).await?, FencingToken::new(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        client: Client,
        fence_key: impl Into<String>,
        call_timeout: Duration,
    ) -> Result<EtcdFence, LockConfigError> {
        if call_timeout.is_zero() {
            return Err(LockConfigError::new("fence call timeout must be > 0"));
        }
        Ok(EtcdFence::from_checked(client, fence_key, call_timeout))
    }

    pub(crate) fn from_checked(
        client: Client,
        fence_key: impl Into<String>,
        call_timeout: Duration,
    ) -> EtcdFence {
        EtcdFence {
            client,
            fence_key: fence_key.into(),
            call_timeout,
        }
    }

    /// The etcd key that keeps the highest token accepted.
    ///
    /// ```
    /// use keel_lock::EtcdLockService;
    ///
    /// # let cluster = keel_testkit::EtcdCluster::builder().members(1)?.start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    /// assert_eq!(locks.fence("a/fence").fence_key(), "a/fence");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fence_key(&self) -> &str {
        &self.fence_key
    }

    /// Writes `value` to `key` if `token` is at least the highest the fence has accepted,
    /// raising the fence to `token`, in one transaction.
    ///
    /// # Errors
    ///
    /// [`LockError::Stale`] (nothing written) when a higher token was accepted;
    /// [`LockError::Timeout`] and [`LockError::Backend`] when etcd does not answer.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_lock::{EtcdLockService, FencingToken, LockError};
    ///
    /// # let cluster = keel_testkit::EtcdCluster::builder().members(1)?.start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    /// let fence = locks.fence("acct/fence");
    /// fence.set(FencingToken::new(9), "acct/balance", "100").await?;
    /// fence.set(FencingToken::new(9), "acct/balance", "90").await?; // the same holder again
    /// let late = fence.set(FencingToken::new(4), "acct/balance", "0").await;
    /// assert!(matches!(late, Err(LockError::Stale(_))));
    /// let got = locks.client().clone().get("acct/balance", None).await?;
    /// assert_eq!(got.kvs()[0].value(), b"90");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn set(
        &self,
        token: FencingToken,
        key: &str,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), LockError> {
        self.run(token, Some((key, value.into()))).await.map(|_| ())
    }

    /// Raises the fence to `token` without writing anything else; returns the highest token
    /// accepted before (0 for a new fence).
    ///
    /// # Errors
    ///
    /// As [`set`](EtcdFence::set).
    ///
    /// # Example
    ///
    /// ```
    /// use keel_lock::{EtcdLockService, FencingToken, LockError};
    ///
    /// # let cluster = keel_testkit::EtcdCluster::builder().members(1)?.start()?;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let locks = EtcdLockService::connect(&cluster.endpoints()).await?;
    /// let fence = locks.fence("f");
    /// assert_eq!(fence.advance(FencingToken::new(5)).await?, FencingToken::new(0));
    /// assert_eq!(fence.advance(FencingToken::new(8)).await?, FencingToken::new(5));
    /// assert!(matches!(fence.advance(FencingToken::new(7)).await, Err(LockError::Stale(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn advance(&self, token: FencingToken) -> Result<FencingToken, LockError> {
        self.run(token, None).await
    }

    async fn run(
        &self,
        token: FencingToken,
        write: Option<(&str, Vec<u8>)>,
    ) -> Result<FencingToken, LockError> {
        let padded = format!("{:020}", token.get());
        let fence = self.fence_key.as_str();
        let mut writes = vec![TxnOp::put(
            fence,
            padded.as_str(),
            Some(PutOptions::new().with_prev_key()),
        )];
        if let Some((key, value)) = write {
            writes.push(TxnOp::put(key, value, None));
        }
        // A compare on the value of a missing key is false in etcd, so a new fence accepts.
        let txn = Txn::new()
            .when([Compare::value(fence, CompareOp::Greater, padded.as_str())])
            .and_then([TxnOp::get(fence, None)])
            .or_else(writes);
        // Safe to repeat: a retry of a write that landed finds its own token, which is not
        // greater, and writes the same again.
        let reply = retrying(&self.client, self.call_timeout, "fenced write", |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await?;
        let responses = reply.op_responses();
        let seen = match responses.first() {
            Some(TxnOpResponse::Get(got)) => got.kvs().first().map(|kv| kv.value().to_vec()),
            Some(TxnOpResponse::Put(put)) => put.prev_key().map(|kv| kv.value().to_vec()),
            _ => return Err(unexpected("fenced write", &responses)),
        };
        let highest = match seen {
            None => FencingToken::new(0),
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .map(FencingToken::new)
                .ok_or_else(|| unexpected("fenced write", &bytes))?,
        };
        if reply.succeeded() {
            Err(LockError::Stale(StaleToken::new(token, highest)))
        } else {
            Ok(highest)
        }
    }
}

impl fmt::Debug for EtcdFence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdFence")
            .field("fence_key", &self.fence_key)
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}
