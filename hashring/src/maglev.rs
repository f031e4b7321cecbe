//! Maglev hashing: a prime-sized lookup table filled from per-node permutations.

use core::fmt;
use core::marker::PhantomData;

use crate::consistent_hash::{ConsistentHash, Distinct};
use crate::error::Error;
use crate::key::{StableHash, combine};
use crate::members::Members;

/// The smallest table: the size of an empty or small table sized with the node count, as in
/// the Maglev paper.
///
/// ```
/// use keel_hashring::{DEFAULT_TABLE_SIZE, Maglev};
///
/// assert_eq!(Maglev::<&str>::new().table_size(), DEFAULT_TABLE_SIZE);
/// assert_eq!(DEFAULT_TABLE_SIZE, 65_537);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;

/// Slots per squared node a table sized with the node count keeps at least: the extra keys
/// a change moves shrink as `n² / M`, and from 5 on an added node moves under 2× the ideal
/// `1/(n+1)` (measured 1.0–1.6× from 10 to 1,000 nodes).
const SLOTS_PER_NODE_SQUARED: u64 = 5;
/// Automatic sizes are the primes just above `65,537 × 2^k`, up to this `k`: 8,388,739
/// slots (32 MB), enough for 1,295 nodes at the ratio above; larger memberships keep it.
const MAX_GROWTH_STEP: u32 = 7;

/// How the table's size is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sizing {
    /// Grows with the membership (never shrinks).
    Auto,
    /// Set by [`MaglevBuilder::table_size`].
    Fixed,
}

/// Google's Maglev hashing (Eisenbud et al., NSDI 2016).
///
/// Every node walks its own permutation of the `M` table slots (offset and skip from its
/// hash; `M` prime so every skip generates all slots), and nodes take turns claiming their
/// next free slot until the table is full. A lookup is one multiply and one table read.
///
/// * **Table size:** by default `M` grows with the membership, as the paper asks (`M ≫ N`):
///   it is the smallest prime above `65,537 × 2^k` that holds `5 n²` slots, from 65,537
///   (up to 114 nodes) to 8,388,739 (32 MB, up to 1,295 nodes; larger memberships keep
///   that size). A growth step rebuilds a bigger table and so moves almost every key, once
///   per `√2` growth of the membership; a table never shrinks. To avoid growth steps, size
///   it once with [`MaglevBuilder::expected_nodes`], or fix it with
///   [`MaglevBuilder::table_size`].
/// * **Balance:** each node owns `⌊M/n⌋` or `⌈M/n⌉` slots, so shares differ by at most
///   one slot. With weights, node `i` claims `w_i` slots per turn, so its share is
///   `w_i / W` within the same granularity.
/// * **Build:** `O(M log M)` expected, independent of weights: 100 nodes into 65,537
///   slots build in about a millisecond; 1,000 nodes into 8,388,739 slots in about a
///   second (probes read a bitmap of free slots, which stays in cache).
/// * **Disruption:** adding or removing one of `n` nodes moves its own `1/n` of the keys
///   plus some whose slots another node claims first in the new fill order; that extra
///   shrinks as `n² / M`. Within one table size it stays under the ideal itself: adding a
///   node moves 1.0–1.6× the ideal `1/(n+1)` from 10 to 1,000 nodes (`compare hashring`).
///   A fixed 65,537-slot table moves 1.5× at 100 nodes but 6.9× at 1,000. Use
///   [`Ring`](crate::Ring) or [`Rendezvous`](crate::Rendezvous) where only the ideal
///   movement will do.
/// * Results depend only on the membership and the table size, not on the order nodes were
///   added.
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, Maglev};
///
/// let mut maglev = Maglev::builder().table_size(65_537).build()?;
/// maglev.extend_weighted([("backend-a", 1), ("backend-b", 1), ("backend-c", 2)])?;
/// let backend = maglev.node("flow:10.1.2.3:5555").ok_or("empty table")?;
/// assert!(["backend-a", "backend-b", "backend-c"].contains(backend));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Maglev<N> {
    members: Members<N>,
    size: u32,
    sizing: Sizing,
    table: Vec<u32>,
}

