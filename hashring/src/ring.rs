//! Consistent hashing ring with weighted virtual nodes.

use core::fmt;
use core::marker::PhantomData;

use crate::consistent_hash::{ConsistentHash, Distinct};
use crate::error::Error;
use crate::key::{StableHash, combine};
use crate::members::Members;

/// Virtual nodes per unit of weight unless configured otherwise.
///
/// ```
/// use keel_hashring::{DEFAULT_VNODES, Ring};
///
/// let mut ring = Ring::new();
/// ring.add("a")?;
/// assert_eq!(ring.vnodes(), DEFAULT_VNODES);
/// assert_eq!(ring.points(), 160);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_VNODES: u32 = 160;

/// The most points a [`Ring`] holds, across all its nodes: 2^24 (16,777,216).
///
/// A node of weight `w` takes `w × vnodes` points, so this bounds each node and the sum over
/// nodes. It bounds memory: a point costs 12 bytes (its hash and its owner), so a full ring
/// holds at most 192 MiB of points plus a 16 MiB prefix table, and a membership change briefly
/// needs at most 40 bytes a point (640 MiB) while it merges. With [`DEFAULT_VNODES`] that is a
/// total weight of 104,857, say 1,000 nodes of weight up to 104. Changes past it fail with
/// [`Error::TooManyPoints`], and [`RingBuilder::build`] rejects a `vnodes` above it with
/// [`Error::TooManyVirtualNodes`], rather than abort on allocation.
///
/// ```
/// use keel_hashring::{Error, MAX_POINTS, Ring};
///
/// let mut ring = Ring::builder().vnodes(1 << 20).build()?;
/// ring.add_weighted("a", 2)?;
/// assert_eq!(
///     ring.add_weighted("b", 15), // 17 × 2^20 points in all
///     Err(Error::TooManyPoints { points: 17 << 20, max: MAX_POINTS })
/// );
/// assert_eq!(ring.points(), 2 << 20); // unchanged
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_POINTS: u64 = 1 << 24;

/// Adds `weight × per_weight` points to `points`, or says how many that would be when it
/// passes [`MAX_POINTS`]. Every path that adds points to a [`Ring`] or a
/// [`MultiProbe`](crate::MultiProbe) counts them here, so the limit and its error are one rule.
pub(crate) fn add_points(points: &mut u64, weight: u32, per_weight: u64) -> Result<(), Error> {
    // Cannot overflow: `points` stays <= MAX_POINTS until it fails, and one node adds at
    // most 2^32 × MAX_POINTS (`per_weight` is at most MAX_POINTS).
    let total = *points + u64::from(weight) * per_weight;
    if total > MAX_POINTS {
        return Err(Error::TooManyPoints {
            points: total,
            max: MAX_POINTS,
        });
    }
    *points = total;
    Ok(())
}

/// A consistent hashing ring (Karger et al.) with weighted virtual nodes.
///
/// Each node of weight `w` is hashed to `w × vnodes` points on a 64-bit circle; a key belongs
/// to the first point at or after its hash. Points live in one sorted `Vec<u64>` with a
/// parallel `Vec<u32>` of owners, and a prefix table on the top bits of the hash narrows the
/// binary search to a couple of points, so a lookup touches two or three cache lines however
/// large the ring is.
///
/// * Results depend only on the set of `(node, weight)` members, never on the order they
///   were added.
/// * Adding or removing a node moves only the keys that node gains or loses: about
///   `w / (W + w)` of them, where `W` is the total weight.
/// * With `v` points per node the heaviest node's share exceeds the mean by about
///   `sqrt(2 ln n / v)`; with 160 points (the default, as in ketama) that is about 24 % at
///   100 nodes (`sqrt(2 ln 100 / 160) ≈ 0.24`).
/// * A ring holds at most [`MAX_POINTS`] points (2^24, about 200 MiB), so no configuration
///   it accepts can abort on allocation; changes past it fail with [`Error::TooManyPoints`].
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, Ring};
///
/// let mut ring = Ring::builder().vnodes(100).build()?;
/// ring.add("cache-1")?;
/// ring.add_weighted("cache-2", 2)?; // twice the share of cache-1
/// let owner = ring.node("user:42").copied();
/// assert!(owner.is_some());
///
/// let mut replicas = [None; 2];
/// assert_eq!(ring.replicas("user:42", &mut replicas), 2);
/// assert_ne!(replicas[0], replicas[1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Ring<N> {
    members: Members<N>,
    vnodes: u32,
    points: Vec<u64>,
    owners: Vec<u32>,
    /// `index[b]` is the first point whose top `64 - shift` bits are `>= b`.
    index: Vec<u32>,
    shift: u32,
}

