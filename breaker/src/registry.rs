//! `BreakerRegistry`: one breaker per key (a downstream host, a route), made on first use.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use dashmap::DashMap;
use keel_core::{Clock, SystemClock};

use crate::config::Config;
use crate::{CircuitBreaker, CircuitBreakerBuilder, ConfigError};

/// Breakers by key, all built from one template, so each downstream host trips on its own.
///
/// Lookup is one hash and a shard read lock (dashmap); a breaker is built the first time its
/// key is asked for and lives until [`remove`](Self::remove).
///
/// ```
/// use keel_breaker::{BreakerRegistry, CircuitBreaker, State};
///
/// let hosts = BreakerRegistry::new(CircuitBreaker::builder().consecutive_failures(2))?;
/// for _ in 0..2 {
///     let _ = hosts.get("db-1").call(|| Err::<(), _>("timeout"));
/// }
/// assert_eq!(hosts.get("db-1").state(), State::Open);
/// assert_eq!(hosts.get("db-2").state(), State::Closed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BreakerRegistry<K, C = SystemClock> {
    breakers: DashMap<K, Arc<CircuitBreaker<C>>>,
    config: Config,
    clock: C,
}

impl<K: Hash + Eq, C: Clock + Clone> BreakerRegistry<K, C> {
    /// A registry whose breakers are built like `template` would build one.
    ///
    /// # Errors
    ///
    /// The template's [`ConfigError`], checked once here.
    pub fn new(template: CircuitBreakerBuilder<C>) -> Result<Self, ConfigError> {
        template.config.validate()?;
        Ok(BreakerRegistry {
            breakers: DashMap::new(),
            config: template.config,
            clock: template.clock,
        })
    }

    /// The breaker for `key`, built on first use.
    pub fn get<Q>(&self, key: &Q) -> Arc<CircuitBreaker<C>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(breaker) = self.breakers.get(key) {
            return breaker.clone();
        }
        self.breakers
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(CircuitBreaker::from_config(
                    self.config.clone(),
                    self.clock.clone(),
                ))
            })
            .clone()
    }

    /// Forgets the breaker for `key`, returning it if there was one.
    pub fn remove<Q>(&self, key: &Q) -> Option<Arc<CircuitBreaker<C>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.breakers.remove(key).map(|(_, breaker)| breaker)
    }

    /// How many breakers exist.
    pub fn len(&self) -> usize {
        self.breakers.len()
    }

    /// Whether no breaker exists yet.
    pub fn is_empty(&self) -> bool {
        self.breakers.is_empty()
    }

    /// Calls `visit` with each key and breaker, for exporting metrics.
    ///
    /// `visit` runs while a read lock on part of the registry is held: calling
    /// [`get`](Self::get) or [`remove`](Self::remove) on this registry from it (directly, or
    /// from a state-change listener it triggers) can deadlock.
    pub fn for_each(&self, mut visit: impl FnMut(&K, &CircuitBreaker<C>)) {
        for entry in self.breakers.iter() {
            visit(entry.key(), entry.value());
        }
    }
}

impl<K: Hash + Eq, C> fmt::Debug for BreakerRegistry<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("breakers", &self.breakers.len())
            .finish_non_exhaustive()
    }
}
