//! Maglev hashing: a prime-sized lookup table filled from per-node permutations.

use core::cmp::Reverse;
use core::fmt;
use core::marker::PhantomData;
use std::collections::BinaryHeap;

use crate::consistent_hash::{ConsistentHash, Distinct};
use crate::error::Error;
use crate::key::{StableHash, combine};
use crate::members::Members;

/// The table size of [`Maglev::new`] and of a builder given no size: 65,537 slots (128 KiB),
/// which keeps the keys an added node moves under 2× the ideal up to about 114 nodes
/// (`5 n²` slots; 1.53× measured at 100). Past that, movement grows gradually (2.6× at 200,
/// 6.8× at 1,000); size the table for more with [`MaglevBuilder::expected_nodes`].
///
/// ```
/// use keel_hashring::{DEFAULT_TABLE_SIZE, Maglev};
///
/// assert_eq!(Maglev::<&str>::new().table_size(), DEFAULT_TABLE_SIZE);
/// assert_eq!(DEFAULT_TABLE_SIZE, 65_537);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;

/// The largest table size taken: 2^24 slots, a 32 MiB table (64 MiB past 65,536 members).
/// The table is allocated whole at the first membership change, so the bound keeps every
/// accepted size allocatable.
///
/// ```
/// use keel_hashring::{Error, MAX_TABLE_SIZE, Maglev};
///
/// // 16,777,259 is prime, but over the limit.
/// assert_eq!(
///     Maglev::<&str>::builder().table_size(16_777_259).build().unwrap_err(),
///     Error::TableTooLarge { size: 16_777_259, max: MAX_TABLE_SIZE }
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_TABLE_SIZE: u64 = 1 << 24;

/// The most nodes [`MaglevBuilder::expected_nodes`] and [`Maglev::resize_for`] size a table
/// for: 1,831, the most whose `5 n²` slots fit the largest prime size under
/// [`MAX_TABLE_SIZE`] (16,777,213 slots, 32 MiB).
///
/// ```
/// use keel_hashring::{Error, MAX_EXPECTED_NODES, Maglev};
///
/// assert!(Maglev::<u32>::builder().expected_nodes(MAX_EXPECTED_NODES).build().is_ok());
/// assert_eq!(
///     Maglev::<u32>::builder().expected_nodes(MAX_EXPECTED_NODES + 1).build().unwrap_err(),
///     Error::TooManyExpectedNodes { nodes: MAX_EXPECTED_NODES + 1, max: MAX_EXPECTED_NODES }
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_EXPECTED_NODES: u64 = 1_831;

/// Slots per squared node a table sized for `n` nodes holds at least: keys moved by an added
/// node measure about `1 + 1.6 n / √M` times the ideal `1/(n+1)`, so under 2× takes
/// `M ≳ 4 n²` (1.8–1.9× measured there); 5 leaves a margin. No size linear in `n` holds:
/// see the table on [`Maglev`].
const SLOTS_PER_NODE_SQUARED: u64 = 5;

/// The sizes a table sized for a node count takes: the primes just above `65,537 × 2^k`
/// (the sizes earlier releases grew through, so a table sized for the same count places
/// keys as it did), then the largest prime under [`MAX_TABLE_SIZE`].
const SIZE_STEPS: [u32; 9] = [
    65_537, 131_101, 262_151, 524_309, 1_048_601, 2_097_211, 4_194_371, 8_388_739, 16_777_213,
];

