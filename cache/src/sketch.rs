//! A count-min sketch of 4-bit counters: TinyLFU's estimate of how often a key was asked for.
//!
//! Laid out as Caffeine's: a key's four counters sit in one 64-byte block, so an increment
//! touches one cache line. Readers increment it through relaxed atomics without a lock;
//! a lost increment under a race only makes the estimate a little low.

use keel_core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Four saturating 4-bit counters per key, halved every `sample` increments so old
/// popularity fades (TinyLFU's reset).
#[derive(Debug)]
pub(crate) struct Sketch {
    blocks: Box<[Block]>,
    /// Blocks minus one.
    block_mask: u64,
    additions: AtomicU32,
    sample: u32,
    /// Whether the counters have been halved at least once (see [`Sketch::halved`]).
    halved: bool,
    /// Words per entry the sketch is sized for (see [`Sketch::new`]).
    width: usize,
}

/// From this many entries a shard's sketch has a word per two entries: 4 bytes per entry
/// saved, for at most 0.03 points of miss ratio on arc-oltp (2,336 entries per shard).
/// Smaller sketches lose much more (lirs-gli at 126 and 252 entries: 5 to 7 points),
/// where the bytes hardly matter.
const HALF_SKETCH_FROM: usize = 2048;

/// Eight words, one cache line: a key's four counters are in one block, so an increment
/// touches one line (aligned, which a plain word slice was not) and one bounds check
/// covers all four (indexing the words apart took four per look).
#[derive(Debug)]
#[repr(align(64))]
struct Block([AtomicU64; 8]);

impl Block {
    fn copy(&self) -> Block {
        Block(std::array::from_fn(|i| {
            AtomicU64::new(self.0[i].load(Ordering::Relaxed))
        }))
    }
}

const RESET_MASK: u64 = 0x7777_7777_7777_7777;

