//! Bulkhead limits, bounded waits and cancellation, on tokio's paused clock.

use std::sync::Arc;

use keel_breaker::Bulkhead;

#[test]
fn rejects_past_the_limit_and_frees_on_drop() {
    let bulkhead = Bulkhead::new(2).unwrap();
    let a = bulkhead.try_acquire().unwrap();
    let b = bulkhead.try_acquire().unwrap();
    let full = bulkhead.try_acquire().unwrap_err();
    assert_eq!((full.max_concurrent(), full.waited()), (2, None));
    assert_eq!(bulkhead.call(|| 1).unwrap_err(), full);
    drop(a);
    assert_eq!(bulkhead.call(|| 7), Ok(7));
    assert_eq!(bulkhead.in_use(), 1);
    drop(b);
    assert_eq!(bulkhead.in_use(), 0);
    assert_eq!(
        Bulkhead::new(0).unwrap_err().to_string(),
        "bulkhead max concurrent calls must be > 0"
    );
}

#[test]
fn threads_never_exceed_the_limit() {
    let bulkhead = Arc::new(Bulkhead::new(3).unwrap());
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (bulkhead, peak) = (bulkhead.clone(), peak.clone());
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    if let Ok(_permit) = bulkhead.try_acquire() {
                        peak.fetch_max(bulkhead.in_use(), std::sync::atomic::Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 3);
    assert_eq!(bulkhead.in_use(), 0);
}

#[cfg(feature = "tokio")]
mod waiting {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_the_slot_when_it_frees() {
        let bulkhead = Arc::new(Bulkhead::with_max_wait(1, Duration::from_secs(1)).unwrap());
        let held = bulkhead.try_acquire_owned().unwrap();
        let waiter = {
            let bulkhead = bulkhead.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let permit = bulkhead.acquire_owned().await.unwrap();
                (started.elapsed(), permit)
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
        let (waited, _permit) = waiter.await.unwrap();
        assert_eq!(waited, Duration::from_millis(300));
        assert_eq!(bulkhead.in_use(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_bounded() {
        let bulkhead = Bulkhead::with_max_wait(1, Duration::from_millis(250)).unwrap();
        let _held = bulkhead.try_acquire().unwrap();
        let full = bulkhead.call_async(async { 1 }).await.unwrap_err();
        assert_eq!(full.waited(), Some(Duration::from_millis(250)));
        assert!(full.to_string().contains("waited 250ms"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_of_duration_max_waits_without_a_deadline() {
        // The deadline would overflow the instant; it must wait, not panic.
        let bulkhead = Arc::new(Bulkhead::with_max_wait(1, Duration::MAX).unwrap());
        let held = bulkhead.try_acquire_owned().unwrap();
        let waiter = {
            let bulkhead = bulkhead.clone();
            tokio::spawn(async move { bulkhead.acquire_owned().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!waiter.is_finished(), "still waiting after an hour");
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(bulkhead.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_call_gives_its_slot_back() {
        let bulkhead = Bulkhead::with_max_wait(1, Duration::from_secs(5)).unwrap();
        let slow = bulkhead.call_async(tokio::time::sleep(Duration::from_secs(60)));
        assert!(
            tokio::time::timeout(Duration::from_secs(1), slow)
                .await
                .is_err()
        );
        assert_eq!(bulkhead.in_use(), 0);
        // A cancelled waiter leaves nothing behind either.
        let _held = bulkhead.try_acquire().unwrap();
        let waiting = bulkhead.acquire();
        assert!(
            tokio::time::timeout(Duration::from_millis(10), waiting)
                .await
                .is_err()
        );
        assert_eq!(bulkhead.in_use(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_waiters_all_get_through_one_slot() {
        let bulkhead = Arc::new(Bulkhead::with_max_wait(1, Duration::from_secs(30)).unwrap());
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (bulkhead, inside) = (bulkhead.clone(), inside.clone());
                tokio::spawn(async move {
                    let _permit = bulkhead.acquire_owned().await.unwrap();
                    let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(now, 0, "two calls inside a one-slot bulkhead");
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(bulkhead.in_use(), 0);
    }
}