/// Google's Maglev hashing (Eisenbud et al., NSDI 2016).
///
/// Every node walks its own permutation of the `M` table slots (offset and skip from its
/// hash; `M` prime so every skip generates all slots), and nodes take turns claiming their
/// next free slot until the table is full. A lookup is one multiply and one table read.
///
/// * **Table size:** fixed when the table is built, and never changed by a membership
///   change, because a new size moves almost every key. [`Maglev::new`] takes
///   [`DEFAULT_TABLE_SIZE`] (65,537 slots), good up to about 114 nodes;
///   [`MaglevBuilder::expected_nodes`] sizes the table for the membership you plan for
///   (`5 n²` slots, see below), and [`MaglevBuilder::table_size`] fixes it outright. Growing
///   past the planned membership costs movement gradually, not at once; [`Maglev::resize`]
///   and [`Maglev::resize_for`] change the size explicitly, moving almost every key.
/// * **Memory:** two bytes a slot while there are at most 65,536 members, four beyond:
///   128 KiB at 65,537 slots, 16 MiB for 1,000 expected nodes (8,388,739 slots), at most
///   32 MiB (64 MiB with four-byte slots) at [`MAX_TABLE_SIZE`]. A rebuild briefly adds a
///   bitmap of `M / 8` bytes and 16 bytes a node.
/// * **Balance:** each node owns `⌊M/n⌋` or `⌈M/n⌉` slots, so shares differ by at most
///   one slot. With weights, nodes still claim at most one slot per round, as in Envoy's
///   weighted Maglev: a node of the largest weight `w_max` claims one every round, one of
///   a third of it every third round. Node `i` of weight `w_i` (of `W` in all) owns at
///   least one slot, under `M w_i / W + 1 + w_i / w_max` (so under two over its share) and
///   over `M w_i / W − w_i / w_max − n w_i / W`: the heaviest nodes absorb the rounding of
///   the light ones, so a node can fall short by up to about its weight over the mean
///   weight, plus one. Equal weights of any value build the same table as weight 1.
/// * **Build:** `O(M log M)` expected, independent of weights: 100 nodes into 65,537
///   slots build in about a millisecond; 1,000 nodes into 8,388,739 slots in about a
///   second (probes read a bitmap of free slots, which stays in cache).
/// * **Disruption:** adding or removing one of `n` nodes moves its own `1/n` of the keys
///   plus some whose slots another node claims first in the new fill order; over the
///   ideal, that extra grows as `n / √M`. In a table sized for 1,000 nodes, adding a node
///   moves 1.0–1.6× the ideal `1/(n+1)` at every count from 10 to 1,000 (`compare
///   hashring`); the default 65,537-slot table moves 1.5× at 100 nodes but 6.8× at 1,000. Use [`Ring`](crate::Ring) or
///   [`Rendezvous`](crate::Rendezvous) where only the ideal movement will do.
/// * Results depend only on the membership and the table size, not on the order nodes were
///   added.
///
/// # Choosing the table size
///
/// Keys moved by adding one node to `n`, over the ideal (the worst of two added nodes,
/// 1M keys; `cargo run --release -p keel-benches --bin compare -- hashring "Maglev table
/// sizes"`, the same in two runs since placement is deterministic):
///
/// | nodes | 10,007 | 65,537 | 131,101 | 262,151 | 524,309 | 1,048,601 | 2,097,211 | 4,194,371 | 8,388,739 |
/// |---|---|---|---|---|---|---|---|---|---|
/// | 10 | 1.13 | 1.05 | 1.02 | 1.02 | 1.01 | 1.01 | 1.01 | 1.01 | 1.00 |
/// | 20 | 1.23 | 1.08 | 1.05 | 1.04 | 1.03 | 1.02 | 1.01 | 1.01 | 1.01 |
/// | 50 | 1.80 | 1.26 | 1.15 | 1.11 | 1.06 | 1.08 | 1.05 | 1.03 | 1.02 |
/// | 100 | 2.59 | 1.53 | 1.32 | 1.24 | 1.17 | 1.13 | 1.07 | 1.06 | 1.03 |
/// | 200 | 4.58 | 2.56 | 1.91 | 1.62 | 1.39 | 1.27 | 1.18 | 1.14 | 1.07 |
/// | 500 | 6.64 | 5.70 | 4.58 | 2.86 | 2.27 | 1.85 | 1.60 | 1.38 | 1.24 |
/// | 1,000 | 8.26 | 6.84 | 6.82 | 6.27 | 5.01 | 2.96 | 2.33 | 1.91 | 1.56 |
///
/// The smallest size under 2× is about `4 n²` at every node count from 50 up (50: 10,007;
/// 200: 131,101; 500: 1,048,601; 1,000: 4,194,371). No rule linear in `n` holds across
/// 10 to 1,000 nodes: the paper's `M ≥ 100 n` moves 2.6× at 100 nodes and about 6.8× at
/// 1,000, and even `M ≈ 1,000 n` moves 3.0× at 1,000. [`MaglevBuilder::expected_nodes`]
/// keeps `5 n²` for a margin. What a size costs at 1,000 nodes is in the crate README:
/// from 4,194,371 slots on, the table outgrows the CPU's L2 cache and a lookup costs
/// several times more than in a 65,537-slot table.
///
/// In one table sized for 1,000 nodes (8,388,739 slots), adding node `n` to `0..n` moves
/// 1.00× the ideal at 10 nodes, 1.03× at 100, 1.05× at 161, 1.20× at 457 and 1.56× at
/// 915 and 1,000, with no step that moves nearly every key (earlier releases grew the table
/// at 115, 162, … 916 nodes, moving all keys each time); the default 65,537-slot table
/// moves 1.61× at 114, 2.06× at 161 and 6.81× at 1,000 (same command).
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, Maglev};
///
/// let mut maglev = Maglev::builder().expected_nodes(300).build()?; // 524,309 slots, 1 MiB
/// maglev.extend_weighted([("backend-a", 1), ("backend-b", 1), ("backend-c", 2)])?;
/// assert_eq!(maglev.table_size(), 524_309); // and so it stays as members come and go
/// let backend = maglev.node("flow:10.1.2.3:5555").ok_or("empty table")?;
/// assert!(["backend-a", "backend-b", "backend-c"].contains(backend));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Maglev<N> {
    members: Members<N>,
    size: u32,
    table: Table,
}

