//! `Fence`: the resource-side check that rejects writers holding an old token.

use std::error::Error;
use std::fmt;

use keel_core::sync::atomic::{AtomicU64, Ordering};

use crate::FencingToken;

/// The highest fencing token a protected resource has accepted, and the check against it.
///
/// [`advance`](Fence::advance) is one atomic check-and-advance: it accepts a token at least as
/// high as every token accepted before (raising the mark to it) and rejects an older one with
/// [`StaleToken`]. Once a token is accepted, no lower token is ever accepted again, whatever
/// the interleaving; a retried write with the current token is accepted again.
///
/// The check protects a write only if nothing can slip between the check and the write.
/// Put the check inside the resource's own critical section (the lock around the data, the
/// single task that owns it, or one Redis script as `RedisFence` (feature `redis`) does);
/// a holder that checks, pauses, and writes after a newer holder would otherwise still land.
///
/// # Example
///
/// A store that rejects a writer whose lease was taken over (see also
/// `examples/fenced_store.rs`):
///
/// ```
/// use keel_lock::{Fence, FencingToken};
/// use std::sync::Mutex;
///
/// struct Store {
///     fence: Fence,
///     value: Mutex<String>,
/// }
///
/// impl Store {
///     fn write(&self, token: FencingToken, text: &str) -> Result<(), keel_lock::StaleToken> {
///         let mut value = self.value.lock().unwrap_or_else(|e| e.into_inner());
///         self.fence.advance(token)?; // checked under the same lock as the write
///         *value = text.to_owned();
///         Ok(())
///     }
/// }
///
/// let store = Store { fence: Fence::new(), value: Mutex::new(String::new()) };
/// store.write(FencingToken::new(34), "from the new holder")?;
/// let late = store.write(FencingToken::new(33), "from a paused holder");
/// assert!(late.is_err());
/// assert_eq!(*store.value.lock().unwrap(), "from the new holder");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Fence {
    highest: AtomicU64,
}

impl Fence {
    /// A fence that has seen no token: it accepts any.
    ///
    /// ```
    /// use keel_lock::{Fence, FencingToken};
    ///
    /// let fence = Fence::new();
    /// assert_eq!(fence.highest(), FencingToken::new(0));
    /// assert!(fence.admits(FencingToken::new(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Fence {
        Fence::starting_at(FencingToken::new(0))
    }

    /// A fence that has already seen `highest`, as after a restart of the resource that
    /// stored its mark.
    ///
    /// ```
    /// use keel_lock::{Fence, FencingToken};
    ///
    /// let persisted = 41; // the mark the resource saved before it restarted
    /// let fence = Fence::starting_at(FencingToken::new(persisted));
    /// assert!(fence.advance(FencingToken::new(40)).is_err());
    /// assert_eq!(fence.advance(FencingToken::new(41))?, FencingToken::new(41));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn starting_at(highest: FencingToken) -> Fence {
        Fence {
            highest: AtomicU64::new(highest.get()),
        }
    }

    /// Accepts `token` if it is at least the highest seen, raising the mark to it, and returns
    /// the mark before the call.
    ///
    /// # Errors
    ///
    /// [`StaleToken`] when a higher token has been accepted; the mark does not move.
    ///
    /// ```
    /// use keel_lock::{Fence, FencingToken};
    ///
    /// let fence = Fence::new();
    /// assert_eq!(fence.advance(FencingToken::new(5))?, FencingToken::new(0)); // the mark before
    /// assert_eq!(fence.advance(FencingToken::new(5))?, FencingToken::new(5)); // a retry is fine
    /// let stale = fence.advance(FencingToken::new(4)).unwrap_err();
    /// assert_eq!(stale.highest(), FencingToken::new(5));
    /// assert_eq!(fence.highest(), FencingToken::new(5)); // the mark did not move
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn advance(&self, token: FencingToken) -> Result<FencingToken, StaleToken> {
        let offered = token.get();
        let mut seen = self.highest.load(Ordering::Acquire);
        loop {
            if offered < seen {
                return Err(StaleToken::new(token, FencingToken::new(seen)));
            }
            if offered == seen {
                return Ok(FencingToken::new(seen));
            }
            match self.highest.compare_exchange_weak(
                seen,
                offered,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(FencingToken::new(seen)),
                Err(now) => {
                    seen = now;
                    keel_core::sync::spin_loop();
                }
            }
        }
    }

    /// Whether `token` would be accepted now, without moving the mark.
    ///
    /// ```
    /// use keel_lock::{Fence, FencingToken};
    ///
    /// let fence = Fence::starting_at(FencingToken::new(10));
    /// assert!(fence.admits(FencingToken::new(12)));
    /// assert!(!fence.admits(FencingToken::new(9)));
    /// assert_eq!(fence.highest(), FencingToken::new(10)); // asking does not move the mark
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn admits(&self, token: FencingToken) -> bool {
        token.get() >= self.highest.load(Ordering::Acquire)
    }

    /// The highest token accepted so far (zero before any).
    ///
    /// ```
    /// use keel_lock::{Fence, FencingToken};
    ///
    /// let fence = Fence::new();
    /// fence.advance(FencingToken::new(3))?;
    /// fence.advance(FencingToken::new(8))?;
    /// assert_eq!(fence.highest(), FencingToken::new(8));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn highest(&self) -> FencingToken {
        FencingToken::new(self.highest.load(Ordering::Acquire))
    }
}

