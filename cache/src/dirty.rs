//! The dirty set of a write-back cache: entries written to the cache but not yet to the
//! store, split into shards by key hash so writers of different keys seldom meet, and
//! versioned so a flush removes only the version it wrote.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

/// One shard's dirty entries, each with the sequence number of its latest write.
struct DirtyShard<K, V> {
    map: HashMap<K, (V, u64), foldhash::fast::RandomState>,
    next_seq: u64,
}

/// A shard behind its own lock, on its own cache line.
type ShardSlot<K, V> = CachePadded<Mutex<DirtyShard<K, V>>>;

/// Every dirty entry, by shard.
pub(crate) struct DirtySet<K, V> {
    shards: Box<[ShardSlot<K, V>]>,
    /// Entries over all shards, so a writer can tell when a batch is due without locking
    /// the other shards. Changes only when a key becomes dirty or clean, not on rewrites.
    len: AtomicUsize,
}

/// Entries copied out for one store call: the rows to write, and for each the shard and
/// version it came from, so [`DirtySet::ack`] removes exactly what the store took.
pub(crate) struct Batch<K, V> {
    pub(crate) rows: Vec<(K, V)>,
    marks: Vec<(u32, u64)>,
}

/// Where the next [`DirtySet::next_batch`] continues: the shard to copy next, and the
/// rows copied from earlier shards that did not fill a batch yet.
pub(crate) struct Cursor<K, V> {
    shard: usize,
    pending: Batch<K, V>,
}

impl<K, V> Cursor<K, V> {
    pub(crate) fn new() -> Self {
        Cursor {
            shard: 0,
            pending: Batch {
                rows: Vec::new(),
                marks: Vec::new(),
            },
        }
    }
}

impl<K, V> DirtySet<K, V> {
    /// A dirty set with at least `shards` shards (rounded up to a power of two).
    pub(crate) fn new(shards: usize) -> Self {
        let n = shards.clamp(1, 1 << 12).next_power_of_two();
        DirtySet {
            shards: (0..n)
                .map(|_| {
                    CachePadded::new(Mutex::new(DirtyShard {
                        map: HashMap::default(),
                        next_seq: 0,
                    }))
                })
                .collect(),
            len: AtomicUsize::new(0),
        }
    }

    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        // Middle bits: the cache picks its shard by the high ones and hashbrown its bucket
        // by the low ones.
        (hash >> 24) as usize & (self.shards.len() - 1)
    }

    /// Dirty entries over all shards.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Takes every entry out, leaving the set empty.
    pub(crate) fn drain(&self) -> Vec<(K, V)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let n = shard.map.len();
            out.extend(shard.map.drain().map(|(k, (v, _))| (k, v)));
            self.len.fetch_sub(n, Ordering::Relaxed);
        }
        out
    }
}

/// What [`DirtySet::insert`] did with a write.
pub(crate) enum Marked<K, V> {
    /// The key was clean: now it is dirty, and this many entries are.
    Fresh(usize),
    /// The key was dirty already: its value was replaced.
    Rewritten,
    /// The key was clean and the set full: nothing changed, the write is handed back.
    Full(K, V),
}

