//! Cache-aside loaders with single flight: concurrent misses of one key run one loader.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::Cache;

/// The in-flight loads of a cache, by key.
pub(crate) struct Flights<K, V> {
    map: Mutex<HashMap<K, Arc<Flight<V>>, foldhash::fast::RandomState>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            map: Mutex::new(HashMap::default()),
        }
    }
}

type AnyError = Arc<dyn Any + Send + Sync>;

enum State<V> {
    Loading,
    Done(V),
    Failed(AnyError),
    /// The leader panicked or was dropped: waiters start over.
    Abandoned,
}

pub(crate) struct Flight<V> {
    state: Mutex<State<V>>,
    cond: Condvar,
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify,
}

impl<V: Clone> Flight<V> {
    fn new() -> Self {
        Flight {
            state: Mutex::new(State::Loading),
            cond: Condvar::new(),
            #[cfg(feature = "tokio")]
            notify: tokio::sync::Notify::new(),
        }
    }

    fn finish(&self, state: State<V>) {
        *self.state.lock() = state;
        self.cond.notify_all();
        #[cfg(feature = "tokio")]
        self.notify.notify_waiters();
    }

    /// `None` while loading.
    #[cfg(feature = "tokio")]
    fn outcome(&self) -> Option<Outcome<V>> {
        match &*self.state.lock() {
            State::Loading => None,
            State::Done(v) => Some(Outcome::Value(v.clone())),
            State::Failed(e) => Some(Outcome::Error(e.clone())),
            State::Abandoned => Some(Outcome::Retry),
        }
    }

    fn wait(&self) -> Outcome<V> {
        let mut state = self.state.lock();
        loop {
            match &*state {
                State::Loading => self.cond.wait(&mut state),
                State::Done(v) => return Outcome::Value(v.clone()),
                State::Failed(e) => return Outcome::Error(e.clone()),
                State::Abandoned => return Outcome::Retry,
            }
        }
    }

    #[cfg(feature = "tokio")]
    async fn wait_async(&self) -> Outcome<V> {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Register before looking, so a finish in between is not missed.
            notified.as_mut().enable();
            if let Some(outcome) = self.outcome() {
                return outcome;
            }
            notified.await;
        }
    }
}

enum Outcome<V> {
    Value(V),
    Error(AnyError),
    Retry,
}

/// Whether this caller leads the load of a key or waits for another's.
enum Role<V> {
    Lead(Arc<Flight<V>>),
    Wait(Arc<Flight<V>>),
}

/// Held by the leader: if it is dropped before finishing (the loader panicked or the
/// future was cancelled), the waiters are told to start over instead of hanging.
struct LeadGuard<'a, K: Hash + Eq, V: Clone, S> {
    cache: &'a Cache<K, V, S>,
    key: Option<K>,
    flight: Arc<Flight<V>>,
}

impl<K: Hash + Eq, V: Clone, S> LeadGuard<'_, K, V, S> {
    fn finish(mut self, state: State<V>) {
        if let Some(key) = self.key.take() {
            self.cache.flights.map.lock().remove(&key);
        }
        self.flight.finish(state);
    }
}

