//! Jump consistent hash with tombstones for removing any node.

use core::cmp::Reverse;
use core::hash::{BuildHasherDefault, Hasher};
use std::collections::{BinaryHeap, HashMap};

use crate::consistent_hash::{ConsistentHash, Distinct};
use crate::error::Error;
use crate::key::{StableHash, combine, hash_key};

/// Rehashes of a key that lands on a tombstone before falling back to a linear scan.
const MAX_REHASH: u64 = 64;
/// Salt for the extra hashes behind replicas 2, 3, ...
const REPLICA_SALT: u64 = 0x7265_706c_6963_6100;

/// Lamping and Veach's jump consistent hash, with a documented way to remove any node.
///
/// Jump maps a key to one of `b` buckets with no memory beyond the bucket count, in
/// `O(ln b)` steps, and perfectly balanced: each bucket gets `1/b` of the keys. Growing to
/// `b + 1` buckets moves exactly the `1/(b + 1)` of keys the new bucket takes, and shrinking
/// by the last bucket moves only that bucket's keys.
///
/// # Removing a node other than the last
///
/// Plain jump can only drop the last bucket. Here a removed node leaves a *tombstone*: its
/// bucket stays, and a key that lands on a dead bucket is rehashed (`combine(hash, attempt)`)
/// and jumped again until it lands on a live one. So:
///
/// * Only the removed node's keys move, and they spread evenly over the live nodes: the
///   movement is the ideal `1/n`.
/// * [`add`](Self::add) refills the lowest tombstone first, taking back exactly the keys the
///   dead bucket had sent elsewhere, so it too moves only `1/(n + 1)` of the keys.
/// * A lookup costs on average `buckets / live` jumps; after 64 rehashes (probability
///   `(dead/buckets)^64`) it falls back to the next live bucket by index.
/// * Removing the node in the last bucket shrinks the table as plain jump does.
///
/// Results depend on the history of adds and removes (which bucket each node holds), not
/// only on the final membership; two instances with the same history agree. Jump has no
/// weights: [`add_weighted`](Self::add_weighted) takes weight 1 and refuses any other.
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, JumpHash};
///
/// let mut jump = JumpHash::new();
/// for shard in ["s0", "s1", "s2", "s3"] {
///     jump.add(shard)?;
/// }
/// let before = *jump.node("user:42").ok_or("no shard")?;
/// jump.remove(&"s1"); // not the last: leaves a tombstone
/// let after = *jump.node("user:42").ok_or("no shard")?;
/// assert!(before == "s1" || before == after);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct JumpHash<N> {
    slots: Vec<Option<N>>,
    live: usize,
    /// Where each live node sits, so membership calls do not scan the buckets.
    index: NodeIndex,
    /// Tombstones, lowest first: the bucket the next [`add`](Self::add) refills.
    dead: BinaryHeap<Reverse<u32>>,
}

/// Live node -> bucket, keyed by the node's stable hash. The map holds the first node seen
/// with each hash; a distinct node whose 64-bit hash collides with it goes to `spill`, which
/// is empty unless such a collision happens.
#[derive(Debug, Clone, Default)]
struct NodeIndex {
    first: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    spill: Vec<(u64, u32)>,
}

/// The map's keys are already SipHash outputs, so hashing them again would only cost time.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in so the hasher stays total.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

impl NodeIndex {
    fn find<N: Eq>(&self, slots: &[Option<N>], hash: u64, node: &N) -> Option<u32> {
        let holds = |b: u32| slots[b as usize].as_ref() == Some(node);
        match self.first.get(&hash) {
            Some(&b) if holds(b) => Some(b),
            Some(_) => self
                .spill
                .iter()
                .find(|&&(h, b)| h == hash && holds(b))
                .map(|&(_, b)| b),
            None => None,
        }
    }

    /// Records a node not yet indexed.
    fn insert(&mut self, hash: u64, bucket: u32) {
        if let Some(&taken) = self.first.get(&hash) {
            debug_assert_ne!(taken, bucket);
            self.spill.push((hash, bucket));
        } else {
            self.first.insert(hash, bucket);
        }
    }