impl<K: Hash + Eq + Clone, V: Clone> DirtySet<K, V> {
    /// Marks `key` dirty with `value`, after running `apply` (the cache update) under the
    /// shard's lock, so the cache and the dirty set see the writes of a key in one order.
    /// A key that is clean is refused, without running `apply`, when `max` are dirty.
    pub(crate) fn insert(
        &self,
        hash: u64,
        key: K,
        value: V,
        max: usize,
        apply: impl FnOnce(K, V),
    ) -> Marked<K, V> {
        let mut guard = self.shards[self.shard_index(hash)].lock();
        let shard = &mut *guard;
        let seq = shard.next_seq;
        shard.next_seq += 1;
        match shard.map.entry(key) {
            Entry::Occupied(mut dirty) => {
                apply(dirty.key().clone(), value.clone());
                dirty.insert((value, seq));
                Marked::Rewritten
            }
            Entry::Vacant(clean) => {
                // Counted under the shard's lock, so it comes before the count-down of the
                // flush that removes this entry (counting after the unlock let that
                // count-down go first and wrap the count below zero).
                let before = if max == usize::MAX {
                    self.len.fetch_add(1, Ordering::Relaxed)
                } else {
                    match self
                        .len
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                            (n < max).then_some(n + 1)
                        }) {
                        Ok(n) => n,
                        Err(_) => return Marked::Full(clean.into_key(), value),
                    }
                };
                apply(clean.key().clone(), value.clone());
                clean.insert((value, seq));
                Marked::Fresh(before + 1)
            }
        }
    }

    /// The dirty value of `key`.
    pub(crate) fn get<Q>(&self, hash: u64, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shards[self.shard_index(hash)].lock();
        shard.map.get(key).map(|(v, _)| v.clone())
    }

    /// Copies up to `batch_size` dirty entries, continuing from `cursor`; `None` once every
    /// shard was copied and nothing is left over. Entries stay dirty until [`ack`](Self::ack).
    pub(crate) fn next_batch(
        &self,
        cursor: &mut Cursor<K, V>,
        batch_size: usize,
    ) -> Option<Batch<K, V>> {
        while cursor.pending.rows.len() < batch_size && cursor.shard < self.shards.len() {
            let shard = self.shards[cursor.shard].lock();
            for (k, (v, seq)) in &shard.map {
                cursor.pending.rows.push((k.clone(), v.clone()));
                cursor.pending.marks.push((cursor.shard as u32, *seq));
            }
            cursor.shard += 1;
        }
        if cursor.pending.rows.is_empty() {
            return None;
        }
        // From the end, so each batch moves only its own rows (a shard copied whole may
        // hold many batches).
        let from = cursor.pending.rows.len().saturating_sub(batch_size);
        Some(Batch {
            rows: cursor.pending.rows.split_off(from),
            marks: cursor.pending.marks.split_off(from),
        })
    }

    /// The store took `batch`: each entry stops being dirty unless it was written again
    /// since it was copied (then the newer version stays, for the next flush).
    pub(crate) fn ack(&self, batch: &Batch<K, V>) {
        let mut removed = 0;
        for ((k, _), &(shard, seq)) in batch.rows.iter().zip(&batch.marks) {
            let mut shard = self.shards[shard as usize].lock();
            if shard.map.get(k).is_some_and(|&(_, s)| s == seq) {
                shard.map.remove(k);
                removed += 1;
            }
        }
        self.len.fetch_sub(removed, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_shard_and_ack_keeps_newer_writes() {
        let set = DirtySet::new(8);
        for k in 0..100u64 {
            // Spread over shards by the bits shard_index reads.
            let marked = set.insert(k << 24, k, k, usize::MAX, |_, _| {});
            assert!(matches!(marked, Marked::Fresh(n) if n == k as usize + 1));
        }
        assert!(
            matches!(
                set.insert(5 << 24, 5, 55, usize::MAX, |_, _| {}),
                Marked::Rewritten
            ),
            "a rewrite is not a new entry"
        );
        let mut cursor = Cursor::new();
        let mut batches = Vec::new();
        while let Some(b) = set.next_batch(&mut cursor, 7) {
            assert!(b.rows.len() <= 7);
            batches.push(b);
        }
        let mut keys: Vec<u64> = batches
            .iter()
            .flat_map(|b| b.rows.iter().map(|r| r.0))
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, (0..100).collect::<Vec<_>>());
        // Key 7 is written again after the copy: its newer value must stay dirty.
        set.insert(7 << 24, 7, 77, usize::MAX, |_, _| {});
        for b in &batches {
            set.ack(b);
        }
        assert_eq!(set.len(), 1);
        assert_eq!(set.get(7 << 24, &7), Some(77));
        assert_eq!(set.drain(), [(7, 77)]);
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn a_full_set_refuses_clean_keys_and_takes_rewrites() {
        let set = DirtySet::new(4);
        let mut applied = Vec::new();
        for k in 0..3u64 {
            let marked = set.insert(k << 24, k, k, 3, |k, v| applied.push((k, v)));
            assert!(matches!(marked, Marked::Fresh(_)));
        }
        let refused = set.insert(9 << 24, 9, 90, 3, |k, v| applied.push((k, v)));
        assert!(
            matches!(refused, Marked::Full(9, 90)),
            "the write comes back"
        );
        let rewrite = set.insert(1 << 24, 1, 11, 3, |k, v| applied.push((k, v)));
        assert!(matches!(rewrite, Marked::Rewritten));
        assert_eq!(
            applied,
            [(0, 0), (1, 1), (2, 2), (1, 11)],
            "a refused write is not applied"
        );
        assert_eq!((set.len(), set.get(9 << 24, &9)), (3, None));
    }
}
