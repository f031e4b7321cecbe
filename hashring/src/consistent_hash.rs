//! The one trait every algorithm implements.

use crate::key::StableHash;
use crate::placement_hash::PlacementHash;

/// Maps a key to a node, and to `n` distinct nodes for replicas, with minimal churn when
/// membership changes.
///
/// Lookups take the key's hash, of the placement's own [`Hash`](Self::Hash) type (see
/// [`PlacementHash`]); the provided [`node`](Self::node) and [`replicas`](Self::replicas)
/// hash the key for you, and so do `node_of` and `replicas_of` on a
/// `dyn ConsistentHash<Node = N, Hash = H>`. Replicas are written into a buffer the
/// caller owns, so no lookup allocates, but for two cases of more than 16 replicas: among
/// more than 8,192 members a lookup keeps a hash set of the nodes found, and
/// [`Rendezvous`](crate::Rendezvous) keeps its best `k` in a heap.
///
/// The trait is object safe: a compile-time check in the crate keeps it so.
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

    /// The hash keys are placed by: `u64` ([`hash_key`](crate::hash_key)) for every
    /// algorithm but [`Ketama`](crate::Ketama), which maps by
    /// [`KetamaHash`](crate::KetamaHash) (MD5). The lookups below take only this type, so no
    /// call path can hand a placement a hash made by another function.
    type Hash: PlacementHash;

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
    fn node_for_hash(&self, hash: Self::Hash) -> Option<&Self::Node>;

    /// Writes up to `out.len()` distinct nodes for a key with this hash into `out`, the
    /// owner first, and returns how many it wrote: `min(out.len(), self.len())`. The slots
    /// past that are set to `None`. One exception, kept for interop: a [`Ketama`](crate::Ketama) server
    /// whose weight is under `1 / (40 × n)` of the total has no points and is never written,
    /// so Ketama can return fewer (see
    /// [Light servers get no points](crate::Ketama#light-servers-get-no-points)).
    ///
    /// Time is linear in what the walk visits: up to 16 replicas are told apart by scanning
    /// the buffer, more by a bitmap of member indexes (on the stack up to 8,192 members, a
    /// hash set beyond), so asking for every node is not quadratic.
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
    fn replicas_for_hash<'a>(
        &'a self,
        hash: Self::Hash,
        out: &mut [Option<&'a Self::Node>],
    ) -> usize;

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
        self.node_for_hash(Self::Hash::of(key))
    }

    /// Writes up to `out.len()` distinct nodes for `key`, the owner first, and returns
    /// `min(out.len(), self.len())`; see [`replicas_for_hash`](Self::replicas_for_hash),
    /// including why a [`Ketama`](crate::Ketama) with very light servers returns fewer.
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
        self.replicas_for_hash(Self::Hash::of(key), out)
    }
}

// `node` and `replicas` are generic over the key, so the trait's own are not callable on a
// trait object; these give `dyn` callers the same lookups, hashing by the object's `Hash`.
// Other names than the trait's, which a trait object also sees and would make ambiguous.
macro_rules! dyn_lookups {
    ($($bounds:tt)*) => {
        impl<'p, N, H: PlacementHash> dyn ConsistentHash<Node = N, Hash = H> $($bounds)* + 'p {
            /// [`ConsistentHash::node`] for a trait object: the node that owns `key`, hashed by
            /// this placement's own hash function.
            ///
            /// ```
            /// use keel_hashring::{ConsistentHash, Ketama, KetamaHash, KetamaVariant};
            ///
            /// let mut ketama = Ketama::new(KetamaVariant::Libketama);
            /// ketama.extend_weighted([("10.0.1.1:11211", 1), ("10.0.1.2:11211", 1)])?;
            /// let want = ketama.node("user:42").copied();
            /// let placement: &dyn ConsistentHash<Node = &str, Hash = KetamaHash> = &ketama;
            /// assert_eq!(placement.node_of("user:42").copied(), want); // MD5, as libketama
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn node_of<K: StableHash + ?Sized>(&self, key: &K) -> Option<&N> {
                self.node_for_hash(H::of(key))
            }

            /// [`ConsistentHash::replicas`] for a trait object: writes up to `out.len()`
            /// distinct nodes for `key`, the owner first.
            ///
            /// ```
            /// use keel_hashring::{ConsistentHash, Ring};
            ///
            /// let mut ring = Ring::new();
            /// ring.extend_weighted([("a", 1), ("b", 1)])?;
            /// let placement: Box<dyn ConsistentHash<Node = &str, Hash = u64>> = Box::new(ring);
            /// let mut out = [None; 2];
            /// assert_eq!(placement.replicas_of("k", &mut out), 2);
            /// assert_eq!(out[0], placement.node_of("k"));
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn replicas_of<'a, K: StableHash + ?Sized>(
                &'a self,
                key: &K,
                out: &mut [Option<&'a N>],
            ) -> usize {
                self.replicas_for_hash(H::of(key), out)
            }
        }
    };
}

