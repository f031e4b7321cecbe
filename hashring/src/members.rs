//! The member list every algorithm keeps: nodes in a canonical order with their weights and
//! hashes, so results never depend on the order nodes were added.

use crate::error::Error;
use crate::key::{StableHash, hash_key};

/// Nodes sorted by their stable hash (ties broken by insertion, which needs a 64-bit
/// collision between distinct nodes to matter).
#[derive(Debug, Clone)]
pub(crate) struct Members<N> {
    pub(crate) nodes: Vec<N>,
    pub(crate) hashes: Vec<u64>,
    pub(crate) weights: Vec<u32>,
}

impl<N> Default for Members<N> {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            hashes: Vec::new(),
            weights: Vec::new(),
        }
    }
}

impl<N: StableHash + Eq> Members<N> {
    /// Index of `node`, if it is a member.
    pub(crate) fn position(&self, node: &N) -> Option<usize> {
        self.position_hashed(hash_key(node), node)
    }

    /// [`position`](Self::position) given the node's hash.
    fn position_hashed(&self, hash: u64, node: &N) -> Option<usize> {
        let start = self.hashes.partition_point(|&h| h < hash);
        (start..self.hashes.len())
            .take_while(|&i| self.hashes[i] == hash)
            .find(|&i| self.nodes[i] == *node)
    }

    /// Inserts `node` in canonical order and returns its index.
    pub(crate) fn insert(&mut self, node: N, weight: u32) -> Result<usize, Error> {
        if weight == 0 {
            return Err(Error::ZeroWeight);
        }
        if self.position(&node).is_some() {
            return Err(Error::DuplicateNode);
        }
        let hash = hash_key(&node);
        let at = self.hashes.partition_point(|&h| h <= hash);
        self.nodes.insert(at, node);
        self.hashes.insert(at, hash);
        self.weights.insert(at, weight);
        Ok(at)
    }

    /// Inserts every `(node, weight)` in canonical order, in `O((n + k) log k)` for `k` new
    /// nodes rather than one `O(n)` insertion each. `check` sees each weight in order first
    /// (for limits on the total). On error nothing changes, and the error is the one the
    /// first bad entry in order would give to [`insert`](Self::insert) after `check`.
    pub(crate) fn extend(
        &mut self,
        items: impl IntoIterator<Item = (N, u32)>,
        mut check: impl FnMut(u32) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // (hash, arrival, node, weight); entries after the first failing one are not read.
        let mut added: Vec<(u64, usize, N, u32)> = Vec::new();
        let mut failed = None;
        for (arrival, (node, weight)) in items.into_iter().enumerate() {
            if let Err(e) = check(weight).and(if weight == 0 {
                Err(Error::ZeroWeight)
            } else {
                Ok(())
            }) {
                failed = Some(e);
                break;
            }
            added.push((hash_key(&node), arrival, node, weight));
        }
        // Stable: equal hashes keep their arrival order, as one-by-one insertion leaves them.
        added.sort_by_key(|entry| entry.0);
        let mut run = 0;
        let duplicate = (0..added.len()).any(|k| {
            if k > 0 && added[k - 1].0 != added[k].0 {
                run = k;
            }
            let (hash, _, node, _) = &added[k];
            self.position_hashed(*hash, node).is_some()
                || added[run..k].iter().any(|other| other.2 == *node)
        });
        // Every entry read precedes the failing one, so a duplicate among them comes first.
        if duplicate {
            return Err(Error::DuplicateNode);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let total = self.len() + added.len();
        let mut nodes = Vec::with_capacity(total);
        let mut hashes = Vec::with_capacity(total);
        let mut weights = Vec::with_capacity(total);
        let mut old = core::mem::take(&mut self.nodes)
            .into_iter()
            .zip(core::mem::take(&mut self.hashes))
            .zip(core::mem::take(&mut self.weights))
            .peekable();
        for (hash, _, node, weight) in added {
            // Members already there go first among equal hashes, as they were added first.
            while let Some(((n, h), w)) = old.next_if(|((_, h), _)| *h <= hash) {
                nodes.push(n);
                hashes.push(h);
                weights.push(w);
            }
            nodes.push(node);
            hashes.push(hash);
            weights.push(weight);
        }
        for ((n, h), w) in old {
            nodes.push(n);
            hashes.push(h);
            weights.push(w);
        }
        *self = Self {
            nodes,
            hashes,
            weights,
        };
        Ok(())
    }

    /// Removes `node`, returning it and its weight.
    pub(crate) fn remove(&mut self, node: &N) -> Option<(N, u32)> {
        let at = self.position(node)?;
        self.hashes.remove(at);
        let weight = self.weights.remove(at);
        Some((self.nodes.remove(at), weight))
    }
}

impl<N> Members<N> {
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// `(node, weight)` pairs in canonical order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (&N, u32)> + '_ {
        self.nodes.iter().zip(self.weights.iter().copied())
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * core::mem::size_of::<N>()
            + self.hashes.capacity() * 8
            + self.weights.capacity() * 4
    }
}

impl<N> Members<N> {
    /// Removes the member at `at`.
    pub(crate) fn remove_at(&mut self, at: usize) -> (N, u32) {
        self.hashes.remove(at);
        let weight = self.weights.remove(at);
        (self.nodes.remove(at), weight)
    }
}

/// A saved member count, to undo a batch of inserts.
#[derive(Debug)]
pub(crate) struct Snapshot(Vec<u64>);

impl<N: StableHash + Eq> Members<N> {
    /// Remembers the current members so a failed batch can be undone.
    pub(crate) fn clone_shape(&self) -> Snapshot {
        Snapshot(self.hashes.clone())
    }

    /// Removes every member inserted since `before` was taken.
    pub(crate) fn restore(&mut self, before: Snapshot) {
        let mut keep = before.0.into_iter().peekable();
        let mut i = 0;
        while i < self.hashes.len() {
            if keep.peek() == Some(&self.hashes[i]) {
                keep.next();
                i += 1;
            } else {
                self.remove_at(i);
            }
        }
    }
}