/// Configures a [`Maglev`] table.
///
/// # Example
///
/// ```
/// use keel_hashring::{Maglev, MaglevBuilder};
///
/// let small: MaglevBuilder<&str> = Maglev::builder().table_size(10_007);
/// let a = small.clone().build()?;
/// let b = small.build()?;
/// assert_eq!((a.table_size(), b.table_size()), (10_007, 10_007));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MaglevBuilder<N> {
    size: Option<u64>,
    expected_nodes: u64,
    _nodes: PhantomData<fn() -> N>,
}

impl<N> fmt::Debug for MaglevBuilder<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaglevBuilder")
            .field("size", &self.size)
            .field("expected_nodes", &self.expected_nodes)
            .finish()
    }
}

impl<N> Clone for MaglevBuilder<N> {
    fn clone(&self) -> Self {
        Self {
            size: self.size,
            expected_nodes: self.expected_nodes,
            _nodes: PhantomData,
        }
    }
}

impl<N> MaglevBuilder<N> {
    /// Fixes the number of table slots, a prime at least the number of nodes; the table
    /// then never grows. Keys moved per change stay under 2× the ideal while the size is at
    /// least `5 n²`; by default the size grows with the membership instead.
    ///
    /// ```
    /// use keel_hashring::Maglev;
    ///
    /// let maglev = Maglev::<&str>::builder().table_size(251).build()?;
    /// assert_eq!(maglev.table_size(), 251);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// Sizes the growing table for `nodes` members from the start, so adding nodes up to
    /// that count never takes a growth step (which moves almost every key). With
    /// [`table_size`](MaglevBuilder::table_size), checks that the fixed size holds them.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Maglev};
    ///
    /// let mut maglev = Maglev::builder().expected_nodes(1_000).build()?;
    /// let size = maglev.table_size();
    /// assert!(u64::from(size) >= 5 * 1_000 * 1_000);
    /// maglev.extend_weighted((0..1_000u32).map(|n| (n, 1)))?;
    /// assert_eq!(maglev.table_size(), size); // no growth step on the way
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn expected_nodes(mut self, nodes: u64) -> Self {
        self.expected_nodes = nodes;
        self
    }

    /// Builds an empty table.
    ///
    /// # Errors
    ///
    /// [`Error::TableSizeNotPrime`] if a fixed size is not a prime below `2^32`, and
    /// [`Error::TableTooSmall`] if it is smaller than the expected nodes.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{Error, Maglev};
    ///
    /// assert_eq!(Maglev::<&str>::builder().table_size(10_007).build()?.table_size(), 10_007);
    /// assert_eq!(
    ///     Maglev::<&str>::builder().table_size(10_000).build().unwrap_err(),
    ///     Error::TableSizeNotPrime { size: 10_000 }
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Maglev<N>, Error> {
        let Some(size) = self.size else {
            return Ok(Maglev {
                members: Members::default(),
                size: auto_size(self.expected_nodes),
                sizing: Sizing::Auto,
                table: Vec::new(),
            });
        };
        if size > u64::from(u32::MAX) || !is_prime(size) {
            return Err(Error::TableSizeNotPrime { size });
        }
        if size < self.expected_nodes {
            return Err(Error::TableTooSmall {
                size,
                nodes: self.expected_nodes,
            });
        }
        Ok(Maglev {
            members: Members::default(),
            size: size as u32,
            sizing: Sizing::Fixed,
            table: Vec::new(),
        })
    }
}

/// The automatic table size for `nodes` members: the first growth step with at least
/// `5 n²` slots, or the last step.
fn auto_size(nodes: u64) -> u32 {
    let want = nodes
        .saturating_mul(nodes)
        .saturating_mul(SLOTS_PER_NODE_SQUARED);
    let mut step = 0;
    while step < MAX_GROWTH_STEP && u64::from(growth_step(step)) < want {
        step += 1;
    }
    growth_step(step)
}

/// The prime just above `65,537 × 2^step`, listed so no search runs on a hot membership
/// change (checked against `is_prime` in the tests).
fn growth_step(step: u32) -> u32 {
    const STEPS: [u32; MAX_GROWTH_STEP as usize + 1] = [
        65_537, 131_101, 262_151, 524_309, 1_048_601, 2_097_211, 4_194_371, 8_388_739,
    ];
    STEPS[step.min(MAX_GROWTH_STEP) as usize]
}