/// The owner of each slot, as a member index: two bytes a slot while there are at most
/// 65,536 members, which halves the memory a lookup misses in; four beyond.
#[derive(Debug, Clone)]
enum Table {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl Table {
    const EMPTY: Table = Table::Narrow(Vec::new());

    #[inline]
    fn owner(&self, slot: usize) -> Option<usize> {
        match self {
            Table::Narrow(owners) => owners.get(slot).map(|&o| usize::from(o)),
            Table::Wide(owners) => owners.get(slot).map(|&o| o as usize),
        }
    }

    fn len(&self) -> usize {
        match self {
            Table::Narrow(owners) => owners.len(),
            Table::Wide(owners) => owners.len(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Table::Narrow(owners) => owners.capacity() * 2,
            Table::Wide(owners) => owners.capacity() * 4,
        }
    }
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
    /// Fixes the number of table slots: a prime, at most [`MAX_TABLE_SIZE`], at least the
    /// number of nodes. Keys moved per change stay under 2× the ideal while the size is at
    /// least about `5 n²` (see [`Maglev`]); memory is two bytes a slot.
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

    /// Sizes the table for up to `nodes` members: the first of 65,537, then the primes just
    /// above `65,537 × 2^k`, then 16,777,213, with at least `5 n²` slots, so adding any of
    /// those nodes moves under 2× the ideal (1.6× measured at 1,000 nodes, in 8,388,739
    /// slots, 16 MiB). Membership changes never change the size. With
    /// [`table_size`](MaglevBuilder::table_size), only checks that the fixed size holds
    /// `nodes`.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Maglev};
    ///
    /// let mut maglev = Maglev::builder().expected_nodes(1_000).build()?;
    /// assert_eq!(maglev.table_size(), 8_388_739); // at least 5 × 1,000² slots
    /// maglev.extend_weighted((0..1_500u32).map(|n| (n, 1)))?; // more than planned is fine
    /// assert_eq!(maglev.table_size(), 8_388_739); // the size never moves on its own
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
    /// [`Error::TableTooLarge`] if a fixed size is over [`MAX_TABLE_SIZE`],
    /// [`Error::TableSizeNotPrime`] if it is not prime, [`Error::TableTooSmall`] if it is
    /// smaller than the expected nodes, and [`Error::TooManyExpectedNodes`] if no size
    /// was fixed and the expected nodes are over [`MAX_EXPECTED_NODES`].
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
    /// assert_eq!(
    ///     Maglev::<&str>::builder().table_size(10_007).expected_nodes(20_000).build().unwrap_err(),
    ///     Error::TableTooSmall { size: 10_007, nodes: 20_000 }
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Maglev<N>, Error> {
        let size = match self.size {
            Some(size) => check_size(size, self.expected_nodes)?,
            None => size_for(self.expected_nodes)?,
        };
        Ok(Maglev {
            members: Members::default(),
            size,
            table: Table::EMPTY,
        })
    }
}

/// The table size for `nodes` members: the first of [`SIZE_STEPS`] with at least `5 n²`
/// slots.
fn size_for(nodes: u64) -> Result<u32, Error> {
    let want = nodes
        .saturating_mul(nodes)
        .saturating_mul(SLOTS_PER_NODE_SQUARED);
    SIZE_STEPS
        .into_iter()
        .find(|&size| u64::from(size) >= want)
        .ok_or(Error::TooManyExpectedNodes {
            nodes,
            max: MAX_EXPECTED_NODES,
        })
}

/// Checks a table size asked for: at most [`MAX_TABLE_SIZE`], prime, and at least `nodes`.
fn check_size(size: u64, nodes: u64) -> Result<u32, Error> {
    if size > MAX_TABLE_SIZE {
        return Err(Error::TableTooLarge {
            size,
            max: MAX_TABLE_SIZE,
        });
    }
    if !is_prime(size) {
        return Err(Error::TableSizeNotPrime { size });
    }
    if size < nodes {
        return Err(Error::TableTooSmall { size, nodes });
    }
    Ok(size as u32)
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
    /// An empty table of [`DEFAULT_TABLE_SIZE`] slots, good for up to about 114 nodes; see
    /// [`MaglevBuilder::expected_nodes`] for more.
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
            table: Table::EMPTY,
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
    /// let mut default = Maglev::new();
    /// default.extend_weighted((0..200u32).map(|n| (n, 1)))?;
    /// assert_eq!(default.table_size(), 65_537); // membership never resizes the table
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
    /// assert!(maglev.heap_bytes() >= 65_537 * 2); // the table is built, two bytes a slot
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes() + self.members.heap_bytes()
    }

