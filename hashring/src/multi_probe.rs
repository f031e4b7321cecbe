//! Multi-probe consistent hashing: one point per node, many probes per key.

use core::fmt;
use core::marker::PhantomData;

use crate::consistent_hash::{ConsistentHash, Distinct};
use crate::error::Error;
use crate::key::{StableHash, combine};
use crate::members::Members;
use crate::ring::add_points;

/// Probes per key unless configured otherwise: the paper's choice for a peak-to-mean
/// load of 1.05.
///
/// ```
/// use keel_hashring::{DEFAULT_PROBES, MultiProbe};
///
/// assert_eq!(MultiProbe::<&str>::new().probes(), DEFAULT_PROBES);
/// assert_eq!(DEFAULT_PROBES, 21);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const DEFAULT_PROBES: u32 = 21;

/// The most probes [`MultiProbeBuilder::probes`] takes. Each lookup does one binary search
/// per probe, so the bound keeps a lookup's cost bounded; past a few dozen probes the
/// balance barely improves (see [`MultiProbe`]).
///
/// ```
/// use keel_hashring::{Error, MAX_PROBES, MultiProbe};
///
/// assert_eq!(MultiProbe::<&str>::builder().probes(MAX_PROBES).build()?.probes(), MAX_PROBES);
/// assert_eq!(
///     MultiProbe::<&str>::builder().probes(MAX_PROBES + 1).build().unwrap_err(),
///     Error::TooManyProbes { probes: u64::from(MAX_PROBES) + 1, max: u64::from(MAX_PROBES) }
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_PROBES: u32 = 1_024;

/// Multi-probe consistent hashing (Appleton and O'Reilly, 2015).
///
/// Each node sits at one point on the circle; a key is hashed `k` times and goes to the
/// node whose point follows one of its probes most closely. Memory is one point per node
/// (no virtual nodes) and removing a node moves only its keys, as on a ring, while the
/// balance approaches that of a ring with many virtual nodes: with `k = 21` probes the
/// peak-to-mean load is about 1.05. A lookup costs `k` hashes and `k` binary searches.
///
/// The `compare hashring` program measures the peak-to-mean ratio, and a test in this
/// crate checks it against 1.05 with enough keys per node that sampling noise stays well
/// below the 5 % being measured.
///
/// **Weights.** A node of weight `w` sits at `w` points, so it wins the probes of about
/// `w / W` of the keys (`W` the total weight); one point per unit of weight keeps removal
/// minimal (only the node's keys move) and costs memory per point, not per node. Each point's
/// share varies as below, so a node's share deviates from `w / W` by about `15 % / √w`.
/// At most [`MAX_POINTS`](crate::MAX_POINTS) points in all.
///
/// # Balance: a light tail that more nodes do not fix
///
/// The 1.05 bound is on the *heaviest* node. The *lightest* ones are far below the mean,
/// and that follows from one point per node, as a short derivation from the paper's model
/// shows. Put `n` nodes at random points and call `x = n g` a node's gap `g` to the point
/// before it, in units of the mean gap: `x` is exponential with mean 1. A key's probe
/// lands within distance `d` before some node with probability about `n d`, so the closest
/// of the `k` probes falls in this node's gap, at distance at most `g`, with probability
///
/// `share(x) = (1 - e^(-k x)) / n`, and the mean of that is `k / (k + 1) / n`.
///
/// So a node's load is `(1 - e^(-k x)) (k + 1) / k` times the mean:
///
/// * at most `(k + 1) / k` for any gap: 1.048 for `k = 21`, the paper's peak-to-mean;
/// * its relative standard deviation is `√((1 - 2/(k+1) + 1/(2k+1)) (k+1)²/k² - 1)`, 15.3 %
///   for `k = 21` at any `n`;
/// * a node is under half the mean when `x < -ln(1 - k/(2(k+1))) / k = 0.031`, so about 3 %
///   of the nodes are, at any `n`;
/// * the smallest of `n` gaps is exponential with mean `1/n`, so the lightest node's
///   expected load is `(k + 1) / (n + k)` of the mean: 0.18 at 100 nodes, 0.022 at 1,000.
///   A min/mean of 0.8 would need every gap above `0.069`, which `n = 1,000` random
///   points miss with probability `1 - e^(-69)`.
///
/// Measured (`compare hashring MultiProbe`, 10,000 keys per node, 21 probes) beside these
/// predictions:
///
/// | nodes | min/mean (predicted mean) | nodes under half the mean (predicted) | std dev (predicted, with sampling) | peak/mean |
/// |---|---|---|---|---|
/// | 100 | 0.096 (0.18) | 3 (3.0) | 15.1 % (15.3 %) | 1.065 |
/// | 1,000 | 0.063 (0.022) | 33 (30.4) | 15.4 % (15.3 %) | 1.076 |
///
/// The lightest node is one draw of a heavy-tailed minimum, so it scatters around its
/// prediction; the rest match. More probes shrink the tail only as `1/k`, at `k` hashes a
/// lookup. Where the lightest node matters, use [`Ring`](crate::Ring) with virtual nodes,
/// [`JumpHash`](crate::JumpHash) or [`Maglev`](crate::Maglev).
///
/// # Example
///
/// ```
/// use keel_hashring::{ConsistentHash, MultiProbe};
///
/// let mut mp = MultiProbe::builder().probes(21).build()?;
/// for node in ["a", "b", "c", "d"] {
///     mp.add(node)?;
/// }
/// assert!(mp.node("key").is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MultiProbe<N> {
    members: Members<N>,
    probes: u32,
    /// Node points, sorted; `owners[i]` is the member at `points[i]`.
    points: Vec<u64>,
    owners: Vec<u32>,
}

