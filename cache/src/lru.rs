//! `Lru`: an exact least-recently-used cache for one thread.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::BuildError;

/// Marks "no node" in the intrusive list.
const NIL: u32 = u32::MAX;

/// The largest capacity an [`Lru`] supports: node indexes are `u32`.
///
/// ```
/// use keel_cache::{BuildError, Lru, MAX_LRU_CAPACITY};
///
/// let err = Lru::<u8, u8>::new(MAX_LRU_CAPACITY + 1).unwrap_err();
/// assert_eq!(
///     err,
///     BuildError::CapacityTooLarge {
///         requested: MAX_LRU_CAPACITY as u64 + 1,
///         max: MAX_LRU_CAPACITY as u64,
///     }
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_LRU_CAPACITY: usize = (u32::MAX - 1) as usize;

struct Node<K, V> {
    key: K,
    value: V,
    /// Towards the most recently used end.
    prev: u32,
    /// Towards the least recently used end.
    next: u32,
}

/// An exact LRU cache: O(1) `get`, `put`, `pop` and eviction, for one thread (`&mut self`).
///
/// When full, inserting a new key evicts the least recently used entry. [`get`](Lru::get) and
/// [`put`](Lru::put) make an entry the most recently used; [`peek`](Lru::peek) does not.
///
/// Entries live in one dense `Vec` linked by `u32` indexes, and the hash table stores only
/// those indexes, so a `u64 → u64` entry costs about 36 bytes in total at 1M entries
/// (measured; up to about 48 at 10k, where the `Vec` and table round up further).
///
/// # Example
///
/// ```
/// use keel_cache::Lru;
///
/// let mut lru = Lru::new(2)?;
/// lru.put("a", 1);
/// lru.put("b", 2);
/// assert_eq!(lru.get("a"), Some(&1)); // "a" is now the most recently used
/// lru.put("c", 3); // evicts "b", the least recently used
/// assert_eq!(lru.peek("b"), None);
/// let order: Vec<_> = lru.iter().map(|(k, _)| *k).collect();
/// assert_eq!(order, ["c", "a"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lru<K, V, S = crate::DefaultHashBuilder> {
    table: HashTable<u32>,
    nodes: Vec<Node<K, V>>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    cap: usize,
    hasher: S,
}

impl<K: Hash + Eq, V> Lru<K, V> {
    /// An empty cache holding at most `capacity` entries.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroCapacity`] for 0 and [`BuildError::CapacityTooLarge`] above
    /// [`MAX_LRU_CAPACITY`].
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let lru: Lru<u32, String> = Lru::new(100)?;
    /// assert_eq!(lru.cap(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(capacity: usize) -> Result<Self, BuildError> {
        Self::with_hasher(capacity, crate::DefaultHashBuilder::random())
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> Lru<K, V, S> {
    /// An empty cache holding at most `capacity` entries, hashing keys with `hasher`.
    ///
    /// # Errors
    ///
    /// As [`Lru::new`].
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// use std::collections::hash_map::RandomState;
    /// let lru: Lru<u32, u32, RandomState> = Lru::with_hasher(8, RandomState::new())?;
    /// assert!(lru.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_hasher(capacity: usize, hasher: S) -> Result<Self, BuildError> {
        check_capacity(capacity)?;
        Ok(Lru {
            table: HashTable::new(),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            cap: capacity,
            hasher,
        })
    }

    /// The maximum number of entries.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru: Lru<u32, u32> = Lru::new(2)?;
    /// assert_eq!(lru.cap(), 2);
    /// lru.resize(5)?;
    /// assert_eq!(lru.cap(), 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The number of entries, at most [`cap`](Lru::cap).
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(2)?;
    /// lru.put(1, 1);
    /// assert_eq!(lru.len(), 1);
    /// lru.put(2, 2);
    /// lru.put(3, 3); // evicts 1
    /// assert_eq!(lru.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cache holds no entry.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(2)?;
    /// assert!(lru.is_empty());
    /// lru.put("k", 1);
    /// assert!(!lru.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    #[inline]
    fn find<Q>(&self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let nodes = &self.nodes;
        self.table
            .find(hash, |&i| nodes[i as usize].key.borrow() == key)
            .copied()
    }