    /// Forgets the node at `bucket`, which has `hash`.
    fn remove(&mut self, hash: u64, bucket: u32) {
        if self.first.get(&hash) == Some(&bucket) {
            self.first.remove(&hash);
            if let Some(at) = self.spill.iter().position(|&(h, _)| h == hash) {
                let (_, other) = self.spill.swap_remove(at);
                self.first.insert(hash, other);
            }
        } else if let Some(at) = self.spill.iter().position(|&e| e == (hash, bucket)) {
            self.spill.swap_remove(at);
        }
    }

    fn heap_bytes(&self) -> usize {
        // hashbrown: one (key, value) slot and one control byte per bucket.
        self.first.capacity() * (core::mem::size_of::<(u64, u32)>() + 1)
            + self.spill.capacity() * core::mem::size_of::<(u64, u32)>()
    }
}

impl<N> Default for JumpHash<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Lamping and Veach's jump function, exactly as published: the bucket in `0..buckets` for
/// `key`, or `None` when `buckets` is 0.
///
/// This is the raw function, for interop with other implementations (the paper's C++, Go's
/// `go-jump` and ClickHouse's `jumpConsistentHash` agree with it; Guava's `consistentHash`
/// does not). The key is used as given: hash it first, for example with
/// [`hash_key`](crate::hash_key), which is what [`JumpHash`] does. `O(ln buckets)` steps,
/// no memory.
///
/// ```
/// use keel_hashring::jump;
///
/// assert_eq!(jump(256, 1024), Some(520)); // the paper's reference implementation
/// assert_eq!(jump(42, 57), Some(43));
/// assert_eq!(jump(42, 0), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[inline]
pub fn jump(key: u64, buckets: u32) -> Option<u32> {
    (buckets > 0).then(|| jump_in(key, buckets))
}

/// [`jump`] for `buckets > 0`.
#[inline]
pub(crate) fn jump_in(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

impl<N> JumpHash<N> {
    /// An empty table.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, JumpHash};
    ///
    /// let jump: JumpHash<&str> = JumpHash::new();
    /// assert_eq!(jump.buckets(), 0);
    /// assert_eq!(jump.node("k"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            live: 0,
            index: NodeIndex::default(),
            dead: BinaryHeap::new(),
        }
    }

    /// Buckets, live and dead.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, JumpHash};
    ///
    /// let mut jump = JumpHash::new();
    /// for shard in ["s0", "s1", "s2"] {
    ///     jump.add(shard)?;
    /// }
    /// jump.remove(&"s1"); // a tombstone keeps its bucket
    /// assert_eq!(jump.buckets(), 3);
    /// assert_eq!(jump.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn buckets(&self) -> usize {
        self.slots.len()
    }

    /// Nodes by bucket; `None` marks a tombstone.
    ///
    /// ```
    /// use keel_hashring::JumpHash;
    ///
    /// let mut jump = JumpHash::new();
    /// for shard in ["s0", "s1", "s2"] {
    ///     jump.add(shard)?;
    /// }
    /// jump.remove(&"s1");
    /// assert_eq!(jump.slots(), [Some("s0"), None, Some("s2")]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn slots(&self) -> &[Option<N>] {
        &self.slots
    }

    /// Heap bytes held: the buckets, and the index from node to bucket (about 20–40 bytes
    /// a node) that keeps [`add`](Self::add), [`contains`](Self::contains),
    /// [`remove`](Self::remove) and [`bucket_of`](Self::bucket_of) from scanning them.
    ///
    /// ```
    /// use keel_hashring::JumpHash;
    ///
    /// let mut jump = JumpHash::new();
    /// assert_eq!(jump.heap_bytes(), 0);
    /// jump.add(7u64)?;
    /// assert!(jump.heap_bytes() >= size_of::<Option<u64>>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Option<N>>()
            + self.index.heap_bytes()
            + self.dead.capacity() * core::mem::size_of::<u32>()
    }

    /// The live bucket for `hash`; `None` with no members.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, JumpHash, hash_key};
    ///
    /// let mut jump = JumpHash::new();
    /// assert_eq!(jump.bucket_for_hash(hash_key("k")), None);
    /// for shard in ["s0", "s1", "s2"] {
    ///     jump.add(shard)?;
    /// }
    /// let bucket = jump.bucket_for_hash(hash_key("k")).ok_or("no members")?;
    /// assert_eq!(jump.slots()[bucket as usize].as_ref(), jump.node("k"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn bucket_for_hash(&self, hash: u64) -> Option<u32> {
        if self.live == 0 {
            return None;
        }
        let buckets = self.slots.len() as u32;
        let mut b = jump_in(hash, buckets);
        if self.slots[b as usize].is_some() {
            return Some(b);
        }
        for attempt in 1..=MAX_REHASH {
            b = jump_in(combine(hash, attempt), buckets);
            if self.slots[b as usize].is_some() {
                return Some(b);
            }
        }
        let len = self.slots.len();
        (1..len)
            .map(|step| (b as usize + step) % len)
            .find(|&i| self.slots[i].is_some())
            .map(|i| i as u32)
    }
}

