//! The shaper under cancellation storms, checked against a recorded history.
//!
//! Random schedules of `acquire` futures on a manual clock, polled and dropped at every
//! await point (before the first poll, while queued behind others, while at the head and
//! sleeping). Each step's observation goes into a history that a checker replays through a
//! reference leaky-bucket queue: every admission must be the one the reference makes (so no
//! over-admission and strict FIFO order), a dropped head must wake the next waiter, and once
//! every future is gone nothing is left queued and no capacity is lost.
#![cfg(feature = "tokio")]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use keel_core::ManualClock;
use keel_rate_limit::{InsufficientCapacity, Quota, Shaper};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// A new `acquire(n)`, polled once unless `drop_first`.
    Acquire {
        n: u32,
        drop_first: bool,
    },
    /// Polls the `i`-th live future again.
    Poll(usize),
    /// Drops the `i`-th live future wherever it is parked.
    Drop(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u32..=3, any::<bool>()).prop_map(|(n, d)| Op::Acquire { n, drop_first: d && n > 0 }),
        4 => any::<usize>().prop_map(Op::Poll),
        2 => any::<usize>().prop_map(Op::Drop),
        3 => prop_oneof![Just(50u64), Just(120), Just(250), Just(900)].prop_map(Op::Advance),
    ]
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a step showed.
#[derive(Clone, Debug)]
enum Seen {
    /// Request `id` for `n` cells was admitted (`Some(true)`), refused as too large
    /// (`Some(false)`) or left waiting (`None`) when polled.
    Polled {
        id: u64,
        n: u32,
        ready: Option<bool>,
    },
    /// Dropped before its first poll: it never queued.
    DroppedUnpolled {
        id: u64,
    },
    /// Dropped while waiting; `next_woken` says whether the new head was woken.
    Dropped {
        id: u64,
        next_woken: bool,
    },
    Advanced {
        millis: u64,
    },
}

#[derive(Clone, Debug)]
struct Step {
    seen: Seen,
    waiting: usize,
}

/// The reference: the leaky-bucket meter in front of a FIFO queue.
struct Model {
    emission: u64,
    tolerance: u64,
    burst: u32,
    now: u64,
    level: u64,
    last: u64,
    queue: VecDeque<u64>,
}

impl Model {
    fn pour(&mut self, n: u32) -> bool {
        let now = self.now.max(self.last);
        self.level = self.level.saturating_sub(now - self.last);
        self.last = now;
        let poured = self.level + u64::from(n) * self.emission;
        if poured > self.tolerance {
            return false;
        }
        self.level = poured;
        true
    }

    /// What polling `id` must give: admitted, too large, or still waiting.
    fn poll(&mut self, id: u64, n: u32) -> Option<bool> {
        if n > self.burst {
            return Some(false);
        }
        let queued = self.queue.contains(&id);
        if !queued {
            if self.queue.is_empty() && self.pour(n) {
                return Some(true);
            }
            self.queue.push_back(id);
        }
        if self.queue.front() == Some(&id) && self.pour(n) {
            self.queue.pop_front();
            return Some(true);
        }
        None
    }
}

fn check(history: &[Step], quota: Quota) -> Result<(), String> {
    let emission = quota.emission_interval().as_nanos() as u64;
    let mut model = Model {
        emission,
        tolerance: u64::from(quota.burst()) * emission,
        burst: quota.burst(),
        now: 0,
        level: 0,
        last: 0,
        queue: VecDeque::new(),
    };
    for (i, step) in history.iter().enumerate() {
        match &step.seen {
            Seen::Polled { id, n, ready } => {
                let want = model.poll(*id, *n);
                if want != *ready {
                    return Err(format!(
                        "step {i}: poll of {id} gave {ready:?}, reference {want:?}"
                    ));
                }
            }
            Seen::DroppedUnpolled { id } => {
                if model.queue.contains(id) {
                    return Err(format!("step {i}: {id} was queued before its first poll"));
                }
            }
            Seen::Dropped { id, next_woken } => {
                let was_head = model.queue.front() == Some(id);
                model.queue.retain(|w| w != id);
                if was_head && !model.queue.is_empty() && !next_woken {
                    return Err(format!(
                        "step {i}: the head {id} left and the next was not woken"
                    ));
                }
            }
            Seen::Advanced { millis } => model.now += millis * 1_000_000,
        }
        if step.waiting != model.queue.len() {
            return Err(format!(
                "step {i}: {} waiting, reference {}",
                step.waiting,
                model.queue.len()
            ));
        }
    }
    Ok(())
}

type Acquire<'a> = Pin<Box<dyn Future<Output = Result<(), InsufficientCapacity>> + 'a>>;

struct Live<'a> {
    id: u64,
    n: u32,
    future: Acquire<'a>,
    waker: Arc<CountingWaker>,
}

