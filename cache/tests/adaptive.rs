//! The policy adapts to recency: the recency probe (fresh keys, each asked for again two
//! requests later) hits every second request, as LRU does, where a fixed small queue of
//! one or two entries missed 81% of requests. And in a tiny cache it adapts the other way,
//! down to no small queue at all, when that keeps more of a loop. A working set that moves
//! on grows it again, by main's own hits and by newcomers that keep coming back.
//! While the sketch is young, keys asked for twice displace the keys that filled main.

use keel_cache::{Cache, DefaultHashBuilder, Lru};

fn probe(requests: u64) -> impl Iterator<Item = u64> {
    (0..requests).map(|i| (i / 4) * 2 + i % 2)
}

/// Misses of a `capacity`-entry cache hashed with `seed` over `keys`, inserting each miss.
fn misses(capacity: u64, seed: u64, keys: impl Iterator<Item = u64>) -> u64 {
    let cache = Cache::builder()
        .max_capacity(capacity)
        .hasher(DefaultHashBuilder::with_seed(seed))
        .build()
        .unwrap();
    replay(&cache, keys)
}

/// Misses of `cache` over `keys`, inserting each miss.
fn replay(cache: &Cache<u64, ()>, keys: impl Iterator<Item = u64>) -> u64 {
    let mut misses = 0;
    for k in keys {
        if cache.get(&k).is_none() {
            misses += 1;
            cache.insert(k, ());
        }
    }
    misses
}

/// Misses of a `capacity`-entry LRU over `keys`, inserting each miss.
fn lru_misses(capacity: usize, keys: impl Iterator<Item = u64>) -> u64 {
    let mut lru = Lru::new(capacity).unwrap();
    let mut misses = 0;
    for k in keys {
        if lru.get(&k).is_none() {
            misses += 1;
            lru.put(k, ());
        }
    }
    misses
}

#[test]
fn the_recency_probe_misses_no_more_than_lru() {
    for capacity in [20u64, 50, 500] {
        let lru_misses = lru_misses(capacity as usize, probe(40_000));
        assert_eq!(lru_misses, 20_000);
        for seed in [1, 2, 3] {
            let misses = misses(capacity, seed, probe(40_000));
            // Within 0.1% of the requests: the first pairs, before the queue has grown.
            assert!(
                misses <= lru_misses + 40,
                "capacity {capacity}, seed {seed}: {misses} misses against LRU's {lru_misses}"
            );
        }
    }
}

#[test]
fn a_tiny_cache_keeps_all_it_can_of_a_loop_a_little_longer_than_it() {
    // 33 keys in a loop through 30 entries: the best a cache can do is keep 30 and miss
    // the other 3 a lap (3,000 of 33,000). A small queue that never shrank below one entry
    // held the newcomer about to be refused, so 29 stayed and 4 a lap missed (4,055 here
    // before the small queue of a tiny shard could shrink to nothing).
    for seed in 1..=8 {
        let misses = misses(30, seed, (0..33_000).map(|i| i % 33));
        assert!(
            (3_000..3_300).contains(&misses),
            "seed {seed}: {misses} misses, 3,000 the least possible"
        );
    }
}

#[test]
fn a_loop_does_not_churn_after_the_sketch_halves() {
    // The same loop over 64 hash seeds. After each halving of the sketch, a key just asked
    // for leads by one count the key due next, which was last counted before the halving;
    // admitting on that lead made every newcomer displace the next key due, for a lap after
    // each halving: 25 of these seeds missed 8,679 to 8,702 times (26%). (How many a lap it
    // misses after that: `a_tiny_loop_keeps_no_slot_for_the_newcomer_it_refuses`.)
    for seed in 1..=64 {
        let misses = misses(30, seed, (0..33_000).map(|i| i % 33));
        assert!(
            (3_000..=4_100).contains(&misses),
            "seed {seed}: {misses} misses, 3,000 the least possible"
        );
    }
}

#[test]
fn a_tiny_loop_keeps_no_slot_for_the_newcomer_it_refuses() {
    // The same loop over the same seeds. At 7 of them the small queue kept one of the 30
    // entries for the newcomer about to be refused, and 4 keys a lap missed (4,029 misses):
    // each newcomer back from the small queue's ghost lost to main's victim by the sketch, so
    // main evicted nothing and its ghost never voted the small queue down. Main now takes a
    // few such keys in anyway (a tenth of the shard per lap of main's evictions), and every
    // seed misses 3,092-3,153; the first laps cost the other seeds 52-113 misses more
    // than the 3,040-3,045 they reached before.
    for seed in 1..=64 {
        let misses = misses(30, seed, (0..33_000).map(|i| i % 33));
        assert!(
            (3_000..3_300).contains(&misses),
            "seed {seed}: {misses} misses, 3,000 the least possible"
        );
    }
}