impl<N: StableHash + Eq> JumpHash<N> {
    /// Restores a table from its buckets (`None` marks a tombstone), as
    /// [`slots`](Self::slots) returned them.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateNode`] if a node appears twice, [`Error::TooManyNodes`] past
    /// `u32::MAX` buckets.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, JumpHash};
    ///
    /// let mut jump = JumpHash::new();
    /// for shard in ["s0", "s1", "s2"] {
    ///     jump.add(shard)?;
    /// }
    /// jump.remove(&"s1");
    /// let restored = JumpHash::from_slots(jump.slots().to_vec())?;
    /// assert_eq!(restored.node("user:42"), jump.node("user:42"));
    /// assert_eq!(
    ///     JumpHash::from_slots(vec![Some("a"), Some("a")]).unwrap_err(),
    ///     Error::DuplicateNode
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_slots(slots: Vec<Option<N>>) -> Result<Self, Error> {
        if slots.len() > u32::MAX as usize {
            return Err(Error::TooManyNodes {
                max: u64::from(u32::MAX),
            });
        }
        // One index insert per live node, so restoring a table of 100k buckets stays fast.
        let mut index = NodeIndex::default();
        let mut dead = Vec::new();
        for (bucket, slot) in slots.iter().enumerate() {
            let bucket = bucket as u32;
            match slot {
                Some(node) => {
                    let hash = hash_key(node);
                    if index.find(&slots, hash, node).is_some() {
                        return Err(Error::DuplicateNode);
                    }
                    index.insert(hash, bucket);
                }
                None => dead.push(Reverse(bucket)),
            }
        }
        let live = slots.len() - dead.len();
        Ok(Self {
            slots,
            live,
            index,
            dead: BinaryHeap::from(dead),
        })
    }