/// Configures a [`Ring`].
///
/// # Example
///
/// ```
/// use keel_hashring::{Ring, RingBuilder};
///
/// let coarse: RingBuilder<&str> = Ring::builder().vnodes(40);
/// let a = coarse.clone().build()?;
/// let b = coarse.build()?;
/// assert_eq!((a.vnodes(), b.vnodes()), (40, 40));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RingBuilder<N> {
    vnodes: u32,
    _nodes: PhantomData<fn() -> N>,
}

impl<N> fmt::Debug for RingBuilder<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuilder")
            .field("vnodes", &self.vnodes)
            .finish()
    }
}

impl<N> Clone for RingBuilder<N> {
    fn clone(&self) -> Self {
        Self {
            vnodes: self.vnodes,
            _nodes: PhantomData,
        }
    }
}

impl<N> RingBuilder<N> {
    /// Points per unit of weight (default [`DEFAULT_VNODES`]); at most [`MAX_POINTS`], which
    /// [`build`](Self::build) checks.
    ///
    /// ```
    /// use keel_hashring::Ring;
    ///
    /// let mut ring = Ring::builder().vnodes(10).build()?;
    /// ring.add_weighted("a", 2)?;
    /// assert_eq!(ring.points(), 20);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn vnodes(mut self, vnodes: u32) -> Self {
        self.vnodes = vnodes;
        self
    }

    /// Builds an empty ring.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroVirtualNodes`] if `vnodes` is 0; [`Error::TooManyVirtualNodes`] if it is
    /// above [`MAX_POINTS`], since then not even a node of weight 1 would fit.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{Error, MAX_POINTS, Ring};
    ///
    /// assert_eq!(Ring::<&str>::builder().vnodes(10).build()?.vnodes(), 10);
    /// assert_eq!(Ring::<&str>::builder().vnodes(0).build().unwrap_err(), Error::ZeroVirtualNodes);
    /// assert_eq!(
    ///     Ring::<&str>::builder().vnodes(u32::MAX).build().unwrap_err(),
    ///     Error::TooManyVirtualNodes { vnodes: u64::from(u32::MAX), max: MAX_POINTS }
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Ring<N>, Error> {
        if self.vnodes == 0 {
            return Err(Error::ZeroVirtualNodes);
        }
        if u64::from(self.vnodes) > MAX_POINTS {
            return Err(Error::TooManyVirtualNodes {
                vnodes: u64::from(self.vnodes),
                max: MAX_POINTS,
            });
        }
        Ok(Ring {
            members: Members::default(),
            vnodes: self.vnodes,
            points: Vec::new(),
            owners: Vec::new(),
            index: Vec::new(),
            shift: 64,
        })
    }
}

