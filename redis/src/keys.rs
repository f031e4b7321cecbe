//! `KeyBuilder`: keys whose hash tag is the whole name, escaped, so one decision's keys share a
//! cluster slot whatever the name.

use std::borrow::Cow;

use crate::RedisConfigError;

/// Builds the Redis keys of one name as `<prefix>{<tag>}<suffix>`, so that a Redis Cluster
/// hashes only `<tag>` and every key of the name lands in one slot.
///
/// Redis hashes the text between the first `{` and the first `}` after it, if that text is not
/// empty. A name used as is breaks this: `}x` makes the tag empty (`{}`), and every key of the
/// name is then hashed whole, into different slots (`CROSSSLOT`). So the tag is the name with
/// `%`, `{` and `}` escaped as `%25`, `%7B` and `%7D`, and the empty name is the tag `%`
/// (which no escaped name is). The tag is never empty and holds no `}`; distinct names give
/// distinct tags; a name without those three characters is its own tag. The prefix may not
/// hold `{` or `}`, since a brace in it would take over the tag.
///
/// ```
/// use keel_redis::KeyBuilder;
///
/// let keys = KeyBuilder::new("rl:")?;
/// assert_eq!(keys.key("user-7"), "rl:{user-7}");
/// assert_eq!(keys.key_with("user-7", ":log"), "rl:{user-7}:log");
/// assert_eq!(keys.key("}evil{"), "rl:{%7Devil%7B}"); // still one slot for all its keys
/// assert_eq!(keys.key(""), "rl:{%}");
/// assert!(KeyBuilder::new("a{b}:").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBuilder {
    prefix: String,
}

impl KeyBuilder {
    /// Keys starting with `prefix`.
    ///
    /// # Errors
    ///
    /// [`RedisConfigError::BraceInPrefix`] if `prefix` holds `{` or `}`.
    ///
    /// ```
    /// use keel_redis::{RedisConfigError, KeyBuilder};
    ///
    /// assert_eq!(KeyBuilder::new("keel:lock:")?.prefix(), "keel:lock:");
    /// let err = KeyBuilder::new("{app}:").unwrap_err();
    /// assert!(matches!(err, RedisConfigError::BraceInPrefix { .. }));
    /// assert_eq!(err.to_string(), "key prefix \"{app}:\" must not contain '{' or '}'");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(prefix: impl Into<String>) -> Result<KeyBuilder, RedisConfigError> {
        let prefix = prefix.into();
        if prefix.contains(['{', '}']) {
            return Err(RedisConfigError::BraceInPrefix { prefix });
        }
        Ok(KeyBuilder { prefix })
    }

    /// The prefix every key starts with.
    ///
    /// ```
    /// use keel_redis::KeyBuilder;
    ///
    /// assert_eq!(KeyBuilder::new("")?.prefix(), "");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key `<prefix>{<tag>}` of `name`.
    ///
    /// ```
    /// use keel_redis::KeyBuilder;
    ///
    /// let keys = KeyBuilder::new("keel:lock:")?;
    /// assert_eq!(keys.key("jobs"), "keel:lock:{jobs}");
    /// assert_eq!(keys.key("100%"), "keel:lock:{100%25}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key(&self, name: &str) -> String {
        self.key_with(name, "")
    }

    /// The key `<prefix>{<tag>}<suffix>` of `name`, in the same slot as [`key`](Self::key).
    /// The suffix comes after the tag has closed, so it may hold anything.
    ///
    /// ```
    /// use keel_redis::KeyBuilder;
    ///
    /// let keys = KeyBuilder::new("keel:lock:")?;
    /// assert_eq!(keys.key_with("jobs", ":token"), "keel:lock:{jobs}:token");
    /// assert_eq!(keys.key_with("a}b", ":{x}"), "keel:lock:{a%7Db}:{x}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn key_with(&self, name: &str, suffix: &str) -> String {
        let tag = tag(name);
        let mut key = String::with_capacity(self.prefix.len() + tag.len() + suffix.len() + 2);
        key.push_str(&self.prefix);
        key.push('{');
        key.push_str(&tag);
        key.push('}');
        key.push_str(suffix);
        key
    }
}

/// The hash tag of `name`: never empty, no `}`, one-to-one.
///
/// ```
/// use keel_redis::tag;
///
/// assert_eq!(tag("plain"), "plain");
/// assert_eq!(tag("{a}"), "%7Ba%7D");
/// assert_eq!(tag(""), "%");
/// ```
pub fn tag(name: &str) -> Cow<'_, str> {
    if name.is_empty() {
        return Cow::Borrowed("%");
    }
    if !name.contains(['%', '{', '}']) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}