/// Trial division; table sizes are below `2^32`, so at most 65,536 divisions.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

impl<N> Default for Maglev<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N> Maglev<N> {
    /// An empty table of [`DEFAULT_TABLE_SIZE`] slots that grows with the membership.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Maglev};
    ///
    /// let maglev: Maglev<&str> = Maglev::new();
    /// assert_eq!(maglev.table_size(), 65_537);
    /// assert_eq!(maglev.node("k"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self {
            members: Members::default(),
            size: DEFAULT_TABLE_SIZE,
            sizing: Sizing::Auto,
            table: Vec::new(),
        }
    }

    /// A builder to choose the table size, or the membership to size it for.
    ///
    /// ```
    /// use keel_hashring::{DEFAULT_TABLE_SIZE, Maglev};
    ///
    /// let maglev = Maglev::<u32>::builder().build()?;
    /// assert_eq!(maglev.table_size(), DEFAULT_TABLE_SIZE);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> MaglevBuilder<N> {
        MaglevBuilder {
            _nodes: PhantomData,
            size: None,
            expected_nodes: 0,
        }
    }

    /// The number of table slots.
    ///
    /// ```
    /// use keel_hashring::Maglev;
    ///
    /// let mut maglev = Maglev::builder().table_size(101).build()?;
    /// maglev.extend_weighted([("a", 1), ("b", 1)])?;
    /// assert_eq!(maglev.table_size(), 101);
    ///
    /// let mut growing = Maglev::new();
    /// growing.extend_weighted((0..200u32).map(|n| (n, 1)))?;
    /// assert_eq!(growing.table_size(), 262_151); // at least 5 × 200² slots
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table_size(&self) -> u32 {
        self.size
    }

    /// Members and their weights, in canonical (hash) order.
    ///
    /// ```
    /// use keel_hashring::Maglev;
    ///
    /// let mut maglev = Maglev::new();
    /// maglev.add_weighted("a", 2)?;
    /// maglev.add("b")?;
    /// let mut members: Vec<_> = maglev.iter().collect();
    /// members.sort(); // canonical order follows the nodes' hashes
    /// assert_eq!(members, [(&"a", 2), (&"b", 1)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&N, u32)> + '_ {
        self.members.iter()
    }

    /// Heap bytes held: the table and the member list.
    ///
    /// ```
    /// use keel_hashring::Maglev;
    ///
    /// let mut maglev = Maglev::new();
    /// assert_eq!(maglev.heap_bytes(), 0);
    /// maglev.add("a")?;
    /// assert!(maglev.heap_bytes() >= 65_537 * 4); // the table is built
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.table.capacity() * 4 + self.members.heap_bytes()
    }

    /// Slot of the table for `hash`: the high half of `hash × M`, uniform without a division.
    #[inline]
    fn slot(&self, hash: u64) -> usize {
        (((hash >> 32) * u64::from(self.size)) >> 32) as usize
    }

    /// Refills the table from the members: the population loop of the paper, with node `i`
    /// claiming `w_i` slots per turn.
    fn populate(&mut self) {
        let n = self.members.len();
        self.table.clear();
        if n == 0 {
            return;
        }
        let m = u64::from(self.size);
        let mut next: Vec<u64> = Vec::with_capacity(n);
        let mut skip: Vec<u64> = Vec::with_capacity(n);
        for &h in &self.members.hashes {
            next.push(combine(h, 1) % m);
            skip.push(combine(h, 2) % (m - 1) + 1);
        }
        self.table.resize(self.size as usize, 0);
        // Probes read a bitmap of free slots (1 MB at the largest automatic size, so it
        // stays in cache) rather than the table, 32 times its size.
        let mut free = vec![u64::MAX; self.table.len().div_ceil(64)];
        let mut filled = 0u64;
        'fill: loop {
            for i in 0..n {
                for _ in 0..self.members.weights[i] {
                    let mut c = next[i];
                    while free[(c >> 6) as usize] & (1 << (c & 63)) == 0 {
                        c += skip[i];
                        if c >= m {
                            c -= m;
                        }
                    }
                    free[(c >> 6) as usize] &= !(1 << (c & 63));
                    self.table[c as usize] = i as u32;
                    c += skip[i];
                    if c >= m {
                        c -= m;
                    }
                    next[i] = c;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
    }
}

impl<N: StableHash + Eq> Maglev<N> {
    /// Whether `node` is a member.
    ///
    /// ```
    /// use keel_hashring::Maglev;
    ///
    /// let mut maglev = Maglev::new();
    /// maglev.add("a")?;
    /// assert!(maglev.contains(&"a"));
    /// assert!(!maglev.contains(&"b"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, node: &N) -> bool {
        self.members.position(node).is_some()
    }

    /// Adds `node` with weight 1 and rebuilds the table.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateNode`], or [`Error::TableTooSmall`] if there would be more nodes
    /// than slots.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Maglev};
    ///
    /// let mut maglev = Maglev::builder().table_size(2).build()?;
    /// maglev.add("a")?;
    /// maglev.add("b")?;
    /// assert_eq!(maglev.len(), 2);
    /// assert_eq!(maglev.add("c"), Err(Error::TableTooSmall { size: 2, nodes: 3 }));
    /// assert_eq!(maglev.add("a"), Err(Error::DuplicateNode));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&mut self, node: N) -> Result<(), Error> {
        self.add_weighted(node, 1)
    }

    /// Adds `node` with `weight` and rebuilds the table.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`], [`Error::DuplicateNode`] or [`Error::TableTooSmall`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Maglev};
    ///
    /// let mut maglev = Maglev::new();
    /// maglev.add_weighted("big", 3)?;
    /// maglev.add_weighted("small", 1)?;
    /// let big = (0..10_000u32).filter(|k| maglev.node(k) == Some(&"big")).count();
    /// assert!((7_000..8_000).contains(&big)); // 3/4 of the keys
    /// assert_eq!(maglev.add_weighted("tiny", 0), Err(Error::ZeroWeight));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_weighted(&mut self, node: N, weight: u32) -> Result<(), Error> {
        self.extend_weighted([(node, weight)])
    }

    /// Adds every `(node, weight)` and rebuilds the table once. On error nothing is added.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`], [`Error::DuplicateNode`] or [`Error::TableTooSmall`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Maglev};
    ///
    /// let mut maglev = Maglev::new();
    /// maglev.extend_weighted([("a", 1), ("b", 1)])?;
    /// assert_eq!(maglev.extend_weighted([("c", 1), ("c", 1)]), Err(Error::DuplicateNode));
    /// assert_eq!(maglev.len(), 2); // nothing added
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend_weighted<I: IntoIterator<Item = (N, u32)>>(
        &mut self,
        nodes: I,
    ) -> Result<(), Error> {
        let before = self.members.clone_shape();
        for (node, weight) in nodes {
            if let Err(e) = self.members.insert(node, weight) {
                self.members.restore(before);
                return Err(e);
            }
        }
        let nodes = self.members.len() as u64;
        if self.sizing == Sizing::Auto {
            // Grow only: a smaller table would move keys again when nodes come back.
            self.size = self.size.max(auto_size(nodes));
        }
        if nodes > u64::from(self.size) {
            self.members.restore(before);
            return Err(Error::TableTooSmall {
                size: u64::from(self.size),
                nodes,
            });
        }
        self.populate();
        Ok(())
    }

    /// Removes `node` and rebuilds the table; returns whether it was a member.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Maglev};
    ///
    /// let mut maglev = Maglev::new();
    /// maglev.extend_weighted([("a", 1), ("b", 1)])?;
    /// assert!(maglev.remove(&"a"));
    /// assert!(!maglev.remove(&"a"));
    /// assert_eq!(maglev.node("k"), Some(&"b"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&mut self, node: &N) -> bool {
        if self.members.remove(node).is_none() {
            return false;
        }
        self.populate();
        true
    }
}