dyn_lookups!();
dyn_lookups!(+ Send);
dyn_lookups!(+ Sync);
dyn_lookups!(+ Send + Sync);

// Compile-time check that the trait stays object safe.
const _: Option<&dyn ConsistentHash<Node = (), Hash = u64>> = None;

/// Up to this many replicas, duplicates are found by scanning the buffer; beyond, by a set
/// of member indexes, so a lookup stays linear in the buffer rather than quadratic.
const SCAN_UP_TO: usize = 16;
/// Member indexes below this are tracked in a bitmap on the stack (1 KiB); only a lookup of
/// more than [`SCAN_UP_TO`] replicas among more members than this allocates (a hash set).
const STACK_BITS: usize = 8192;

/// How a [`Distinct`] remembers the members it holds.
#[expect(
    clippy::large_enum_variant,
    reason = "the bitmap stays on the stack so the lookup does not allocate"
)]
enum Seen {
    Scan,
    Bits([u64; STACK_BITS / 64]),
    Set(std::collections::HashSet<usize>),
}

/// A replica buffer being filled with distinct nodes, told apart by member index.
pub(crate) struct Distinct<'a, 'o, N> {
    out: &'o mut [Option<&'a N>],
    filled: usize,
    want: usize,
    seen: Seen,
}

impl<'a, 'o, N> Distinct<'a, 'o, N> {
    /// Clears `out` and expects `min(out.len(), members)` nodes, whose indexes are below
    /// `indexes`.
    #[inline]
    pub(crate) fn new(out: &'o mut [Option<&'a N>], members: usize, indexes: usize) -> Self {
        out.iter_mut().for_each(|slot| *slot = None);
        let want = out.len().min(members);
        let seen = if want <= SCAN_UP_TO {
            Seen::Scan
        } else if indexes <= STACK_BITS {
            Seen::Bits([0; STACK_BITS / 64])
        } else {
            Seen::Set(std::collections::HashSet::with_capacity(want))
        };
        Self {
            out,
            filled: 0,
            want,
            seen,
        }
    }

    /// Whether the buffer holds all it will.
    #[inline]
    pub(crate) fn full(&self) -> bool {
        self.filled >= self.want
    }

    /// Adds `node`, the member at `index`, unless it is already there or the buffer is full.
    #[inline]
    pub(crate) fn push(&mut self, index: usize, node: &'a N) {
        if self.full() {
            return;
        }
        let fresh = match &mut self.seen {
            Seen::Scan => !self.out[..self.filled]
                .iter()
                .any(|slot| slot.is_some_and(|have| core::ptr::eq(have, node))),
            Seen::Bits(bits) => {
                let (word, bit) = (index / 64, 1u64 << (index % 64));
                let fresh = bits[word] & bit == 0;
                bits[word] |= bit;
                fresh
            }
            Seen::Set(set) => set.insert(index),
        };
        if fresh {
            self.out[self.filled] = Some(node);
            self.filled += 1;
        }
    }

    /// How many nodes were written.
    pub(crate) fn finish(self) -> usize {
        self.filled
    }
}
