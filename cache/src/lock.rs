//! The shard lock: parking_lot's `RwLock`, or the `keel_core::sync` one under loom.

use std::ops::{Deref, DerefMut};

/// A reader-writer lock whose guards ignore poisoning (a panicking listener must not wedge
/// the cache; shard state is consistent between statements that can panic).
#[derive(Debug, Default)]
pub(crate) struct RwLock<T> {
    #[cfg(not(keel_loom))]
    inner: parking_lot::RwLock<T>,
    #[cfg(keel_loom)]
    inner: keel_core::sync::RwLock<T>,
}

impl<T> RwLock<T> {
    pub(crate) fn new(value: T) -> Self {
        RwLock {
            #[cfg(not(keel_loom))]
            inner: parking_lot::RwLock::new(value),
            #[cfg(keel_loom)]
            inner: keel_core::sync::RwLock::new(value),
        }
    }

    #[cfg(not(keel_loom))]
    pub(crate) fn read(&self) -> impl Deref<Target = T> + '_ {
        self.inner.read()
    }

    #[cfg(not(keel_loom))]
    pub(crate) fn write(&self) -> impl DerefMut<Target = T> + '_ {
        self.inner.write()
    }

    #[cfg(keel_loom)]
    pub(crate) fn read(&self) -> impl Deref<Target = T> + '_ {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(keel_loom)]
    pub(crate) fn write(&self) -> impl DerefMut<Target = T> + '_ {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}