impl<N> Default for Ring<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N> Ring<N> {
    /// An empty ring with [`DEFAULT_VNODES`] points per unit of weight.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ring};
    ///
    /// let ring: Ring<&str> = Ring::new();
    /// assert_eq!(ring.vnodes(), 160);
    /// assert_eq!(ring.node("k"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self {
            members: Members::default(),
            vnodes: DEFAULT_VNODES,
            points: Vec::new(),
            owners: Vec::new(),
            index: Vec::new(),
            shift: 64,
        }
    }

    /// A builder to choose the number of virtual nodes.
    ///
    /// ```
    /// use keel_hashring::{DEFAULT_VNODES, Ring};
    ///
    /// let ring = Ring::<u32>::builder().build()?;
    /// assert_eq!(ring.vnodes(), DEFAULT_VNODES);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> RingBuilder<N> {
        RingBuilder {
            vnodes: DEFAULT_VNODES,
            _nodes: PhantomData,
        }
    }

    /// Points per unit of weight.
    ///
    /// ```
    /// use keel_hashring::Ring;
    ///
    /// let ring = Ring::<u32>::builder().vnodes(64).build()?;
    /// assert_eq!(ring.vnodes(), 64);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn vnodes(&self) -> u32 {
        self.vnodes
    }

    /// Members and their weights, in canonical (hash) order.
    ///
    /// ```
    /// use keel_hashring::Ring;
    ///
    /// let mut ring = Ring::new();
    /// ring.add_weighted("a", 3)?;
    /// ring.add("b")?;
    /// let mut members: Vec<_> = ring.iter().collect();
    /// members.sort(); // canonical order follows the nodes' hashes
    /// assert_eq!(members, [(&"a", 3), (&"b", 1)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&N, u32)> + '_ {
        self.members.iter()
    }

    /// The number of points on the ring.
    ///
    /// ```
    /// use keel_hashring::Ring;
    ///
    /// let mut ring = Ring::new();
    /// ring.add_weighted("a", 2)?;
    /// ring.add("b")?;
    /// assert_eq!(ring.points(), 3 * 160); // weight × vnodes
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// Heap bytes held: points, owners, prefix table and member list.
    ///
    /// ```
    /// use keel_hashring::Ring;
    ///
    /// let mut ring = Ring::new();
    /// assert_eq!(ring.heap_bytes(), 0);
    /// ring.add("a")?;
    /// assert!(ring.heap_bytes() >= 160 * 12); // a point and its owner per virtual node
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.points.capacity() * 8
            + self.owners.capacity() * 4
            + self.index.capacity() * 4
            + self.members.heap_bytes()
    }

    /// Member index owning the point at `pos`.
    #[inline]
    pub(crate) fn owner_at(&self, pos: usize) -> usize {
        self.owners[pos] as usize
    }

    /// The member at canonical index `i`.
    pub(crate) fn member(&self, i: usize) -> &N {
        &self.members.nodes[i]
    }

    /// The weight of the member at canonical index `i`.
    pub(crate) fn weight_at(&self, i: usize) -> u32 {
        self.members.weights[i]
    }

    /// Position of the first point at or after `hash`, wrapping to 0.
    #[inline]
    pub(crate) fn position(&self, hash: u64) -> usize {
        let bucket = (hash >> self.shift) as usize;
        let lo = self.index[bucket] as usize;
        let hi = self.index[bucket + 1] as usize;
        let pos = lo + self.points[lo..hi].partition_point(|&p| p < hash);
        if pos == self.points.len() { 0 } else { pos }
    }

    fn rebuild_index(&mut self) {
        let len = self.points.len();
        if len == 0 {
            self.index.clear();
            self.shift = 64;
            return;
        }
        // About two points per bucket, and at most 2^22 buckets.
        let bits = (usize::BITS - (len / 2).max(1).leading_zeros()).clamp(1, 22);
        self.shift = 64 - bits;
        let buckets = 1usize << bits;
        self.index.clear();
        self.index.reserve_exact(buckets + 1);
        let mut at = 0usize;
        for bucket in 0..buckets {
            while at < len && ((self.points[at] >> self.shift) as usize) < bucket {
                at += 1;
            }
            self.index.push(at as u32);
        }
        self.index.push(len as u32);
    }
}

