//! The one trait every algorithm implements.

use crate::key::{StableHash, hash_key};

/// Maps a key to a node, and to `n` distinct nodes for replicas, with minimal churn when
/// membership changes.
///
/// Lookups take the key's 64-bit hash ([`hash_key`]); the provided [`node`](Self::node) and
/// [`replicas`](Self::replicas) hash the key for you. Replicas are written into a buffer the
/// caller owns, so no lookup allocates.
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, Rendezvous, Ring};
///
/// fn owners<H: ConsistentHash<Node = &'static str>>(placement: &H, key: &str) -> Vec<&'static str> {
///     let mut out = [None; 2];
///     let n = placement.replicas(key, &mut out);
///     out[..n].iter().flatten().map(|node| **node).collect()
/// }
///
/// let mut ring = Ring::new();
/// let mut hrw = Rendezvous::new();
/// for node in ["a", "b", "c"] {
///     ring.add(node)?;
///     hrw.add(node)?;
/// }
/// assert_eq!(owners(&ring, "user:1").len(), 2);
/// assert_eq!(owners(&hrw, "user:1").len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ConsistentHash {
    /// The node type: anything the caller names members by.
    type Node;

    /// The number of member nodes.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ring};
    ///
    /// let mut ring = Ring::new();
    /// ring.add_weighted("a", 3)?;
    /// assert_eq!(ring.len(), 1); // members, not weight or points
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn len(&self) -> usize;

    /// Whether there are no members, in which case every lookup returns `None`.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Rendezvous};
    ///
    /// let mut hrw = Rendezvous::new();
    /// assert!(hrw.is_empty());
    /// assert_eq!(hrw.node("k"), None);
    /// hrw.add("a")?;
    /// assert!(!hrw.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The node that owns a key with this hash, or `None` with no members.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ring, hash_key};
    ///
    /// let mut ring = Ring::new();
    /// ring.extend_weighted([("a", 1), ("b", 1)])?;
    /// let hash = hash_key("user:42"); // hash once, look up in several placements
    /// assert_eq!(ring.node_for_hash(hash), ring.node("user:42"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn node_for_hash(&self, hash: u64) -> Option<&Self::Node>;

    /// Writes up to `out.len()` distinct nodes for a key with this hash into `out`, the
    /// owner first, and returns how many it wrote: `min(out.len(), self.len())`. The slots
    /// past that are set to `None`.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ring, hash_key};
    ///
    /// let mut ring = Ring::new();
    /// ring.extend_weighted([("a", 1), ("b", 1), ("c", 1)])?;
    /// let mut out = [None; 4];
    /// assert_eq!(ring.replicas_for_hash(hash_key("k"), &mut out), 3); // only 3 members
    /// assert_eq!(out[0], ring.node("k"));
    /// assert_eq!(out[3], None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn replicas_for_hash<'a>(&'a self, hash: u64, out: &mut [Option<&'a Self::Node>]) -> usize;

    /// The hash this algorithm places `key` by: [`hash_key`] unless the algorithm fixes its
    /// own (ketama hashes with MD5).
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ketama, KetamaVariant, Ring, hash_key, ketama_hash};
    ///
    /// let ring: Ring<&str> = Ring::new();
    /// let ketama: Ketama<&str> = Ketama::new(KetamaVariant::Libketama);
    /// assert_eq!(ring.key_hash("k"), hash_key("k"));
    /// assert_eq!(ketama.key_hash("k"), u64::from(ketama_hash(b"k")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn key_hash<K: StableHash + ?Sized>(&self, key: &K) -> u64
    where
        Self: Sized,
    {
        hash_key(key)
    }

    /// The node that owns `key`, or `None` with no members.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, JumpHash};
    ///
    /// let mut jump = JumpHash::new();
    /// assert_eq!(jump.node("k"), None);
    /// jump.add("only")?;
    /// assert_eq!(jump.node("k"), Some(&"only"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn node<K: StableHash + ?Sized>(&self, key: &K) -> Option<&Self::Node>
    where
        Self: Sized,
    {
        self.node_for_hash(self.key_hash(key))
    }

    /// Writes up to `out.len()` distinct nodes for `key`, the owner first; see
    /// [`replicas_for_hash`](Self::replicas_for_hash).
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Rendezvous};
    ///
    /// let mut hrw = Rendezvous::new();
    /// hrw.add("a")?;
    /// hrw.add("b")?;
    /// let mut out = [None; 3];
    /// assert_eq!(hrw.replicas("k", &mut out), 2);
    /// assert_ne!(out[0], out[1]); // distinct nodes, the owner first
    /// assert_eq!(out[0], hrw.node("k"));
    /// assert_eq!(out[2], None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn replicas<'a, K: StableHash + ?Sized>(
        &'a self,
        key: &K,
        out: &mut [Option<&'a Self::Node>],
    ) -> usize
    where
        Self: Sized,
    {
        self.replicas_for_hash(self.key_hash(key), out)
    }
}

/// A replica buffer being filled with distinct nodes, compared by address.
pub(crate) struct Distinct<'a, 'o, N> {
    out: &'o mut [Option<&'a N>],
    filled: usize,
    want: usize,
}

impl<'a, 'o, N> Distinct<'a, 'o, N> {
    /// Clears `out` and expects `min(out.len(), members)` nodes.
    pub(crate) fn new(out: &'o mut [Option<&'a N>], members: usize) -> Self {
        out.iter_mut().for_each(|slot| *slot = None);
        let want = out.len().min(members);
        Self {
            out,
            filled: 0,
            want,
        }
    }

    /// Whether the buffer holds all it will.
    #[inline]
    pub(crate) fn full(&self) -> bool {
        self.filled >= self.want
    }

    /// Whether `node` is already in the buffer.
    #[inline]
    pub(crate) fn contains(&self, node: &N) -> bool {
        self.out[..self.filled]
            .iter()
            .any(|slot| slot.is_some_and(|have| core::ptr::eq(have, node)))
    }

    /// Adds `node` unless it is already there or the buffer is full.
    #[inline]
    pub(crate) fn push(&mut self, node: &'a N) {
        if !self.full() && !self.contains(node) {
            self.out[self.filled] = Some(node);
            self.filled += 1;
        }
    }

    /// How many nodes were written.
    pub(crate) fn finish(self) -> usize {
        self.filled
    }
}
