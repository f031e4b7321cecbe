//! A store that rejects stale writers.
//!
//! Two workers share one lock. The first stalls past its lease (as in a long GC pause); the
//! second acquires and writes; when the first wakes and writes, the store's fence refuses it.
//!
//! `cargo run -p keel-lock --example fenced_store`

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use keel_core::ManualClock;
use keel_lock::{Fence, FencingToken, InMemoryLockService, LockService, StaleToken};

/// A key-value store that accepts a write only with a token at least as new as any it saw.
#[derive(Debug, Default)]
struct FencedStore {
    fence: Fence,
    data: Mutex<HashMap<String, String>>,
}

impl FencedStore {
    fn put(&self, token: FencingToken, key: &str, value: &str) -> Result<(), StaleToken> {
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        // The check runs under the same lock as the write, so no older writer slips between.
        self.fence.advance(token)?;
        data.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    fn get(&self, key: &str) -> Option<String> {
        let data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        data.get(key).cloned()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let clock = ManualClock::new();
        let locks = InMemoryLockService::with_clock(clock.clone());
        let store = FencedStore::default();
        let ttl = Duration::from_secs(10);

        let worker_1 = locks.acquire("balance", ttl, Duration::ZERO).await?;
        store.put(worker_1.token(), "balance", "100")?;
        println!("worker 1 (token {}) wrote 100", worker_1.token());

        // Worker 1 stalls for 15 s: its lease runs out and worker 2 takes over.
        clock.advance(Duration::from_secs(15));
        let worker_2 = locks.acquire("balance", ttl, Duration::ZERO).await?;
        store.put(worker_2.token(), "balance", "250")?;
        println!("worker 2 (token {}) wrote 250", worker_2.token());

        // Worker 1 wakes up, unaware, and writes what it computed before the pause.
        match store.put(worker_1.token(), "balance", "90") {
            Ok(()) => return Err("the stale write was accepted".into()),
            Err(stale) => println!("worker 1 rejected: {stale}"),
        }
        assert_eq!(store.get("balance").as_deref(), Some("250"));
        locks.release(&worker_2).await?;
        println!("balance = {}", store.get("balance").unwrap_or_default());
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