    /// Adds `node` in the lowest tombstone, or a new last bucket;
    /// [`bucket_of`](Self::bucket_of) tells which.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateNode`], or [`Error::TooManyNodes`] past `u32::MAX` buckets.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{Error, JumpHash};
    ///
    /// let mut jump = JumpHash::new();
    /// for shard in ["s0", "s1", "s2"] {
    ///     jump.add(shard)?;
    /// }
    /// assert_eq!(jump.bucket_of(&"s2"), Some(2));
    /// jump.remove(&"s0");
    /// jump.add("s3")?;
    /// assert_eq!(jump.bucket_of(&"s3"), Some(0)); // refills the lowest tombstone
    /// assert_eq!(jump.add("s3"), Err(Error::DuplicateNode));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&mut self, node: N) -> Result<(), Error> {
        let hash = hash_key(&node);
        if self.index.find(&self.slots, hash, &node).is_some() {
            return Err(Error::DuplicateNode);
        }
        let bucket = match self.dead.pop() {
            Some(Reverse(dead)) => {
                self.slots[dead as usize] = Some(node);
                dead
            }
            None => {
                if self.slots.len() >= u32::MAX as usize {
                    return Err(Error::TooManyNodes {
                        max: u64::from(u32::MAX),
                    });
                }
                self.slots.push(Some(node));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(hash, bucket);
        self.live += 1;
        Ok(())
    }

    /// [`add`](Self::add) with a weight, in the shape every placement shares, so generic
    /// code can add weighted members to any of them. Jump has no weights: a node is one
    /// bucket, and its bucket number is its shard (what [`bucket_of`](Self::bucket_of) and
    /// [`slots`](Self::slots) report). Repeating a node over several buckets would give it
    /// several shard numbers and make a weight change move keys between the other nodes, so
    /// weight 1 is taken as [`add`](Self::add) and any other weight is refused. For weights,
    /// use [`Ring`](crate::Ring), [`Rendezvous`](crate::Rendezvous),
    /// [`Maglev`](crate::Maglev) or [`MultiProbe`](crate::MultiProbe).
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`], [`Error::WeightsUnsupported`] for a weight above 1, or what
    /// [`add`](Self::add) returns.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, JumpHash};
    ///
    /// let mut jump = JumpHash::new();
    /// jump.add_weighted("s0", 1)?;
    /// assert_eq!(jump.len(), 1);
    /// assert_eq!(
    ///     jump.add_weighted("s1", 3),
    ///     Err(Error::WeightsUnsupported { placement: "jump hash", weight: 3 })
    /// );
    /// assert_eq!(jump.add_weighted("s1", 0), Err(Error::ZeroWeight));
    /// assert!(!jump.contains(&"s1")); // nothing added
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_weighted(&mut self, node: N, weight: u32) -> Result<(), Error> {
        match weight {
            0 => Err(Error::ZeroWeight),
            1 => self.add(node),
            _ => Err(Error::WeightsUnsupported {
                placement: "jump hash",
                weight,
            }),
        }
    }

    /// Whether `node` is a member.
    ///
    /// ```
    /// use keel_hashring::JumpHash;
    ///
    /// let mut jump = JumpHash::new();
    /// jump.add("s0")?;
    /// assert!(jump.contains(&"s0"));
    /// assert!(!jump.contains(&"s1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, node: &N) -> bool {
        self.bucket_of(node).is_some()
    }

    /// Removes `node`; returns whether it was a member. The last bucket is dropped, any
    /// other becomes a tombstone (see the type's docs).
    ///
    /// ```
    /// use keel_hashring::JumpHash;
    ///
    /// let mut jump = JumpHash::new();
    /// for shard in ["s0", "s1", "s2"] {
    ///     jump.add(shard)?;
    /// }
    /// assert!(jump.remove(&"s1")); // leaves a tombstone
    /// assert_eq!(jump.buckets(), 3);
    /// assert!(jump.remove(&"s2")); // the last bucket is dropped
    /// assert_eq!(jump.buckets(), 2);
    /// assert!(!jump.remove(&"s2"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&mut self, node: &N) -> bool {
        let hash = hash_key(node);
        let Some(bucket) = self.index.find(&self.slots, hash, node) else {
            return false;
        };
        self.index.remove(hash, bucket);
        if bucket as usize + 1 == self.slots.len() {
            self.slots.pop();
        } else {
            self.slots[bucket as usize] = None;
            self.dead.push(Reverse(bucket));
        }
        self.live -= 1;
        true
    }

    /// The bucket `node` holds, if it is a member: its shard number, the value
    /// [`bucket_for_hash`](Self::bucket_for_hash) returns for the keys it owns.
    ///
    /// ```
    /// use keel_hashring::JumpHash;
    ///
    /// let mut jump = JumpHash::new();
    /// jump.add("s0")?;
    /// jump.add("s1")?;
    /// assert_eq!(jump.bucket_of(&"s1"), Some(1));
    /// assert_eq!(jump.bucket_of(&"s9"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bucket_of(&self, node: &N) -> Option<u32> {
        self.index.find(&self.slots, hash_key(node), node)
    }
}

impl<N> ConsistentHash for JumpHash<N> {
    type Node = N;
    type Hash = u64;

    fn len(&self) -> usize {
        self.live
    }