/// Configures a [`MultiProbe`].
///
/// # Example
///
/// ```
/// use keel_hashring::{MultiProbe, MultiProbeBuilder};
///
/// let fewer: MultiProbeBuilder<&str> = MultiProbe::builder().probes(5);
/// let a = fewer.clone().build()?;
/// let b = fewer.build()?;
/// assert_eq!((a.probes(), b.probes()), (5, 5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MultiProbeBuilder<N> {
    probes: u32,
    _nodes: PhantomData<fn() -> N>,
}

impl<N> fmt::Debug for MultiProbeBuilder<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiProbeBuilder")
            .field("probes", &self.probes)
            .finish()
    }
}

impl<N> Clone for MultiProbeBuilder<N> {
    fn clone(&self) -> Self {
        Self {
            probes: self.probes,
            _nodes: PhantomData,
        }
    }
}

impl<N> MultiProbeBuilder<N> {
    /// Probes per key (default [`DEFAULT_PROBES`]).
    ///
    /// ```
    /// use keel_hashring::MultiProbe;
    ///
    /// let mp = MultiProbe::<&str>::builder().probes(8).build()?;
    /// assert_eq!(mp.probes(), 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = probes;
        self
    }

    /// Builds an empty set of nodes.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroProbes`] if `probes` is 0, and [`Error::TooManyProbes`] if it is over
    /// [`MAX_PROBES`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{Error, MultiProbe};
    ///
    /// assert_eq!(MultiProbe::<&str>::builder().probes(8).build()?.probes(), 8);
    /// assert_eq!(MultiProbe::<&str>::builder().probes(0).build().unwrap_err(), Error::ZeroProbes);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<MultiProbe<N>, Error> {
        if self.probes == 0 {
            return Err(Error::ZeroProbes);
        }
        if self.probes > MAX_PROBES {
            return Err(Error::TooManyProbes {
                probes: u64::from(self.probes),
                max: u64::from(MAX_PROBES),
            });
        }
        Ok(MultiProbe {
            members: Members::default(),
            probes: self.probes,
            points: Vec::new(),
            owners: Vec::new(),
        })
    }
}

