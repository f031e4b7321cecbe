//! Lock-free snapshots of a placement: readers never block, writers build the next one.

use core::fmt;
use core::ops::Deref;

use keel_core::sync::Mutex;

#[cfg(not(keel_loom))]
type Current<T> = arc_swap::ArcSwap<T>;
// arc-swap is not loom-aware (it uses std atomics directly) and its read path is unsafe code
// keel cannot rebuild here, so under loom a mutex stands in for this one field and the model
// checks the rest: the update protocol. tests/loom.rs says what that leaves out and why a
// loom-checkable `RwLock<Arc<T>>` is not used instead.
#[cfg(keel_loom)]
type Current<T> = Mutex<keel_core::sync::Arc<T>>;

/// A placement shared between threads: lookups run lock-free on an immutable snapshot,
/// while a membership change clones the current one, changes the clone and publishes it
/// with one atomic pointer swap.
///
/// * Readers never block and are never blocked: [`load`](Self::load) is a few atomic
///   operations (arc-swap's debt list), with no lock and no reference-count contention on
///   the hot path.
/// * Writers are serialized by a mutex among themselves only, so no change is lost: two
///   concurrent [`update`](Self::update)s both land, one after the other.
/// * A change that fails (returns `Err`) publishes nothing, so readers never see a
///   half-applied membership.
/// * An old snapshot stays valid for as long as a reader holds it.
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, Ring, Shared};
///
/// let ring = Shared::new(Ring::new());
/// ring.update(|r| r.add("cache-1"))?;
/// ring.update(|r| r.extend_weighted([("cache-2", 1), ("cache-3", 1)]))?;
///
/// let snapshot = ring.load(); // lock-free; a later update does not disturb it
/// let owner = snapshot.node("user:42").ok_or("empty ring")?;
/// assert!(owner.starts_with("cache-"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Shared<T> {
    current: Current<T>,
    writer: Mutex<()>,
}

/// One immutable snapshot of a [`Shared`] placement; derefs to it.
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, Ring, Shared, Snapshot};
///
/// let shared = Shared::new(Ring::new());
/// shared.update(|r| r.add("a"))?;
/// let old: Snapshot<Ring<&str>> = shared.load();
/// shared.update(|r| r.add("b"))?;
/// assert_eq!(old.len(), 1); // a snapshot never changes
/// assert_eq!(shared.load().len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Snapshot<T> {
    #[cfg(not(keel_loom))]
    inner: arc_swap::Guard<std::sync::Arc<T>>,
    #[cfg(keel_loom)]
    inner: keel_core::sync::Arc<T>,
}

impl<T> Deref for Snapshot<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: fmt::Debug> fmt::Debug for Snapshot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("current", &*self.load())
            .finish()
    }
}

impl<T: Default> Default for Shared<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> Shared<T> {
    /// Shares `value` as the first snapshot.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Rendezvous, Shared};
    ///
    /// let mut hrw = Rendezvous::new();
    /// hrw.add("a")?;
    /// let shared = Shared::new(hrw);
    /// assert_eq!(shared.load().node("k"), Some(&"a"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(value: T) -> Self {
        Self {
            #[cfg(not(keel_loom))]
            current: arc_swap::ArcSwap::from_pointee(value),
            #[cfg(keel_loom)]
            current: Mutex::new(keel_core::sync::Arc::new(value)),
            writer: Mutex::new(()),
        }
    }

    /// The current snapshot, without locking.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use keel_hashring::{ConsistentHash, Ring, Shared};
    ///
    /// let shared = Arc::new(Shared::new(Ring::new()));
    /// shared.update(|r| r.add("a"))?;
    /// let reader = {
    ///     let shared = Arc::clone(&shared);
    ///     std::thread::spawn(move || shared.load().node("k").copied())
    /// };
    /// assert_eq!(reader.join().map_err(|_| "reader panicked")?, Some("a"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn load(&self) -> Snapshot<T> {
        #[cfg(not(keel_loom))]
        let inner = self.current.load();
        #[cfg(keel_loom)]
        let inner = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        Snapshot { inner }
    }

    fn publish(&self, value: T) {
        #[cfg(not(keel_loom))]
        self.current.store(std::sync::Arc::new(value));
        #[cfg(keel_loom)]
        {
            *self
                .current
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                keel_core::sync::Arc::new(value);
        }
    }

    /// Replaces the snapshot with `value`.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ring, Shared};
    ///
    /// let shared = Shared::new(Ring::new());
    /// let mut next = Ring::new();
    /// next.extend_weighted([("a", 1), ("b", 1)])?;
    /// shared.store(next);
    /// assert_eq!(shared.load().len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store(&self, value: T) {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.publish(value);
    }
}

impl<T: Clone> Shared<T> {
    /// Applies `change` to a copy of the current snapshot and publishes the copy if the
    /// change returns `Ok`; returns what the change returned.
    ///
    /// Writers take turns (a mutex among writers only); readers keep using the old
    /// snapshot until the swap and are never blocked.
    ///
    /// # Errors
    ///
    /// Whatever `change` returns; nothing is published then.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, JumpHash, Shared};
    ///
    /// let shared = Shared::new(JumpHash::new());
    /// let bucket = shared.update(|j| {
    ///     j.add("s0")?;
    ///     Ok::<_, Error>(j.bucket_of(&"s0"))
    /// })?;
    /// assert_eq!(bucket, Some(0)); // what the change returned
    /// assert_eq!(shared.update(|j| j.add("s0")), Err(Error::DuplicateNode));
    /// assert_eq!(shared.load().len(), 1); // the failed change published nothing
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update<R, E>(&self, change: impl FnOnce(&mut T) -> Result<R, E>) -> Result<R, E> {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = T::clone(&self.load());
        let result = change(&mut next)?;
        self.publish(next);
        Ok(result)
    }
}

#[cfg(all(test, not(keel_loom)))]
mod tests {
    use super::*;
    use crate::{ConsistentHash, Error, Ring};

    #[test]
    fn failed_update_publishes_nothing() {
        let shared = Shared::new(Ring::new());
        shared.update(|r| r.add(1u32)).unwrap();
        let before = shared.load();
        assert_eq!(
            shared.update(|r| r.extend_weighted([(2, 1), (1, 1)])),
            Err(Error::DuplicateNode)
        );
        assert_eq!(shared.load().len(), 1);
        assert_eq!(before.len(), 1);
    }

    #[test]
    fn old_snapshots_survive_updates() {
        let shared = Shared::new(Ring::new());
        shared.update(|r| r.add("a")).unwrap();
        let old = shared.load();
        shared.update(|r| r.add("b")).unwrap();
        shared.store(Ring::new());
        assert_eq!(old.len(), 1);
        assert!(shared.load().is_empty());
    }

    #[test]
    fn concurrent_writers_lose_nothing_and_readers_see_whole_rings() {
        let shared = std::sync::Arc::new(Shared::new(Ring::builder().vnodes(8).build().unwrap()));
        let writers: Vec<_> = (0..2u32)
            .map(|t| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        shared.update(|r| r.add(t * 1000 + i)).unwrap();
                    }
                })
            })
            .collect();
        let reader = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let snap = shared.load();
                    assert_eq!(snap.points(), snap.len() * 8);
                }
            })
        };
        for w in writers {
            w.join().unwrap();
        }
        reader.join().unwrap();
        assert_eq!(shared.load().len(), 100);
    }
}