fn poll(live: &mut Live<'_>) -> Poll<Result<(), InsufficientCapacity>> {
    let waker = Waker::from(live.waker.clone());
    live.future.as_mut().poll(&mut Context::from_waker(&waker))
}

fn run(quota: Quota, ops: &[Op]) -> Vec<Step> {
    // The futures sleep on tokio's timer between polls; the clock they read is manual.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let clock = ManualClock::new();
    let shaper = Shaper::with_clock(quota, clock.clone());
    let mut live: Vec<Live<'_>> = Vec::new();
    let mut history = Vec::new();
    let mut next_id = 0;
    let mut record = |seen: Seen, waiting: usize| history.push(Step { seen, waiting });
    let polled = |live: &mut Live<'_>| match poll(live) {
        Poll::Ready(Ok(())) => Some(true),
        Poll::Ready(Err(_)) => Some(false),
        Poll::Pending => None,
    };
    for op in ops {
        match op {
            Op::Acquire { n, drop_first } => {
                let id = next_id;
                next_id += 1;
                let mut entry = Live {
                    id,
                    n: *n,
                    future: Box::pin(shaper.acquire(*n)),
                    waker: Arc::default(),
                };
                if *drop_first {
                    drop(entry);
                    record(Seen::DroppedUnpolled { id }, shaper.waiting());
                    continue;
                }
                let ready = polled(&mut entry);
                if ready.is_none() {
                    live.push(entry);
                }
                record(Seen::Polled { id, n: *n, ready }, shaper.waiting());
            }
            Op::Poll(i) => {
                if live.is_empty() {
                    continue;
                }
                let at = i % live.len();
                let ready = polled(&mut live[at]);
                let (id, n) = (live[at].id, live[at].n);
                if ready.is_some() {
                    live.remove(at);
                }
                record(Seen::Polled { id, n, ready }, shaper.waiting());
            }
            Op::Drop(i) => {
                if live.is_empty() {
                    continue;
                }
                let gone = live.remove(i % live.len());
                let before: Vec<usize> = live
                    .iter()
                    .map(|l| l.waker.0.load(Ordering::SeqCst))
                    .collect();
                let id = gone.id;
                drop(gone);
                let next_woken = live
                    .iter()
                    .zip(before)
                    .any(|(l, b)| l.waker.0.load(Ordering::SeqCst) > b);
                record(Seen::Dropped { id, next_woken }, shaper.waiting());
            }
            Op::Advance(millis) => {
                clock.advance(Duration::from_millis(*millis));
                record(Seen::Advanced { millis: *millis }, shaper.waiting());
            }
        }
    }
    // The storm ends: every live future is dropped. Nothing stays queued, and after a full
    // burst's time the whole burst is free again (no capacity was lost to the dropped).
    live.clear();
    assert_eq!(shaper.waiting(), 0, "a dropped waiter stayed queued");
    clock.advance(quota.emission_interval() * quota.burst());
    let mut whole = Live {
        id: u64::MAX,
        n: quota.burst(),
        future: Box::pin(shaper.acquire(quota.burst())),
        waker: Arc::default(),
    };
    assert!(
        matches!(poll(&mut whole), Poll::Ready(Ok(()))),
        "capacity leaked"
    );
    drop(whole);
    history
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn shaper_under_cancellation_matches_the_reference(
        burst in 1u32..4,
        ops in proptest::collection::vec(op(), 1..100),
    ) {
        let quota = Quota::per_second(4).unwrap().with_burst(burst).unwrap();
        let history = run(quota, &ops);
        if let Err(divergence) = check(&history, quota) {
            prop_assert!(false, "{divergence}\nhistory: {history:#?}");
        }
    }
}

/// The checker is not vacuous: a history where a dropped head did not wake the next
/// waiter, or where a dropped waiter stayed queued, is refused.
#[test]
fn the_checker_refuses_a_lost_wakeup_and_a_stuck_waiter() {
    let quota = Quota::per_second(4).unwrap().with_burst(1).unwrap();
    let ops = [
        Op::Acquire {
            n: 1,
            drop_first: false,
        },
        Op::Acquire {
            n: 1,
            drop_first: false,
        },
        Op::Acquire {
            n: 1,
            drop_first: false,
        },
        Op::Drop(0),
    ];
    let mut history = run(quota, &ops);
    check(&history, quota).expect("the real history passes");
    let last = history.len() - 1;
    let Seen::Dropped {
        id,
        next_woken: true,
    } = history[last].seen
    else {
        panic!("the head's drop woke the next waiter: {:?}", history[last]);
    };
    history[last].seen = Seen::Dropped {
        id,
        next_woken: false,
    };
    assert!(check(&history, quota).is_err());
    let mut history = run(quota, &ops);
    history[last].waiting += 1;
    assert!(check(&history, quota).is_err());
}
