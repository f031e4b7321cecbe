//! The loom switch: std's synchronization types normally, loom's under `--cfg keel_loom`.
//!
//! Lock-free code in keel imports its atomics from here, never from `std` directly, so
//! `RUSTFLAGS="--cfg keel_loom" cargo test --release --test loom` model-checks every
//! interleaving of it. The cfg is prefixed because a plain `cfg(loom)` would also switch
//! dependencies that test for it.
//!
//! ```
//! use keel_core::sync::atomic::{AtomicU64, Ordering};
//! use keel_core::sync::Arc;
//!
//! let cell = Arc::new(AtomicU64::new(0));
//! cell.fetch_add(1, Ordering::AcqRel);
//! assert_eq!(cell.load(Ordering::Acquire), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(keel_loom)]
pub use loom::sync::{
    Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, atomic,
};
#[cfg(not(keel_loom))]
pub use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, atomic,
};

/// Called in the body of a spin or CAS retry loop.
///
/// Under loom it yields to the model's scheduler, which a spin loop must do for loom to
/// finish; otherwise it is [`std::hint::spin_loop`].
///
/// ```
/// use keel_core::sync::atomic::{AtomicU64, Ordering};
///
/// // Doubles a shared counter with a CAS loop, backing off between attempts.
/// let counter = AtomicU64::new(21);
/// let mut current = counter.load(Ordering::Relaxed);
/// while let Err(actual) =
///     counter.compare_exchange_weak(current, current * 2, Ordering::AcqRel, Ordering::Relaxed)
/// {
///     current = actual;
///     keel_core::sync::spin_loop();
/// }
/// assert_eq!(counter.load(Ordering::Relaxed), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[inline]
pub fn spin_loop() {
    #[cfg(keel_loom)]
    loom::thread::yield_now();
    #[cfg(not(keel_loom))]
    std::hint::spin_loop();
}