impl<N> Default for MultiProbe<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Point `i` of a node with stable hash `hash` (a node of weight `w` has points `0..w`).
/// Point 0 is the same as before weights existed, so unweighted placements did not move.
#[inline]
fn node_point(hash: u64, i: u32) -> u64 {
    let first = combine(hash, 0x6d70);
    if i == 0 {
        first
    } else {
        combine(first, u64::from(i))
    }
}

impl<N> MultiProbe<N> {
    /// An empty set of nodes probed [`DEFAULT_PROBES`] times.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, MultiProbe};
    ///
    /// let mp: MultiProbe<&str> = MultiProbe::new();
    /// assert_eq!(mp.probes(), 21);
    /// assert_eq!(mp.node("k"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self {
            members: Members::default(),
            probes: DEFAULT_PROBES,
            points: Vec::new(),
            owners: Vec::new(),
        }
    }

    /// A builder to choose the number of probes.
    ///
    /// ```
    /// use keel_hashring::{DEFAULT_PROBES, MultiProbe};
    ///
    /// let mp = MultiProbe::<u32>::builder().build()?;
    /// assert_eq!(mp.probes(), DEFAULT_PROBES);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> MultiProbeBuilder<N> {
        MultiProbeBuilder {
            _nodes: PhantomData,
            probes: DEFAULT_PROBES,
        }
    }

    /// Probes per key.
    ///
    /// ```
    /// use keel_hashring::MultiProbe;
    ///
    /// let mp = MultiProbe::<u32>::builder().probes(3).build()?;
    /// assert_eq!(mp.probes(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn probes(&self) -> u32 {
        self.probes
    }

    /// Members and their weights in canonical (hash) order, as the other weighted
    /// placements list them.
    ///
    /// ```
    /// use keel_hashring::MultiProbe;
    ///
    /// let mut mp = MultiProbe::new();
    /// mp.extend(["b", "a"])?;
    /// mp.add_weighted("c", 3)?;
    /// let mut members: Vec<_> = mp.iter().collect();
    /// members.sort(); // canonical order follows the nodes' hashes
    /// assert_eq!(members, [(&"a", 1), (&"b", 1), (&"c", 3)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&N, u32)> + '_ {
        self.members.iter()
    }

    /// Heap bytes held.
    ///
    /// ```
    /// use keel_hashring::MultiProbe;
    ///
    /// let mut mp = MultiProbe::new();
    /// assert_eq!(mp.heap_bytes(), 0);
    /// mp.extend(0..100u32)?;
    /// assert!(mp.heap_bytes() >= 100 * 12); // a point and its owner per unit of weight
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heap_bytes(&self) -> usize {
        self.points.capacity() * 8 + self.owners.capacity() * 4 + self.members.heap_bytes()
    }

    /// The hash of probe `i` of a key.
    #[inline]
    fn probe(hash: u64, i: u32) -> u64 {
        if i == 0 {
            hash
        } else {
            combine(hash, u64::from(i))
        }
    }

    /// Index of the first point at or after `h`, wrapping.
    #[inline]
    fn successor(&self, h: u64) -> usize {
        let pos = self.points.partition_point(|&p| p < h);
        if pos == self.points.len() { 0 } else { pos }
    }

    /// The point index closest after any probe, and its distance.
    #[inline]
    fn best(&self, hash: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let mut best = (u64::MAX, 0usize);
        for i in 0..self.probes {
            let h = Self::probe(hash, i);
            let pos = self.successor(h);
            let distance = self.points[pos].wrapping_sub(h);
            if distance < best.0 || (distance == best.0 && pos < best.1) {
                best = (distance, pos);
            }
        }
        Some(best.1)
    }

    fn rebuild(&mut self) {
        let mut pairs: Vec<(u64, u32)> = self
            .members
            .hashes
            .iter()
            .zip(&self.members.weights)
            .enumerate()
            .flat_map(|(i, (&h, &w))| (0..w).map(move |p| (node_point(h, p), i as u32)))
            .collect();
        pairs.sort_unstable();
        self.points = pairs.iter().map(|p| p.0).collect();
        self.owners = pairs.iter().map(|p| p.1).collect();
    }
}