/// Uniform requests over a window of `window` keys that moves on by `step` fresh keys every
/// `every` requests (`compare cache`'s shifting working set), from a fixed xorshift stream.
fn shifting(requests: u64, window: u64, step: u64, every: u64) -> impl Iterator<Item = u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..requests).map(move |i| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (i / every) * step + x % window
    })
}

#[test]
fn a_working_set_that_moves_on_keeps_its_small_queue() {
    // Keys leaving the window keep their sketch counts, so main's ghost votes shrink the
    // small queue; while its vote window scaled only with its length, it shrank to 2 of 500
    // entries, heard no newcomer come back, and each newcomer missed until the sketch
    // counted it three times (53,254 misses here at seed 1; LRU 30,709). With a vote window
    // of at least 1/24 of the shard, 43,943-44,203 over the seeds below.
    let lru_misses = lru_misses(1_000, shifting(600_000, 1_000, 100, 5_000));
    for seed in 1..=4 {
        let misses = misses(1_000, seed, shifting(600_000, 1_000, 100, 5_000));
        assert!(
            misses * 100 <= lru_misses * 150,
            "seed {seed}: {misses} misses against LRU's {lru_misses}"
        );
    }
}

#[test]
fn a_tiny_cache_follows_a_working_set_that_moves_on() {
    // 50 keys through 50 entries (one shard), 10 fresh every 500 requests. The ghost votes'
    // window is one or two evictions there, so the small queue heard almost no refused key
    // come back and stayed at a few entries: each newcomer had to outcount a key that had
    // left the window. Main's own hits now let late returns vote while what main admits is
    // read there.
    let lru_misses = lru_misses(50, shifting(200_000, 50, 10, 500));
    // Without it: 12,235-12,633 misses over these seeds (1.53-1.58x LRU's 7,977); with it
    // 10,522-10,733 (1.32-1.35x).
    for seed in 1..=8 {
        let misses = misses(50, seed, shifting(200_000, 50, 10, 500));
        assert!(
            misses * 100 <= lru_misses * 140,
            "seed {seed}: {misses} misses against LRU's {lru_misses}"
        );
    }
}

#[test]
fn newcomers_that_keep_coming_back_grow_the_small_queue_faster() {
    // On a working set that moves on, over a third of inserts are newcomers back from the
    // small queue's ghost (2-8% on Zipf); while that holds, each of the small queue's votes
    // moves it by three entries. Without it, over these seeds: 43,390-43,684 misses for the
    // 1,000-key set at 1,000 entries (1.41-1.42x LRU's 30,709) and 103,013-103,193 for the
    // 50-key set at 25 (LRU 100,766); with it 39,642-39,795 (1.29-1.30x) and
    // 100,852-100,992.
    let big_lru = lru_misses(1_000, shifting(600_000, 1_000, 100, 5_000));
    let tiny_lru = lru_misses(25, shifting(200_000, 50, 10, 500));
    for seed in 1..=4 {
        let big = misses(1_000, seed, shifting(600_000, 1_000, 100, 5_000));
        assert!(
            big * 100 <= big_lru * 135,
            "seed {seed}: {big} misses against LRU's {big_lru}"
        );
        let tiny = misses(25, seed, shifting(200_000, 50, 10, 500));
        assert!(
            tiny * 100 <= tiny_lru * 101,
            "seed {seed}: {tiny} misses against LRU's {tiny_lru}"
        );
    }
}

#[test]
fn keys_that_left_a_moving_working_set_leave_main_sooner() {
    // Keys that left the window were read often while in it, so main's hand passed them
    // over for three laps while it evicted keys still asked for. While newcomers keep coming
    // back from the small queue's ghost, a read entry goes around at most twice. Without it,
    // over these seeds: 39,619-39,795 misses (1.29-1.30x LRU's 30,709); with it
    // 35,866-36,024 (1.17x).
    let lru = lru_misses(1_000, shifting(600_000, 1_000, 100, 5_000));
    for seed in 1..=8 {
        let misses = misses(1_000, seed, shifting(600_000, 1_000, 100, 5_000));
        assert!(
            misses * 100 <= lru * 125,
            "seed {seed}: {misses} misses against LRU's {lru}"
        );
    }
}

