//! `NameTimer`: one tokio timer per name, shared by its async waiters and kept between waits.
//!
//! A timer made and dropped for every wait costs little in itself, but registering one while
//! the runtime's timer wheel is empty wakes the tokio driver (a write to its eventfd and a
//! thread wake-up), on every wait of a lightly contended lock. The name's timer stays armed
//! instead: a wait only checks that it fires no later than the wait needs, moving it earlier
//! when not, and when it fires it wakes every waiter of the name, each of which looks again
//! and re-arms it for what it still needs. A timer that fires early only costs those looks.

use std::future::Future;
use std::pin::Pin;
use std::sync::{PoisonError, Weak};
use std::task::{Context, Wake, Waker};

use keel_core::Instant;
use keel_core::sync::Mutex;

use crate::slot::Slot;

/// The name's armed timer, if any.
#[derive(Default)]
pub(crate) struct NameTimer {
    armed: Mutex<Option<Armed>>,
}

struct Armed {
    /// The runtime whose timer this is: a wait on another runtime replaces it rather than
    /// poll a timer whose runtime may be gone.
    runtime: tokio::runtime::Id,
    /// When it fires, on the service's clock.
    at: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Wakes the name's waiters.
    waker: Waker,
}

/// What the timer wakes: every waiter of one name.
struct WakeWaiters(Weak<Slot>);

impl Wake for WakeWaiters {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        if let Some(slot) = self.0.upgrade() {
            slot.wake_waiters();
        }
    }
}

impl NameTimer {
    /// Makes sure the timer fires at `at` (a reading of the clock that read `now`) or
    /// earlier, on the current runtime; `false` when there is no runtime to time it.
    pub(crate) fn arm(&self, slot: &std::sync::Arc<Slot>, now: Instant, at: Instant) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let runtime = runtime.id();
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        let tokio_at = || tokio::time::Instant::now() + (at - now);
        match &mut *armed {
            Some(timer)
                if timer.runtime == runtime && timer.at <= at && !timer.sleep.is_elapsed() =>
            {
                return true; // fires in time for this wait too
            }
            Some(timer) if timer.runtime == runtime => {
                timer.sleep.as_mut().reset(tokio_at());
                timer.at = at;
            }
            _ => {
                *armed = Some(Armed {
                    runtime,
                    at,
                    sleep: Box::pin(tokio::time::sleep_until(tokio_at())),
                    waker: Waker::from(std::sync::Arc::new(WakeWaiters(
                        std::sync::Arc::downgrade(slot),
                    ))),
                });
            }
        }
        if let Some(timer) = armed.as_mut() {
            // Registers the timer with its waker; one already due wakes the waiters now.
            let mut cx = Context::from_waker(&timer.waker);
            if timer.sleep.as_mut().poll(&mut cx).is_ready() {
                let waker = timer.waker.clone();
                drop(armed);
                waker.wake();
            }
        }
        true
    }
}