    #[inline]
    fn node_for_hash(&self, hash: u64) -> Option<&N> {
        let b = self.bucket_for_hash(hash)?;
        self.slots[b as usize].as_ref()
    }

    fn replicas_for_hash<'a>(&'a self, hash: u64, out: &mut [Option<&'a N>]) -> usize {
        let mut distinct = Distinct::new(out, self.live, self.slots.len());
        let Some(first) = self.bucket_for_hash(hash) else {
            return 0;
        };
        if let Some(node) = &self.slots[first as usize] {
            distinct.push(first as usize, node);
        }
        // Each further replica is the jump of another hash of the key, so it is as stable
        // as the first; a bounded number of tries then a scan guarantees termination.
        let tries = 8 * self.live as u64 + 64;
        for salt in 1..=tries {
            if distinct.full() {
                break;
            }
            if let Some(b) = self.bucket_for_hash(combine(hash, REPLICA_SALT + salt))
                && let Some(node) = &self.slots[b as usize]
            {
                distinct.push(b as usize, node);
            }
        }
        let len = self.slots.len();
        for step in 1..len {
            if distinct.full() {
                break;
            }
            let b = (first as usize + step) % len;
            if let Some(node) = &self.slots[b] {
                distinct.push(b, node);
            }
        }
        distinct.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_matches_published_vectors() {
        // The test vectors of the Go port github.com/dgryski/go-jump (jump_test.go), which
        // reproduce the C++ function of Lamping and Veach (arXiv:1406.2294).
        assert_eq!(jump(1, 1), Some(0));
        assert_eq!(jump(42, 57), Some(43));
        assert_eq!(jump(0xDEAD_10CC, 1), Some(0));
        assert_eq!(jump(0xDEAD_10CC, 666), Some(361));
        assert_eq!(jump(256, 1024), Some(520));
    }

    #[test]
    fn tombstones_are_skipped_and_refilled() {
        let mut j = JumpHash::new();
        for n in 0..5u32 {
            j.add(n).unwrap();
            assert_eq!(j.bucket_of(&n), Some(n));
        }
        assert!(j.remove(&2));
        assert_eq!(j.buckets(), 5);
        assert_eq!(j.len(), 4);
        for k in 0..2000u32 {
            assert_ne!(j.node(&k), Some(&2));
        }
        j.add(9).unwrap();
        assert_eq!(j.bucket_of(&9), Some(2));
        assert!(j.remove(&4));
        assert_eq!(j.buckets(), 4);
        assert_eq!(j.add(9), Err(Error::DuplicateNode));
        assert!(!j.remove(&42));
    }

    #[test]
    fn from_slots_restores_tables_and_refuses_duplicates() {
        // 200k buckets: the old pairwise check took minutes here.
        let slots: Vec<Option<u64>> = (0..200_000u64).map(|n| (n % 7 != 3).then_some(n)).collect();
        let j = JumpHash::from_slots(slots.clone()).unwrap();
        assert_eq!(j.buckets(), 200_000);
        assert_eq!(j.slots(), &slots[..]);
        let mut dup = slots;
        dup[199_999] = Some(0);
        assert_eq!(JumpHash::from_slots(dup).err(), Some(Error::DuplicateNode));
        assert_eq!(
            JumpHash::from_slots(vec![Some("a"), None, Some("b"), Some("a")]).err(),
            Some(Error::DuplicateNode)
        );
        assert!(JumpHash::from_slots(vec![None, Some("a"), None::<&str>]).is_ok());
    }

    #[test]
    fn lookup_terminates_with_one_live_bucket_among_many_dead() {
        let mut j = JumpHash::new();
        for n in 0..200u32 {
            j.add(n).unwrap();
        }
        for n in 1..199u32 {
            j.remove(&n);
        }
        assert_eq!(j.len(), 2);
        let mut out = [None; 3];
        for k in 0..200u32 {
            let owner = *j.node(&k).unwrap();
            assert!(owner == 0 || owner == 199);
            assert_eq!(j.replicas(&k, &mut out), 2);
        }
    }
}