/// Misses of a one-shard `capacity`-entry cache hashed with `seed` over `keys`.
fn one_shard_misses(capacity: u64, seed: u64, keys: impl Iterator<Item = u64>) -> u64 {
    let cache = Cache::builder()
        .max_capacity(capacity)
        .shards(1)
        .hasher(DefaultHashBuilder::with_seed(seed))
        .build()
        .unwrap();
    replay(&cache, keys)
}

#[test]
fn a_loop_settles_within_a_few_laps_in_a_big_shard() {
    // 1,100 keys in a loop through one shard of 1,000: the small queue is voted down to one
    // entry, and after the sketch first halves a key back from its ghost led main's oldest
    // entry by the one count the halving rounds off, displaced a key due next, and the
    // loop took 10-50 laps to settle: 21,198-21,819 misses over these seeds. With a lead of
    // two there, 19,694-19,801 (1,100 the first lap, then about 100 a lap).
    for seed in 1..=16 {
        let misses = one_shard_misses(1_000, seed, (0..200_000).map(|i| i % 1_100));
        assert!(
            misses <= 20_000,
            "seed {seed}: {misses} misses, about 19,700 once it settles in a lap"
        );
    }
}

#[test]
fn a_cache_under_1024_entries_is_one_shard() {
    // Two shards of 500 cannot hold 1,000 keys unless the hash splits them exactly in half,
    // and a working set near the capacity misses for it: the 1,000-key shifting set at 1,000
    // entries (`compare cache`) 0.0689 in two shards, 0.0619 in one (LRU 0.0533).
    for seed in 1..=8 {
        let cache = Cache::builder()
            .max_capacity(1_000)
            .hasher(DefaultHashBuilder::with_seed(seed))
            .build()
            .unwrap();
        for k in 0..1_000u64 {
            cache.insert(k, ());
        }
        assert_eq!(cache.entry_count(), 1_000, "seed {seed}");
    }
}

/// A cache warming up: `fill` keys asked for once, then `hot` keys each asked for twice in a
/// row, then the hot keys in `laps` loops.
fn warming(fill: u64, hot: u64, laps: u64) -> impl Iterator<Item = u64> {
    let once = 0..fill;
    let pairs = (0..hot * 2).map(move |i| (1 << 32) + i / 2);
    let loops = (0..hot * laps).map(move |i| (1 << 32) + i % hot);
    once.chain(pairs).chain(loops)
}

#[test]
fn keys_asked_for_twice_displace_what_filled_main_before_the_sketch_halves() {
    // Main fills with keys asked for once, while it has room. Before the sketch first halves
    // its counts are all low, so a newcomer asked for twice replaces such a key, unread in
    // main, as LRU would. Otherwise each hot key is turned away once more and must come back
    // from the ghost. Without it, over these seeds: 2,016-2,022 misses (1.26x LRU's 1,600);
    // with it 1,692-1,718 (1.06-1.07x).
    let lru = lru_misses(1_000, warming(1_000, 600, 5));
    assert_eq!(lru, 1_600);
    for seed in 1..=8 {
        let misses = misses(1_000, seed, warming(1_000, 600, 5));
        assert!(
            misses * 100 <= lru * 120,
            "seed {seed}: {misses} misses against LRU's {lru}"
        );
    }
}

#[test]
fn the_young_sketch_rule_waits_for_shards_of_256_entries() {
    // Under 256 entries (one shard: a cache under 1,024 entries is one) a key asked for twice
    // still needs three counts to displace what filled main: there the rule cost small
    // caches more than it saved (lirs-cs at 140 entries, one shard). So the warm-up pattern
    // misses as it did before the rule at 200 entries (1.31x LRU over these seeds), and as
    // the rule allows at 300 (1.02-1.07x). With the rule from 128 entries this fails.
    for seed in 1..=4 {
        let at = |capacity: u64| {
            let lru = lru_misses(capacity as usize, warming(capacity, capacity * 3 / 5, 5));
            let keel = misses(capacity, seed, warming(capacity, capacity * 3 / 5, 5));
            keel as f64 / lru as f64
        };
        let (below, above) = (at(200), at(300));
        assert!(
            below > 1.2 && above <= 1.2,
            "seed {seed}: {below:.3}x LRU's misses at 200 entries, {above:.3}x at 300"
        );
    }
}
