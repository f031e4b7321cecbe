//! Single flight: loader calls are counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use keel_cache::Cache;
use keel_core::ManualClock;

/// Spins until `counter` reaches `n`: the threads it counts have started their call.
fn wait_for(counter: &AtomicUsize, n: usize) {
    while counter.load(Ordering::SeqCst) < n {
        std::thread::yield_now();
    }
}

#[test]
fn concurrent_misses_run_the_loader_once() {
    let cache: Arc<Cache<u32, u64>> = Arc::new(Cache::new(100).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, calls, start) = (cache.clone(), calls.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                cache.get_or_insert_with(1, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // Hold the load open so the others pile up behind it.
                    std::thread::sleep(Duration::from_millis(50));
                    99
                })
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 99);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let s = cache.stats();
    assert_eq!((s.load_successes, s.load_failures), (1, 0));
}

#[test]
fn an_error_reaches_every_waiter_and_is_not_cached() {
    let cache: Arc<Cache<u32, u64>> = Arc::new(Cache::new(100).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let arrived = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (cache, calls, arrived) = (cache.clone(), calls.clone(), arrived.clone());
            std::thread::spawn(move || {
                arrived.fetch_add(1, Ordering::SeqCst);
                cache.try_get_or_insert_with(1, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // Fail only once every caller is on its way in (a late caller would
                    // find no flight and load again), plus a margin to reach the wait.
                    wait_for(&arrived, 6);
                    std::thread::sleep(Duration::from_millis(300));
                    Err::<u64, String>("db down".into())
                })
            })
        })
        .collect();
    for t in threads {
        assert_eq!(*t.join().unwrap().unwrap_err(), "db down");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.stats().load_failures, 1);
    // The next call loads again.
    assert_eq!(
        cache.try_get_or_insert_with(1, || Ok::<_, String>(3)),
        Ok(3)
    );
    assert_eq!(cache.get(&1), Some(3));
}

#[test]
fn a_panicking_leader_hands_over_to_a_waiter() {
    let cache: Arc<Cache<u32, u64>> = Arc::new(Cache::new(100).unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let arrived = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let leader = {
        let (cache, calls, arrived) = (cache.clone(), calls.clone(), arrived.clone());
        std::thread::spawn(move || {
            cache.get_or_insert_with(1, || {
                calls.fetch_add(1, Ordering::SeqCst);
                started_tx.send(()).unwrap();
                // Panic only once the waiter is on its way in, plus a margin to reach the
                // wait.
                wait_for(&arrived, 1);
                std::thread::sleep(Duration::from_millis(200));
                panic!("loader blew up");
            })
        })
    };
    // The leader is loading before the waiter starts, so the roles cannot swap.
    started_rx.recv().unwrap();
    let waiter = {
        let (cache, calls) = (cache.clone(), calls.clone());
        std::thread::spawn(move || {
            arrived.fetch_add(1, Ordering::SeqCst);
            cache.get_or_insert_with(1, || {
                calls.fetch_add(1, Ordering::SeqCst);
                7
            })
        })
    };
    assert!(leader.join().is_err());
    assert_eq!(waiter.join().unwrap(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn load_time_is_read_from_the_clock() {
    let clock = ManualClock::new();
    let cache = Cache::builder()
        .max_capacity(10)
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.get_or_insert_with(1u8, || {
        clock.advance(Duration::from_millis(250));
        1u8
    });
    assert_eq!(cache.stats().total_load_time, Duration::from_millis(250));
}

#[cfg(feature = "tokio")]
mod async_loaders {
    use super::*;
    use tokio::sync::oneshot;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_async_misses_run_one_future() {
        let cache: Arc<Cache<u32, u64>> = Arc::new(Cache::new(100).unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = oneshot::channel::<()>();
        let gate = Arc::new(tokio::sync::Mutex::new(Some(gate)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, calls, gate) = (cache.clone(), calls.clone(), gate.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_insert_with_async(5, async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let rx = gate.lock().await.take().unwrap();
                            rx.await.unwrap();
                            55
                        })
                        .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 55);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_leader_does_not_strand_the_waiters() {
        let cache: Arc<Cache<u32, u64>> = Arc::new(Cache::new(100).unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let leader = {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_or_insert_with_async(5, async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        started_tx.send(()).unwrap();
                        std::future::pending::<u64>().await
                    })
                    .await
            })
        };
        started_rx.await.unwrap();
        let waiter = {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .try_get_or_insert_with_async(5, async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok::<u64, String>(6)
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        assert_eq!(waiter.await.unwrap(), Ok(6));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.get(&5), Some(6));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_errors_reach_every_waiter() {
        let cache: Arc<Cache<u32, u64>> = Arc::new(Cache::new(100).unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (cache, calls, arrived) = (cache.clone(), calls.clone(), arrived.clone());
                tokio::spawn(async move {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    cache
                        .try_get_or_insert_with_async(9, async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            // Fail only once every task is on its way in.
                            while arrived.load(Ordering::SeqCst) < 4 {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Err::<u64, &str>("nope")
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(*t.await.unwrap().unwrap_err(), "nope");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get(&9), None);
    }
}
