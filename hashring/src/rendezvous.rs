//! Weighted rendezvous (highest random weight) hashing with top-k replicas.

use core::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::consistent_hash::ConsistentHash;
use crate::error::Error;
use crate::key::{StableHash, combine};
use crate::members::Members;

/// Rendezvous hashing (Thaler and Ravishankar): every node scores the key and the highest
/// score wins; the next-highest are the replicas.
///
/// * No table: memory is the member list, and a lookup scores all `n` nodes (`O(n)`, fine up
///   to a few hundred nodes; [`Ring`](crate::Ring) beyond).
/// * Removing a node moves only its keys, each to the node that scored second; adding one
///   moves only the keys it now wins: the ideal `w / W` either way.
/// * Weighted by the logarithmic method (Schindelhauer and Schomaker): a node of weight `w`
///   scores `w / -ln(u)` with `u` uniform in `(0, 1)` from the key and node hashes, which
///   gives it exactly `w / W` of the keys in expectation. With all weights equal the raw
///   64-bit hash is compared instead, which ranks the same and skips the logarithm.
/// * Top-k replicas come out in score order, so the set for `k` is a prefix of the set for
///   `k + 1`, and results never depend on the order nodes were added. They take one pass
///   over the nodes whatever `k` is (`O(n + k log k)` for `k` up to 16, kept on the stack;
///   `O(n log k)` beyond, in a heap of `k` entries, the one allocation of this lookup).
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, Rendezvous};
///
/// let mut hrw = Rendezvous::new();
/// hrw.add_weighted("big", 3)?;
/// hrw.add("small")?;
/// let mut top = [None; 2];
/// assert_eq!(hrw.replicas("object-7", &mut top), 2);
/// assert_eq!(top[0], hrw.node("object-7"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Rendezvous<N> {
    members: Members<N>,
    uniform: bool,
}

impl<N> Default for Rendezvous<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The logarithmic-method score of a node of weight `weight` for mixed hash `mixed`.
#[inline]
fn weighted_score(mixed: u64, weight: u32) -> f64 {
    // 52 random bits plus one half: exactly representable and strictly inside (0, 1), so
    // the logarithm is finite and negative.
    let u = ((mixed >> 12) as f64 + 0.5) * (1.0 / (1u64 << 52) as f64);
    f64::from(weight) / -u.ln()
}

impl<N> Rendezvous<N> {
    /// An empty set of nodes.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Rendezvous};
    ///
    /// let hrw: Rendezvous<&str> = Rendezvous::new();
    /// assert!(hrw.is_empty());
    /// assert_eq!(hrw.node("k"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self {
            members: Members::default(),
            uniform: true,
        }
    }

    /// Members and their weights, in canonical (hash) order.
    ///
    /// ```
    /// use keel_hashring::Rendezvous;
    ///
    /// let mut hrw = Rendezvous::new();
    /// hrw.add_weighted("a", 3)?;
    /// hrw.add("b")?;
    /// let mut members: Vec<_> = hrw.iter().collect();
    /// members.sort(); // canonical order follows the nodes' hashes
    /// assert_eq!(members, [(&"a", 3), (&"b", 1)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&N, u32)> + '_ {
        self.members.iter()
    }

    /// Heap bytes held.
    ///
    /// ```
    /// use keel_hashring::Rendezvous;
    ///
    /// let mut hrw = Rendezvous::new();
    /// assert_eq!(hrw.heap_bytes(), 0);
    /// hrw.add(1u64)?;
    /// assert!(hrw.heap_bytes() >= 8 + 8 + 4); // node, hash and weight
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.members.heap_bytes()
    }

    fn refresh_uniform(&mut self) {
        let first = self.members.weights.first().copied();
        self.uniform = self.members.weights.iter().all(|&w| Some(w) == first);
    }

    /// The score of member `i` for `hash`, as a `u64` that orders like the score.
    #[inline]
    fn score(&self, hash: u64, i: usize) -> u64 {
        let mixed = combine(hash, self.members.hashes[i]);
        if self.uniform {
            mixed
        } else {
            // A positive finite f64's bits order like its value.
            weighted_score(mixed, self.members.weights[i]).to_bits()
        }
    }

    /// The best-ranked member.
    #[inline]
    fn best(&self, hash: u64) -> Option<Rank> {
        if self.members.len() == 0 {
            return None;
        }
        let mut best = Rank(self.score(hash, 0), 0);
        for i in 1..self.members.len() {
            // Indexes ascend, so only a strictly higher score outranks the best so far.
            let score = self.score(hash, i);
            if score > best.0 {
                best = Rank(score, i);
            }
        }
        Some(best)
    }

    /// The `want` best-ranked members, best first, in one pass over the members.
    fn top<'a>(&'a self, hash: u64, want: usize, out: &mut [Option<&'a N>]) -> usize {
        let candidates = (0..self.members.len()).map(|i| Rank(self.score(hash, i), i));
        let mut filled = 0;
        let mut put = |Rank(_, i): Rank| {
            out[filled] = Some(&self.members.nodes[i]);
            filled += 1;
        };
        if want <= STACK_TOP {
            // Sorted best first; a candidate costs one comparison unless it enters the top.
            let mut top = [Rank(0, 0); STACK_TOP];
            let mut len = 0;
            for candidate in candidates {
                if len == want {
                    if candidate <= top[len - 1] {
                        continue;
                    }
                } else {
                    len += 1;
                }
                let mut at = len - 1;
                while at > 0 && top[at - 1] < candidate {
                    top[at] = top[at - 1];
                    at -= 1;
                }
                top[at] = candidate;
            }
            top[..len].iter().copied().for_each(put);
        } else {
            // A min-heap of the best `want` so far: its root is the one to beat.
            let mut heap = BinaryHeap::with_capacity(want);
            for candidate in candidates {
                if heap.len() < want {
                    heap.push(Reverse(candidate));
                } else if let Some(mut worst) = heap.peek_mut()
                    && worst.0 < candidate
                {
                    *worst = Reverse(candidate);
                }
            }
            // Ascending `Reverse` is best first.
            heap.into_sorted_vec()
                .into_iter()
                .for_each(|Reverse(rank)| put(rank));
        }
        filled
    }
}