    /// Slot of the table for `hash`: the high half of `hash × M`, uniform without a division.
    #[inline]
    fn slot(&self, hash: u64) -> usize {
        (((hash >> 32) * u64::from(self.size)) >> 32) as usize
    }

    /// Refills the table from the members, two bytes a slot while the member indexes fit.
    fn populate(&mut self) {
        let n = self.members.len();
        // Freed first, so a rebuild never holds two tables.
        self.table = Table::EMPTY;
        if n == 0 {
            return;
        }
        self.table = if n <= 1 << 16 {
            Table::Narrow(self.fill(|i| i as u16))
        } else {
            Table::Wide(self.fill(|i| i as u32))
        };
    }

    /// The population loop of the paper, weighted as Envoy's Maglev weights it: in round
    /// `r = 1, 2, …` the nodes take turns in member order, and node `i` claims its next free
    /// slot when `r × w_i` reaches its target, which starts at 0 and grows by `w_max` with
    /// each slot it claims. So every node claims one slot in the first round, a node of
    /// weight `w_max` one every round, and none more than one a round; with equal weights
    /// every node claims one slot a round, the unweighted loop of the paper. With unequal
    /// weights a heap of turns skips the nodes not due in a round, so the build stays
    /// `O(M log M)` whatever the weights. Node `i` ends with `c_i` slots,
    /// `M w_i / W − w_i / w_max − n w_i / W < c_i < M w_i / W + 1 + w_i / w_max` (derived
    /// and checked by `check_balance_bound` in the tests; with weights 1 to 300 measured up
    /// to 1.3 slots over the share and 2.5 under). `owner` turns a member index into a
    /// table entry.
    fn fill<T: Copy + Default>(&self, owner: impl Fn(usize) -> T) -> Vec<T> {
        let n = self.members.len();
        let m = u64::from(self.size);
        if n == 0 {
            return Vec::new();
        }
        let weights = &self.members.weights;
        let max_weight = weights.iter().copied().max().map_or(1, u64::from);
        let mut next: Vec<u64> = Vec::with_capacity(n);
        let mut skip: Vec<u64> = Vec::with_capacity(n);
        for &h in &self.members.hashes {
            next.push(combine(h, 1) % m);
            skip.push(combine(h, 2) % (m - 1) + 1);
        }
        let mut table = vec![T::default(); self.size as usize];
        // Probes read a bitmap of free slots (1 MB at the largest automatic size, so it
        // stays in cache) rather than the table, 16 or 32 times its size.
        let mut free = vec![u64::MAX; table.len().div_ceil(64)];
        let mut filled = 0u64;
        // Claims node `i`'s next free slot; true once the table is full.
        let mut claim = |i: usize| {
            let mut c = next[i];
            while free[(c >> 6) as usize] & (1 << (c & 63)) == 0 {
                c += skip[i];
                if c >= m {
                    c -= m;
                }
            }
            free[(c >> 6) as usize] &= !(1 << (c & 63));
            table[c as usize] = owner(i);
            c += skip[i];
            if c >= m {
                c -= m;
            }
            next[i] = c;
            filled += 1;
            filled == m
        };
        if weights.iter().all(|&w| u64::from(w) == max_weight) {
            // Every node claims a slot every round.
            'fill: loop {
                for i in 0..n {
                    if claim(i) {
                        break 'fill;
                    }
                }
            }
        } else {
            // Rather than visit every node every round (`O(M n w_max / W)` visits, `O(M n)`
            // for one heavy node among light ones), a heap hands out the turns in the same
            // order, by round and then member index: `O(M log n)`. Node `i` claims its
            // `k`-th slot (from 0) in the first round `r` after its previous one with
            // `r × w_i ≥ k × w_max`. Weights are `u32` and the node of weight `w_max` claims
            // a slot every round, so `k × w_max` stays under `M × 2^32 ≤ 2^56` and the
            // table fills within `M` rounds.
            let mut turns: BinaryHeap<Reverse<(u64, usize)>> =
                (0..n).map(|i| Reverse((1, i))).collect();
            let mut claimed = vec![0u64; n];
            while let Some(mut turn) = turns.peek_mut() {
                let Reverse((round, i)) = *turn;
                if claim(i) {
                    break;
                }
                claimed[i] += 1;
                let due = (claimed[i] * max_weight).div_ceil(u64::from(weights[i]));
                *turn = Reverse((due.max(round + 1), i));
            }
        }
        table
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
        self.members.extend(nodes, |_| Ok(()))?;
        let nodes = self.members.len() as u64;
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