    /// The value of `key`, making it the most recently used.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(1)?;
    /// lru.put(1, "one");
    /// assert_eq!(lru.get(&1), Some(&"one"));
    /// assert_eq!(lru.get(&2), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.find(key)?;
        self.touch(i);
        Some(&self.nodes[i as usize].value)
    }

    /// A mutable reference to the value of `key`, making it the most recently used.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(1)?;
    /// lru.put("n", 1);
    /// if let Some(n) = lru.get_mut("n") { *n += 1; }
    /// assert_eq!(lru.peek("n"), Some(&2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.find(key)?;
        self.touch(i);
        Some(&mut self.nodes[i as usize].value)
    }

    /// The value of `key` without changing its recency.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(2)?;
    /// lru.put(1, 1);
    /// lru.put(2, 2);
    /// assert_eq!(lru.peek(&1), Some(&1)); // 1 stays least recently used
    /// lru.put(3, 3);
    /// assert!(!lru.contains(&1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(key).map(|i| &self.nodes[i as usize].value)
    }

    /// Whether `key` is cached, without changing its recency.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(2)?;
    /// lru.put(1, "a");
    /// lru.put(2, "b");
    /// assert!(lru.contains(&1)); // 1 stays least recently used
    /// assert!(!lru.contains(&3));
    /// lru.put(3, "c");
    /// assert!(!lru.contains(&1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(key).is_some()
    }

    /// The least recently used entry (the next to be evicted), without changing its recency.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(2)?;
    /// lru.put("old", 1);
    /// lru.put("new", 2);
    /// assert_eq!(lru.peek_lru(), Some((&"old", &1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peek_lru(&self) -> Option<(&K, &V)> {
        (self.tail != NIL).then(|| {
            let n = &self.nodes[self.tail as usize];
            (&n.key, &n.value)
        })
    }

    /// Inserts or replaces `key`, making it the most recently used; returns the value it
    /// replaced. When full, a new key evicts the least recently used entry.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(2)?;
    /// assert_eq!(lru.put("a", 1), None);
    /// assert_eq!(lru.put("a", 2), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn put(&mut self, key: K, value: V) -> Option<V> {
        match self.push(key, value) {
            Some(Pushed::Replaced(v)) => Some(v),
            _ => None,
        }
    }

    /// Inserts or replaces `key` like [`put`](Lru::put), returning what left the cache: the
    /// replaced value or the evicted entry.
    ///
    /// ```
    /// # use keel_cache::{Lru, Pushed};
    /// let mut lru = Lru::new(1)?;
    /// assert_eq!(lru.push(1, 'a'), None);
    /// assert_eq!(lru.push(1, 'b'), Some(Pushed::Replaced('a')));
    /// assert_eq!(lru.push(2, 'c'), Some(Pushed::Evicted(1, 'b')));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn push(&mut self, key: K, value: V) -> Option<Pushed<K, V>> {
        let hash = self.hasher.hash_one(&key);
        let nodes = &self.nodes;
        if let Some(&i) = self.table.find(hash, |&i| nodes[i as usize].key == key) {
            self.touch(i);
            let old = std::mem::replace(&mut self.nodes[i as usize].value, value);
            return Some(Pushed::Replaced(old));
        }
        if self.nodes.len() >= self.cap {
            // Reuse the least recently used node in place: no allocation, no slab move.
            let i = self.tail;
            let old_hash = self.hasher.hash_one(&self.nodes[i as usize].key);
            self.remove_from_table(old_hash, i);
            let node = &mut self.nodes[i as usize];
            let old_key = std::mem::replace(&mut node.key, key);
            let old_value = std::mem::replace(&mut node.value, value);
            self.touch(i);
            self.insert_into_table(hash, i);
            return Some(Pushed::Evicted(old_key, old_value));
        }
        let i = self.nodes.len() as u32;
        self.nodes.push(Node {
            key,
            value,
            prev: NIL,
            next: NIL,
        });
        self.link_front(i);
        self.insert_into_table(hash, i);
        None
    }

    /// Removes `key`, returning its value.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(2)?;
    /// lru.put(7, "seven");
    /// assert_eq!(lru.pop(&7), Some("seven"));
    /// assert!(lru.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let nodes = &self.nodes;
        let entry = self
            .table
            .find_entry(hash, |&i| nodes[i as usize].key.borrow() == key)
            .ok()?;
        let (i, _) = entry.remove();
        Some(self.remove_node(i).1)
    }

    /// Removes and returns the least recently used entry.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(2)?;
    /// lru.put(1, 1);
    /// lru.put(2, 2);
    /// assert_eq!(lru.pop_lru(), Some((1, 1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_lru(&mut self) -> Option<(K, V)> {
        if self.tail == NIL {
            return None;
        }
        let i = self.tail;
        let hash = self.hasher.hash_one(&self.nodes[i as usize].key);
        self.remove_from_table(hash, i);
        Some(self.remove_node(i))
    }

    /// Changes the capacity, evicting least recently used entries until the cache fits.
    ///
    /// # Errors
    ///
    /// As [`Lru::new`]; the cache is unchanged on error.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(3)?;
    /// for k in 0..3 { lru.put(k, k); }
    /// lru.resize(1)?;
    /// assert_eq!(lru.len(), 1);
    /// assert!(lru.contains(&2));
    /// assert!(lru.resize(0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resize(&mut self, capacity: usize) -> Result<(), BuildError> {
        check_capacity(capacity)?;
        while self.nodes.len() > capacity {
            self.pop_lru();
        }
        self.cap = capacity;
        if self.nodes.capacity() > capacity {
            self.nodes.shrink_to(capacity);
            self.table.shrink_to(capacity, |&i| {
                self.hasher.hash_one(&self.nodes[i as usize].key)
            });
        }
        Ok(())
    }

    /// Removes every entry; the capacity stays.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(2)?;
    /// lru.put(1, 1);
    /// lru.put(2, 2);
    /// lru.clear();
    /// assert!(lru.is_empty());
    /// assert_eq!(lru.cap(), 2);
    /// assert_eq!(lru.peek_lru(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&mut self) {
        self.table.clear();
        self.nodes.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    /// The entries from most to least recently used, without changing recency.
    ///
    /// ```
    /// # use keel_cache::Lru;
    /// let mut lru = Lru::new(3)?;
    /// for k in 1..=3 { lru.put(k, k * 10); }
    /// let keys: Vec<_> = lru.iter().map(|(k, _)| *k).collect();
    /// assert_eq!(keys, [3, 2, 1]);
    /// let back: Vec<_> = lru.iter().rev().map(|(k, _)| *k).collect();
    /// assert_eq!(back, [1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            nodes: &self.nodes,
            front: self.head,
            back: self.tail,
            left: self.nodes.len(),
        }
    }

    #[inline]
    fn insert_into_table(&mut self, hash: u64, i: u32) {
        let nodes = &self.nodes;
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, i, |&j| hasher.hash_one(&nodes[j as usize].key));
    }

    #[inline]
    fn remove_from_table(&mut self, hash: u64, i: u32) {
        if let Ok(entry) = self.table.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
    }

    /// Unlinks node `i` (already gone from the table) and frees its slot by moving the last
    /// node into it, so the slab stays dense.
    fn remove_node(&mut self, i: u32) -> (K, V) {
        self.unlink(i);
        let last = (self.nodes.len() - 1) as u32;
        if i != last {
            let hash = self.hasher.hash_one(&self.nodes[last as usize].key);
            if let Some(slot) = self.table.find_mut(hash, |&j| j == last) {
                *slot = i;
            }
            let (prev, next) = {
                let n = &self.nodes[last as usize];
                (n.prev, n.next)
            };
            if prev == NIL {
                self.head = i;
            } else {
                self.nodes[prev as usize].next = i;
            }
            if next == NIL {
                self.tail = i;
            } else {
                self.nodes[next as usize].prev = i;
            }
        }
        let node = self.nodes.swap_remove(i as usize);
        (node.key, node.value)
    }

    #[inline]
    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    #[inline]
    fn link_front(&mut self, i: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old;
        }
        if old == NIL {
            self.tail = i;
        } else {
            self.nodes[old as usize].prev = i;
        }
        self.head = i;
    }

    #[inline]
    fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.link_front(i);
        }
    }
}