/// Replica counts up to which [`Rendezvous::top`] keeps its candidates on the stack.
const STACK_TOP: usize = 16;

/// A member's standing for one key: higher score wins, lower index breaks ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rank(u64, usize);

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<N: StableHash + Eq> Rendezvous<N> {
    /// Whether `node` is a member.
    ///
    /// ```
    /// use keel_hashring::Rendezvous;
    ///
    /// let mut hrw = Rendezvous::new();
    /// hrw.add("a")?;
    /// assert!(hrw.contains(&"a"));
    /// assert!(!hrw.contains(&"b"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, node: &N) -> bool {
        self.members.position(node).is_some()
    }

    /// Adds `node` with weight 1.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateNode`] if it is already a member.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Rendezvous};
    ///
    /// let mut hrw = Rendezvous::new();
    /// hrw.add("a")?;
    /// assert_eq!(hrw.node("k"), Some(&"a"));
    /// assert_eq!(hrw.add("a"), Err(Error::DuplicateNode));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&mut self, node: N) -> Result<(), Error> {
        self.add_weighted(node, 1)
    }

    /// Adds `node` with `weight`; its share of keys is `weight / total`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`] or [`Error::DuplicateNode`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Rendezvous};
    ///
    /// let mut hrw = Rendezvous::new();
    /// hrw.add_weighted("big", 3)?;
    /// hrw.add_weighted("small", 1)?;
    /// let big = (0..10_000u32).filter(|k| hrw.node(k) == Some(&"big")).count();
    /// assert!((7_000..8_000).contains(&big)); // 3/4 of the keys
    /// assert_eq!(hrw.add_weighted("tiny", 0), Err(Error::ZeroWeight));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_weighted(&mut self, node: N, weight: u32) -> Result<(), Error> {
        self.members.insert(node, weight)?;
        self.refresh_uniform();
        Ok(())
    }

    /// Adds every `(node, weight)` at once, in `O((n + k) log k)` for `k` new nodes rather
    /// than `O(n)` each as [`add_weighted`](Self::add_weighted) costs. On error nothing is
    /// added.
    ///
    /// # Errors
    ///
    /// As [`add_weighted`](Self::add_weighted) one by one in order would give first:
    /// [`Error::ZeroWeight`], or [`Error::DuplicateNode`] if a node is already a member or
    /// repeated.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, Rendezvous};
    ///
    /// let mut hrw = Rendezvous::new();
    /// hrw.extend_weighted((0..1_000u32).map(|node| (node, 1 + node % 3)))?;
    /// assert_eq!(hrw.len(), 1_000);
    /// assert_eq!(hrw.extend_weighted([(1_000, 1), (7, 1)]), Err(Error::DuplicateNode));
    /// assert_eq!(hrw.extend_weighted([(1_000, 0)]), Err(Error::ZeroWeight));
    /// assert_eq!(hrw.len(), 1_000); // nothing added
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend_weighted<I: IntoIterator<Item = (N, u32)>>(
        &mut self,
        nodes: I,
    ) -> Result<(), Error> {
        self.members.extend(nodes, |_| Ok(()))?;
        self.refresh_uniform();
        Ok(())
    }

    /// Removes `node`; returns whether it was a member.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Rendezvous};
    ///
    /// let mut hrw = Rendezvous::new();
    /// for node in ["a", "b", "c"] {
    ///     hrw.add(node)?;
    /// }
    /// let mut top = [None; 2];
    /// hrw.replicas("k", &mut top);
    /// let (first, second) = (*top[0].ok_or("empty")?, *top[1].ok_or("empty")?);
    /// assert!(hrw.remove(&first));
    /// assert_eq!(hrw.node("k"), Some(&second)); // its keys go to the runner-up
    /// assert!(!hrw.remove(&first));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&mut self, node: &N) -> bool {
        let removed = self.members.remove(node).is_some();
        self.refresh_uniform();
        removed
    }
}

