//! A key's hash, typed by the function that made it.

use crate::key::{StableHash, hash_key};

/// The hash a placement maps keys by, made from a key by [`of`](Self::of).
///
/// Every [`ConsistentHash`](crate::ConsistentHash) names its hash type, and its
/// `node_for_hash` and `replicas_for_hash` take only that type. So a hash made by one
/// function cannot be handed to a placement that maps by another, neither through generics,
/// nor through `dyn ConsistentHash<Node = N, Hash = H>`, nor in the "hash once, look up in
/// several placements" pattern: the compiler rejects it.
///
/// | type | function | placements |
/// |---|---|---|
/// | `u64` | [`hash_key`]: SipHash-1-3 under keel's fixed keys | [`Ring`](crate::Ring), [`JumpHash`](crate::JumpHash), [`Rendezvous`](crate::Rendezvous), [`Maglev`](crate::Maglev), [`MultiProbe`](crate::MultiProbe) |
/// | [`KetamaHash`](crate::KetamaHash) | MD5, first four bytes little-endian ([`ketama_hash`](crate::ketama_hash)) | [`Ketama`](crate::Ketama) |
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, Ketama, KetamaHash, KetamaVariant, PlacementHash, Ring};
///
/// let mut ring = Ring::new();
/// ring.add("a")?;
/// let mut ketama = Ketama::new(KetamaVariant::Libketama);
/// ketama.add_weighted("a", 1)?;
///
/// // Hash once per function, look up in every placement that maps by it.
/// let sip = u64::of("user:42");
/// let md5 = KetamaHash::of("user:42");
/// assert_eq!(ring.node_for_hash(sip), ring.node("user:42"));
/// assert_eq!(ketama.node_for_hash(md5), ketama.node("user:42"));
/// // `ketama.node_for_hash(sip)` does not compile.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait PlacementHash: Copy {
    /// The hash of `key`.
    ///
    /// ```
    /// use keel_hashring::{PlacementHash, hash_key};
    ///
    /// assert_eq!(u64::of("k"), hash_key("k"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn of<K: StableHash + ?Sized>(key: &K) -> Self;
}

/// SipHash-1-3 under keel's fixed keys: [`hash_key`].
impl PlacementHash for u64 {
    #[inline]
    fn of<K: StableHash + ?Sized>(key: &K) -> Self {
        hash_key(key)
    }
}