impl<N: StableHash + Eq> Ring<N> {
    /// Whether `node` is a member.
    ///
    /// ```
    /// use keel_hashring::Ring;
    ///
    /// let mut ring = Ring::new();
    /// ring.add("a")?;
    /// assert!(ring.contains(&"a"));
    /// assert!(!ring.contains(&"b"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, node: &N) -> bool {
        self.members.position(node).is_some()
    }

    /// Canonical index of `node`, if it is a member.
    pub(crate) fn index_of(&self, node: &N) -> Option<usize> {
        self.members.position(node)
    }

    /// The weight of `node`, if it is a member.
    ///
    /// ```
    /// use keel_hashring::Ring;
    ///
    /// let mut ring = Ring::new();
    /// ring.add_weighted("a", 3)?;
    /// assert_eq!(ring.weight(&"a"), Some(3));
    /// assert_eq!(ring.weight(&"b"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn weight(&self, node: &N) -> Option<u32> {
        self.members.position(node).map(|i| self.members.weights[i])
    }

    /// Adds `node` with weight 1.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateNode`] if it is already a member; [`Error::TooManyPoints`] if the
    /// ring would hold more than [`MAX_POINTS`] points. On error the ring is unchanged.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Ring};
    ///
    /// let mut ring = Ring::new();
    /// ring.add("a")?;
    /// assert_eq!(ring.weight(&"a"), Some(1));
    /// assert_eq!(ring.node("k"), Some(&"a"));
    /// assert_eq!(ring.add("a"), Err(Error::DuplicateNode));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&mut self, node: N) -> Result<(), Error> {
        self.add_weighted(node, 1)
    }

    /// Adds `node` with `weight × vnodes` points; its share of keys is `weight / total`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`] if `weight` is 0; [`Error::DuplicateNode`] if `node` is already
    /// a member; [`Error::TooManyPoints`] if the ring would hold more than [`MAX_POINTS`]
    /// points (`weight × vnodes` plus those it has). On error the ring is unchanged.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Ring};
    ///
    /// let mut ring = Ring::new();
    /// ring.add_weighted("big", 3)?;
    /// ring.add_weighted("small", 1)?;
    /// let big = (0..10_000u32).filter(|k| ring.node(k) == Some(&"big")).count();
    /// assert!((6_500..8_500).contains(&big)); // about 3/4 of the keys
    /// assert_eq!(ring.add_weighted("tiny", 0), Err(Error::ZeroWeight));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_weighted(&mut self, node: N, weight: u32) -> Result<(), Error> {
        self.insert_weighted(node, weight).map(drop)
    }

    /// [`add_weighted`](Self::add_weighted), returning the new member's canonical index.
    pub(crate) fn insert_weighted(&mut self, node: N, weight: u32) -> Result<usize, Error> {
        let added = u64::from(weight) * u64::from(self.vnodes);
        add_points(
            &mut (self.points.len() as u64),
            weight,
            u64::from(self.vnodes),
        )?;
        // At most MAX_POINTS points means fewer than u32::MAX members, so owners fit.
        let at = self.members.insert(node, weight)?;
        let hash = self.members.hashes[at];
        let mut fresh: Vec<(u64, u32)> =
            (0..added).map(|i| (combine(hash, i), at as u32)).collect();
        fresh.sort_unstable();
        // Owners at or after `at` shift up by one; then merge the new points in.
        let old_points = core::mem::take(&mut self.points);
        let old_owners = core::mem::take(&mut self.owners);
        let total = old_points.len() + fresh.len();
        let mut points = Vec::with_capacity(total);
        let mut owners = Vec::with_capacity(total);
        let mut old = old_points
            .into_iter()
            .zip(
                old_owners
                    .into_iter()
                    .map(|o| if o >= at as u32 { o + 1 } else { o }),
            )
            .peekable();
        let mut new = fresh.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), new.peek()) {
                (Some(a), Some(b)) => a <= b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (p, o) = if take_old { old.next() } else { new.next() }.unwrap_or_default();
            points.push(p);
            owners.push(o);
        }
        self.points = points;
        self.owners = owners;
        self.rebuild_index();
        Ok(at)
    }

    /// Adds every `(node, weight)` and rebuilds the ring once, which is much faster than
    /// adding nodes one by one. On error nothing is added.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`] if a weight is 0; [`Error::DuplicateNode`] if a node is already
    /// a member or appears twice; [`Error::TooManyPoints`] if the ring would hold more than
    /// [`MAX_POINTS`] points. The first error found is returned, after reading the input only
    /// up to it.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Ring};
    ///
    /// let mut ring = Ring::new();
    /// ring.extend_weighted((0..100u32).map(|node| (node, 1)))?;
    /// assert_eq!(ring.points(), 100 * 160);
    /// assert_eq!(ring.extend_weighted([(100, 1), (7, 1)]), Err(Error::DuplicateNode));
    /// assert_eq!(ring.len(), 100); // nothing added
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend_weighted<I: IntoIterator<Item = (N, u32)>>(
        &mut self,
        nodes: I,
    ) -> Result<(), Error> {
        let mut points = self.points.len() as u64;
        let vnodes = u64::from(self.vnodes);
        self.members
            .extend(nodes, |weight| add_points(&mut points, weight, vnodes))?;
        // Free the old points before building the new ones, to bound the peak.
        self.points = Vec::new();
        self.owners = Vec::new();
        let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(points as usize);
        for (i, (&hash, &weight)) in self
            .members
            .hashes
            .iter()
            .zip(&self.members.weights)
            .enumerate()
        {
            let count = u64::from(weight) * u64::from(self.vnodes);
            pairs.extend((0..count).map(|v| (combine(hash, v), i as u32)));
        }
        pairs.sort_unstable();
        self.points = pairs.iter().map(|p| p.0).collect();
        self.owners = pairs.into_iter().map(|p| p.1).collect();
        self.rebuild_index();
        Ok(())
    }

    /// Removes `node`; returns whether it was a member. Only its keys move.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Ring};
    ///
    /// let mut ring = Ring::new();
    /// ring.extend_weighted([("a", 1), ("b", 1), ("c", 1)])?;
    /// let before: Vec<_> = (0..100u32).map(|k| ring.node(&k).copied()).collect();
    /// assert!(ring.remove(&"b"));
    /// assert!(!ring.remove(&"b"));
    /// for (k, owner) in (0..100u32).zip(before) {
    ///     if owner != Some("b") {
    ///         assert_eq!(ring.node(&k).copied(), owner); // only b's keys moved
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&mut self, node: &N) -> bool {
        let Some(at) = self.members.position(node) else {
            return false;
        };
        self.members.remove_at(at);
        let at = at as u32;
        let mut write = 0;
        for read in 0..self.points.len() {
            let owner = self.owners[read];
            if owner != at {
                self.points[write] = self.points[read];
                self.owners[write] = if owner > at { owner - 1 } else { owner };
                write += 1;
            }
        }
        self.points.truncate(write);
        self.owners.truncate(write);
        self.rebuild_index();
        true
    }
}

