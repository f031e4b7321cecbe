//! The failover scenario the Cluster and Sentinel tests share: worker A issues IDs with a
//! leased worker id; the caller kills the master holding the lease and waits for its
//! replica's promotion; A's renewals fail, so it stops; B leases a worker id, waits one TTL,
//! and issues the rest. No ID repeats, and if B got A's id, A's last ID is stamped before
//! B's first.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use keel_idgen::{GenerateError, Layout, Snowflake, WorkerIdProvider, WorkerLease};
use keel_lock::LockService;
use tokio::runtime::Runtime;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// IDs issued by A and B together.
const TOTAL: usize = 200_000;
/// Short, so a lost lease stops A soon after the failover.
const TTL: Duration = Duration::from_millis(800);
/// IDs A issues before the caller fails the master over.
const BEFORE_FAILOVER: usize = 5_000;

/// A two-thread runtime for the leases' renewals.
pub(crate) fn runtime() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Worker A: a ready lease and a thread issuing IDs on it until the lease is lost.
pub(crate) struct FirstWorker<S: LockService + Clone + 'static> {
    lease: WorkerLease<S>,
    issuing: JoinHandle<Vec<u64>>,
}

impl<S: LockService + Clone + 'static> FirstWorker<S> {
    /// Leases a worker id on `locks` and starts issuing; returns once A has issued
    /// `BEFORE_FAILOVER` IDs, so the caller's failover lands mid-stream.
    pub(crate) fn start(runtime: &Runtime, locks: S) -> Result<FirstWorker<S>> {
        let lease = runtime.block_on(async {
            let lease = WorkerLease::builder(locks).ttl(TTL).acquire().await?;
            lease.ready().await?;
            Ok::<_, Box<dyn std::error::Error>>(lease)
        })?;
        let generator = Snowflake::builder(Layout::twitter(), lease.worker_id()?).build()?;
        let issued = Arc::new(AtomicUsize::new(0));
        let issuing = std::thread::spawn({
            let issued = issued.clone();
            move || {
                let mut ids = Vec::new();
                loop {
                    for _ in 0..100 {
                        match generator.next_id() {
                            Ok(id) => ids.push(id),
                            Err(GenerateError::LeaseExpired) => return ids,
                            Err(other) => panic!("A: {other}"),
                        }
                    }
                    issued.store(ids.len(), Ordering::Release);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        while issued.load(Ordering::Acquire) < BEFORE_FAILOVER {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(FirstWorker { lease, issuing })
    }

    /// A's worker id, for finding the master that holds its lease.
    #[allow(dead_code, reason = "a Sentinel group has one master, whatever the id")]
    pub(crate) fn id(&self) -> u64 {
        self.lease.id()
    }

    /// After the failover: B leases a worker id on `locks` (the new master), waits until its
    /// lease is valid, and issues until A's and B's IDs make `TOTAL`.
    pub(crate) fn hand_over<T>(self, runtime: &Runtime, locks: T) -> Result
    where
        T: LockService + Clone + 'static,
    {
        let layout = Layout::twitter();
        let a = self.lease;
        let b = runtime.block_on(WorkerLease::builder(locks).ttl(TTL).acquire())?;
        let b_generator = Snowflake::builder(layout, b.worker_id()?).build()?;
        runtime.block_on(b.ready())?;
        let a_ids = self.issuing.join().map_err(|_| "A panicked")?;
        assert!(a.lost().is_lost());
        let mut all: HashSet<u64> = HashSet::with_capacity(TOTAL);
        let mut duplicates = a_ids.iter().filter(|id| !all.insert(**id)).count();
        let mut b_ids = Vec::new();
        while all.len() + duplicates < TOTAL.max(a_ids.len() + 1) {
            let id = b_generator.next_id()?;
            b_ids.push(id);
            if !all.insert(id) {
                duplicates += 1;
            }
        }
        assert_eq!(duplicates, 0);
        if a.id() == b.id() {
            let last_a = a_ids.iter().map(|id| layout.decode(*id).unix_millis).max();
            let first_b = b_ids.iter().map(|id| layout.decode(*id).unix_millis).min();
            assert!(last_a < first_b, "A stopped before B started");
        }
        println!(
            "A (id {}) issued {}, B (id {}) issued {}, duplicates {duplicates}",
            a.id(),
            a_ids.len(),
            b.id(),
            b_ids.len()
        );
        Ok(())
    }
}