impl<N: StableHash + Eq> MultiProbe<N> {
    /// Whether `node` is a member.
    ///
    /// ```
    /// use keel_hashring::MultiProbe;
    ///
    /// let mut mp = MultiProbe::new();
    /// mp.add("a")?;
    /// assert!(mp.contains(&"a"));
    /// assert!(!mp.contains(&"b"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains(&self, node: &N) -> bool {
        self.members.position(node).is_some()
    }

    /// Adds `node`.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateNode`] if it is already a member.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, MultiProbe};
    ///
    /// let mut mp = MultiProbe::new();
    /// mp.add("a")?;
    /// assert_eq!(mp.node("k"), Some(&"a"));
    /// assert_eq!(mp.add("a"), Err(Error::DuplicateNode));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&mut self, node: N) -> Result<(), Error> {
        self.add_weighted(node, 1)
    }

    /// Adds `node` with `weight`: `weight` points, so about `weight / W` of the keys (see
    /// the type's docs for the spread). Only keys that move to the new node move.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroWeight`], [`Error::DuplicateNode`], or [`Error::TooManyPoints`] past
    /// [`MAX_POINTS`](crate::MAX_POINTS) points in all.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, MultiProbe};
    ///
    /// let mut mp = MultiProbe::new();
    /// for i in 0..20u32 {
    ///     mp.add_weighted(i, if i < 10 { 3 } else { 1 })?;
    /// }
    /// // The ten weight-3 nodes hold 30 of the 40 points: about 3/4 of the keys.
    /// let heavy = (0..20_000u32).filter(|k| *mp.node(k).unwrap() < 10).count();
    /// assert!((14_000..16_000).contains(&heavy), "{heavy}");
    /// assert_eq!(mp.add_weighted(99, 0), Err(Error::ZeroWeight));
    /// assert_eq!(mp.add_weighted(0, 2), Err(Error::DuplicateNode));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_weighted(&mut self, node: N, weight: u32) -> Result<(), Error> {
        add_points(&mut (self.points.len() as u64), weight, 1)?;
        self.members.insert(node, weight)?;
        self.rebuild();
        Ok(())
    }

    /// Adds every `(node, weight)` and rebuilds once. On error nothing is added.
    ///
    /// # Errors
    ///
    /// As [`add_weighted`](Self::add_weighted), for any of them; [`Error::DuplicateNode`] if
    /// one is repeated.
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, MultiProbe};
    ///
    /// let mut mp = MultiProbe::new();
    /// mp.extend_weighted([("a", 1), ("b", 2)])?;
    /// assert_eq!(mp.len(), 2);
    /// assert_eq!(mp.extend_weighted([("c", 1), ("d", 0)]), Err(Error::ZeroWeight));
    /// assert_eq!(mp.len(), 2); // nothing added
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend_weighted<I: IntoIterator<Item = (N, u32)>>(
        &mut self,
        nodes: I,
    ) -> Result<(), Error> {
        let mut points = self.points.len() as u64;
        self.members
            .extend(nodes, |weight| add_points(&mut points, weight, 1))?;
        self.rebuild();
        Ok(())
    }

    /// Adds every node and rebuilds once. On error nothing is added.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateNode`] if any is already a member or repeated, or
    /// [`Error::TooManyPoints`].
    ///
    /// # Example
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, Error, MultiProbe};
    ///
    /// let mut mp = MultiProbe::new();
    /// mp.extend(["a", "b", "c"])?;
    /// assert_eq!(mp.len(), 3);
    /// assert_eq!(mp.extend(["d", "a"]), Err(Error::DuplicateNode));
    /// assert_eq!(mp.len(), 3); // nothing added
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extend<I: IntoIterator<Item = N>>(&mut self, nodes: I) -> Result<(), Error> {
        self.extend_weighted(nodes.into_iter().map(|node| (node, 1)))
    }

    /// Removes `node`; returns whether it was a member. Only its keys move.
    ///
    /// ```
    /// use keel_hashring::{ConsistentHash, MultiProbe};
    ///
    /// let mut mp = MultiProbe::new();
    /// mp.extend(["a", "b", "c"])?;
    /// let before: Vec<_> = (0..100u32).map(|k| mp.node(&k).copied()).collect();
    /// assert!(mp.remove(&"b"));
    /// assert!(!mp.remove(&"b"));
    /// for (k, owner) in (0..100u32).zip(before) {
    ///     if owner != Some("b") {
    ///         assert_eq!(mp.node(&k).copied(), owner); // only b's keys moved
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&mut self, node: &N) -> bool {
        if self.members.remove(node).is_none() {
            return false;
        }
        self.rebuild();
        true
    }
}