impl<N> ConsistentHash for Ring<N> {
    type Node = N;
    type Hash = u64;

    fn len(&self) -> usize {
        self.members.len()
    }

    #[inline]
    fn node_for_hash(&self, hash: u64) -> Option<&N> {
        if self.points.is_empty() {
            return None;
        }
        let pos = self.position(hash);
        Some(&self.members.nodes[self.owners[pos] as usize])
    }

    fn replicas_for_hash<'a>(&'a self, hash: u64, out: &mut [Option<&'a N>]) -> usize {
        let mut distinct = Distinct::new(out, self.members.len(), self.members.len());
        if self.points.is_empty() {
            return 0;
        }
        let start = self.position(hash);
        let len = self.points.len();
        for step in 0..len {
            if distinct.full() {
                break;
            }
            let owner = self.owners[(start + step) % len] as usize;
            distinct.push(owner, &self.members.nodes[owner]);
        }
        distinct.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_key;

    /// Reference lookup: linear scan for the first point >= hash.
    fn linear<N>(ring: &Ring<N>, hash: u64) -> usize {
        ring.points.iter().position(|&p| p >= hash).unwrap_or(0)
    }

    #[test]
    fn prefix_index_agrees_with_a_linear_scan() {
        let mut ring = Ring::builder().vnodes(7).build().unwrap();
        for n in 0..13u32 {
            ring.add_weighted(n, n % 3 + 1).unwrap();
        }
        assert!(ring.points.windows(2).all(|w| w[0] <= w[1]));
        for k in 0..5_000u64 {
            let h = hash_key(&k);
            assert_eq!(ring.position(h), linear(&ring, h));
        }
        for h in [0, 1, u64::MAX, u64::MAX - 1, ring.points[0], ring.points[5]] {
            assert_eq!(ring.position(h), linear(&ring, h));
        }
    }

    #[test]
    fn order_of_adds_does_not_matter() {
        let mut a = Ring::new();
        let mut b = Ring::new();
        for n in 0..20u32 {
            a.add(n).unwrap();
            b.add(19 - n).unwrap();
        }
        assert_eq!(a.points, b.points);
        assert_eq!(a.owners, b.owners);
        for k in 0..1000u32 {
            assert_eq!(a.node(&k), b.node(&k));
        }
    }

    #[test]
    fn bulk_extend_equals_adding_one_by_one() {
        let mut one = Ring::new();
        for n in 0..30u32 {
            one.add_weighted(n, n % 4 + 1).unwrap();
        }
        let mut bulk = Ring::new();
        bulk.extend_weighted((0..15u32).map(|n| (n, n % 4 + 1)))
            .unwrap();
        bulk.extend_weighted((15..30u32).map(|n| (n, n % 4 + 1)))
            .unwrap();
        assert_eq!(one.points, bulk.points);
        assert_eq!(one.owners, bulk.owners);
        assert_eq!(one.index, bulk.index);
        assert_eq!(
            bulk.extend_weighted([(99, 1), (3, 1)]),
            Err(Error::DuplicateNode)
        );
        assert_eq!(bulk.len(), 30);
        assert!(!bulk.contains(&99));
    }

    #[test]
    fn remove_then_add_restores_the_ring() {
        let mut ring = Ring::new();
        for n in 0..10u32 {
            ring.add(n).unwrap();
        }
        let before = (ring.points.clone(), ring.owners.clone());
        assert!(ring.remove(&4));
        assert!(!ring.remove(&4));
        assert_eq!(ring.points(), 9 * 160);
        assert!(ring.owners.iter().all(|&o| o < 9));
        ring.add(4).unwrap();
        assert_eq!((ring.points.clone(), ring.owners.clone()), before);
    }

    #[test]
    fn rejects_bad_input() {
        let mut ring = Ring::new();
        assert_eq!(ring.add_weighted("a", 0), Err(Error::ZeroWeight));
        ring.add("a").unwrap();
        assert_eq!(ring.add("a"), Err(Error::DuplicateNode));
        assert_eq!(
            Ring::<u8>::builder().vnodes(0).build().unwrap_err(),
            Error::ZeroVirtualNodes
        );
        assert_eq!(
            Ring::<u8>::builder().vnodes(u32::MAX).build().unwrap_err(),
            Error::TooManyVirtualNodes {
                vnodes: u64::from(u32::MAX),
                max: MAX_POINTS
            }
        );
        let mut big = Ring::builder().vnodes(MAX_POINTS as u32).build().unwrap();
        assert_eq!(
            big.add_weighted(1u8, u32::MAX),
            Err(Error::TooManyPoints {
                points: u64::from(u32::MAX) * MAX_POINTS,
                max: MAX_POINTS
            })
        );
        assert!(big.is_empty());
    }

    /// Every path that adds points stops at MAX_POINTS exactly, says what was asked, and
    /// leaves the ring as it was.
    #[test]
    fn points_are_bounded_on_every_path() {
        let quarter = (MAX_POINTS / 4) as u32;
        let mut ring = Ring::builder().vnodes(quarter).build().unwrap();
        ring.extend_weighted([(0u32, 1)]).unwrap();
        let before = (ring.points.clone(), ring.owners.clone(), ring.index.clone());
        let over = Err(Error::TooManyPoints {
            points: MAX_POINTS + u64::from(quarter),
            max: MAX_POINTS,
        });
        assert_eq!(ring.add_weighted(1, 4), over);
        assert_eq!(ring.extend_weighted([(1, 2), (2, 2)]), over);
        // The sum over nodes is checked as it grows, so it cannot overflow.
        assert_eq!(
            ring.extend_weighted([(1, 1), (2, u32::MAX)]),
            Err(Error::TooManyPoints {
                points: 2 * u64::from(quarter) + u64::from(u32::MAX) * u64::from(quarter),
                max: MAX_POINTS
            })
        );
        assert_eq!(ring.len(), 1);
        assert_eq!(
            (ring.points.clone(), ring.owners.clone(), ring.index.clone()),
            before
        );
        // Exactly the limit is accepted, and the memory stays within the documented bound.
        ring.add_weighted(1, 3).unwrap();
        assert_eq!(ring.points() as u64, MAX_POINTS);
        assert!(ring.points.windows(2).all(|w| w[0] <= w[1]));
        let index_bytes = 4 * ((1u64 << 22) + 1);
        assert!(ring.heap_bytes() as u64 <= 12 * MAX_POINTS + index_bytes + 1024);
        assert_eq!(ring.add(2), over);
    }

    #[test]
    fn point_budget_stops_at_the_limit() {
        let mut points = MAX_POINTS - 10;
        assert_eq!(add_points(&mut points, 2, 5), Ok(()));
        assert_eq!(points, MAX_POINTS);
        assert_eq!(
            add_points(&mut points, 1, 1),
            Err(Error::TooManyPoints {
                points: MAX_POINTS + 1,
                max: MAX_POINTS
            })
        );
        assert_eq!(points, MAX_POINTS); // a refusal adds nothing
        let mut zero = 0;
        assert_eq!(
            add_points(&mut zero, u32::MAX, MAX_POINTS),
            Err(Error::TooManyPoints {
                points: u64::from(u32::MAX) * MAX_POINTS,
                max: MAX_POINTS
            })
        );
    }

    #[test]
    fn empty_ring_has_no_owner() {
        let ring: Ring<u32> = Ring::new();
        assert_eq!(ring.node("k"), None);
        let mut out = [Some(&0u32); 2];
        assert_eq!(ring.replicas("k", &mut out), 0);
        assert_eq!(out, [None, None]);
    }

    #[test]
    fn replicas_are_distinct_and_capped_by_membership() {
        let mut ring = Ring::new();
        for n in 0..3u32 {
            ring.add(n).unwrap();
        }
        let mut out = [None; 5];
        assert_eq!(ring.replicas("key", &mut out), 3);
        assert_eq!(out[0], ring.node("key"));
        let mut got: Vec<u32> = out[..3].iter().map(|n| *n.unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(out[3..], [None, None]);
    }
}