/// A write was rejected: its token is older than one the resource has already accepted, so
/// the writer's lease is gone.
///
/// ```
/// use keel_lock::{Fence, FencingToken, LockError};
///
/// let fence = Fence::starting_at(FencingToken::new(8));
/// let stale = fence.advance(FencingToken::new(7)).unwrap_err();
/// assert_eq!(
///     stale.to_string(),
///     "stale fencing token 7: the resource has accepted 8 from a newer holder"
/// );
/// let error: LockError = stale.into(); // as a fenced write reports it
/// assert!(matches!(error, LockError::Stale(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct StaleToken {
    offered: FencingToken,
    highest: FencingToken,
}

impl StaleToken {
    /// The rejection of `offered` by a resource that has seen `highest`.
    ///
    /// ```
    /// use keel_lock::{FencingToken, StaleToken};
    ///
    /// // A resource with its own check (a SQL `WHERE token >= ...`, say) reports it the same way.
    /// let stale = StaleToken::new(FencingToken::new(3), FencingToken::new(5));
    /// assert_eq!((stale.offered().get(), stale.highest().get()), (3, 5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(offered: FencingToken, highest: FencingToken) -> StaleToken {
        StaleToken { offered, highest }
    }

    /// The token the writer offered.
    ///
    /// ```
    /// use keel_lock::{Fence, FencingToken};
    ///
    /// let fence = Fence::starting_at(FencingToken::new(20));
    /// let stale = fence.advance(FencingToken::new(19)).unwrap_err();
    /// assert_eq!(stale.offered(), FencingToken::new(19));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn offered(&self) -> FencingToken {
        self.offered
    }

    /// The highest token the resource had accepted.
    ///
    /// ```
    /// use keel_lock::{Fence, FencingToken};
    ///
    /// let fence = Fence::starting_at(FencingToken::new(20));
    /// let stale = fence.advance(FencingToken::new(19)).unwrap_err();
    /// assert_eq!(stale.highest(), FencingToken::new(20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn highest(&self) -> FencingToken {
        self.highest
    }
}

impl fmt::Display for StaleToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stale fencing token {}: the resource has accepted {} from a newer holder",
            self.offered, self.highest
        )
    }
}

impl Error for StaleToken {}

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;

    #[test]
    fn accepts_equal_or_higher_rejects_lower() {
        let fence = Fence::new();
        assert_eq!(
            fence.advance(FencingToken::new(5)),
            Ok(FencingToken::new(0))
        );
        assert_eq!(
            fence.advance(FencingToken::new(5)),
            Ok(FencingToken::new(5))
        );
        let stale = fence.advance(FencingToken::new(4)).unwrap_err();
        assert_eq!(stale.offered(), FencingToken::new(4));
        assert_eq!(stale.highest(), FencingToken::new(5));
        assert_eq!(
            stale.to_string(),
            "stale fencing token 4: the resource has accepted 5 from a newer holder"
        );
        assert!(fence.admits(FencingToken::new(9)));
        assert_eq!(
            fence.advance(FencingToken::new(9)),
            Ok(FencingToken::new(5))
        );
        assert_eq!(fence.highest(), FencingToken::new(9));
        assert!(!Fence::starting_at(FencingToken::new(9)).admits(FencingToken::new(8)));
    }

    #[test]
    fn threads_end_at_the_maximum() {
        let fence = std::sync::Arc::new(Fence::new());
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let fence = fence.clone();
                std::thread::spawn(move || {
                    for i in 0..1_000u64 {
                        let _ = fence.advance(FencingToken::new(i * 4 + t));
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread panicked");
        }
        assert_eq!(fence.highest(), FencingToken::new(3_999));
    }
}