impl<N> ConsistentHash for MultiProbe<N> {
    type Node = N;
    type Hash = u64;

    fn len(&self) -> usize {
        self.members.len()
    }

    #[inline]
    fn node_for_hash(&self, hash: u64) -> Option<&N> {
        let pos = self.best(hash)?;
        Some(&self.members.nodes[self.owners[pos] as usize])
    }

    fn replicas_for_hash<'a>(&'a self, hash: u64, out: &mut [Option<&'a N>]) -> usize {
        let mut distinct = Distinct::new(out, self.members.len(), self.members.len());
        let Some(start) = self.best(hash) else {
            return 0;
        };
        // The owner, then the nodes that follow it on the circle.
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
    use crate::MAX_POINTS;

    #[test]
    fn weight_one_keeps_the_unweighted_points() {
        // Point 0 of every node is where it sat before weights: placements did not move.
        let hash = 0x1234_5678_9abc_def0;
        assert_eq!(node_point(hash, 0), combine(hash, 0x6d70));
        let mut mp = MultiProbe::new();
        mp.extend_weighted([(1u32, 1), (2, 4)]).unwrap();
        assert_eq!(mp.points.len(), 5);
        assert_eq!(
            mp.owners
                .iter()
                .filter(|&&o| mp.members.nodes[o as usize] == 2)
                .count(),
            4
        );
    }

    #[test]
    fn too_many_points_is_an_error() {
        let mut mp = MultiProbe::new();
        assert_eq!(
            mp.add_weighted(1u8, u32::MAX),
            Err(Error::TooManyPoints {
                points: u64::from(u32::MAX),
                max: MAX_POINTS
            })
        );
        assert!(mp.members.nodes.is_empty());
    }

    /// Both add paths count points with the shared rule: one past the limit is refused with
    /// the total asked for, the sum cannot overflow, and a refusal changes nothing. (The
    /// exact limit is accepted: `ring::tests::point_budget_stops_at_the_limit`.)
    #[test]
    fn points_are_bounded_on_every_path() {
        let half = (MAX_POINTS / 2) as u32;
        let mut mp = MultiProbe::new();
        let over = Err(Error::TooManyPoints {
            points: MAX_POINTS + 1,
            max: MAX_POINTS,
        });
        assert_eq!(mp.add_weighted(1u32, 2 * half + 1), over);
        assert_eq!(mp.extend_weighted([(1, half), (2, half + 1)]), over);
        assert_eq!(
            mp.extend_weighted([(1, 2 * half), (2, u32::MAX)]),
            Err(Error::TooManyPoints {
                points: MAX_POINTS + u64::from(u32::MAX),
                max: MAX_POINTS
            })
        );
        assert_eq!((mp.len(), mp.points.len()), (0, 0));
    }

    #[test]
    fn zero_probes_is_an_error() {
        assert_eq!(
            MultiProbe::<u8>::builder().probes(0).build().unwrap_err(),
            Error::ZeroProbes
        );
    }
}