impl<K: Hash + Eq, V: Clone, S> Drop for LeadGuard<'_, K, V, S> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.cache.flights.map.lock().remove(&key);
            self.flight.finish(State::Abandoned);
        }
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    fn role(&self, key: &K) -> Role<V> {
        let mut map = self.flights.map.lock();
        if let Some(f) = map.get(key) {
            return Role::Wait(f.clone());
        }
        let f = Arc::new(Flight::new());
        map.insert(key.clone(), f.clone());
        Role::Lead(f)
    }

    fn record_load(&self, ok: bool, started: keel_core::Instant) {
        self.load_stats.record(ok, self.clock.now() - started);
    }

    /// The value of `key`, or the value `init` returns, inserted.
    ///
    /// Concurrent misses of one key run `init` once (single flight); the others wait for its
    /// value. If `init` panics, one waiter takes over and runs its own `init`.
    ///
    /// ```
    /// use keel_cache::Cache;
    ///
    /// let cache = Cache::new(100)?;
    /// let v = cache.get_or_insert_with(7, || "loaded".to_string());
    /// assert_eq!(v, "loaded");
    /// // Cached now: the loader does not run again.
    /// let v = cache.get_or_insert_with(7, || unreachable!());
    /// assert_eq!(v, "loaded");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_or_insert_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        match self.try_get_or_insert_with(key, || Ok::<V, std::convert::Infallible>(init())) {
            Ok(v) => v,
            Err(e) => match *e {},
        }
    }

    /// The value of `key`, or the value `init` returns, inserted; an error is not cached.
    ///
    /// Concurrent misses of one key run `init` once; its error goes to every waiter (as the
    /// same `Arc`). A waiter whose loader has a different error type than the leader's
    /// runs its own loader.
    ///
    /// # Errors
    ///
    /// The loader's error, shared.
    ///
    /// ```
    /// use keel_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new(100)?;
    /// let err = cache.try_get_or_insert_with(1, || Err("backend down")).unwrap_err();
    /// assert_eq!(*err, "backend down");
    /// assert_eq!(cache.get(&1), None); // the error was not cached
    /// assert_eq!(cache.try_get_or_insert_with(1, || Ok::<_, &str>(5)), Ok(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_get_or_insert_with<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let mut init = Some(init);
        loop {
            if let Some(v) = self.get(&key) {
                return Ok(v);
            }
            match self.role(&key) {
                Role::Wait(flight) => match flight.wait() {
                    Outcome::Value(v) => return Ok(v),
                    Outcome::Error(e) => match e.downcast::<E>() {
                        Ok(e) => return Err(e),
                        Err(_) => continue,
                    },
                    Outcome::Retry => continue,
                },
                Role::Lead(flight) => {
                    let guard = LeadGuard {
                        cache: self,
                        key: Some(key.clone()),
                        flight,
                    };
                    // Another leader may have finished between our miss and our lead.
                    if let Some(v) = self.peek(&key) {
                        guard.finish(State::Done(v.clone()));
                        return Ok(v);
                    }
                    let Some(init) = init.take() else {
                        // Unreachable: a caller leads at most once, as leading ends the loop.
                        continue;
                    };
                    let started = self.clock.now();
                    let result = init();
                    return self.complete(guard, key, result, started);
                }
            }
        }
    }

    fn complete<E: Send + Sync + 'static>(
        &self,
        guard: LeadGuard<'_, K, V, S>,
        key: K,
        result: Result<V, E>,
        started: keel_core::Instant,
    ) -> Result<V, Arc<E>> {
        match result {
            Ok(v) => {
                self.record_load(true, started);
                self.insert(key, v.clone());
                guard.finish(State::Done(v.clone()));
                Ok(v)
            }
            Err(e) => {
                self.record_load(false, started);
                let e = Arc::new(e);
                guard.finish(State::Failed(e.clone()));
                Err(e)
            }
        }
    }

    /// Async [`get_or_insert_with`](Cache::get_or_insert_with): concurrent misses of one key
    /// await one `init` future. If the leading caller is dropped mid-load, a waiter takes
    /// over with its own future.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use keel_cache::Cache;
    ///
    /// let cache = Cache::new(100)?;
    /// let v = cache.get_or_insert_with_async("k", async { 42 }).await;
    /// assert_eq!(v, 42);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn get_or_insert_with_async(
        &self,
        key: K,
        init: impl std::future::Future<Output = V>,
    ) -> V {
        let init = async { Ok::<V, std::convert::Infallible>(init.await) };
        match self.try_get_or_insert_with_async(key, init).await {
            Ok(v) => v,
            Err(e) => match *e {},
        }
    }

    /// Async [`try_get_or_insert_with`](Cache::try_get_or_insert_with).
    ///
    /// # Errors
    ///
    /// The loader's error, shared with every waiter; it is not cached.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use keel_cache::Cache;
    ///
    /// let cache: Cache<&str, u32> = Cache::new(100)?;
    /// let r = cache.try_get_or_insert_with_async("k", async { Err("timeout") }).await;
    /// assert_eq!(*r.unwrap_err(), "timeout");
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn try_get_or_insert_with_async<E>(
        &self,
        key: K,
        init: impl std::future::Future<Output = Result<V, E>>,
    ) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let mut init = Some(init);
        loop {
            if let Some(v) = self.get(&key) {
                return Ok(v);
            }
            match self.role(&key) {
                Role::Wait(flight) => match flight.wait_async().await {
                    Outcome::Value(v) => return Ok(v),
                    Outcome::Error(e) => match e.downcast::<E>() {
                        Ok(e) => return Err(e),
                        Err(_) => continue,
                    },
                    Outcome::Retry => continue,
                },
                Role::Lead(flight) => {
                    let guard = LeadGuard {
                        cache: self,
                        key: Some(key.clone()),
                        flight,
                    };
                    if let Some(v) = self.peek(&key) {
                        guard.finish(State::Done(v.clone()));
                        return Ok(v);
                    }
                    let Some(init) = init.take() else {
                        continue;
                    };
                    let started = self.clock.now();
                    let result = init.await;
                    return self.complete(guard, key, result, started);
                }
            }
        }
    }
}
