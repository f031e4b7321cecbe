//! Async waiting on tokio paused time: until_ready, jitter, cancellation, and the FIFO shaper.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use keel_core::{Backoff, BackoffJitter, TokioClock};
use keel_rate_limit::{
    Gcra, KeyedLimiter, Limiter, Quota, RateLimit, Shaper, SlidingLog, WaitJitter,
};
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error>;

#[tokio::test(start_paused = true)]
async fn until_ready_wakes_exactly_at_retry_after() -> Result<(), BoxError> {
    let limiter = Limiter::<SlidingLog, _>::with_clock(Quota::per_second(2)?, TokioClock::new());
    let start = Instant::now();
    assert!(limiter.until_n_ready(2).await?.is_allowed());
    assert_eq!(start.elapsed(), Duration::ZERO);
    let decision = limiter.until_ready().await;
    assert!(decision.is_allowed());
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert!(limiter.until_n_ready(3).await.is_err(), "never satisfiable");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_within_its_range() -> Result<(), BoxError> {
    let limiter =
        Limiter::<Gcra, _>::with_clock(Quota::per_second(10)?.with_burst(1)?, TokioClock::new());
    let jitter = WaitJitter::up_to(Duration::from_millis(50));
    let mut waits = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        assert!(
            limiter
                .until_n_ready_with_jitter(1, jitter)
                .await?
                .is_allowed()
        );
        waits.push(start.elapsed());
    }
    for wait in &waits[1..] {
        assert!(
            *wait >= Duration::from_millis(100) && *wait <= Duration::from_millis(150),
            "{wait:?}"
        );
    }
    assert!(
        waits[1..].iter().any(|w| *w != waits[1]),
        "jitter varied nothing: {waits:?}"
    );
    Ok(())
}

