//! `BreakerRegistry`: one breaker per key (a downstream host, a route), made on first use.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use dashmap::DashMap;
use keel_core::{Clock, SystemClock};

use crate::config::Config;
use crate::{BreakerConfigError, CircuitBreaker, CircuitBreakerBuilder};

/// Breakers by key, all built from one template, so each downstream host trips on its own.
///
/// Lookup is one hash and a shard read lock (dashmap); a breaker is built the first time its
/// key is asked for and lives until [`remove`](Self::remove) or [`retain`](Self::retain).
///
/// # Memory
///
/// Nothing is evicted, and every new key builds a breaker: 1 to 2 KB, plus 4 bytes a call
/// of a count window (400 KB for `Window::Count(100_000)`, 8 MB for the largest) or 24
/// bytes a bucket of a time window (1.5 MB for the most buckets). So a registry keyed by
/// untrusted input (a client-supplied host or path) grows without bound. Key it by a set
/// you control, such as the configured downstream hosts, or bound it yourself: look a key up
/// with [`get_existing`](Self::get_existing), which builds nothing, check
/// [`len`](Self::len) before [`get`](Self::get) builds a breaker for an unknown one, and
/// drop keys with [`remove`](Self::remove) or [`retain`](Self::retain).
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
    /// The template's [`BreakerConfigError`], checked once here.
    ///
    /// ```
    /// use keel_breaker::{BreakerRegistry, CircuitBreaker, BreakerConfigError};
    ///
    /// let registry: BreakerRegistry<String> =
    ///     BreakerRegistry::new(CircuitBreaker::builder().consecutive_failures(3))?;
    /// assert!(registry.is_empty());
    /// let bad = BreakerRegistry::<String>::new(CircuitBreaker::builder().consecutive_failures(0));
    /// assert_eq!(bad.unwrap_err(), BreakerConfigError::Zero { setting: "consecutive failures" });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(template: CircuitBreakerBuilder<C>) -> Result<Self, BreakerConfigError> {
        template.config.validate()?;
        Ok(BreakerRegistry {
            breakers: DashMap::new(),
            config: template.config,
            clock: template.clock,
        })
    }

    /// The breaker for `key`, built on first use and kept until removed (see the memory
    /// note on [`BreakerRegistry`]).
    ///
    /// ```
    /// use keel_breaker::{BreakerRegistry, CircuitBreaker};
    /// use std::sync::Arc;
    ///
    /// let registry = BreakerRegistry::<String>::new(CircuitBreaker::builder())?;
    /// let first = registry.get("api.example.com");
    /// let again = registry.get("api.example.com");
    /// assert!(Arc::ptr_eq(&first, &again)); // one breaker per key
    /// assert_eq!(registry.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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

    /// The breaker for `key` if one exists; unlike [`get`](Self::get), builds none. With
    /// [`len`](Self::len), it bounds a registry keyed by untrusted input.
    ///
    /// ```
    /// use keel_breaker::{BreakerRegistry, CircuitBreaker};
    /// use std::sync::Arc;
    ///
    /// let registry = BreakerRegistry::<String>::new(CircuitBreaker::builder())?;
    /// let breaker_for = |host: &str| match registry.get_existing(host) {
    ///     Some(breaker) => Some(breaker),
    ///     None if registry.len() < 2 => Some(registry.get(host)),
    ///     None => None, // too many hosts: refuse rather than grow
    /// };
    /// let a = breaker_for("a").ok_or("refused")?;
    /// breaker_for("b").ok_or("refused")?;
    /// assert!(breaker_for("c").is_none());
    /// assert!(Arc::ptr_eq(&breaker_for("a").ok_or("refused")?, &a)); // known keys still work
    /// assert_eq!(registry.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_existing<Q>(&self, key: &Q) -> Option<Arc<CircuitBreaker<C>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.breakers.get(key).map(|breaker| breaker.clone())
    }

    /// Forgets the breaker for `key`, returning it if there was one.
    ///
    /// ```
    /// use keel_breaker::{BreakerRegistry, CircuitBreaker, State};
    ///
    /// let registry = BreakerRegistry::<String>::new(CircuitBreaker::builder())?;
    /// registry.get("old-host").force_open();
    /// let removed = registry.remove("old-host").expect("it was there");
    /// assert_eq!(removed.state(), State::ForcedOpen);
    /// assert!(registry.remove("old-host").is_none());
    /// assert_eq!(registry.get("old-host").state(), State::Closed); // a fresh breaker
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<Arc<CircuitBreaker<C>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.breakers.remove(key).map(|(_, breaker)| breaker)
    }

    /// Keeps only the breakers `keep` returns `true` for, to prune keys no longer in use.
    /// Anyone still holding a removed breaker keeps it; the key's next
    /// [`get`](Self::get) builds a fresh one.
    ///
    /// `keep` runs while a write lock on part of the registry is held: calling any method
    /// of this registry from it (directly, or from a state-change listener it triggers) can
    /// deadlock.
    ///
    /// ```
    /// use keel_breaker::{BreakerRegistry, CircuitBreaker, State};
    ///
    /// let registry = BreakerRegistry::<String>::new(CircuitBreaker::builder())?;
    /// for host in ["db-1", "db-2", "db-3"] {
    ///     registry.get(host);
    /// }
    /// registry.get("db-3").force_open();
    /// // db-2 left service discovery; db-3 is kept while it is not closed.
    /// let current = ["db-1"];
    /// registry.retain(|host, breaker| {
    ///     current.contains(&host.as_str()) || breaker.state() != State::Closed
    /// });
    /// assert_eq!(registry.len(), 2);
    /// assert!(registry.remove("db-2").is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(&K, &CircuitBreaker<C>) -> bool) {
        self.breakers.retain(|key, breaker| keep(key, breaker));
    }

    /// How many breakers exist.
    ///
    /// ```
    /// use keel_breaker::{BreakerRegistry, CircuitBreaker};
    ///
    /// let registry = BreakerRegistry::<String>::new(CircuitBreaker::builder())?;
    /// for host in ["a", "b", "a"] {
    ///     registry.get(host);
    /// }
    /// assert_eq!(registry.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.breakers.len()
    }

    /// Whether no breaker exists yet.
    ///
    /// ```
    /// use keel_breaker::{BreakerRegistry, CircuitBreaker};
    ///
    /// let registry = BreakerRegistry::<u32>::new(CircuitBreaker::builder())?;
    /// assert!(registry.is_empty());
    /// registry.get(&7);
    /// assert!(!registry.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.breakers.is_empty()
    }

    /// Calls `visit` with each key and breaker, for exporting metrics.
    ///
    /// `visit` runs while a read lock on part of the registry is held: calling
    /// [`get`](Self::get) or [`remove`](Self::remove) on this registry from it (directly, or
    /// from a state-change listener it triggers) can deadlock.
    ///
    /// ```
    /// use keel_breaker::{BreakerRegistry, CircuitBreaker, State};
    ///
    /// let registry = BreakerRegistry::<String>::new(CircuitBreaker::builder())?;
    /// registry.get("db-1");
    /// registry.get("db-2").force_open();
    /// let mut open = Vec::new();
    /// registry.for_each(|host, breaker| {
    ///     if breaker.state() != State::Closed {
    ///         open.push(host.clone());
    ///     }
    /// });
    /// assert_eq!(open, ["db-2"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