impl Sketch {
    /// A sketch sized for a cache of `capacity` entries: `width` words (16 counters each) per
    /// entry, or half that from [`HALF_SKETCH_FROM`] entries up. Caffeine takes one; a tiny
    /// shard takes more (see `TINY_SKETCH_WIDTH` in `shard.rs`). Either way a reset comes
    /// every ten increments per entry, so a wider sketch has fewer collisions, not a longer
    /// memory.
    pub(crate) fn new(capacity: usize, width: usize) -> Sketch {
        let blocks = Self::words_for(capacity, width) / 8;
        Sketch {
            blocks: (0..blocks)
                .map(|_| Block(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            block_mask: blocks as u64 - 1,
            additions: AtomicU32::new(0),
            sample: Self::sample_for(capacity),
            halved: false,
            width,
        }
    }

    fn words_for(capacity: usize, width: usize) -> usize {
        let words = (capacity.next_power_of_two() * width).max(8);
        if capacity >= HALF_SKETCH_FROM {
            words / 2
        } else {
            words
        }
    }

    fn sample_for(capacity: usize) -> u32 {
        (capacity.max(16) * 10).min(u32::MAX as usize / 2) as u32
    }

    /// Resizes for a cache of `capacity` entries (under the shard's write lock), keeping
    /// every key's counts: a key's block is the low bits of its hash, so each new block
    /// starts as a copy of the old block its keys came from.
    pub(crate) fn grow(&mut self, capacity: usize) {
        let blocks = Self::words_for(capacity, self.width) / 8;
        let old = self.blocks.len();
        if blocks > old {
            // Word `w` of the larger table holds what word `w mod old words` held: block
            // `b` copies block `b mod old blocks` (both counts are powers of two).
            self.blocks = (0..blocks)
                .map(|b| self.blocks[b & (old - 1)].copy())
                .collect();
            self.block_mask = blocks as u64 - 1;
        }
        self.sample = Self::sample_for(capacity);
    }

    /// `hash`'s block and the (word in the block, bit shift) of each of its four counters.
    #[inline]
    fn slots(&self, hash: u64) -> (&[AtomicU64; 8], [(usize, u32); 4]) {
        let h = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let h = h ^ (h >> 32);
        let block = &self.blocks[(h & self.block_mask) as usize].0;
        let counters = (h >> 32) as u32;
        let slots = std::array::from_fn(|i| {
            let c = counters >> (i * 8);
            let nibble = (c >> 3) & 15;
            ((c & 7) as usize, nibble * 4)
        });
        (block, slots)
    }

    /// The estimated number of recent requests for `hash`, 0 to 15.
    #[inline]
    pub(crate) fn estimate(&self, hash: u64) -> u8 {
        let (block, slots) = self.slots(hash);
        slots
            .iter()
            .map(|&(w, s)| (block[w & 7].load(Ordering::Relaxed) >> s) & 15)
            .min()
            .unwrap_or(0) as u8
    }

    /// Records a request for `hash`. Saturated counters are not written, so hot keys stop
    /// dirtying their cache line. Returns whether the caller should [`reset`](Sketch::reset).
    #[inline]
    pub(crate) fn increment(&self, hash: u64, from_read: bool) -> bool {
        let (block, slots) = self.slots(hash);
        let counts = slots.map(|(w, s)| (block[w & 7].load(Ordering::Relaxed) >> s) & 15);
        let min = counts.iter().copied().min().unwrap_or(15);
        if min == 15 {
            return false;
        }
        // Conservative update: raise only the counters at the minimum, which keeps
        // collisions from inflating the estimate (measured: it matters on loop traces).
        for (&(w, s), c) in slots.iter().zip(counts) {
            if c != min {
                continue;
            }
            // One attempt: a lost race costs one increment, and the compare-exchange on the
            // value just read never carries into the next nibble.
            let word = &block[w & 7];
            let v = word.load(Ordering::Relaxed);
            if (v >> s) & 15 < 15 {
                let _ =
                    word.compare_exchange(v, v + (1 << s), Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        // Readers count their additions in fifteens, so they do not all write the shared
        // counter: a key's read is counted when its minimum (0 to 14), offset by bits of its
        // hash, is a multiple of 15 (one in 15 increments of each key). Derived from the
        // hash and the counts, not from a thread-local tick, so a replay with a seeded
        // hasher makes the same resets in every run.
        let add = if from_read && cfg!(not(keel_loom)) {
            if !(min + (hash >> 32)).is_multiple_of(15) {
                return false;
            }
            15
        } else {
            1
        };
        self.additions.fetch_add(add, Ordering::Relaxed) + add >= self.sample
    }

    /// [`increment`](Sketch::increment) for a caller with the sketch to itself (the shard's
    /// write lock, which keeps readers out): plain loads and stores instead of
    /// compare-exchanges, which are most of an increment's cost. Same counts as `increment`.
    #[inline]
    pub(crate) fn increment_exclusive(&mut self, hash: u64) {
        let (block, slots) = self.slots(hash);
        let counts = slots.map(|(w, s)| (block[w & 7].load(Ordering::Relaxed) >> s) & 15);
        let min = counts.iter().copied().min().unwrap_or(15);
        if min == 15 {
            return;
        }
        for (&(w, s), c) in slots.iter().zip(counts) {
            if c == min {
                // Two counters may share a word: read it again rather than reuse `counts`.
                let word = &block[w & 7];
                let v = word.load(Ordering::Relaxed);
                if (v >> s) & 15 < 15 {
                    word.store(v + (1 << s), Ordering::Relaxed);
                }
            }
        }
        let n = self.additions.load(Ordering::Relaxed);
        self.additions.store(n + 1, Ordering::Relaxed);
    }

    /// Halves every counter once enough increments were recorded (under the shard's write
    /// lock).
    #[inline]
    pub(crate) fn reset(&mut self) {
        if self.additions.load(Ordering::Relaxed) >= self.sample {
            self.halve();
        }
    }

    #[cold]
    fn halve(&mut self) {
        for w in self.blocks.iter().flat_map(|block| &block.0) {
            let v = w.load(Ordering::Relaxed);
            w.store((v >> 1) & RESET_MASK, Ordering::Relaxed);
        }
        self.additions.store(self.sample / 2, Ordering::Relaxed);
        self.halved = true;
    }

    /// Whether the counters have been halved. From then on two keys asked for equally often
    /// may differ by one count: one asked for since the halving leads one asked for just
    /// before it (halving drops the low bit, and only the first has counted again).
    pub(crate) fn halved(&self) -> bool {
        self.halved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Sketch {
        fn word_count(&self) -> usize {
            self.blocks.len() * 8
        }
    }

    #[test]
    fn large_sketches_take_a_word_per_two_entries() {
        assert_eq!(Sketch::new(1_000, 1).word_count(), 1_024);
        assert_eq!(Sketch::new(HALF_SKETCH_FROM - 1, 1).word_count(), 2_048);
        assert_eq!(Sketch::new(HALF_SKETCH_FROM, 1).word_count(), 1_024);
        assert_eq!(Sketch::new(125_000, 1).word_count(), 65_536);
    }

    #[test]
    fn a_wide_sketch_keeps_its_width_as_it_grows() {
        let mut s = Sketch::new(16, 4);
        assert_eq!(s.word_count(), 64);
        s.grow(100);
        assert_eq!(s.word_count(), 512);
        // At least one block, however small.
        assert_eq!(Sketch::new(1, 4).word_count(), 8);
        assert_eq!(Sketch::new(0, 1).word_count(), 8);
    }

    #[test]
    fn a_wide_sketch_mistakes_fewer_keys_asked_for_once_for_keys_asked_twice() {
        // Up to a 30-entry sketch's first halving (300 requests), each request for a new key:
        // how many of those keys read 2 or more, as if asked for twice.
        let misread = |width| {
            let s = Sketch::new(30, width);
            let keys: Vec<u64> = (0..299u64)
                .map(|k| k.wrapping_mul(0x2545_f491_4f6c_dd1d))
                .collect();
            for &h in &keys {
                assert!(!s.increment(h, false), "no halving yet");
            }
            keys.iter().filter(|&&h| s.estimate(h) >= 2).count()
        };
        let (narrow, wide) = (misread(1), misread(4));
        assert!(narrow >= 30, "{narrow} of 299 read 2 at one word per entry");
        assert!(
            wide * 5 <= narrow,
            "{wide} of 299 read 2 at four words per entry"
        );
    }

    #[test]
    fn growing_keeps_every_count() {
        let mut s = Sketch::new(16, 1);
        let keys: Vec<u64> = (0..40u64)
            .map(|k| k.wrapping_mul(0x2545_f491_4f6c_dd1d))
            .collect();
        for (i, &h) in keys.iter().enumerate() {
            for _ in 0..i % 5 {
                s.increment_exclusive(h);
            }
        }
        let before: Vec<u8> = keys.iter().map(|&h| s.estimate(h)).collect();
        s.grow(5_000);
        assert_eq!(s.word_count(), Sketch::new(5_000, 1).word_count());
        let after: Vec<u8> = keys.iter().map(|&h| s.estimate(h)).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn counts_saturate_and_fade() {
        let mut s = Sketch::new(64, 1);
        for _ in 0..3 {
            s.increment(42, false);
        }
        assert_eq!(s.estimate(42), 3);
        for _ in 0..40 {
            s.increment(42, false);
        }
        assert_eq!(s.estimate(42), 15);
        // Enough other traffic asks for a reset, which halves the counters.
        let mut due = false;
        for k in 0..2_000u64 {
            due |= s.increment(k.wrapping_mul(0x1234_5678_9abc_def1), false);
        }
        assert!(due);
        assert!(!s.halved());
        s.reset();
        assert!(s.halved());
        assert!(s.estimate(42) < 15);
    }

    #[test]
    fn exclusive_increments_count_as_shared_ones() {
        let mut shared = Sketch::new(256, 1);
        let mut exclusive = Sketch::new(256, 1);
        for i in 0..5_000u64 {
            let h = (i % 700).wrapping_mul(0x2545_f491_4f6c_dd1d);
            shared.increment(h, false);
            exclusive.increment_exclusive(h);
            if i % 1_000 == 999 {
                shared.reset();
                exclusive.reset();
            }
        }
        let words = |s: &mut Sketch| -> Vec<u64> {
            s.blocks
                .iter()
                .flat_map(|block| &block.0)
                .map(|w| w.load(Ordering::Relaxed))
                .collect()
        };
        assert_eq!(words(&mut shared), words(&mut exclusive));
        assert_eq!(
            shared.additions.load(Ordering::Relaxed),
            exclusive.additions.load(Ordering::Relaxed)
        );
    }
}