/// A `WaitJitter` from a growing backoff adds its n-th delay to a caller's n-th wait: two
/// callers denied together wake 10 ms after the retry-after, one wins, and the other, denied
/// again, adds the second step (20 ms) to its next wait.
#[tokio::test(start_paused = true)]
async fn backoff_jitter_grows_with_each_denial() -> Result<(), BoxError> {
    let limiter = Arc::new(Limiter::<Gcra, _>::with_clock(
        Quota::per_second(1)?.with_burst(1)?,
        TokioClock::new(),
    ));
    assert!(limiter.check().is_allowed());
    let jitter = WaitJitter::from_backoff(
        Backoff::exponential(Duration::from_millis(10)).jitter(BackoffJitter::None),
    );
    let start = Instant::now();
    let waiter = |limiter: Arc<Limiter<Gcra, TokioClock>>| async move {
        let decision = limiter.until_n_ready_with_jitter(1, jitter).await;
        (decision.map(|d| d.is_allowed()), start.elapsed())
    };
    let (a, b) = tokio::join!(waiter(limiter.clone()), waiter(limiter.clone()));
    assert_eq!((a.0, b.0), (Ok(true), Ok(true)));
    let mut elapsed = [a.1, b.1];
    elapsed.sort();
    assert_eq!(
        elapsed,
        [Duration::from_millis(1_010), Duration::from_millis(2_030)]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_dropped_until_ready_takes_nothing() -> Result<(), BoxError> {
    let limiter = Limiter::<Gcra, _>::with_clock(Quota::per_second(4)?, TokioClock::new());
    assert!(limiter.check_n(4)?.is_allowed());
    let timed_out =
        tokio::time::timeout(Duration::from_millis(100), limiter.until_n_ready(4)).await;
    assert!(timed_out.is_err());
    // One second after the burst the bucket is full: the dropped waiter took nothing.
    tokio::time::advance(Duration::from_millis(900)).await;
    assert!(limiter.check_n(4)?.is_allowed());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn keyed_until_ready_waits_per_key() -> Result<(), BoxError> {
    let limiter = KeyedLimiter::<u32, Gcra>::builder(Quota::per_second(1)?)
        .clock(TokioClock::new())
        .build()?;
    let start = Instant::now();
    assert!(
        limiter
            .until_key_n_ready(&1, 1, WaitJitter::NONE)
            .await?
            .is_allowed()
    );
    assert!(
        limiter
            .until_key_n_ready(&2, 1, WaitJitter::NONE)
            .await?
            .is_allowed()
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(
        limiter
            .until_key_n_ready(&1, 1, WaitJitter::NONE)
            .await?
            .is_allowed()
    );
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn shaper_serves_in_arrival_order_at_its_rate() -> Result<(), BoxError> {
    let shaper = Arc::new(Shaper::with_clock(
        Quota::per_second(10)?.with_burst(1)?,
        TokioClock::new(),
    ));
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 0..5u64 {
        let shaper = shaper.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            shaper.acquire(1).await.expect("within burst");
            tx.send((i, start.elapsed())).expect("receiver alive");
        }));
        tokio::task::yield_now().await; // let it enqueue before the next arrives
    }
    drop(tx);
    let mut served = Vec::new();
    while let Some(item) = rx.recv().await {
        served.push(item);
    }
    let expected: Vec<_> = (0..5)
        .map(|i| (i, Duration::from_millis(100 * i)))
        .collect();
    assert_eq!(served, expected);
    assert!(shaper.acquire(2).await.is_err(), "over the burst");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_dropped_shaper_waiter_gives_its_place_back() -> Result<(), BoxError> {
    let shaper = Arc::new(Shaper::with_clock(
        Quota::per_second(10)?.with_burst(1)?,
        TokioClock::new(),
    ));
    let start = Instant::now();
    shaper.acquire(1).await?; // t = 0; the next cell is free at 100 ms
    let first = {
        let shaper = shaper.clone();
        tokio::spawn(async move { shaper.acquire(1).await })
    };
    tokio::task::yield_now().await;
    let second = {
        let shaper = shaper.clone();
        tokio::spawn(async move {
            shaper.acquire(1).await.expect("within burst");
            start.elapsed()
        })
    };
    tokio::task::yield_now().await;
    assert_eq!(shaper.waiting(), 2);
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort(); // cancelled while waiting at the head of the queue
    assert!(first.await.is_err());
    // The second waiter gets the first one's slot, not the one after it.
    assert_eq!(second.await?, Duration::from_millis(100));
    assert_eq!(shaper.waiting(), 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_large_request_at_the_head_is_not_overtaken() -> Result<(), BoxError> {
    let shaper = Arc::new(Shaper::with_clock(
        Quota::per_second(10)?.with_burst(3)?,
        TokioClock::new(),
    ));
    let start = Instant::now();
    shaper.acquire(3).await?;
    let big = {
        let shaper = shaper.clone();
        tokio::spawn(async move {
            shaper.acquire(3).await.expect("within burst");
            start.elapsed()
        })
    };
    tokio::task::yield_now().await;
    let small = {
        let shaper = shaper.clone();
        tokio::spawn(async move {
            shaper.acquire(1).await.expect("within burst");
            start.elapsed()
        })
    };
    assert_eq!(big.await?, Duration::from_millis(300));
    assert_eq!(small.await?, Duration::from_millis(400));
    Ok(())
}

/// Polling a completed `Acquire` again is not supported; as its docs say, it starts over
/// and takes its cells a second time.
#[tokio::test(start_paused = true)]
async fn polling_a_completed_acquire_again_takes_its_cells_again() -> Result<(), BoxError> {
    let shaper = Shaper::with_clock(Quota::per_second(4)?.with_burst(2)?, TokioClock::new());
    let mut cx = Context::from_waker(Waker::noop());
    let mut acquire = std::pin::pin!(shaper.acquire(1));
    assert!(matches!(
        acquire.as_mut().poll(&mut cx),
        Poll::Ready(Ok(()))
    ));
    assert!(matches!(
        acquire.as_mut().poll(&mut cx),
        Poll::Ready(Ok(()))
    ));
    // Both cells of the burst are gone, so the next caller waits one interval.
    let start = Instant::now();
    shaper.acquire(1).await?;
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    let mut too_big = std::pin::pin!(shaper.acquire(3));
    for _ in 0..2 {
        assert!(matches!(
            too_big.as_mut().poll(&mut cx),
            Poll::Ready(Err(_))
        ));
    }
    Ok(())
}