fn check_capacity(capacity: usize) -> Result<(), BuildError> {
    if capacity == 0 {
        return Err(BuildError::ZeroCapacity);
    }
    if capacity > MAX_LRU_CAPACITY {
        return Err(BuildError::CapacityTooLarge {
            requested: capacity as u64,
            max: MAX_LRU_CAPACITY as u64,
        });
    }
    Ok(())
}

/// What [`Lru::push`] pushed out of the cache.
///
/// ```
/// use keel_cache::{Lru, Pushed};
///
/// let mut lru = Lru::new(2)?;
/// lru.push("a", 1);
/// lru.push("b", 2);
/// match lru.push("c", 3) {
///     Some(Pushed::Evicted(key, value)) => assert_eq!((key, value), ("a", 1)),
///     other => panic!("expected an eviction, got {other:?}"),
/// }
/// assert_eq!(lru.push("c", 4), Some(Pushed::Replaced(3)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed<K, V> {
    /// The key was present; this was its value.
    Replaced(V),
    /// The cache was full; this least recently used entry was evicted.
    Evicted(K, V),
}

/// Iterator over an [`Lru`]'s entries, most recently used first. See [`Lru::iter`].
///
/// It knows its length and runs from both ends; `&Lru` iterates the same way.
///
/// ```
/// # use keel_cache::Lru;
/// let mut lru = Lru::new(3)?;
/// for k in ["x", "y", "z"] {
///     lru.put(k, k.len());
/// }
/// let mut iter = lru.iter();
/// assert_eq!(iter.len(), 3);
/// assert_eq!(iter.next(), Some((&"z", &1)));
/// assert_eq!(iter.next_back(), Some((&"x", &1)));
/// assert_eq!(iter.len(), 1);
/// let keys: Vec<_> = (&lru).into_iter().map(|(k, _)| *k).collect();
/// assert_eq!(keys, ["z", "y", "x"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Iter<'a, K, V> {
    nodes: &'a [Node<K, V>],
    front: u32,
    back: u32,
    left: usize,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let n = &self.nodes[self.front as usize];
        self.front = n.next;
        Some((&n.key, &n.value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<K, V> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let n = &self.nodes[self.back as usize];
        self.back = n.prev;
        Some((&n.key, &n.value))
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

impl<K, V> fmt::Debug for Iter<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("left", &self.left).finish()
    }
}