impl<N> ConsistentHash for Rendezvous<N> {
    type Node = N;
    type Hash = u64;

    fn len(&self) -> usize {
        self.members.len()
    }

    #[inline]
    fn node_for_hash(&self, hash: u64) -> Option<&N> {
        let Rank(_, i) = self.best(hash)?;
        Some(&self.members.nodes[i])
    }

    fn replicas_for_hash<'a>(&'a self, hash: u64, out: &mut [Option<&'a N>]) -> usize {
        out.iter_mut().for_each(|slot| *slot = None);
        let want = out.len().min(self.members.len());
        if want == 0 {
            return 0;
        }
        self.top(hash, want, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The simple top-k: `k` passes, each taking the best member ranked below the last.
    fn top_by_passes(hrw: &Rendezvous<u32>, hash: u64, k: usize) -> Vec<u32> {
        let mut found: Vec<u32> = Vec::new();
        let mut bound: Option<Rank> = None;
        while found.len() < k {
            let next = (0..hrw.members.len())
                .map(|i| Rank(hrw.score(hash, i), i))
                .filter(|&r| bound.is_none_or(|b| r < b))
                .max();
            let Some(next) = next else { break };
            found.push(hrw.members.nodes[next.1]);
            bound = Some(next);
        }
        found
    }

    proptest! {
        /// One-pass selection equals the k-pass one, on the stack (k <= 16) and in the heap,
        /// with equal weights (raw hashes) and mixed ones (logarithmic scores).
        #[test]
        fn top_k_equals_k_passes(
            weights in prop::collection::vec(1u32..4, 0..60),
            heavy in any::<bool>(),
            k in 0usize..70,
            keys in prop::collection::vec(any::<u64>(), 1..8),
        ) {
            let mut hrw = Rendezvous::new();
            for (node, &w) in weights.iter().enumerate() {
                hrw.add_weighted(node as u32, if heavy { w * (u32::MAX / 4) } else { w }).unwrap();
            }
            let mut out = vec![Some(&u32::MAX); k];
            for key in keys {
                let got = hrw.replicas_for_hash(key, &mut out);
                let want = top_by_passes(&hrw, key, k);
                prop_assert_eq!(got, want.len());
                prop_assert!(out[got..].iter().all(Option::is_none));
                let got: Vec<u32> = out[..got].iter().map(|n| *n.unwrap()).collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn rank_breaks_ties_by_lower_index() {
        assert!(Rank(5, 0) > Rank(5, 1));
        assert!(Rank(6, 9) > Rank(5, 0));
    }

    #[test]
    fn uniform_fast_path_agrees_with_ranked_scan() {
        let mut hrw = Rendezvous::new();
        for n in 0..17u32 {
            hrw.add(n).unwrap();
        }
        let mut out = [None; 17];
        for k in 0..500u64 {
            let h = crate::hash_key(&k);
            assert_eq!(hrw.replicas_for_hash(h, &mut out), 17);
            assert_eq!(out[0], hrw.node_for_hash(h));
            let mut all: Vec<u32> = out.iter().map(|n| *n.unwrap()).collect();
            all.sort_unstable();
            assert_eq!(all, (0..17).collect::<Vec<_>>());
        }
    }

    #[test]
    fn weighted_score_is_finite_and_monotonic_in_weight() {
        for mixed in [0, 1, u64::MAX, 1 << 63] {
            let light = weighted_score(mixed, 1);
            let heavy = weighted_score(mixed, 5);
            assert!(light.is_finite() && light > 0.0);
            assert!(heavy > light);
        }
    }

    #[test]
    fn removing_a_node_promotes_the_second_choice() {
        let mut hrw = Rendezvous::new();
        for n in 0..8u32 {
            hrw.add_weighted(n, n + 1).unwrap();
        }
        let mut out = [None; 2];
        for k in 0..300u32 {
            hrw.replicas(&k, &mut out);
            let (first, second) = (*out[0].unwrap(), *out[1].unwrap());
            let mut smaller = hrw.clone();
            assert!(smaller.remove(&first));
            assert_eq!(smaller.node(&k), Some(&second));
        }
    }
}