    /// Rebuilds the table with `size` slots: a prime, at most [`MAX_TABLE_SIZE`], at least
    /// the member count. This is the only way a table's size changes, and it moves almost
    /// every key (each slot is refilled from permutations of the new size), so do it
    /// rarely, e.g. when the planned membership outgrows the table (see [`Maglev`]). On
    /// error nothing changes.
    ///
    /// # Errors
    ///
    /// [`Error::TableTooLarge`], [`Error::TableSizeNotPrime`] or [`Error::TableTooSmall`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Maglev};
    ///
    /// let mut maglev = Maglev::builder().table_size(251).build()?;
    /// maglev.extend_weighted((0..10u32).map(|n| (n, 1)))?;
    /// maglev.resize(10_007)?;
    /// assert_eq!(maglev.table_size(), 10_007);
    /// assert_eq!(maglev.resize(7), Err(Error::TableTooSmall { size: 7, nodes: 10 }));
    /// assert_eq!(maglev.table_size(), 10_007); // unchanged
    /// assert!(maglev.node("k").is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resize(&mut self, size: u64) -> Result<(), Error> {
        self.size = check_size(size, self.members.len() as u64)?;
        self.populate();
        Ok(())
    }

    /// Rebuilds the table with the size [`MaglevBuilder::expected_nodes`] picks for `nodes`;
    /// like [`resize`](Self::resize), it moves almost every key. On error nothing changes.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyExpectedNodes`] over [`MAX_EXPECTED_NODES`], or
    /// [`Error::TableTooSmall`] if the members outnumber that size's slots.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::Maglev;
    ///
    /// let mut maglev = Maglev::new(); // 65,537 slots: good to about 114 nodes
    /// maglev.extend_weighted((0..100u32).map(|n| (n, 1)))?;
    /// maglev.resize_for(400)?; // planning for 400 nodes: one rebuild, nearly every key moves
    /// assert_eq!(maglev.table_size(), 1_048_601); // at least 5 × 400² slots
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resize_for(&mut self, nodes: u64) -> Result<(), Error> {
        self.resize(u64::from(size_for(nodes)?))
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
        let owner = self.table.owner(self.slot(hash))?;
        Some(&self.members.nodes[owner])
    }

