//! `Script`: a named Lua script run by `EVALSHA`, loaded again wherever a node lacks it.

use std::fmt;

use redis::ToRedisArgs;

/// A Lua script, held by its SHA-1 and run with `EVALSHA`; on `NOSCRIPT` (a fresh server, a
/// restart, a promoted replica) it is loaded with `SCRIPT LOAD` and run again.
///
/// Built on [`redis::Script`]. On a cluster connection, `EVALSHA` goes to the node owning the
/// first key's slot and `SCRIPT LOAD` to every node, so each node has the script after the
/// first `NOSCRIPT` it answers. Give every key of one invocation the same hash tag
/// ([`KeyBuilder`](crate::KeyBuilder) does); the name appears in errors.
///
/// ```
/// use keel_redis::{Redis, Script};
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # let client = redis::Client::open(server.url())?;
/// let redis = Redis::new(client.get_multiplexed_async_connection().await?, Duration::from_secs(1))?;
/// let swap = Script::new("swap", "local old = redis.call('GET', KEYS[1]) redis.call('SET', KEYS[1], ARGV[1]) return old");
/// assert_eq!(redis.invoke::<Option<String>>(swap.key("k").arg("a")).await?, None);
/// redis::cmd("SCRIPT").arg("FLUSH").exec_async(&mut redis.connection().clone()).await?;
/// // The server forgot it; the next call loads it again.
/// assert_eq!(redis.invoke::<Option<String>>(swap.key("k").arg("b")).await?, Some("a".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Script {
    name: &'static str,
    script: redis::Script,
}

impl Script {
    /// A script named `name` (used in errors) with the Lua source `code`.
    ///
    /// ```
    /// use keel_redis::Script;
    ///
    /// let script = Script::new("noop", "return 1");
    /// assert_eq!(script.name(), "noop");
    /// ```
    pub fn new(name: &'static str, code: &str) -> Script {
        Script {
            name,
            script: redis::Script::new(code),
        }
    }

    /// The name given to [`new`](Script::new).
    ///
    /// ```
    /// use keel_redis::Script;
    ///
    /// assert_eq!(Script::new("gcra", "return 0").name(), "gcra");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The script's SHA-1, in hex, as `EVALSHA` and `SCRIPT EXISTS` take it.
    ///
    /// ```
    /// use keel_redis::Script;
    ///
    /// assert_eq!(Script::new("one", "return 1").hash(), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    /// ```
    pub fn hash(&self) -> &str {
        self.script.get_hash()
    }

    /// An invocation with `key` as its first key.
    ///
    /// ```
    /// use keel_redis::Script;
    ///
    /// let script = Script::new("get", "return redis.call('GET', KEYS[1])");
    /// let invocation = script.key("k");
    /// assert_eq!(invocation.name(), "get");
    /// ```
    pub fn key<T: ToRedisArgs>(&self, key: T) -> Invocation<'_> {
        let mut invocation = self.prepare();
        invocation.key(key);
        invocation
    }

    /// An invocation with no keys or arguments yet.
    ///
    /// ```
    /// use keel_redis::Script;
    ///
    /// let script = Script::new("pair", "return {KEYS[1], ARGV[1]}");
    /// let mut invocation = script.prepare();
    /// invocation.key("k").arg(1);
    /// assert_eq!(invocation.name(), "pair");
    /// ```
    pub fn prepare(&self) -> Invocation<'_> {
        Invocation {
            name: self.name,
            invocation: self.script.prepare_invoke(),
        }
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("name", &self.name)
            .field("hash", &self.hash())
            .finish()
    }
}

/// One call of a [`Script`]: its keys and arguments, run by
/// [`Redis::invoke`](crate::Redis::invoke).
///
/// ```
/// use keel_redis::{Redis, Script};
/// use std::time::Duration;
///
/// # let server = keel_testkit::RedisServer::start()?;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// # let client = redis::Client::open(server.url())?;
/// let redis = Redis::new(client.get_multiplexed_async_connection().await?, Duration::from_secs(1))?;
/// let script = Script::new("sum", "return tonumber(ARGV[1]) + tonumber(ARGV[2])");
/// let mut invocation = script.prepare();
/// invocation.arg(2).arg(3);
/// assert_eq!(redis.invoke::<i64>(&invocation).await?, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Invocation<'a> {
    name: &'static str,
    invocation: redis::ScriptInvocation<'a>,
}

impl Invocation<'_> {
    /// Adds a key (`KEYS[i]` in the script).
    ///
    /// ```
    /// use keel_redis::Script;
    ///
    /// let script = Script::new("two", "return #KEYS");
    /// let mut invocation = script.key("a");
    /// invocation.key("b");
    /// # assert_eq!(invocation.name(), "two");
    /// ```
    pub fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        self.invocation.key(key);
        self
    }

    /// Adds an argument (`ARGV[i]` in the script).
    ///
    /// ```
    /// use keel_redis::Script;
    ///
    /// let script = Script::new("args", "return #ARGV");
    /// let mut invocation = script.prepare();
    /// invocation.arg(1).arg("two");
    /// # assert_eq!(invocation.name(), "args");
    /// ```
    pub fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.invocation.arg(arg);
        self
    }

    /// The script's name.
    ///
    /// ```
    /// use keel_redis::Script;
    ///
    /// assert_eq!(Script::new("s", "return 1").prepare().name(), "s");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn inner(&self) -> &redis::ScriptInvocation<'_> {
        &self.invocation
    }
}

impl fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys and arguments may carry secrets: only the script is shown.
        f.debug_struct("Invocation")
            .field("script", &self.name)
            .finish_non_exhaustive()
    }
}