impl<N> ConsistentHash for Maglev<N> {
    type Node = N;
    type Hash = u64;

    fn len(&self) -> usize {
        self.members.len()
    }

    #[inline]
    fn node_for_hash(&self, hash: u64) -> Option<&N> {
        let owner = *self.table.get(self.slot(hash))?;
        Some(&self.members.nodes[owner as usize])
    }

    fn replicas_for_hash<'a>(&'a self, hash: u64, out: &mut [Option<&'a N>]) -> usize {
        let mut distinct = Distinct::new(out, self.members.len());
        if self.table.is_empty() {
            return 0;
        }
        // Later slots are owned in a shuffled order, so walking on finds the others.
        let start = self.slot(hash);
        let len = self.table.len();
        for step in 0..len {
            if distinct.full() {
                break;
            }
            distinct.push(&self.members.nodes[self.table[(start + step) % len] as usize]);
        }
        distinct.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let primes: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65_537));
        assert!(!is_prime(65_536));
        assert!(is_prime(4_294_967_291)); // largest prime below 2^32
    }

    #[test]
    fn growth_steps_are_primes_above_doublings() {
        for step in 0..=MAX_GROWTH_STEP {
            let size = u64::from(growth_step(step));
            let floor = 65_537u64 << step;
            assert!(is_prime(size), "{size}");
            assert!((floor..floor + 200).contains(&size), "{size}");
            assert!(
                ((floor + 1)..size).all(|n| !is_prime(n)),
                "{size} is not the next"
            );
        }
        assert_eq!(auto_size(0), DEFAULT_TABLE_SIZE);
        assert_eq!(auto_size(114), DEFAULT_TABLE_SIZE);
        assert_eq!(auto_size(115), 131_101);
        assert_eq!(auto_size(1_000), 8_388_739);
        assert_eq!(auto_size(1 << 40), 8_388_739);
    }

    #[test]
    fn a_growing_table_never_shrinks() {
        let mut m = Maglev::new();
        m.extend_weighted((0..200u32).map(|n| (n, 1))).unwrap();
        assert_eq!(m.table_size(), 262_151);
        for n in 0..150 {
            assert!(m.remove(&n));
        }
        assert_eq!(m.table_size(), 262_151);
    }

    #[test]
    fn expected_nodes_is_checked_against_a_fixed_size() {
        assert_eq!(
            Maglev::<u8>::builder()
                .table_size(7)
                .expected_nodes(8)
                .build()
                .unwrap_err(),
            Error::TableTooSmall { size: 7, nodes: 8 }
        );
        let m = Maglev::<u8>::builder().expected_nodes(300).build().unwrap();
        assert_eq!(m.table_size(), 524_309);
    }

    #[test]
    fn rejects_bad_sizes_and_overfull_tables() {
        assert_eq!(
            Maglev::<u8>::builder().table_size(100).build().unwrap_err(),
            Error::TableSizeNotPrime { size: 100 }
        );
        assert!(Maglev::<u8>::builder().table_size(1 << 33).build().is_err());
        let mut m = Maglev::builder().table_size(5).build().unwrap();
        m.extend_weighted((0..5u8).map(|n| (n, 1))).unwrap();
        assert_eq!(m.add(9), Err(Error::TableTooSmall { size: 5, nodes: 6 }));
        assert_eq!(m.len(), 5);
        assert_eq!(m.extend_weighted([(1u8, 1)]), Err(Error::DuplicateNode));
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn slot_counts_differ_by_at_most_one() {
        let mut m = Maglev::builder().table_size(1009).build().unwrap();
        m.extend_weighted((0..10u32).map(|n| (n, 1))).unwrap();
        let mut counts = [0u32; 10];
        for &o in &m.table {
            counts[o as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "{counts:?}");
    }

    #[test]
    fn weights_scale_slot_counts() {
        let mut m = Maglev::new();
        m.extend_weighted([(0u32, 1), (1, 3)]).unwrap();
        let heavy = m
            .table
            .iter()
            .filter(|&&o| o as usize == m.members.position(&1).unwrap())
            .count();
        let share = heavy as f64 / f64::from(m.table_size());
        assert!((share - 0.75).abs() < 0.001, "{share}");
    }
}