impl<'a, K: Hash + Eq, V, S: BuildHasher> IntoIterator for &'a Lru<K, V, S> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;
    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}

impl<K: fmt::Debug + Hash + Eq, V: fmt::Debug, S: BuildHasher> fmt::Debug for Lru<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut lru = Lru::new(3).unwrap();
        for k in 0..3 {
            lru.put(k, k);
        }
        lru.get(&0);
        assert_eq!(lru.push(3, 3), Some(Pushed::Evicted(1, 1)));
        assert_eq!(lru.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [3, 0, 2]);
    }

    #[test]
    fn pop_keeps_links_and_table_consistent() {
        let mut lru = Lru::new(5).unwrap();
        for k in 0..5 {
            lru.put(k, k * 10);
        }
        // Popping from the middle moves the last slab node into the hole.
        assert_eq!(lru.pop(&1), Some(10));
        assert_eq!(lru.pop(&1), None);
        for k in [0, 2, 3, 4] {
            assert_eq!(lru.peek(&k), Some(&(k * 10)));
        }
        assert_eq!(
            lru.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [4, 3, 2, 0]
        );
        assert_eq!(lru.pop_lru(), Some((0, 0)));
        assert_eq!(
            lru.iter().rev().map(|(k, _)| *k).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        lru.clear();
        assert!(lru.is_empty());
        assert_eq!(lru.pop_lru(), None);
    }

    #[test]
    fn capacity_errors() {
        assert_eq!(Lru::<u8, u8>::new(0).unwrap_err(), BuildError::ZeroCapacity);
        let mut lru = Lru::<u8, u8>::new(1).unwrap();
        assert!(lru.resize(0).is_err());
        assert_eq!(lru.cap(), 1);
    }
}