    fn replicas_for_hash<'a>(&'a self, hash: u64, out: &mut [Option<&'a N>]) -> usize {
        let mut distinct = Distinct::new(out, self.members.len(), self.members.len());
        if self.table.len() == 0 {
            return 0;
        }
        // Later slots are owned in a shuffled order, so walking on finds the others.
        let start = self.slot(hash);
        let len = self.table.len();
        for step in 0..len {
            if distinct.full() {
                break;
            }
            let Some(owner) = self.table.owner((start + step) % len) else {
                break; // never: the slot is below the length
            };
            distinct.push(owner, &self.members.nodes[owner]);
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
    fn size_steps_are_primes_above_doublings() {
        for (step, &size) in SIZE_STEPS[..8].iter().enumerate() {
            let size = u64::from(size);
            let floor = 65_537u64 << step;
            assert!(is_prime(size), "{size}");
            assert!(
                (floor + 1..size).all(|n| !is_prime(n)),
                "{size} is not the next"
            );
        }
        let last = u64::from(SIZE_STEPS[8]);
        assert!(is_prime(last) && (last + 1..=MAX_TABLE_SIZE).all(|n| !is_prime(n)));
        assert_eq!(size_for(0), Ok(DEFAULT_TABLE_SIZE));
        assert_eq!(size_for(114), Ok(DEFAULT_TABLE_SIZE));
        assert_eq!(size_for(115), Ok(131_101));
        assert_eq!(size_for(1_000), Ok(8_388_739));
        assert_eq!(size_for(MAX_EXPECTED_NODES), Ok(16_777_213));
        assert!(size_for(MAX_EXPECTED_NODES + 1).is_err());
        assert!(size_for(u64::MAX).is_err());
    }

    #[test]
    fn membership_changes_never_resize() {
        let mut m = Maglev::new();
        m.extend_weighted((0..200u32).map(|n| (n, 1))).unwrap();
        assert_eq!(m.table_size(), DEFAULT_TABLE_SIZE);
        for n in 0..150 {
            assert!(m.remove(&n));
        }
        assert_eq!(m.table_size(), DEFAULT_TABLE_SIZE);
    }

    #[test]
    fn a_failed_resize_changes_nothing() {
        let mut m = Maglev::builder().table_size(11).build().unwrap();
        m.extend_weighted((0..5u32).map(|n| (n, 1))).unwrap();
        let before: Vec<_> = (0..100u32).map(|k| m.node(&k).copied()).collect();
        assert_eq!(m.resize(3), Err(Error::TableTooSmall { size: 3, nodes: 5 }));
        assert_eq!(m.resize(12), Err(Error::TableSizeNotPrime { size: 12 }));
        assert!(m.resize(1 << 25).is_err());
        assert!(m.resize_for(1 << 20).is_err());
        assert_eq!(m.table_size(), 11);
        let after: Vec<_> = (0..100u32).map(|k| m.node(&k).copied()).collect();
        assert_eq!(before, after);
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
        assert_eq!(
            Maglev::<u8>::builder()
                .expected_nodes(5_000)
                .build()
                .unwrap_err(),
            Error::TooManyExpectedNodes {
                nodes: 5_000,
                max: MAX_EXPECTED_NODES
            }
        );
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
        for slot in 0..m.table.len() {
            counts[m.table.owner(slot).unwrap()] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 1, "{counts:?}");
    }

    #[test]
    fn two_byte_and_four_byte_tables_place_alike() {
        let mut m = Maglev::builder().table_size(10_007).build().unwrap();
        m.extend_weighted((0..300u32).map(|n| (n, 1 + n % 3)))
            .unwrap();
        assert!(matches!(m.table, Table::Narrow(_)));
        assert_eq!(m.heap_bytes(), 10_007 * 2 + m.members.heap_bytes());
        let narrow = m.fill(|i| i as u16);
        let wide = m.fill(|i| i as u32);
        assert!(narrow.iter().zip(&wide).all(|(&a, &b)| u32::from(a) == b));
        assert!(wide.iter().any(|&o| o >= 256), "indexes past one byte");
    }

    /// The fill loop before weights took one slot a round: node `i` claimed `w_i` slots
    /// in a row per turn. Kept to check that weight-1 tables are unchanged.
    fn fill_w_i_per_turn(m: &Maglev<u32>) -> Vec<u32> {
        let n = m.members.len();
        let size = u64::from(m.size);
        let mut next: Vec<u64> = Vec::with_capacity(n);
        let mut skip: Vec<u64> = Vec::with_capacity(n);
        for &h in &m.members.hashes {
            next.push(combine(h, 1) % size);
            skip.push(combine(h, 2) % (size - 1) + 1);
        }
        let mut table = vec![u32::MAX; m.size as usize];
        let mut filled = 0u64;
        'fill: loop {
            for i in 0..n {
                for _ in 0..m.members.weights[i] {
                    let mut c = next[i];
                    while table[c as usize] != u32::MAX {
                        c = (c + skip[i]) % size;
                    }
                    table[c as usize] = i as u32;
                    next[i] = (c + skip[i]) % size;
                    filled += 1;
                    if filled == size {
                        break 'fill;
                    }
                }
            }
        }
        table
    }

    /// [`Maglev::fill`] as Envoy writes it: every round visits every node in member order,
    /// and node `i` claims a slot when `round × w_i` reaches its target, which starts at 0
    /// and grows by `w_max` with each slot.
    fn fill_by_rounds(m: &Maglev<u32>) -> Vec<u32> {
        let n = m.members.len();
        let size = u64::from(m.size);
        let weights = &m.members.weights;
        let max = u64::from(*weights.iter().max().unwrap());
        let mut next: Vec<u64> = m
            .members
            .hashes
            .iter()
            .map(|&h| combine(h, 1) % size)
            .collect();
        let skip: Vec<u64> = m
            .members
            .hashes
            .iter()
            .map(|&h| combine(h, 2) % (size - 1) + 1)
            .collect();
        let mut target = vec![0u64; n];
        let mut table = vec![u32::MAX; m.size as usize];
        let mut filled = 0u64;
        for round in 1.. {
            for i in 0..n {
                if round * u64::from(weights[i]) < target[i] {
                    continue;
                }
                target[i] += max;
                let mut c = next[i];
                while table[c as usize] != u32::MAX {
                    c = (c + skip[i]) % size;
                }
                table[c as usize] = i as u32;
                next[i] = (c + skip[i]) % size;
                filled += 1;
                if filled == size {
                    return table;
                }
            }
        }
        unreachable!()
    }

    fn weighted(size: u64, weights: &[u32]) -> Maglev<u32> {
        let mut m = Maglev::builder().table_size(size).build().unwrap();
        m.extend_weighted((0u32..).zip(weights.iter().copied()))
            .unwrap();
        m
    }

    /// Slots each member owns, by member index.
    fn slot_counts(m: &Maglev<u32>) -> Vec<u64> {
        let mut counts = vec![0u64; m.members.len()];
        for slot in 0..m.table.len() {
            counts[m.table.owner(slot).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn equal_weights_fill_as_weight_one_always_did() {
        for (size, nodes) in [
            (2, 2),
            (251, 1),
            (251, 2),
            (251, 251),
            (1009, 10),
            (10_007, 300),
        ] {
            let ones = weighted(size, &vec![1; nodes]);
            let table = ones.fill(|i| i as u32);
            assert_eq!(table, fill_by_rounds(&ones));
            assert_eq!(
                table,
                fill_w_i_per_turn(&ones),
                "{size} slots, {nodes} nodes"
            );
            for w in [2, 3, 100, u32::MAX] {
                let heavy = weighted(size, &vec![w; nodes]);
                assert_eq!(heavy.fill(|i| i as u32), table, "weight {w}, {size} slots");
            }
        }
    }

    #[test]
    fn equal_heavy_weights_share_slots_to_one() {
        // Claiming `w_i` slots per turn gave "a" all 251 slots here.
        let mut m = Maglev::builder().table_size(251).build().unwrap();
        m.extend_weighted([("a", 251), ("b", 251)]).unwrap();
        let mut counts = [0u32; 2];
        for slot in 0..m.table.len() {
            counts[m.table.owner(slot).unwrap()] += 1;
        }
        counts.sort_unstable();
        assert_eq!(counts, [125, 126]);
        assert!((0..1_000u32).any(|k| m.node(&k) == Some(&"a")));
        assert!((0..1_000u32).any(|k| m.node(&k) == Some(&"b")));

        // ... and 100 nodes of weight 100 owned 600-700 slots each, not 655 or 656.
        let m = weighted(u64::from(DEFAULT_TABLE_SIZE), &[100; 100]);
        assert!(slot_counts(&m).iter().all(|c| (655..=656).contains(c)));
    }

    #[test]
    fn a_light_node_beside_heavy_ones_keeps_a_slot() {
        let m = weighted(251, &[u32::MAX, 1, u32::MAX]);
        let counts = slot_counts(&m);
        let light = m.members.position(&1).unwrap();
        assert_eq!(counts[light], 1, "{counts:?}");
    }

    /// Checks the balance bound [`Maglev::fill`] documents. Let `R` be the round in which
    /// the table fills and `w` the largest weight. After `t ≥ 1` whole rounds node `i` has
    /// claimed `⌊t w_i / w⌋ + 1` slots (its `k`-th, from 0, in the first round `r ≥ 1` with
    /// `r w_i ≥ k w`), more than `t w_i / w` (and 0 = `0 × w_i / w` after none), so it ends
    /// with `c_i` slots, `(R−1) w_i / w < c_i ≤ R w_i / w + 1`. Summing:
    /// `M ≤ Σ (R w_j / w + 1) = R W / w + n`, so `R ≥ (M − n) w / W`; and round `R` claims at
    /// least one slot, so `M > (R−1) W / w`, i.e. `R < M w / W + 1`. Hence
    /// `M w_i / W − n w_i / W − w_i / w < c_i < M w_i / W + w_i / w + 1`: under two slots
    /// over the share `M w_i / W`, and short by less than `n w_i / W + 1`, where
    /// `n w_i / W` is the node's weight over the mean weight.
    fn check_balance_bound(m: &Maglev<u32>) -> Result<(), String> {
        let counts = slot_counts(m);
        let weights: Vec<i128> = m.members.weights.iter().map(|&w| i128::from(w)).collect();
        let (size, n) = (i128::from(m.size), weights.len() as i128);
        let total: i128 = weights.iter().sum();
        let max = *weights.iter().max().unwrap();
        for (i, (&c, &w)) in counts.iter().zip(&weights).enumerate() {
            // Both sides times `W × w_max`, so the check is exact.
            let c = i128::from(c) * total * max;
            let share = size * w * max;
            let (low, high) = (
                share - n * w * max - w * total,
                share + w * total + total * max,
            );
            if c == 0 || c <= low || c >= high {
                return Err(format!("node {i} of weight {w}: {counts:?} of {weights:?}"));
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn weighted_slot_counts_within_the_bound(
            weights in proptest::collection::vec(1u32..=300, 1..40),
            size in proptest::sample::select(vec![41u64, 251, 1009, 10_007]),
        ) {
            let m = weighted(size, &weights);
            proptest::prop_assert_eq!(m.fill(|i| i as u32), fill_by_rounds(&m));
            if let Err(e) = check_balance_bound(&m) {
                return Err(proptest::test_runner::TestCaseError::fail(e));
            }
        }
    }

    #[test]
    fn balance_bound_holds_at_the_extremes() {
        for weights in [
            vec![u32::MAX, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            vec![300; 40].into_iter().chain(vec![1; 200]).collect(),
            vec![1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233],
            vec![u32::MAX; 7],
        ] {
            for size in [251, 1009, 65_537] {
                let m = weighted(size, &weights);
                check_balance_bound(&m).unwrap();
                assert_eq!(m.fill(|i| i as u32), fill_by_rounds(&m));
            }
        }
    }

    #[test]
    fn weights_scale_slot_counts() {
        let mut m = Maglev::new();
        m.extend_weighted([(0u32, 1), (1, 3)]).unwrap();
        let heavy = (0..m.table.len())
            .filter(|&slot| m.table.owner(slot) == m.members.position(&1))
            .count();
        let share = heavy as f64 / f64::from(m.table_size());
        assert!((share - 0.75).abs() < 0.001, "{share}");
    }
}
